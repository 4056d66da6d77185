"""What the report's sections share about one run, loaded once and only when a section asks for it.

The metrics come from the run's files (cheap); the model, the prepared data and test-set features are loaded
lazily (a report of a run whose data moved still shows everything that needs only the files).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from radclr.engine.inference import run_inference
from radclr.errors import RadclrError
from radclr.report.results import RunResults
from radclr.runs.run import load_run
from radclr.runtime.device import resolve_device
from radclr.training_data import prepare_data

log = logging.getLogger("radclr.report")

__all__ = ["ReportContext", "Omit"]


class Omit(Exception):
    """Raised by a section builder: the section is shown with this one-line reason instead of content."""


class ReportContext:
    def __init__(self, run_dir: str | Path, *, device="auto", progress: bool = False):
        self.run_dir = Path(run_dir)
        self.results = RunResults(self.run_dir, allow_unevaluated=True)  # a killed run: sections say what is missing
        self.cfg = self.results.cfg
        self.metrics = self.results.metrics
        self.device = resolve_device(device) if isinstance(device, str) or device is None else device
        self.progress = progress

    # --- model and data (lazy) ----------------------------------------------------------------------------
    @functools.cached_property
    def run(self):
        """The evaluated checkpoint (the one metrics.json names), on the report's device; :class:`Omit` naming the
        missing checkpoint when the run has none (e.g. its training never finished an epoch)."""
        which = self.metrics.get("checkpoint", "best.pt")
        try:
            return load_run(self.run_dir, which, self.device)
        except RadclrError as e:
            raise Omit(f"the run's model is not available (checkpoint {which}): {e}") from None

    @functools.cached_property
    def data(self):
        """The run's prepared data (its own split); :class:`Omit` when the dataset is not available."""
        run = self.run  # a missing checkpoint is reported as such, not as missing data
        try:
            return prepare_data(run.cfg, self.run_dir, need_radiomics=False, progress=self.progress)
        except RadclrError as e:
            raise Omit(f"the run's data ({self.cfg.get('data', {}).get('path')}) is not available: {e}") from None

    @property
    def test_indices(self) -> np.ndarray:
        idx = self.data.indices("test")
        if len(idx) == 0:
            raise Omit("the run's split has no test images")
        return idx

    def features(self, which: str | Path, indices: np.ndarray) -> np.ndarray:
        """Representations y_i = f_i(x) of ``indices`` under checkpoint ``which`` (eval mode, no augmentation)."""
        return self._features(str(which), tuple(int(i) for i in indices))

    @functools.lru_cache(maxsize=8)
    def _features(self, which: str, indices: tuple[int, ...]) -> np.ndarray:
        run = self.run if which == str(self.run.checkpoint) else load_run(self.run_dir, which, self.device)
        bs = int(run.cfg["trainer"]["eval_batch_size"])
        return run_inference(run.method, self.data, np.asarray(indices), self.device, bs, want_logits=False,
                             want_features=True)["features"]

    def class_labels(self, indices: np.ndarray, max_classes: int = 8) -> np.ndarray:
        """One class name per image for colouring plots: its positive findings joined with ``+``
        (e.g. ``Bacterial+Pneumonia``), ``no finding`` or ``unknown`` (NaN labels); combinations beyond the
        ``max_classes`` most frequent ones become ``other combination``."""
        y = self.data.dataset.labels[indices]
        names = list(self.data.findings)
        out = []
        for row in y:
            if np.isnan(row).all():
                out.append("unknown")
                continue
            pos = np.flatnonzero(row == 1)
            out.append("no finding" if len(pos) == 0 else "+".join(names[j] for j in pos))
        out = np.asarray(out, dtype=object)
        values, counts = np.unique(out, return_counts=True)
        keep = set(values[np.argsort(-counts)][:max_classes])
        return np.asarray([v if v in keep else "other combination" for v in out])

    # --- files --------------------------------------------------------------------------------------------
    def table(self, name: str) -> pd.DataFrame | None:
        path = self.run_dir / name
        if not path.exists():
            return None
        return pd.read_csv(path, dtype={"image_id": str, "patient_id": str})
