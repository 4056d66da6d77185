"""Deterministic synthetic chest X-ray phantoms with lesions of known box -- for tests and the demo fallback.

An image (float32, 0..255, bright = dense) is built from a seeded :class:`numpy.random.Generator`:

* anatomy: soft-tissue body, two darker lung fields (apex-to-base gradient), a bright mediastinum with a spine,
  a heart shadow overlapping the left lung (image right), curved rib-like periodic bands over the lungs, a
  smooth random low-frequency field and Gaussian noise (sigma :data:`NOISE_SIGMA`);
* lesions, each inside a lung field, with a texture and size of its own (so that radiomics tell them apart)
  and a box ``x, y, w, h`` = the exact bounding box of the pixels the lesion changed:

  ==============  ================================================================  ============================
  finding         look                                                              size (fraction of the side)
  ==============  ================================================================  ============================
  ``Mass``        large bright dome, smooth, soft edge (low GLCM contrast)          diameter 0.18 - 0.26
  ``Nodule``      small round bright spot, flat top, sharp edge                     diameter 0.06 - 0.09
  ``Effusion``    homogeneous opacity filling the lung base under a meniscus;       lung width x 0.15 - 0.3 of
                  hides the ribs (low entropy)                                      lung height
  ``Infiltration`` patchy mottled opacity, high-frequency texture (high contrast,   diameter 0.16 - 0.24
                  high entropy), irregular outline
  ==============  ================================================================  ============================

Every lesion is at least ~:data:`MIN_CONTRAST` grey levels above its surroundings (about 15 x the noise), so a
small CNN can detect and localise it. Normal images have no lesion. ``write_phantom_dataset`` writes a dataset in
the radclr folder format (8-bit PNG, ``labels.csv``, ``boxes.csv``, ``findings.txt``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image
from scipy.ndimage import gaussian_filter

from radclr.data.dataset import NO_FINDING, Box
from radclr.data.loading import load_dataset
from radclr.progress import progress_bar

PHANTOM_FINDINGS = ("Mass", "Nodule", "Effusion", "Infiltration")
NOISE_SIGMA = 3.0
MIN_CONTRAST = 45.0


def _size_hw(size) -> tuple[int, int]:
    if isinstance(size, (tuple, list)):
        h, w = int(size[0]), int(size[1])
    else:
        h = w = int(size)
    if h < 32 or w < 32:
        raise ValueError(f"phantom size must be at least 32 x 32 pixels, got {h} x {w}")
    return h, w


def _ellipse(yy, xx, cy, cx, ry, rx) -> np.ndarray:
    """Normalised elliptic radius (1 on the boundary)."""
    return np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)


def _soft_inside(r: np.ndarray, edge: float) -> np.ndarray:
    """1 inside (r < 1), 0 outside, a smooth ramp of width ``edge`` (in units of r)."""
    return np.clip((1.0 - r) / edge + 0.5, 0.0, 1.0)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    n = gaussian_filter(rng.standard_normal(shape), sigma, mode="reflect")
    return n / (n.std() + 1e-12)


class _Anatomy:
    """The normal chest of one phantom: image and the masks lesions are placed in."""

    def __init__(self, h: int, w: int, rng: np.random.Generator):
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        yy, xx = (yy + 0.5) / h, (xx + 0.5) / w
        self.h, self.w, self.yy, self.xx = h, w, yy, xx
        j = lambda s: rng.uniform(-s, s)  # noqa: E731  (small anatomical jitter)
        # chest outline: a superellipse (flatter sides than an ellipse)
        by, bx = (yy - (0.56 + j(0.02))) / 0.56, (xx - (0.5 + j(0.01))) / (0.47 + j(0.02))
        body = _soft_inside(np.cbrt(np.abs(by) ** 3 + np.abs(bx) ** 3), 0.06)
        img = 18.0 + 122.0 * body
        lungs = []
        for side, cx in (("left", 0.29), ("right", 0.71)):
            cy, ry, rx = 0.46 + j(0.02), 0.29 + j(0.02), 0.14 + j(0.01)
            cx = cx + j(0.015) * (1 if side == "left" else -1)
            taper = 0.75 + 0.4 * np.clip((yy - (cy - ry)) / (2 * ry), 0, 1)  # narrow apex, wide base
            r = _ellipse(yy, xx, cy, cx, ry, rx * taper)
            inside = _soft_inside(r, 0.08)
            lungs.append({"side": side, "cy": cy, "cx": cx, "ry": ry, "rx": rx, "r": r, "inside": inside})
            depth = 85.0 + 12.0 * (yy - cy) / ry  # lung fields are darker; apices darker than bases
            img = img - depth * inside
        # mediastinum + spine (bright), heart shadow over the left lung (image right)
        spine = np.exp(-(((xx - 0.5) / 0.035) ** 2)) * (yy > 0.12)
        img += 40.0 * spine * body
        heart = _soft_inside(_ellipse(yy, xx, 0.64 + j(0.02), 0.57 + j(0.02), 0.13 + j(0.01), 0.15 + j(0.015)), 0.1)
        img = img * (1 - heart) + (165.0 + j(8)) * heart * body + img * heart * (1 - body)
        for lung in lungs:
            lung["mask"] = (lung["r"] < 0.92) & (heart < 0.2)
        self.lungs = lungs
        lung_any = np.clip(sum(lung["inside"] for lung in lungs), 0, 1) * (1 - heart)
        # ribs: curved periodic bands, clearer over the lungs
        n_ribs, phase, bend = rng.uniform(8.5, 10.5), rng.uniform(0, 2 * np.pi), rng.uniform(1.2, 1.8)
        bands = np.sin(2 * np.pi * n_ribs * (yy + bend * (xx - 0.5) ** 2) + phase)
        ribs = np.clip(bands, 0, None) ** 2
        img += 16.0 * ribs * lung_any + 5.0 * ribs * body * (1 - lung_any)
        # smooth low-frequency field (exposure / soft-tissue variation)
        for _ in range(3):
            fy, fx, ph = rng.uniform(0.5, 2.0), rng.uniform(0.5, 2.0), rng.uniform(0, 2 * np.pi)
            img += rng.uniform(2.0, 5.0) * np.cos(2 * np.pi * (fy * yy + fx * xx) + ph)
        self.image = img
        self.ribs = ribs
        self.occupied = np.zeros((h, w), dtype=bool)

    def lung_point(self, rng, radius_frac: float, side: str | None = None, tries: int = 40):
        """A lesion centre (y, x in pixels) in a lung such that a disc of ``radius_frac`` of the side stays in
        the lung and does not overlap earlier lesions; None if none found."""
        for _ in range(tries):
            lung = self.lungs[rng.integers(2)] if side is None else next(l for l in self.lungs if l["side"] == side)
            cy, cx, ry, rx, mask = lung["cy"], lung["cx"], lung["ry"], lung["rx"], lung["mask"]
            ty, tx = rng.uniform(-0.6, 0.65), rng.uniform(-0.55, 0.55)
            py, px = (cy + ty * ry) * self.h, (cx + tx * rx) * self.w
            r = radius_frac * min(self.h, self.w)
            disc = (self.yy * self.h - py) ** 2 + (self.xx * self.w - px) ** 2 <= (r + 1) ** 2
            if disc.sum() == 0:
                continue
            if (mask[disc].mean() > 0.9) and not (self.occupied & disc).any():
                return py, px, r
        return None


def _box_of(support: np.ndarray, label: str) -> Box:
    rows, cols = np.flatnonzero(support.any(axis=1)), np.flatnonzero(support.any(axis=0))
    return Box(float(cols[0]), float(rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1), label)


def _disc_distance(a: _Anatomy, py: float, px: float) -> np.ndarray:
    return np.sqrt((a.yy * a.h - py) ** 2 + (a.xx * a.w - px) ** 2)


def _mass(a: _Anatomy, rng) -> np.ndarray | None:
    spot = a.lung_point(rng, rng.uniform(0.09, 0.13))
    if spot is None:
        return None
    py, px, r = spot
    d = _disc_distance(a, py, px)
    prof = np.clip(1 - (d / r) ** 2, 0, None) ** 0.6
    layer = rng.uniform(95.0, 115.0) * prof
    # smooth: the dome hides most rib texture underneath it
    a.image -= 12.0 * a.ribs * (prof > 0) * prof
    return layer


def _nodule(a: _Anatomy, rng) -> np.ndarray | None:
    spot = a.lung_point(rng, rng.uniform(0.03, 0.045))
    if spot is None:
        return None
    py, px, r = spot
    d = _disc_distance(a, py, px)
    return rng.uniform(100.0, 125.0) * np.clip(r - d + 0.5, 0, 1)


def _effusion(a: _Anatomy, rng) -> np.ndarray | None:
    lung = a.lungs[rng.integers(2)]
    side, cy, cx, ry, rx = lung["side"], lung["cy"], lung["cx"], lung["ry"], lung["rx"]
    frac = rng.uniform(0.15, 0.3)
    level = (cy + ry) - frac * 2 * ry  # fluid level (normalised y) at the lung centre
    lateral = -1.0 if side == "left" else 1.0  # meniscus rises towards the chest wall
    surface = level - 0.25 * np.clip(lateral * (a.xx - cx) / rx, 0, None) ** 2 * ry
    region = (lung["r"] < 1.0) & (a.yy > surface)
    if region.sum() < 4:
        return None
    target = rng.uniform(150.0, 170.0)
    # homogeneous: the fluid replaces the lung (and hides its ribs) up to the meniscus
    return np.where(region, np.maximum(target - a.image, MIN_CONTRAST), 0.0)


def _infiltration(a: _Anatomy, rng) -> np.ndarray | None:
    spot = a.lung_point(rng, rng.uniform(0.08, 0.12))
    if spot is None:
        return None
    py, px, r = spot
    d = _disc_distance(a, py, px)
    outline = r * (1 + 0.25 * _smooth_noise(rng, (a.h, a.w), 0.08 * min(a.h, a.w)))
    envelope = np.clip(1 - d / outline, 0, None) ** 0.5 * (d <= r)
    mottle = np.clip(_smooth_noise(rng, (a.h, a.w), 0.9) + 0.3, 0, None)  # blotches ~2 px
    layer = rng.uniform(70.0, 90.0) * envelope * (0.35 + mottle)
    return np.where(envelope > 0, layer, 0.0)


_LESIONS = {"Mass": _mass, "Nodule": _nodule, "Effusion": _effusion, "Infiltration": _infiltration}


def make_phantom(size, findings: Sequence[str], rng: np.random.Generator, *,
                 noise_sigma: float = NOISE_SIGMA) -> tuple[np.ndarray, list[str], list[Box]]:
    """One phantom: ``(image float32 [H, W] in 0..255, labels, boxes)``.

    ``findings``: the lesions to draw (each of :data:`PHANTOM_FINDINGS`, at most once; empty = normal).
    ``labels`` lists the findings drawn (a lesion that found no room is redrawn with a new anatomy, so labels
    always equal ``findings``); ``boxes`` holds one exact box per lesion. The anatomy is drawn from ``rng``
    before the lesions, so the same generator state with and without lesions gives the same chest.
    """
    h, w = _size_hw(size)
    findings = list(dict.fromkeys(findings))
    unknown = [f for f in findings if f not in _LESIONS]
    if unknown:
        raise ValueError(f"unknown phantom finding(s) {unknown}; available: {list(PHANTOM_FINDINGS)}")
    for _ in range(20):
        a = _Anatomy(h, w, rng)
        boxes: list[Box] = []
        ok = True
        # the effusion first (it fixes the lung base), the small lesions last (they fit anywhere)
        for f in sorted(findings, key=lambda f: ("Effusion", "Mass", "Infiltration", "Nodule").index(f)):
            layer = _LESIONS[f](a, rng)
            if layer is None:
                ok = False
                break
            support = layer > 0
            a.image = a.image + layer
            a.occupied |= support
            boxes.append(_box_of(support, f))
        if ok:
            img = a.image + rng.normal(0.0, 1.0, size=(h, w)) * noise_sigma
            return np.clip(img, 0, 255).astype(np.float32), list(findings), boxes
    raise RuntimeError(f"could not place lesions {findings} in a {h}x{w} phantom")  # pragma: no cover


def _draw_labels(rng: np.random.Generator, findings: Sequence[str], p_normal: float) -> list[str]:
    if rng.random() < p_normal:
        return []
    return draw_findings(rng, findings)


def draw_findings(rng: np.random.Generator, findings: Sequence[str]) -> list[str]:
    """One finding of ``findings`` at random, and a second, different one with probability 0.25 (the lesions of
    one abnormal phantom, and of one abnormal real-background image)."""
    first = findings[rng.integers(len(findings))]
    out = [first]
    if len(findings) > 1 and rng.random() < 0.25:
        rest = [f for f in findings if f != first]
        out.append(rest[rng.integers(len(rest))])
    return out


def write_phantom_dataset(out_dir: str | Path, n: int, size: int = 128, seed: int = 0,
                          findings: Sequence[str] | None = None, p_normal: float = 0.3, progress: bool = False,
                          box_fraction: float = 1.0):
    """Write ``n`` phantoms in the radclr folder format and return the loaded :class:`CXRDataset`.

    About ``p_normal`` of the images are normal; the others have one finding, a quarter of them a second one.
    About one patient in five has two images (patient-wise splits are exercised). ``labels.csv`` is written
    last, so a folder with ``labels.csv`` is complete. ``progress``: a progress bar on stderr.

    ``box_fraction``: the boxes of only ``round(box_fraction x K)`` of the ``K`` images with a lesion are written
    (a seeded choice independent of the images, so the images and labels are the same for every fraction); the
    others are unannotated -- seed 001's regime of few annotated images among many labelled ones.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0.0 <= float(box_fraction) <= 1.0:
        raise ValueError(f"box_fraction must be in [0, 1], got {box_fraction}")
    findings = list(findings) if findings is not None else list(PHANTOM_FINDINGS)
    unknown = [f for f in findings if f not in _LESIONS]
    if unknown or not findings:
        raise ValueError(f"phantom findings must be a non-empty subset of {list(PHANTOM_FINDINGS)}, got {findings}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows, box_rows = [], []
    patient, images_of_patient = -1, 2
    width = max(4, len(str(n - 1)))
    for i in progress_bar(range(n), desc="phantoms", unit="img", enabled=progress):
        if not (images_of_patient == 1 and rng.random() < 0.2):  # else: the same patient's second image
            patient, images_of_patient = patient + 1, 0
        images_of_patient += 1
        labels = _draw_labels(rng, findings, p_normal)
        img, labels, boxes = make_phantom(size, labels, rng)
        name = f"phantom_{i:0{width}d}.png"
        Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), mode="L").save(out / "images" / name)
        rows.append((name, f"P{patient:0{width}d}", "|".join(labels) or NO_FINDING, img.shape[1], img.shape[0]))
        box_rows += [(name, b.label, b.x, b.y, b.w, b.h) for b in boxes]
    if float(box_fraction) < 1.0:
        boxed = sorted({r[0] for r in box_rows})
        pick = np.random.default_rng([seed, 0xB0C5]).permutation(len(boxed))[: int(round(box_fraction * len(boxed)))]
        keep = {boxed[i] for i in pick}
        box_rows = [r for r in box_rows if r[0] in keep]
    (out / "findings.txt").write_text("\n".join(findings) + "\n")
    pd.DataFrame(box_rows, columns=["image", "label", "x", "y", "w", "h"]).to_csv(out / "boxes.csv", index=False)
    pd.DataFrame(rows, columns=["image", "patient_id", "labels", "width", "height"]).to_csv(out / "labels.csv",
                                                                                          index=False)
    return load_dataset(out, format="folder")
