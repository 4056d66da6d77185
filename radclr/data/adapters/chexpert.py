"""CheXpert (Irvin et al., AAAI 2019) in its official layout::

    ROOT/                      (e.g. CheXpert-v1.0-small/)
      train.csv, valid.csv     Path, Sex, Age, Frontal/Lateral, AP/PA, No Finding, <13 findings> ...
      train/patient00001/study1/view1_frontal.jpg ...

* ``Path`` is relative to the folder *above* ROOT (``CheXpert-v1.0-small/train/...``) in the official CSVs;
  a leading component equal to ROOT's name is removed, paths relative to ROOT also work; either must stay
  inside ROOT.
* Label values: ``1`` present, ``0`` absent, ``-1`` uncertain, blank unmentioned. ``uncertain`` policy:
  ``"nan"`` (default: unknown), ``"zeros"`` (U-Zeros), ``"ones"`` (U-Ones). Blank -> NaN (unknown), except that
  a ``No Finding = 1`` row has its blank pathology findings set to 0 (``Support Devices`` stays unknown).
* Findings: :data:`CHEXPERT_FINDINGS` (the 13 columns besides ``No Finding``).
* Image id: the path relative to ROOT; patient id: ``patientNNNNN`` from the path; metadata ``split``
  (``train``/``valid``), ``sex``, ``age``, ``view`` (Frontal/Lateral), ``ap_pa``.
* ``frontal_only=True`` keeps frontal views (the lateral ones are counted in a warning Problem).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from radclr.data.adapters import common as C
from radclr.errors import DataError

CHEXPERT_FINDINGS = ["Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
                     "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
                     "Pleural Other", "Fracture", "Support Devices"]
NOT_PATHOLOGY = {"Support Devices"}
CSV_FILES = ("train.csv", "valid.csv")
UNCERTAIN = {"nan": np.nan, "zeros": 0.0, "ones": 1.0}


def detect(root: Path) -> bool:
    for f in CSV_FILES:
        p = root / f
        if p.is_file():
            with open(p, errors="replace") as fh:
                header = fh.readline()
            if header.startswith("Path,") or "Path" in header.split(",")[:1]:
                return True
    return False


def _relative(path_text: str, root: Path) -> str:
    parts = str(path_text).strip().replace("\\", "/").split("/")
    # the official CSVs prefix the release folder (CheXpert-v1.0-small/train/...); drop it also when the user
    # renamed the folder, i.e. whenever the first component is not a folder inside ROOT
    if len(parts) > 1 and (parts[0] == root.resolve().name or parts[0].startswith("CheXpert-v1.0")
                           or not (root / parts[0]).is_dir()):
        parts = parts[1:]
    return "/".join(parts)


def _values(column: pd.Series, uncertain: float) -> np.ndarray:
    v = pd.to_numeric(column.replace("", np.nan), errors="coerce").to_numpy(dtype=np.float32)
    v = np.where(v == -1, np.float32(uncertain), v)
    return v


def load(root: str | Path, *, uncertain: str = "nan", frontal_only: bool = False,
         name: str | None = None) -> "C.CXRDataset":
    if uncertain not in UNCERTAIN:
        raise DataError(f"chexpert: uncertain must be one of {sorted(UNCERTAIN)}, got {uncertain!r}")
    root = Path(root)
    log = C.ProblemLog()
    parts = []
    for fname in CSV_FILES:
        csv = root / fname
        if not csv.is_file():
            continue
        df = C.read_csv(csv, ("Path",) + tuple(CHEXPERT_FINDINGS), what="CheXpert label table")
        df["_where"] = [C.csv_line(csv, i) for i in range(len(df))]
        df["split"] = fname.split(".")[0]
        parts.append(df)
    if not parts:
        raise DataError(f"{root}: neither train.csv nor valid.csv found (CheXpert)")
    df = pd.concat(parts, ignore_index=True)
    df["image_id"] = [_relative(p, root) for p in df["Path"]]
    dup = df["image_id"].duplicated(keep=False)
    if dup.any():
        raise DataError(f"{root}: duplicate image path(s) in train.csv/valid.csv: "
                        f"{C._examples(sorted(set(df.loc[dup, 'image_id'])), 3)} "
                        f"(lines {C._examples(df.loc[dup, '_where'].tolist(), 4)})")

    if frontal_only and "Frontal/Lateral" in df.columns:
        lateral = df["Frontal/Lateral"].str.strip().str.lower() != "frontal"
        if lateral.any():
            log.warning(root, f"{int(lateral.sum())} non-frontal image(s) excluded (frontal_only=True)")
        df = df[~lateral]
    records = C.attach_paths(df, "image_id", root, log, root, df["_where"].tolist(), missing="warning")
    pid = [re.search(r"(patient\d+)", p) for p in records["image_id"]]
    for m, where in zip(pid, records["_where"]):
        if m is None:
            log.error(where, "no patientNNNNN component in Path; the image is treated as its own patient")
    records["patient_id"] = [m.group(1) if m else iid for m, iid in zip(pid, records["image_id"])]

    unc = UNCERTAIN[uncertain]
    labels = np.stack([_values(records[f], unc) for f in CHEXPERT_FINDINGS], axis=1) if len(records) else \
        np.zeros((0, len(CHEXPERT_FINDINGS)), np.float32)
    bad = ~np.isin(labels, [0.0, 1.0]) & ~np.isnan(labels)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        log.error(root, f"label values other than 1/0/-1/blank in {len(rows)} row(s) "
                        f"({C._examples(records['_where'].iloc[rows].tolist(), 3)}); read as unknown")
        labels[bad] = np.nan
    if "No Finding" in records.columns:
        normal = _values(records["No Finding"], np.nan) == 1
        pathology = [j for j, f in enumerate(CHEXPERT_FINDINGS) if f not in NOT_PATHOLOGY]
        sub = labels[np.ix_(normal, pathology)]
        sub[np.isnan(sub)] = 0.0
        labels[np.ix_(normal, pathology)] = sub
        contradict = normal & (np.nansum(labels[:, pathology] == 1, axis=1) > 0)
        for where in records["_where"][contradict]:
            log.error(where, "No Finding = 1 together with a positive finding; findings kept")
    meta = {"Sex": "sex", "Age": "age", "Frontal/Lateral": "view", "AP/PA": "ap_pa"}
    for c, new in meta.items():
        if c in records.columns:
            records[new] = records[c]
    if "age" in records.columns:
        records["age"] = pd.to_numeric(records["age"], errors="coerce")
    keep = ["image_id", "path", "patient_id", "split"] + [v for c, v in meta.items() if c in records.columns]
    return C.make_dataset(name or root.resolve().name, "chexpert", root, CHEXPERT_FINDINGS, records[keep], labels,
                          None, log)
