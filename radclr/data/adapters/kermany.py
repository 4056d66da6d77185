"""Kermany et al. (Cell 2018) pediatric pneumonia X-rays in their published folder layout::

    ROOT/
      train/NORMAL/IM-0115-0001.jpeg, NORMAL2-IM-0383-0001.jpeg ...
      train/PNEUMONIA/person12_bacteria_46.jpeg, person1_virus_6.jpeg ...
      test/...   val/...   (any of train | test | val)

* Findings ``Pneumonia``, ``Bacterial``, ``Viral`` (:data:`FINDINGS`): ``NORMAL`` -> all 0;
  ``PNEUMONIA/*bacteria*`` -> Pneumonia + Bacterial; ``PNEUMONIA/*virus*`` -> Pneumonia + Viral; a PNEUMONIA file
  naming neither -> Pneumonia = 1, sub-type unknown (NaN) + warning Problem; a NORMAL file named like a
  pneumonia case -> error Problem, the folder wins.
* Patient id from the file name: ``person12`` (pneumonia), ``IM-0115`` / ``NORMAL2-IM-0383`` (normals) -- the
  same ids as ``../shared/data/kermany_pediatric``.
* Image id: path relative to ROOT; metadata ``split`` = the top folder. The source folders are *not*
  guaranteed patient-disjoint; re-split with :mod:`radclr.data.splits` rather than trusting ``split``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from radclr.data.adapters import common as C
from radclr.errors import DataError

FINDINGS = ["Pneumonia", "Bacterial", "Viral"]
SPLITS = ("train", "test", "val")
CLASSES = ("NORMAL", "PNEUMONIA")
SUFFIXES = (".jpeg", ".jpg", ".png")
_PERSON = re.compile(r"^(person\d+)_(bacteria|virus)_\d+", re.I)
_NORMAL = re.compile(r"^((?:NORMAL\d*-)?IM-\d+)-\d+", re.I)


def detect(root: Path) -> bool:
    return any((root / s / c).is_dir() for s in SPLITS for c in CLASSES)


def parse_name(stem: str) -> tuple[str | None, str | None]:
    """``(patient_id, kind)`` from a file stem; kind is ``bacteria``, ``virus``, ``normal`` or None."""
    m = _PERSON.match(stem)
    if m:
        return m.group(1), m.group(2).lower()
    m = _NORMAL.match(stem)
    if m:
        return m.group(1), "normal"
    m = re.match(r"^(person\d+)", stem, re.I)
    return (m.group(1), None) if m else (None, None)


def load(root: str | Path, *, name: str | None = None) -> "C.CXRDataset":
    root = Path(root)
    log = C.ProblemLog()
    rows = []
    for split in SPLITS:
        for cls in CLASSES:
            folder = root / split / cls
            for rel, p in sorted(C.list_files(folder, SUFFIXES).items()):
                rows.append((f"{split}/{cls}/{rel}", str(p), split, cls, Path(rel).stem))
    if not rows:
        raise DataError(f"{root}: no images under train|test|val/NORMAL|PNEUMONIA/ (Kermany layout)")
    records = pd.DataFrame(rows, columns=["image_id", "path", "split", "folder_class", "stem"])
    labels = np.zeros((len(records), len(FINDINGS)), dtype=np.float32)
    pids = []
    for i, r in enumerate(records.itertuples(index=False)):
        pid, kind = parse_name(r.stem)
        if pid is None:
            log.error(r.path, "file name matches neither personN_bacteria|virus_K nor IM-NNNN-K; the image is "
                              "treated as its own patient")
            pid = r.image_id
        pids.append(pid)
        if r.folder_class == "NORMAL":
            if kind in ("bacteria", "virus"):
                log.error(r.path, f"file in NORMAL/ is named like a {kind} case; labelled normal (folder wins)")
            continue
        labels[i, 0] = 1.0
        if kind == "bacteria":
            labels[i, 1], labels[i, 2] = 1.0, 0.0
        elif kind == "virus":
            labels[i, 1], labels[i, 2] = 0.0, 1.0
        else:
            labels[i, 1:] = np.nan
            log.warning(r.path, "PNEUMONIA file names neither bacteria nor virus; sub-type unknown (NaN)")
    records["patient_id"] = pids
    records = records.drop(columns=["stem", "folder_class"])
    return C.make_dataset(name or root.resolve().name, "kermany", root, FINDINGS, records, labels, None, log)
