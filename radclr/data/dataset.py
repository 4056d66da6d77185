"""The one dataset interface every part of radclr uses.

Modelled on torchxrayvision: a dataset is a row-aligned table of images (``records``), a label matrix over a
declared list of findings (NaN = unknown), and optional boxes and masks. Adapters (``radclr.data.adapters``)
turn a concrete on-disk layout into a :class:`CXRDataset`; nothing downstream knows which layout it came from.

Conventions
-----------
* ``findings`` never contains ``"No Finding"``: a normal image has label 0 for every finding.
* ``labels[i, j]`` is 1.0 (present), 0.0 (absent) or NaN (unknown / uncertain, per the adapter's policy).
* Boxes are ``x, y, w, h`` (top-left corner + size) in pixels **of the image as read by**
  :func:`radclr.io.read_image` -- adapters rescale boxes given in another pixel space (e.g. NIH's 1024 px).
* Problems found while loading (unknown label names, boxes outside the image, ...) never vanish silently: the
  adapter either raises :class:`~radclr.errors.DataError` or records a :class:`Problem` in ``problems`` and
  applies its documented policy (e.g. clipping a box to the image).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from radclr.boxes import Box
from radclr.errors import DataError
from radclr.io import read_image

NO_FINDING = "No Finding"

RECORD_COLUMNS = ("image_id", "path", "patient_id")
BOX_COLUMNS = ("image_id", "label", "x", "y", "w", "h")


@dataclass(frozen=True)
class Problem:
    """Something wrong with one file or record. ``severity`` is ``"error"`` or ``"warning"``."""

    file: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.severity}: {self.file}: {self.message}"


@dataclass
class CXRDataset:
    """A chest X-ray dataset in radclr's one interface.

    Attributes
    ----------
    name: short name of the dataset (e.g. ``"nih_cxr14"``).
    format: the adapter that produced it (``"folder"``, ``"nih"``, ...).
    root: dataset root folder.
    findings: ordered finding names (no ``"No Finding"``).
    records: one row per image; at least ``image_id`` (unique), ``path`` (absolute path of the file) and
        ``patient_id``; any further metadata columns (``width``, ``height``, ``view``, ``age`` ...).
    labels: ``float32 [N, F]`` multi-hot matrix aligned with ``records`` (NaN = unknown).
    boxes: one row per box, columns ``image_id, label, x, y, w, h`` (pixels of the image as read).
    masks: optional ``image_id -> mask file path``.
    problems: what the adapter found wrong while loading, and did not raise for.
    """

    name: str
    format: str
    root: Path
    findings: list[str]
    records: pd.DataFrame
    labels: np.ndarray
    boxes: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(BOX_COLUMNS)))
    masks: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        missing = [c for c in RECORD_COLUMNS if c not in self.records.columns]
        if missing:
            raise DataError(f"{self.name}: records lack column(s) {missing}")
        self.records = self.records.reset_index(drop=True)
        self.records["image_id"] = self.records["image_id"].astype(str)
        self.records["patient_id"] = self.records["patient_id"].astype(str)
        labels = np.asarray(self.labels, dtype=np.float32)
        shape = (len(self.records), len(self.findings))
        if (labels.ndim == 1 and len(self.findings) == 1 and labels.shape[0] == shape[0]) or labels.size == 0 == shape[0] * shape[1]:
            labels = labels.reshape(shape)
        if labels.shape != shape:  # a transposed [F, N] matrix has the right size but scrambles the labels
            raise DataError(f"{self.name}: labels are {labels.shape} but must be [images, findings] = {shape}")
        self.labels = labels
        dup = self.records["image_id"][self.records["image_id"].duplicated()]
        if len(dup):
            raise DataError(f"{self.name}: duplicate image id(s): {sorted(set(dup))[:5]}")
        if NO_FINDING in self.findings:
            raise DataError(f"{self.name}: '{NO_FINDING}' must not be a finding column (normal = all zeros)")
        if self.boxes is None or len(self.boxes) == 0:
            self.boxes = pd.DataFrame({c: pd.Series(dtype=float if c in "xywh" else str) for c in BOX_COLUMNS})
        else:
            self.boxes = self.boxes.reset_index(drop=True)
            self.boxes["image_id"] = self.boxes["image_id"].astype(str)
        self._ids: list[str] = self.records["image_id"].tolist()
        self._ids_of = self.records  # the frame ``_ids`` was read from (see ``image_ids``)
        self._index = {iid: i for i, iid in enumerate(self._ids)}
        self._box_groups: dict[str, list[Box]] | None = None

    # --- size and lookup -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def index_of(self, image_id: str) -> int:
        self._refresh_ids()
        try:
            return self._index[str(image_id)]
        except KeyError:
            raise DataError(f"{self.name}: unknown image id {image_id!r}") from None

    @property
    def image_ids(self) -> list[str]:
        """Every image id in record order. The list is made once and shared (O(1) per call, so
        ``ds.image_ids[i]`` in a loop over 112 k images stays linear): do not modify it."""
        self._refresh_ids()
        return self._ids

    def _refresh_ids(self) -> None:
        if self._ids_of is not self.records:  # records replaced after construction: read them again
            self._ids = self.records["image_id"].astype(str).tolist()
            self._ids_of = self.records
            self._index = {iid: i for i, iid in enumerate(self._ids)}

    def image_id(self, i: int) -> str:
        """The id of image ``i`` (O(1))."""
        return self.image_ids[int(i)]

    @property
    def patient_ids(self) -> np.ndarray:
        return self.records["patient_id"].to_numpy()

    def path(self, i: int) -> Path:
        return Path(self.records.at[i, "path"])

    # --- images ----------------------------------------------------------------------------------------
    def read(self, i: int):
        """Read image ``i`` as a :class:`radclr.io.LoadedImage` (float32, original intensity scale)."""
        return read_image(self.path(i))

    # --- labels ----------------------------------------------------------------------------------------
    def finding_index(self, finding: str) -> int:
        try:
            return self.findings.index(finding)
        except ValueError:
            raise DataError(f"{self.name}: unknown finding {finding!r}; findings are {self.findings}") from None

    def is_normal(self) -> np.ndarray:
        """Boolean ``[N]``: every finding is known and absent."""
        return np.all(self.labels == 0, axis=1)

    def class_index(self) -> np.ndarray:
        """Single-label datasets (``data.task: multiclass``): the class of every image as a float index into
        ``findings`` (``[N]``, NaN = unlabelled).

        A row with exactly one 1 has that class (its other entries 0 or unknown); a row of unknowns (NaN) is
        unlabelled, and so is a row whose known entries are all 0 but some are unknown (the class may be one of
        those). Refused with :class:`~radclr.errors.DataError` naming the images: rows with more than one label,
        rows with every entry known and 0 (a "No Finding" image: in a multi-class task "normal" must be a class
        of its own, e.g. ``Normal`` in ``labels.csv``), and datasets with fewer than two classes.
        """
        if len(self.findings) < 2:
            raise DataError(f"{self.name}: a multi-class task needs at least 2 classes, the dataset has "
                            f"{self.findings}")
        y = self.labels
        ones = np.sum(y == 1, axis=1)
        ids = np.asarray(self.image_ids, dtype=object)
        several = np.flatnonzero(ones > 1)
        if several.size:
            raise DataError(f"{self.name}: data.task multiclass takes one label per image; {several.size} image(s) "
                            f"have several, e.g. {ids[several[:3]].tolist()} "
                            f"({[self.label_names(int(i)) for i in several[:3]]})")
        normal = np.flatnonzero(self.is_normal())
        if normal.size:
            raise DataError(f"{self.name}: data.task multiclass needs a class for every labelled image; {normal.size} "
                            f"image(s) have none ({NO_FINDING!r}), e.g. {ids[normal[:3]].tolist()}: give normal "
                            "images a class of their own (e.g. 'Normal' in labels.csv) or drop them")
        out = np.full(len(self), np.nan)
        out[ones == 1] = np.argmax(y[ones == 1] == 1, axis=1)
        return out

    def label_names(self, i: int) -> list[str]:
        row = self.labels[i]
        return [f for f, v in zip(self.findings, row) if v == 1]

    # --- boxes -----------------------------------------------------------------------------------------
    def boxes_for(self, image_id: str) -> list[Box]:
        if self._box_groups is None:
            groups: dict[str, list[Box]] = {}
            for r in self.boxes.itertuples(index=False):
                groups.setdefault(str(r.image_id), []).append(
                    Box(float(r.x), float(r.y), float(r.w), float(r.h), str(r.label))
                )
            self._box_groups = groups
        return list(self._box_groups.get(str(image_id), []))

    def has_boxes(self) -> np.ndarray:
        ids = set(self.boxes["image_id"].astype(str))
        return self.records["image_id"].isin(ids).to_numpy()

    # --- derived datasets --------------------------------------------------------------------------------
    def subset(self, indices: Sequence[int] | np.ndarray, name: str | None = None) -> "CXRDataset":
        """A dataset of the given rows (order kept), with their boxes and masks."""
        idx = np.asarray(indices, dtype=np.int64)
        records = self.records.iloc[idx].reset_index(drop=True)
        keep = set(records["image_id"])
        boxes = self.boxes[self.boxes["image_id"].isin(keep)].reset_index(drop=True)
        return CXRDataset(
            name=name or self.name,
            format=self.format,
            root=self.root,
            findings=list(self.findings),
            records=records,
            labels=self.labels[idx].copy(),
            boxes=boxes,
            masks={k: v for k, v in self.masks.items() if k in keep},
            problems=list(self.problems),
        )

    def with_findings(self, findings: Iterable[str]) -> "CXRDataset":
        """Relabel to another finding list; findings not present in this dataset become NaN (unknown)."""
        findings = list(findings)
        labels = np.full((len(self), len(findings)), np.nan, dtype=np.float32)
        for j, f in enumerate(findings):
            if f in self.findings:
                labels[:, j] = self.labels[:, self.findings.index(f)]
        return CXRDataset(self.name, self.format, self.root, findings, self.records.copy(), labels,
                          self.boxes.copy(), dict(self.masks), list(self.problems))

    def label_counts(self) -> dict[str, int]:
        """Positives per finding, plus ``"No Finding"`` (all findings known and absent)."""
        counts = {f: int(np.nansum(self.labels[:, j] == 1)) for j, f in enumerate(self.findings)}
        counts[NO_FINDING] = int(self.is_normal().sum())
        return counts
