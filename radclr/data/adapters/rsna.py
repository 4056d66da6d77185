"""RSNA Pneumonia Detection Challenge (Kaggle 2018) in its official layout::

    ROOT/
      stage_2_train_labels.csv          patientId, x, y, width, height, Target  (one row per box; Target 0 rows
                                        have empty coordinates)
      stage_2_detailed_class_info.csv   optional: patientId, class  (Lung Opacity | Normal |
                                        No Lung Opacity / Not Normal)
      stage_2_train_images/<patientId>.dcm

* One image per patient: image id = patient id = ``patientId``.
* Finding: ``Pneumonia`` (= ``Target``; the challenge's "Lung Opacity" boxes). Several rows of one image are
  several boxes, in the DICOM's own pixels (1024 px), checked against the DICOM header size.
* ``class`` (detailed class info) is kept as metadata. Note that ``No Lung Opacity / Not Normal`` images have
  ``Pneumonia = 0`` and so count as "No Finding" for this one-finding dataset; use the ``class`` column to
  tell them apart.
* Rows of one image that disagree on ``Target`` -> error Problem, ``Target = 1`` kept. A ``Target = 1`` row
  without coordinates -> error Problem (the label is kept, no box).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from radclr.data.adapters import common as C

LABELS_FILE = "stage_2_train_labels.csv"
CLASS_FILE = "stage_2_detailed_class_info.csv"
IMAGES_DIR = "stage_2_train_images"
FINDINGS = ["Pneumonia"]
REQUIRED = ("patientId", "x", "y", "width", "height", "Target")


def detect(root: Path) -> bool:
    return (root / LABELS_FILE).is_file()


def load(root: str | Path, *, name: str | None = None) -> "C.CXRDataset":
    root = Path(root)
    log = C.ProblemLog()
    csv = root / LABELS_FILE
    df = C.read_csv(csv, REQUIRED, what="RSNA label table")
    df["where"] = [C.csv_line(csv, i) for i in range(len(df))]
    df["patientId"] = df["patientId"].str.strip()
    df["target"] = pd.to_numeric(df["Target"], errors="coerce")
    for where in df.loc[df["target"].isna() | ~df["target"].isin([0, 1]), "where"]:
        log.error(where, "Target is not 0 or 1; row ignored")
    df = df[df["target"].isin([0, 1])]

    per_image = df.groupby("patientId", sort=False).agg(target=("target", "max"), lo=("target", "min"),
                                                       where=("where", "first")).reset_index()
    for r in per_image[per_image["lo"] != per_image["target"]].itertuples():
        log.error(r.where, f"rows of {r.patientId} disagree on Target; Target = 1 kept")
    records = pd.DataFrame({"image_id": per_image["patientId"], "patient_id": per_image["patientId"],
                            "file": per_image["patientId"] + ".dcm"})
    images = root / IMAGES_DIR
    available = C.list_files(images, (".dcm",))
    records = C.attach_paths(records, "file", images, log, csv, per_image["where"].tolist(), missing="warning",
                             available=available).drop(columns=["file"])
    if (root / CLASS_FILE).is_file():
        cls = C.read_csv(root / CLASS_FILE, ("patientId", "class"), what="RSNA detailed class table")
        cls["patientId"] = cls["patientId"].str.strip()
        cls = cls.drop_duplicates("patientId").set_index("patientId")["class"]
        records["class"] = [cls.get(i, "") for i in records["image_id"]]
    target = per_image.set_index("patientId")["target"]
    labels = target.loc[records["image_id"]].to_numpy(dtype=np.float32)[:, None]

    pos = df[df["target"] == 1]
    coords = pos[["x", "y", "width", "height"]].apply(lambda s: pd.to_numeric(s, errors="coerce"))
    nobox = coords.isna().all(axis=1)
    for where in pos.loc[nobox, "where"]:
        log.error(where, "Target = 1 without box coordinates; label kept, no box")
    pos = pos[~nobox]
    present = set(records["image_id"])
    pos = pos[pos["patientId"].isin(present)]  # images without a file were reported above
    bdf = pd.DataFrame({"image_id": pos["patientId"], "label": "Pneumonia", "x": pos["x"], "y": pos["y"],
                        "w": pos["width"], "h": pos["height"], "where": pos["where"]})
    boxes = C.check_boxes(bdf, records, labels, FINDINGS, log)
    return C.make_dataset(name or root.resolve().name, "rsna", root, FINDINGS, records, labels, boxes, log)
