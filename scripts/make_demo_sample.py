"""Make the embedded demo sample ``radclr/data/resources/demo_kermany/`` from ``../shared/data/kermany_pediatric``.

Deterministic: patients are taken in the order of SHA-1(patient id) and kept whole; a patient whose images
are of more than one class (normal / bacterial / viral) is skipped; a patient is added to its class while the
class stays within ``--per-class`` images. Images are downsampled from 224 x 224 to ``--size`` (default 128)
with Pillow's Lanczos filter and stored as 8-bit grayscale PNG (optimised), so the sample fits the 5 MB budget.

    .venv/bin/python scripts/make_demo_sample.py [--source ../shared/data/kermany_pediatric] [--per-class 128]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

import pandas as pd
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "kermany_pediatric"
DEST = REPO / "radclr" / "data" / "resources" / "demo_kermany"
CLASS_OF_LABELS = {"No Finding": "normal", "Pneumonia|Bacterial": "bacterial", "Pneumonia|Viral": "viral"}

LICENSE = """# Embedded demo sample -- licence and credit

The images in `images/` are a small sample of the pediatric chest X-ray collection of

> Kermany DS, Goldbaum M, Cai W, et al. (corresponding author Kang Zhang). *Identifying Medical Diagnoses and
> Treatable Diseases by Image-Based Deep Learning.* Cell 172(5):1122-1131.e9, 2018.
> doi:[10.1016/j.cell.2018.02.010](https://doi.org/10.1016/j.cell.2018.02.010)

> Daniel Kermany, Kang Zhang, Michael Goldbaum. *Labeled Optical Coherence Tomography (OCT) and Chest X-Ray
> Images for Classification.* Mendeley Data, V3, 2018.
> doi:[10.17632/rscbjbr9sj.3](https://doi.org/10.17632/rscbjbr9sj.3)

They are distributed under the **Creative Commons Attribution 4.0 International licence (CC BY 4.0)**,
<https://creativecommons.org/licenses/by/4.0/>. The licence applies to these images and `labels.csv`; it does
not cover the rest of radclr.

## Changes made

- Taken from the `train` folder (`chest_xray/train/NORMAL|PNEUMONIA`) of the copy radclr's developers work
  with, in which the JPEGs had been resized to 224 x 224 (aspect ratio not kept) and re-encoded as 8-bit
  grayscale PNG.
- {n_images} images of {n_patients} patients selected deterministically by `scripts/make_demo_sample.py`:
  {per_class}; whole patients (every image of a selected patient), patients with images of more than one
  class left out.
- Downsampled to {size} x {size} pixels (Pillow Lanczos) and stored as optimised 8-bit grayscale PNG.
- Labels derived from the source folders and file names: `NORMAL` -> `No Finding`; `PNEUMONIA/*bacteria*` ->
  `Pneumonia|Bacterial`; `PNEUMONIA/*virus*` -> `Pneumonia|Viral`. The `source` column names the original file.
"""


def source_name(row) -> str:
    """The file in the published archive: ``train_person1_virus_6.png`` -> ``chest_xray/train/PNEUMONIA/...jpeg``."""
    stem = Path(row.image).stem.removeprefix("train_")
    folder = "NORMAL" if row.cls == "normal" else "PNEUMONIA"
    return f"chest_xray/train/{folder}/{stem}.jpeg"


def select(labels: pd.DataFrame, per_class: int) -> pd.DataFrame:
    labels = labels.copy()
    labels["cls"] = labels["labels"].map(CLASS_OF_LABELS)
    if labels["cls"].isna().any():
        raise SystemExit(f"unexpected labels: {sorted(set(labels.loc[labels['cls'].isna(), 'labels']))}")
    by_patient = labels.groupby("patient_id")
    order = sorted(by_patient.groups, key=lambda p: hashlib.sha1(f"radclr-demo:{p}".encode()).hexdigest())
    taken = {c: 0 for c in CLASS_OF_LABELS.values()}
    chosen = []
    for pid in order:
        rows = by_patient.get_group(pid)
        classes = set(rows["cls"])
        if len(classes) != 1:
            continue
        c = classes.pop()
        if taken[c] + len(rows) <= per_class:
            chosen.append(rows)
            taken[c] += len(rows)
        if all(v >= per_class for v in taken.values()):
            break
    return pd.concat(chosen).sort_values("image").reset_index(drop=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--dest", type=Path, default=DEST)
    ap.add_argument("--per-class", type=int, default=128)
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args(argv)
    if not (args.source / "labels.csv").is_file():
        print(f"source dataset not found: {args.source}", file=sys.stderr)
        return 1
    sel = select(pd.read_csv(args.source / "labels.csv", dtype=str), args.per_class)
    if args.dest.exists():
        shutil.rmtree(args.dest)
    (args.dest / "images").mkdir(parents=True)
    for name in sel["image"]:
        with Image.open(args.source / "images" / name) as im:
            im = im.convert("L").resize((args.size, args.size), Image.LANCZOS)
            im.save(args.dest / "images" / name, optimize=True)
    out = pd.DataFrame({"image": sel["image"], "patient_id": sel["patient_id"], "labels": sel["labels"],
                        "width": args.size, "height": args.size, "source": [source_name(r) for r in sel.itertuples()]})
    out.to_csv(args.dest / "labels.csv", index=False)
    counts = sel["cls"].value_counts()
    per_class = ", ".join(f"{counts.get(c, 0)} {c}" for c in ("normal", "bacterial", "viral"))
    (args.dest / "LICENSE.md").write_text(LICENSE.format(n_images=len(sel), n_patients=sel["patient_id"].nunique(),
                                                         per_class=per_class, size=args.size))
    total = sum(p.stat().st_size for p in args.dest.rglob("*") if p.is_file())
    print(f"{len(sel)} images ({per_class}) of {sel['patient_id'].nunique()} patients -> {args.dest} "
          f"({total / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
