"""COVID-19 image data collection (Cohen et al., 2020; github.com/ieee8023/covid-chestxray-dataset)::

    ROOT/
      metadata.csv      patientid, offset, sex, age, finding, ..., view, modality, date, location, folder,
                        filename, doi, url, license, clinical_notes, other_notes
      images/<filename>  (and volumes/ for CT, which is not read)

* Only frontal X-rays are kept: ``modality == "X-ray"`` and a frontal ``view`` (PA, AP, AP Supine,
  AP semi erect, AP erect ...). CT rows and non-frontal X-rays (e.g. ``L``) are excluded and COUNTED in one
  warning Problem each.
* ``finding`` is a hierarchy string, ``Pneumonia/Viral/COVID-19``; every level is a finding (Pneumonia,
  Viral, COVID-19), so sub-types share their parents. Several findings may be separated by ``,`` ``;`` or
  ``|``. ``No Finding`` = normal; blank / ``todo`` / ``Unknown`` = unlabelled (NaN) with one warning.
* Findings: sorted levels seen (or the caller's ``findings``; names outside it are error Problems).
* Image id: ``filename``; patient id: ``patientid``; metadata ``sex, age, view, offset, date, location``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from radclr.data.adapters import common as C

META_FILE = "metadata.csv"
REQUIRED = ("patientid", "finding", "view", "modality", "filename")
UNLABELLED = {"", "todo", "unknown"}
META = ("sex", "age", "view", "offset", "date", "location")


def detect(root: Path) -> bool:
    f = root / META_FILE
    if not f.is_file():
        return False
    with open(f, errors="replace") as fh:
        header = fh.readline()
    return "finding" in header and "filename" in header


def is_frontal(view: str) -> bool:
    v = str(view).strip().lower()
    return v == "pa" or v.startswith("ap")


def parse_finding(text: str) -> list[str] | None:
    """Every level of every hierarchy string: ``"Pneumonia/Viral/COVID-19"`` -> the three names; None if
    unlabelled."""
    text = str(text).strip()
    if text.lower() in UNLABELLED:
        return None
    names: list[str] = []
    for item in re.split(r"[,;|]", text):
        for level in item.split("/"):
            level = level.strip()
            if level and level not in names:
                names.append(level)
    return names or None


def load(root: str | Path, *, findings: list[str] | None = None, name: str | None = None) -> "C.CXRDataset":
    root = Path(root)
    log = C.ProblemLog()
    csv = root / META_FILE
    df = C.read_csv(csv, REQUIRED, what="COVID-19 collection metadata")
    df["_where"] = [C.csv_line(csv, i) for i in range(len(df))]
    xray = df["modality"].str.strip().str.lower().isin(["x-ray", "xray", "cr", "dx"])
    if (~xray).any():
        kinds = df.loc[~xray, "modality"].str.strip().value_counts().to_dict()
        log.warning(csv, f"{int((~xray).sum())} non-X-ray row(s) excluded ({kinds})")
    df = df[xray]
    frontal = df["view"].map(is_frontal)
    if (~frontal).any():
        views = df.loc[~frontal, "view"].str.strip().value_counts().to_dict()
        log.warning(csv, f"{int((~frontal).sum())} non-frontal X-ray row(s) excluded (views {views})")
    df = df[frontal].copy()
    df["image_id"] = df["filename"].str.strip()
    C.check_unique(df["image_id"], csv)  # index = CSV row, so the message names the lines
    folder = df["folder"].str.strip() if "folder" in df.columns else pd.Series("images", index=df.index)
    df["_rel"] = [f"{f or 'images'}/{n}" for f, n in zip(folder, df["image_id"])]
    records = C.attach_paths(df, "_rel", root, log, csv, df["_where"].tolist())
    records["patient_id"] = records["patientid"].str.strip()
    blank = records["patient_id"] == ""
    for where in records.loc[blank, "_where"]:
        log.error(where, "blank patientid; the image is treated as its own patient")
    records.loc[blank, "patient_id"] = records.loc[blank, "image_id"]

    lists = [parse_finding(t) for t in records["finding"]]
    n_unlabelled = sum(v is None for v in lists)
    if n_unlabelled:
        log.warning(csv, f"{n_unlabelled} image(s) with a blank/todo/Unknown finding kept as unlabelled (NaN)")
    finding_list = list(findings) if findings is not None else C.findings_from_labels(lists, log, csv)
    labels = C.multi_hot(lists, finding_list, log, csv, records["_where"].tolist())
    if "age" in records.columns:
        records["age"] = pd.to_numeric(records["age"], errors="coerce")
    keep = ["image_id", "path", "patient_id"] + [c for c in META if c in records.columns]
    return C.make_dataset(name or root.resolve().name, "covid", root, finding_list, records[keep], labels, None,
                          log)
