"""Synthetic lesions on REAL chest X-rays: the four phantom kinds inserted into normal (``No Finding``) images.

``radclr data synth OUT --background DATASET --n N --seed S [--contrast C]`` (:func:`write_background_lesions`).
The step between phantoms (:mod:`radclr.data.phantom`: synthetic chest, known boxes) and real findings (real
anatomy, few and weak boxes): real anatomy, lesions of known kind and exact box.

Backgrounds
-----------
Every image of DATASET with every finding known and absent (``No Finding``) is a candidate background; a dataset
without one is refused (:class:`~radclr.errors.DataError`). Backgrounds are taken **whole patients at a time** (a
seeded permutation of the patients; all of a patient's normal images, the last patient cut at ``n``), and each
output image keeps its background's ``patient_id``, so a patient-wise split keeps one patient's backgrounds in one
split. Each patient is either a *lesion* patient (every one of their images gets lesions) or a *negative* patient
(their images are written untouched): negatives are untouched normals of other patients than the lesions' ones --
no background appears both with and without a lesion. ``part`` restricts the candidates to a fixed patient-hash
half of the dataset (``"train"`` / ``"holdout"``, :func:`patient_part`, independent of ``seed``), so a training
set and a test set drawn with any seeds never share a patient.

Lesions (per lesion image: one finding, a quarter of them a second one, as the phantoms)
------------------------------------------------------------------------------------------
Intensity is changed relative to the local anatomy: a lesion of opacity ``a`` in ``[0, 1]`` moves a pixel of value
``I`` to ``I + a (255 - I)`` (bright = dense; an attenuation-like blend: the same lesion changes a dark lung more
than a bright rib or the heart), with ``a = contrast x A_kind x profile``; ``contrast`` (``--contrast``, default 1)
scales every kind, so that classification need not be saturated. Sizes are fractions of the image side, in the range
of NIH's boxes: Mass 0.06-0.19 and Nodule 0.04-0.08 (the 10th-90th percentiles of the side sqrt(w h) of the 273
community Mass/Nodule boxes in ``../shared/data/nih_community_boxes``), Infiltration 0.12-0.30 and Effusion
0.15-0.35 of the lung's height (wider, as NIH's Infiltrate/Effusion boxes are -- not measured here). Positions:
inside a lung field of :func:`radclr.data.lung_mask.lung_fields` (the lesion's disc at least ~80 % of its radius
from the mask's edge), not overlapping an earlier lesion; Effusion fills the base of one lung under a meniscus
rising laterally.

==============  =================================================================  ====================
finding         look                                                               A_kind
==============  =================================================================  ====================
``Mass``        smooth dome ``(1 - (d/r)^2)^0.6``, soft edge, hides fine texture   0.60
``Nodule``      flat-topped disc, sharp (1-px anti-aliased) edge                   0.60
``Effusion``    the base under a meniscus: texture smoothed away, opacity growing    0.60
                from the meniscus down over ~40 % of the fluid's height
``Infiltration`` mottled (blotches ~1 % of the side), irregular outline             0.70
==============  =================================================================  ====================

Soft edges: every profile is smoothed (Gaussian, ~8 % of the lesion radius, at least 0.7 px) and cut below 2 % of
its peak; the lesion's box ``x, y, w, h`` is the exact bounding box of every pixel the lesion changed (pixels of
the written image that differ from the resized background lie inside a box of that image; tested).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage

from radclr.data.dataset import NO_FINDING, Box
from radclr.data.loading import load_dataset
from radclr.data.lung_mask import lung_fields
from radclr.data.phantom import PHANTOM_FINDINGS, draw_findings
from radclr.errors import DataError
from radclr.progress import progress_bar

__all__ = ["write_background_lesions", "insert_lesions", "patient_part", "background_pool", "SIZE_RANGES", "OPACITY",
           "PARTS"]

#: side fraction range of each kind (Effusion: fraction of the lung's height)
SIZE_RANGES = {"Mass": (0.06, 0.19), "Nodule": (0.04, 0.08), "Infiltration": (0.12, 0.30), "Effusion": (0.15, 0.35)}
#: peak opacity of each kind at contrast 1
OPACITY = {"Mass": 0.60, "Nodule": 0.60, "Effusion": 0.60, "Infiltration": 0.70}
PARTS = ("all", "train", "holdout")
CUT = 0.02  # profile values below this fraction of the peak are cut (the lesion's support ends there)


def patient_part(patient_id: str, holdout: float) -> str:
    """``"holdout"`` for a fixed ``holdout`` fraction of patients (a hash of the id), else ``"train"``."""
    u = int(hashlib.sha256(f"radclr-synth:{patient_id}".encode()).hexdigest()[:12], 16) / 16 ** 12
    return "holdout" if u < holdout else "train"


class _Canvas:
    """One background being given lesions: image (float, 0..255), lung fields, the support taken so far."""

    def __init__(self, image: np.ndarray):
        self.image = image.astype(np.float64)
        self.h, self.w = image.shape
        self.side = min(self.h, self.w)
        self.lungs = lung_fields(self.image)
        self.occupied = np.zeros(image.shape, dtype=bool)
        self.yy, self.xx = np.mgrid[0: self.h, 0: self.w].astype(np.float64)

    def spot(self, rng, radius: float, tries: int = 30):
        """A lesion centre (y, x) whose disc of ``radius`` lies inside a lung, clear of earlier lesions."""
        free = ~ndimage.binary_dilation(self.occupied, iterations=max(1, int(radius)))
        for lung in rng.permutation(len(self.lungs)):
            inside = ndimage.distance_transform_edt(self.lungs[lung].mask) >= 0.8 * radius
            ys, xs = np.nonzero(inside & free)
            if ys.size:
                k = rng.integers(ys.size)
                return float(ys[k]) + rng.uniform(-0.5, 0.5), float(xs[k]) + rng.uniform(-0.5, 0.5)
        return None

    def dist(self, cy, cx):
        return np.sqrt((self.yy - cy) ** 2 + (self.xx - cx) ** 2)


def _soften(profile: np.ndarray, radius: float) -> np.ndarray:
    p = ndimage.gaussian_filter(profile, max(0.7, 0.08 * radius))
    peak = p.max()
    return np.where(p >= CUT * peak, p, 0.0) if peak > 0 else p


def _blend(c: _Canvas, a: np.ndarray, target: np.ndarray | None = None) -> None:
    """``I <- I + a (T - I)``; ``T`` = 255 (opacity added) unless a target image is given."""
    t = 255.0 if target is None else target
    c.image = c.image + a * (t - c.image)


def _mass(c: _Canvas, rng, contrast: float):
    r = rng.uniform(*SIZE_RANGES["Mass"]) * c.side / 2
    at = c.spot(rng, r)
    if at is None:
        return None
    p = _soften(np.clip(1 - (c.dist(*at) / r) ** 2, 0, None) ** 0.6, r)
    smooth = ndimage.gaussian_filter(c.image, max(1.0, 0.01 * c.side))
    _blend(c, 0.5 * p, smooth)  # the dome hides fine texture under it
    _blend(c, np.clip(contrast * OPACITY["Mass"] * p, 0, 1))
    return p > 0


def _nodule(c: _Canvas, rng, contrast: float):
    r = rng.uniform(*SIZE_RANGES["Nodule"]) * c.side / 2
    at = c.spot(rng, r)
    if at is None:
        return None
    p = _soften(np.clip(r - c.dist(*at) + 0.5, 0, 1), 0.0)
    _blend(c, np.clip(contrast * OPACITY["Nodule"] * p, 0, 1))
    return p > 0


def _infiltration(c: _Canvas, rng, contrast: float):
    r = rng.uniform(*SIZE_RANGES["Infiltration"]) * c.side / 2
    at = c.spot(rng, r)
    if at is None:
        return None
    d = c.dist(*at)
    wobble = ndimage.gaussian_filter(rng.standard_normal((c.h, c.w)), 0.08 * c.side)
    outline = r * (1 + 0.25 * wobble / (wobble.std() + 1e-12))
    envelope = np.clip(1 - d / outline, 0, None) ** 0.5 * (d <= 1.2 * r)
    mottle = ndimage.gaussian_filter(rng.standard_normal((c.h, c.w)), max(0.7, 0.012 * c.side))
    mottle = np.clip(mottle / (mottle.std() + 1e-12) + 0.3, 0, None)
    p = _soften(envelope * (0.35 + mottle) / 1.5, r)
    _blend(c, np.clip(contrast * OPACITY["Infiltration"] * p, 0, 1))
    return p > 0


def _effusion(c: _Canvas, rng, contrast: float):
    lung = c.lungs[rng.integers(len(c.lungs))]
    rows, cols = np.nonzero(lung.mask)
    if rows.size < 16:
        return None
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    height = rng.uniform(*SIZE_RANGES["Effusion"]) * (bottom - top + 1)
    level = bottom - height
    lateral = (c.xx - left) / max(right - left, 1)  # 0 at the image-left edge of this lung
    if lung.side == "left":  # the patient's left lung (image right): the chest wall is on the image right
        ramp = lateral
    else:
        ramp = 1 - lateral
    surface = level - 0.4 * height * np.clip(ramp, 0, 1) ** 2  # the meniscus rises towards the chest wall
    region = lung.mask & (c.yy > surface) & ~c.occupied
    if region.sum() < 16:
        return None
    # opacity grows from the meniscus down (thin fluid at the top, full thickness within ~40 % of its height)
    depth = np.clip((c.yy - surface) / max(0.4 * height, 1.0), 0, 1) * region
    p = _soften(depth, max(2.0, 0.02 * c.side))
    smooth = ndimage.gaussian_filter(c.image, max(1.5, 0.015 * c.side))
    _blend(c, np.clip(0.8 * p, 0, 1), smooth)  # homogeneous: hides the lung texture under the fluid
    _blend(c, np.clip(contrast * OPACITY["Effusion"] * p, 0, 1))
    return p > 0


_KINDS = {"Mass": _mass, "Nodule": _nodule, "Effusion": _effusion, "Infiltration": _infiltration}
_ORDER = ("Effusion", "Mass", "Infiltration", "Nodule")  # the effusion first (the lung base), small ones last


def _box(support: np.ndarray, label: str) -> Box:
    rows, cols = np.flatnonzero(support.any(axis=1)), np.flatnonzero(support.any(axis=0))
    return Box(float(cols[0]), float(rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1), label)


def insert_lesions(image: np.ndarray, findings: Sequence[str], rng: np.random.Generator,
                   contrast: float = 1.0) -> tuple[np.ndarray, list[Box], list[str]]:
    """Insert one lesion of each of ``findings`` into ``image [H, W]`` (0..255, bright = dense).

    Returns ``(image float64 0..255, exact boxes, lung-field methods)``; raises RuntimeError when a lesion finds no
    room (the caller draws another background)."""
    unknown = [f for f in findings if f not in _KINDS]
    if unknown:
        raise ValueError(f"unknown lesion kind(s) {unknown}; available: {list(PHANTOM_FINDINGS)}")
    c = _Canvas(image)
    boxes = []
    for f in sorted(dict.fromkeys(findings), key=_ORDER.index):
        before = c.image.copy()
        support = _KINDS[f](c, rng, contrast)
        if support is None:
            raise RuntimeError(f"no room for a {f} lesion")
        changed = c.image != before  # exactly the pixels this lesion touched
        if not changed.any():
            raise RuntimeError(f"the {f} lesion changed no pixel")
        c.occupied |= changed
        boxes.append(_box(changed, f))
    return np.clip(c.image, 0, 255), boxes, [lung.method for lung in c.lungs]


def _backgrounds(ds, part: str, holdout: float) -> pd.DataFrame:
    normal = ds.is_normal()
    if not normal.any():
        raise DataError(f"{ds.root}: no image labelled '{NO_FINDING}' (every finding known and absent) among "
                        f"{len(ds)} images: lesions are inserted into normal backgrounds only")
    rec = ds.records.loc[normal, ["image_id", "path", "patient_id"]].reset_index(drop=True)
    rec["patient_id"] = rec["patient_id"].astype(str)
    if part != "all":
        rec = rec[[patient_part(p, holdout) == part for p in rec["patient_id"]]].reset_index(drop=True)
        if rec.empty:
            raise DataError(f"{ds.root}: no '{NO_FINDING}' image in part {part!r} (holdout fraction {holdout})")
    return rec


def background_pool(background: str | Path, part: str = "all", holdout: float = 0.3, *,
                    format: str | None = None, follow_links: bool = False) -> pd.DataFrame:  # noqa: A002
    """The candidate backgrounds of ``part`` (``image_id, path, patient_id``): how many images ``--n`` may ask."""
    if part not in PARTS:
        raise DataError(f"part must be one of {PARTS}, got {part!r}")
    return _backgrounds(load_dataset(background, format=format, follow_links=follow_links), part, holdout)


def _read_square(path: str, size: int | None) -> np.ndarray:
    img = Image.open(path).convert("L")
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.float64)


def write_background_lesions(out_dir: str | Path, background: str | Path, n: int, seed: int = 0, *,
                             contrast: float = 1.0, size: int | None = None, p_normal: float = 0.3,
                             findings: Sequence[str] | None = None, part: str = "all", holdout: float = 0.3,
                             format: str | None = None, follow_links: bool = False,  # noqa: A002
                             progress: bool = False):
    """Write ``n`` images (lesions on real normals, module docstring) in the radclr folder format; return the
    loaded :class:`~radclr.data.dataset.CXRDataset`.

    ``size``: resize every background to ``size x size`` first (default: keep each image's size). ``p_normal``:
    the fraction of patients written untouched (negatives). ``labels.csv`` (written last) adds ``background``
    (the source image) and ``lung_mask`` (``intensity``/``prior`` per lung) columns; ``synth.json`` records the
    arguments."""
    if n < 1:
        raise DataError(f"n must be >= 1, got {n}")
    if not 0.0 < float(contrast) <= 5.0:
        raise DataError(f"contrast must be in (0, 5], got {contrast}")
    if part not in PARTS:
        raise DataError(f"part must be one of {PARTS}, got {part!r}")
    if not 0.0 < holdout < 1.0:
        raise DataError(f"holdout must be in (0, 1), got {holdout}")
    if not 0.0 <= p_normal < 1.0:
        raise DataError(f"p_normal must be in [0, 1), got {p_normal}")
    if size is not None and size < 32:
        raise DataError(f"size must be >= 32, got {size}")
    findings = list(findings) if findings is not None else list(PHANTOM_FINDINGS)
    if not findings or any(f not in _KINDS for f in findings):
        raise DataError(f"findings must be a non-empty subset of {list(PHANTOM_FINDINGS)}, got {findings}")
    ds = load_dataset(background, format=format, follow_links=follow_links)
    rec = _backgrounds(ds, part, holdout)
    rng = np.random.default_rng([int(seed), 0x5EED])
    patients = list(dict.fromkeys(rec["patient_id"]))
    order = [patients[i] for i in rng.permutation(len(patients))]
    by_patient = rec.groupby("patient_id", sort=False).indices
    if len(rec) < n:
        raise DataError(f"{background}: {len(rec)} '{NO_FINDING}' image(s) in part {part!r}, fewer than --n {n}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows, box_rows, skipped = [], [], []
    width = max(4, len(str(n - 1)))
    bar = progress_bar(total=n, desc="lesions", unit="img", enabled=progress)
    for pid in order:
        if len(rows) >= n:
            break
        negative = rng.random() < p_normal
        for j in sorted(by_patient[pid], key=lambda j: rec.at[j, "image_id"]):
            if len(rows) >= n:
                break
            img = _read_square(rec.at[j, "path"], size)
            labels, boxes, methods = [], [], []
            img_out = img
            if not negative:
                labels = draw_findings(rng, findings)
                for attempt in range(5):
                    try:
                        img_out, boxes, methods = insert_lesions(img, labels, rng, contrast)
                        break
                    except RuntimeError:
                        labels = draw_findings(rng, findings) if attempt < 3 else labels[:1]
                else:  # no room in this background (a lesion patient is never written untouched): skipped
                    skipped.append(str(rec.at[j, "image_id"]))
                    continue
            name = f"synth_{len(rows):0{width}d}.png"
            Image.fromarray(np.clip(np.rint(img_out), 0, 255).astype(np.uint8), mode="L").save(out / "images" / name)
            rows.append((name, pid, "|".join(labels) or NO_FINDING, img.shape[1], img.shape[0],
                         str(rec.at[j, "image_id"]), "|".join(methods)))
            box_rows += [(name, b.label, b.x, b.y, b.w, b.h) for b in boxes]
            bar.update(1)
    bar.close()
    if len(rows) < n:
        raise DataError(f"{background}: only {len(rows)} of --n {n} images could be written ({len(skipped)} "
                        f"background(s) had no room for a lesion)")
    (out / "findings.txt").write_text("\n".join(findings) + "\n")
    pd.DataFrame(box_rows, columns=["image", "label", "x", "y", "w", "h"]).to_csv(out / "boxes.csv", index=False)
    (out / "synth.json").write_text(json.dumps({
        "background": str(background), "n": len(rows), "seed": int(seed), "contrast": float(contrast),
        "size": size, "p_normal": p_normal, "findings": findings, "part": part, "holdout": holdout,
        "patients": len({r[1] for r in rows}), "skipped_backgrounds": skipped,
        "lung_mask_methods": pd.Series([m for r in rows for m in r[6].split("|") if m]).value_counts().to_dict()},
        indent=1))
    pd.DataFrame(rows, columns=["image", "patient_id", "labels", "width", "height", "background", "lung_mask"]
                 ).to_csv(out / "labels.csv", index=False)
    return load_dataset(out, format="folder")
