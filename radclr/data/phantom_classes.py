"""Single-label phantoms: every image shows exactly one lesion type -- a multi-class task (seed 004's 4-class
kidney setting, ``data.task: multiclass``) on the 2-D chest phantoms.

The images are :func:`radclr.data.phantom.make_phantom` chests with one lesion each; the class is the lesion type
(``Mass``, ``Nodule``, ``Effusion``, ``Infiltration``), balanced (a seeded permutation of the classes repeated),
with the lesion's exact box in ``boxes.csv``. About one patient in five has a second image of the same class
(patient-wise splits are exercised). ``data.path: phantom`` with ``data.task: multiclass`` trains on these
(:func:`radclr.training_data.prepare.open_dataset`); the multi-label phantoms (normals, co-occurring lesions)
cannot be single-label.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from radclr.data.loading import load_dataset
from radclr.data.phantom import PHANTOM_FINDINGS, make_phantom

__all__ = ["write_single_label_phantoms"]


def write_single_label_phantoms(out_dir: str | Path, n: int, size: int = 128, seed: int = 0,
                                classes: Sequence[str] | None = None, progress: bool = False):
    """Write ``n`` single-lesion phantoms in the radclr folder format and return the loaded dataset (see the
    module docstring). ``labels.csv`` is written last, so a folder with ``labels.csv`` is complete."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    classes = list(classes) if classes is not None else list(PHANTOM_FINDINGS)
    if len(classes) < 2 or any(c not in PHANTOM_FINDINGS for c in classes) or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be at least 2 distinct names of {list(PHANTOM_FINDINGS)}, got {classes}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 0xC1A5])
    rows, box_rows = [], []
    width = max(4, len(str(n - 1)))
    patient, kind, second = -1, None, False
    order: list[str] = []
    for i in tqdm(range(n), desc="phantoms", unit="img", file=sys.stderr, disable=not progress, leave=False):
        if second or rng.random() >= 0.2 or kind is None:  # a new patient (else the patient's second image)
            if not order:
                order = [classes[j] for j in rng.permutation(len(classes))]
            patient, kind, second = patient + 1, order.pop(), False
        else:
            second = True
        img, labels, boxes = make_phantom(size, [kind], rng)
        name = f"phantom_{i:0{width}d}.png"
        Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), mode="L").save(out / "images" / name)
        rows.append((name, f"P{patient:0{width}d}", labels[0], img.shape[1], img.shape[0]))
        box_rows += [(name, b.label, b.x, b.y, b.w, b.h) for b in boxes]
    (out / "findings.txt").write_text("\n".join(classes) + "\n")
    pd.DataFrame(box_rows, columns=["image", "label", "x", "y", "w", "h"]).to_csv(out / "boxes.csv", index=False)
    pd.DataFrame(rows, columns=["image", "patient_id", "labels", "width", "height"]).to_csv(out / "labels.csv",
                                                                                          index=False)
    return load_dataset(out, format="folder")
