"""NIH ChestX-ray14 in its official layout (Wang et al., CVPR 2017)::

    ROOT/
      Data_Entry_2017.csv (or Data_Entry_2017_v2020.csv)
      BBox_List_2017.csv                       optional: 984 boxes of 8 findings
      train_val_list.txt, test_list.txt        optional: the official patient-wise split
      images_001/images/*.png ... images_012/images/*.png   (or images/*.png; any images*/ folders)

* Labels: ``Finding Labels`` (``|``-separated; ``No Finding`` = normal) over the 14 NIH findings
  (:data:`NIH_FINDINGS`). Patient id: ``Patient ID`` zero-padded to 8 digits (as in the image names).
* Metadata: ``follow_up, age, sex, view, orig_width, orig_height, orig_spacing_x, orig_spacing_y`` and
  ``official_split`` (``train_val``/``test``) when the list files are there.
* Boxes: ``BBox_List_2017.csv`` columns ``Image Index, Finding Label, Bbox [x, y, w, h]`` (the header really
  is split like that). ``Infiltrate`` -> ``Infiltration``. The coordinates are in the pixels of the released
  1024 x 1024 PNGs; they are rescaled to the size of the file actually read (:func:`radclr.io.image_size`),
  so resized copies (e.g. 224 px) get correct boxes. ``box_space="original"`` instead treats them as pixels
  of the original scan (``OriginalImage[Width``, ``Height]`` columns).
* Images listed in the CSV but absent (a partial download) are dropped with one warning giving the count.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from radclr.data.adapters import common as C
from radclr.errors import DataError

NIH_FINDINGS = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
                "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"]
ALIASES = {"Infiltrate": "Infiltration"}
RELEASED_SIZE = 1024  # px, the released PNGs (NIH README); BBox_List coordinates are in this space
ENTRY_GLOB = "Data_Entry_2017*.csv"
BBOX_FILE = "BBox_List_2017.csv"
REQUIRED = ("Image Index", "Finding Labels", "Patient ID")
BOX_REQUIRED = ("Image Index", "Finding Label", "Bbox [x", "y", "w", "h]")
META_COLUMNS = {"Follow-up #": "follow_up", "Patient Age": "age", "Patient Gender": "sex", "View Position": "view",
                "OriginalImage[Width": "orig_width", "Height]": "orig_height",
                "OriginalImagePixelSpacing[x": "orig_spacing_x", "y]": "orig_spacing_y"}


def detect(root: Path) -> bool:
    return any(root.glob(ENTRY_GLOB))


def _entry_file(root: Path) -> Path:
    files = sorted(root.glob(ENTRY_GLOB))
    if not files:
        raise DataError(f"{root}: no {ENTRY_GLOB} (NIH ChestX-ray14 label file)")
    return files[-1]  # Data_Entry_2017_v2020.csv sorts after Data_Entry_2017.csv


def _image_index(root: Path) -> dict[str, Path]:
    """file name -> path for every PNG under ROOT/images*/ (recursive)."""
    out: dict[str, Path] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name.lower().startswith("images")):
        for rel, p in C.list_files(folder, (".png", ".jpg", ".jpeg", ".dcm")).items():
            out.setdefault(Path(rel).name, p)
    return out


def _age(text: str) -> float:
    m = re.match(r"^\s*0*(\d+)\s*([YMD]?)\s*$", str(text), re.I)
    if not m:
        return np.nan
    v, unit = float(m.group(1)), m.group(2).upper()
    return v / 12.0 if unit == "M" else v / 365.25 if unit == "D" else v


def _official_split(root: Path) -> dict[str, str]:
    out = {}
    for fname, part in (("train_val_list.txt", "train_val"), ("test_list.txt", "test")):
        f = root / fname
        if f.is_file():
            for ln in f.read_text().split():
                out[ln.strip()] = part
    return out


def _rescale_boxes(bdf: pd.DataFrame, records: pd.DataFrame, box_space: str, size_of, log) -> pd.DataFrame:
    """Boxes from the reference pixel space (released 1024 px, or the original scan) to the file read.
    Boxes whose reference size is unknown (``box_space="original"`` without ``OriginalImage`` sizes) are
    dropped with an error; unreadable coordinates are left to :func:`common.check_boxes` to report."""
    row_of = {iid: i for i, iid in enumerate(records["image_id"])}
    out = bdf.copy()
    xs, ys, ws, hs = (pd.to_numeric(out[c], errors="coerce").to_numpy(dtype=float, copy=True) for c in "xywh")
    keep = np.ones(len(out), dtype=bool)
    for k, (iid, where) in enumerate(zip(out["image_id"], out["where"])):
        hw = size_of(iid) if iid in row_of else None
        if hw is None or not np.all(np.isfinite([xs[k], ys[k], ws[k], hs[k]])):
            continue
        if box_space == "released":
            ref_w = ref_h = float(RELEASED_SIZE)
        else:
            row = records.iloc[row_of[iid]]
            ref_w, ref_h = float(row.get("orig_width", np.nan)), float(row.get("orig_height", np.nan))
            if not (np.isfinite(ref_w) and np.isfinite(ref_h) and ref_w > 0 and ref_h > 0):
                log.error(where, f"box of {iid}: no OriginalImage[Width, Height] to rescale it from; dropped")
                keep[k] = False
                continue
        sx, sy = hw[1] / ref_w, hw[0] / ref_h
        xs[k], ws[k], ys[k], hs[k] = xs[k] * sx, ws[k] * sx, ys[k] * sy, hs[k] * sy
    rescaled = np.isfinite(xs) & np.isfinite(ys) & np.isfinite(ws) & np.isfinite(hs)
    for c, v in zip("xywh", (xs, ys, ws, hs)):
        out[c] = np.where(rescaled, v.astype(object), out[c].to_numpy(dtype=object))
    return out[keep]


def load(root: str | Path, *, findings: list[str] | None = None, box_space: str = "released",
         name: str | None = None) -> "C.CXRDataset":
    """Load NIH ChestX-ray14 (module docstring). ``findings`` defaults to the 14 NIH findings."""
    if box_space not in ("released", "original"):
        raise DataError(f"nih: box_space must be 'released' or 'original', got {box_space!r}")
    root = Path(root)
    log = C.ProblemLog()
    entry = _entry_file(root)
    df = C.read_csv(entry, REQUIRED, what="NIH Data_Entry table")
    df["_where"] = [C.csv_line(entry, i) for i in range(len(df))]
    df["Image Index"] = df["Image Index"].str.strip()
    C.check_unique(df["Image Index"], entry)
    finding_list = list(findings) if findings is not None else list(NIH_FINDINGS)

    index = _image_index(root)
    if not index:
        raise DataError(f"{root}: no image files under images*/ folders (expected images_001/images/*.png ...)")
    df["image_id"] = df["Image Index"]
    records = C.attach_paths(df, "Image Index", root, log, entry, df["_where"].tolist(), missing="warning",
                             available=index)
    records["path"] = [str(index[i]) for i in records["Image Index"]]  # the images*/ subfolder holding it
    pid = pd.to_numeric(records["Patient ID"], errors="coerce")
    records["patient_id"] = [f"{int(p):08d}" if np.isfinite(p) else str(s).strip()
                             for p, s in zip(pid, records["Patient ID"])]
    for c, new in META_COLUMNS.items():
        if c in records.columns:
            records[new] = records[c]
    for c in ("follow_up", "orig_width", "orig_height", "orig_spacing_x", "orig_spacing_y"):
        if c in records.columns:
            records[c] = pd.to_numeric(records[c], errors="coerce")
    if "age" in records.columns:
        records["age"] = [_age(a) for a in records["age"]]
    split = _official_split(root)
    if split:
        records["official_split"] = [split.get(i, "") for i in records["image_id"]]

    lists = [C.split_labels(t) or None for t in records["Finding Labels"]]
    labels = C.multi_hot(lists, finding_list, log, entry, records["_where"].tolist(), ALIASES)

    boxes = None
    bbox = root / BBOX_FILE
    if bbox.is_file():
        bdf = C.read_csv(bbox, BOX_REQUIRED, what="NIH box table")
        bdf = bdf.rename(columns={"Image Index": "image_id", "Finding Label": "label", "Bbox [x": "x", "h]": "h"})
        bdf["where"] = [C.csv_line(bbox, i) for i in range(len(bdf))]
        bdf["image_id"] = bdf["image_id"].str.strip()
        bdf["label"] = bdf["label"].str.strip().replace(ALIASES)
        listed, present = set(df["image_id"]), set(records["image_id"])
        undownloaded = bdf["image_id"].isin(listed) & ~bdf["image_id"].isin(present)
        if undownloaded.any():
            log.warning(bbox, f"{int(undownloaded.sum())} box(es) belong to listed images without a file; dropped")
            bdf = bdf[~undownloaded]
        size_of = C.size_lookup(records, log)
        bdf = _rescale_boxes(bdf, records, box_space, size_of, log)
        boxes = C.check_boxes(bdf, records, labels, finding_list, log, size_of=size_of)

    keep = ["image_id", "path", "patient_id"] + [c for c in META_COLUMNS.values() if c in records.columns]
    if "official_split" in records.columns:
        keep.append("official_split")
    return C.make_dataset(name or root.resolve().name, "nih", root, finding_list, records[keep], labels, boxes, log)
