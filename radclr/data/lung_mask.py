"""A rough lung-field mask of a frontal chest X-ray from intensity and geometry alone (no learned model).

Used to place synthetic lesions inside the chest (:mod:`radclr.data.background_lesions`); it is a heuristic,
not a segmentation to measure anything with. On an image with bright = dense (the radclr convention):

1. smooth with a Gaussian of 1 % of the image side (removes noise and fine rib texture);
2. Otsu threshold of the smoothed intensities inside the central box (rows and columns 10-90 %): the darker class
   is air -- the lungs, and the air around the body;
3. per side (patient's right lung = image left), the dark class inside a generous search ellipse (centre at 30 % /
   70 % of the width and 45 % of the height, half-axes :data:`SEARCH_AXES`), opened with a disc of radius
   :data:`OPEN_RADIUS` of the side (cuts thin bridges to the air around the body); its largest connected component,
   holes filled (vessels and nodules are bright), rows above 10 % of the height removed (air above the shoulders);
4. that component is the lung when it covers :data:`MIN_LUNG_AREA` to :data:`MAX_LUNG_AREA` of the image and its
   centroid lies inside the prior ellipse (same centre, half-axes :data:`PRIOR_AXES`);
5. otherwise the side falls back to the prior ellipse itself -- where a PA chest's lung usually is.

On the first 200 ``No Finding`` images of ``../shared/data/nih_cxr14`` 352 of 400 lungs came from intensity and 48
from the prior; low-contrast AP films leak into the soft tissue around the lung (lesions placed there still sit
inside the chest outline).

:func:`lung_fields` returns one mask per side with how it was found (``"intensity"`` or ``"prior"``), so a caller
can count how often the heuristic failed. It assumes a frontal (PA/AP) radiograph roughly centred in the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["LungField", "lung_fields", "MIN_LUNG_AREA", "otsu_threshold"]

#: a component must cover this fraction of the image to count as a lung
MIN_LUNG_AREA = 0.02
#: ... and at most this fraction (a larger dark area is air around the body that leaked in)
MAX_LUNG_AREA = 0.2
#: half-axes (fraction of height, width) of the prior lung ellipse and of the wider ellipse the search is limited to
PRIOR_AXES = (0.25, 0.13)
SEARCH_AXES = (0.36, 0.18)
#: radius of the morphological opening (fraction of the image side)
OPEN_RADIUS = 0.025


@dataclass(frozen=True)
class LungField:
    """One lung: ``side`` (``"right"`` = image left, the patient's right), boolean ``mask [H, W]``, ``method``."""

    side: str
    mask: np.ndarray
    method: str


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold (maximal between-class variance) of ``values``."""
    v = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return lo
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(edges[int(np.argmax(between[:-1])) + 1])


def _ellipse(h: int, w: int, side: str, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    cx = 0.30 * w if side == "right" else 0.70 * w
    return ((yy - 0.45 * h) / (ry * h)) ** 2 + ((xx - cx) / (rx * w)) ** 2 <= 1.0


def _prior(h: int, w: int, side: str) -> np.ndarray:
    return _ellipse(h, w, side, *PRIOR_AXES)


def lung_fields(image: np.ndarray) -> list[LungField]:
    """The two lung fields of a frontal chest X-ray ``image [H, W]`` (module docstring): image-left first."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"lung_fields needs a 2-D image, got shape {img.shape}")
    h, w = img.shape
    g = ndimage.gaussian_filter(img, 0.01 * min(h, w))
    r0, r1, c0, c1 = int(0.1 * h), int(0.9 * h), int(0.1 * w), int(0.9 * w)
    dark = g < otsu_threshold(g[r0:r1, c0:c1])
    radius = max(1, int(round(OPEN_RADIUS * min(h, w))))
    disc = np.add.outer(np.arange(-radius, radius + 1) ** 2, np.arange(-radius, radius + 1) ** 2) <= radius ** 2
    best: dict[str, np.ndarray] = {}
    for side in ("right", "left"):
        region = dark & _ellipse(h, w, side, *SEARCH_AXES)
        region = ndimage.binary_opening(region, structure=disc)  # cuts thin bridges to the air around the body
        comp, n = ndimage.label(region)
        if n == 0:
            continue
        areas = ndimage.sum_labels(region, comp, index=np.arange(1, n + 1))
        k = int(np.argmax(areas)) + 1
        mask = ndimage.binary_fill_holes(comp == k)
        mask[: int(0.1 * h)] = False
        cy, cx = ndimage.center_of_mass(mask)
        core = _prior(h, w, side)
        if MIN_LUNG_AREA * h * w <= mask.sum() <= MAX_LUNG_AREA * h * w and core[int(cy), int(cx)]:
            best[side] = mask
    out = []
    for side in ("right", "left"):
        if side in best:
            out.append(LungField(side, best[side], "intensity"))
        else:
            out.append(LungField(side, _prior(h, w, side), "prior"))
    return out
