"""The radclr folder format (the layout of ``../shared/data/*``, the embedded demo and the phantom writer)::

    ROOT/
      images/        image files (any format radclr reads; subfolders allowed)
      labels.csv     image, patient_id, labels[, width, height][, split][, mask][, any metadata ...]
      boxes.csv      optional: image, label, x, y, w, h   (pixels of the file: top-left corner + size)
      masks/         optional: one mask per image, same relative path and stem (any suffix radclr reads)
      findings.txt   optional: the declared finding list, one per line

* ``image``: path relative to ``images/`` (the image id); ``patient_id``: patient (splits keep patients whole).
* ``labels``: ``|``-separated findings; ``No Finding`` = normal (all findings 0); blank = unlabelled (all NaN).
* Findings: the caller's ``findings=[...]``, else ``findings.txt``, else the sorted labels seen (minus
  ``No Finding``). A label outside a declared list is an error Problem (see :mod:`.common`); to study a subset of
  findings load everything and call :meth:`CXRDataset.with_findings`.
* A header-only ``labels.csv`` (no rows) is an error problem (``radclr data validate`` fails; training refuses it).
* Extra columns are kept as metadata (numbers parsed). ``width``/``height`` (when given) are used to check boxes
  without opening the files; ``radclr data validate`` checks them against the files. A value that is not a
  positive whole number (text, negative, fractional) is an error problem and is ignored (the file's size is used).
* ``mask``: optional column with a mask path relative to the root; otherwise ``masks/<same stem>.*``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from radclr.data.adapters import common as C
from radclr.errors import DataError
from radclr.io.readers import SUPPORTED_SUFFIXES

LABELS_FILE, BOXES_FILE, FINDINGS_FILE = "labels.csv", "boxes.csv", "findings.txt"
REQUIRED = ("image", "patient_id", "labels")
BOX_REQUIRED = ("image", "label", "x", "y", "w", "h")
DEFAULT_ALIASES = {"Infiltrate": "Infiltration"}  # NIH box files' spelling (``../shared/data/README.md``)


def detect(root: Path) -> bool:
    return (root / LABELS_FILE).is_file()


def _numeric_metadata(df: pd.DataFrame, skip: set[str]) -> pd.DataFrame:
    for c in df.columns:
        if c in skip:
            continue
        s = df[c]
        nonblank = s[s != ""]
        if len(nonblank) == 0:
            continue
        num = pd.to_numeric(nonblank, errors="coerce")
        if num.notna().all():
            df[c] = pd.to_numeric(s.replace("", np.nan), errors="coerce")
    return df


def _declared_findings(root: Path, findings) -> list[str] | None:
    if findings is not None:
        out = [str(f).strip() for f in findings]
    elif (root / FINDINGS_FILE).is_file():
        out = [ln.strip() for ln in (root / FINDINGS_FILE).read_text().splitlines()
               if ln.strip() and not ln.lstrip().startswith("#")]
    else:
        return None
    if len(set(out)) != len(out):
        raise DataError(f"{root}: declared findings contain duplicates: {out}")
    if C.NO_FINDING in out:
        raise DataError(f"{root}: '{C.NO_FINDING}' must not be a declared finding (normal = all findings 0)")
    return out


def _masks(root: Path, records: pd.DataFrame, log: C.ProblemLog) -> dict[str, str]:
    masks: dict[str, str] = {}
    if "mask" in records.columns:
        for iid, rel, where in zip(records["image_id"], records["mask"], records["_where"]):
            if not str(rel).strip():
                continue
            norm, reason = C.inside_root(rel)
            if norm is None:
                log.error(where, f"mask: {reason}")
            elif not (root / norm).is_file():
                log.error(root / norm, f"mask file missing (listed at {where})")
            else:
                masks[str(iid)] = str(root / norm)
        return masks
    folder = root / "masks"
    if not folder.is_dir():
        return masks

    def stem_of(rel: str) -> str:  # "case_0.nii.gz" -> "case_0" for images and masks alike
        return rel[:-7] if rel.lower().endswith(".nii.gz") else rel.rsplit(".", 1)[0]

    by_stem: dict[str, Path] = {}
    for rel, p in C.list_files(folder, SUPPORTED_SUFFIXES).items():
        by_stem[stem_of(rel)] = p
    for iid in records["image_id"]:
        stem = stem_of(str(iid))
        if stem in by_stem:
            masks[str(iid)] = str(by_stem.pop(stem))
    if by_stem:
        log.warning(folder, f"{len(by_stem)} mask file(s) match no image (e.g. {C._examples(sorted(by_stem), 3)}); "
                            "ignored")
    return masks


def load(root: str | Path, *, findings: list[str] | None = None, aliases: dict[str, str] | None = None,
         name: str | None = None) -> "C.CXRDataset":
    """Load a folder-format dataset (module docstring). ``aliases`` renames labels (default: NIH's box spelling
    ``Infiltrate`` -> ``Infiltration``, applied only when ``Infiltrate`` is not itself a finding)."""
    root = Path(root)
    log = C.ProblemLog()
    labels_csv = root / LABELS_FILE
    df = C.read_csv(labels_csv, REQUIRED, what="label table")
    if len(df) == 0:
        log.error(labels_csv, "lists no images (a header and no rows): the dataset is empty")
    df["_where"] = [C.csv_line(labels_csv, i) for i in range(len(df))]
    df = C.check_declared_sizes(df, log)
    df["image"] = df["image"].map(_normalised_id)  # "./a.png" and "a.png" are one image (and one duplicate)
    C.check_unique(df["image"], labels_csv)

    raw_lists = [C.split_labels(t) or None for t in df["labels"]]
    declared = _declared_findings(root, findings)
    # "Mass,Nodule" -> Mass | Nodule (error); "mass" / "Mass" -> one finding (warning)
    raw_lists, variants = C.tidy_label_lists(raw_lists, declared, log, labels_csv, df["_where"].tolist())
    found = C.findings_from_labels(raw_lists, log, labels_csv)
    finding_list = declared if declared is not None else found
    aliases = dict(DEFAULT_ALIASES if aliases is None else aliases)
    aliases = {a: b for a, b in aliases.items() if a not in finding_list}
    aliases.update({v: k for v, k in variants.items() if v not in finding_list})  # box labels spelled alike

    images_dir = root / "images"
    if not images_dir.is_dir():
        raise DataError(f"{root}: no images/ folder (the folder format keeps the image files in ROOT/images/)")
    available = C.list_files(images_dir)
    df = df.rename(columns={"image": "image_id"})
    df["_labels"] = raw_lists
    records = C.attach_paths(df, "image_id", images_dir, log, labels_csv, df["_where"].tolist(),
                             available=available)
    listed = {C.inside_root(r)[0] for r in df["image_id"]}
    unlisted = sorted(k for k in available if k not in listed and k.lower().endswith(SUPPORTED_SUFFIXES))
    if unlisted:
        log.warning(images_dir, f"{len(unlisted)} image file(s) not listed in {LABELS_FILE} "
                                f"(e.g. {C._examples(unlisted, 3)}); ignored")

    blank = records["patient_id"].str.strip() == ""
    for where in records.loc[blank, "_where"]:
        log.error(where, "blank patient_id; the image is treated as its own patient")
    records.loc[blank, "patient_id"] = records.loc[blank, "image_id"]
    records["patient_id"] = records["patient_id"].str.strip()

    labels = C.multi_hot(records["_labels"].tolist(), finding_list, log, labels_csv, records["_where"].tolist(),
                         aliases)
    masks = _masks(root, records, log)

    boxes = None
    _misnamed_tables(root, log)
    if (root / BOXES_FILE).is_file():
        bdf = C.read_csv(root / BOXES_FILE, BOX_REQUIRED, what="box table")
        bdf["where"] = [C.csv_line(root / BOXES_FILE, i) for i in range(len(bdf))]
        bdf["image_id"] = bdf["image"].map(_normalised_id)
        renamed = bdf["label"].str.strip().isin(list(aliases))
        if renamed.any():
            log.warning(root / BOXES_FILE, f"{int(renamed.sum())} box label(s) renamed by alias "
                                           f"{ {a: b for a, b in aliases.items() if a in set(bdf['label'])} }")
            bdf["label"] = bdf["label"].str.strip().replace(aliases)
        boxes = C.check_boxes(bdf, records, labels, finding_list, log)

    meta_skip = {"image_id", "path", "patient_id", "labels", "_labels", "_where", "mask"}
    records = _numeric_metadata(records.drop(columns=["labels", "_labels"]), meta_skip)
    records = records.drop(columns=["_where"])
    return C.make_dataset(name or root.resolve().name, "folder", root, finding_list, records, labels, boxes, log,
                          masks)


def _misnamed_tables(root: Path, log: C.ProblemLog) -> None:
    """``boxes.csv`` / ``findings.txt`` that are folders, or spelled in another case (``Boxes.csv``): an error
    Problem each -- silently "no boxes" would score localization on nothing."""
    try:
        entries = {p.name: p for p in root.iterdir()}
    except OSError:
        return
    for name, what in ((BOXES_FILE, "box table"), (FINDINGS_FILE, "finding list")):
        path = root / name
        if path.is_dir():
            log.error(path, f"is a folder, not the {what} file; not read")
        elif name not in entries and not path.exists():  # (a case-insensitive file system finds it)
            other = [n for n in entries if n.lower() == name.lower()]
            if other:
                log.error(root / other[0], f"the {what} must be named {name} exactly (file names are case-sensitive); "
                                           f"not read")


def _normalised_id(text) -> str:
    """The image path as an id: normalised relative path (``./a//b.png`` -> ``a/b.png``); paths refused by
    :func:`radclr.data.adapters.common.inside_root` are kept as written, so the refusal names them."""
    norm, _ = C.inside_root(str(text))
    return norm if norm is not None else str(text).strip()
