"""Class-activation maps -> bounding boxes (seed 001 §3.2 and Fig. 3: "apply an ad-hoc threshold to generate
bounding boxes from the attention maps").

Pipeline per map: threshold (``relative`` to the map's maximum, ``absolute``, or a ``percentile`` of its
pixels) -> connected components (8- or 4-connectivity) -> one box per component with a score (mean or max
activation of the component) -> selection (``largest``, ``max_mean``, or ``all`` above ``min_score``). A map
with no component surviving falls back to a documented box marked ``fallback=True`` (or to no box), so callers
can count how often it happens.

Box convention (as :class:`radclr.boxes.Box`): ``x, y, w, h`` = top-left corner and size in pixels of
the map's own grid; pixel ``(row r, col c)`` covers ``[c, c+1) x [r, r+1)``, so a component spanning columns
``c0..c1`` has ``x = c0, w = c1 - c0 + 1``. Use :func:`radclr.boxes.scale_boxes` to move boxes to another pixel grid
(e.g. from a 7x7 or 224x224 CAM to the image's own size) before comparing them with ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from radclr.boxes import Box
from radclr.cam.options import FALLBACKS, SELECTIONS, THRESHOLD_MODES, CamOptions
from radclr.ops.components import label_components
from radclr.ops.indexing import flatnonzero

__all__ = [
    "ScoredBox",
    "normalize_cam",
    "upsample_cam",
    "cam_to_boxes",
    "count_fallbacks",
    "cam_to_box_tensor",
    "THRESHOLD_MODES",
    "SELECTIONS",
    "FALLBACKS",
]

_EPS = 1e-12


@dataclass(frozen=True)
class ScoredBox:
    """A box from a CAM: ``x, y, w, h`` in the CAM's pixel grid, ``score`` = mean (or max) activation of its
    component, ``area`` = pixels of the component (not of the box), ``fallback`` = produced by the fallback
    rule because no component survived thresholding."""

    x: float
    y: float
    w: float
    h: float
    score: float
    area: int = 0
    fallback: bool = False

    @property
    def x2(self) -> float:
        return self.x + self.w

    @property
    def y2(self) -> float:
        return self.y + self.h

    def as_array(self) -> np.ndarray:
        return np.array([self.x, self.y, self.w, self.h], dtype=np.float64)

    def as_box(self, label: str = "") -> Box:
        return Box(float(self.x), float(self.y), float(self.w), float(self.h), label)


# --- map utilities ------------------------------------------------------------------------------------------
def _as_float_tensor(cam) -> torch.Tensor:
    t = torch.as_tensor(cam)
    return t.detach().float() if t.is_floating_point() else t.detach().to(torch.float32)


def normalize_cam(cam):
    """Min-max normalise each map to ``[0, 1]`` over its last two (spatial) dimensions.

    Works on ``[H, W]``, ``[B, H, W]``, ``[B, K, H, W]`` torch tensors or numpy arrays (returns the same kind).
    A constant map (max - min <= 1e-12, e.g. an all-zero Grad-CAM) becomes all zeros -- it carries no location
    information, and zeros make every threshold mode find no component. NaN raises ``ValueError``.
    """
    is_np = isinstance(cam, np.ndarray)
    t = _as_float_tensor(cam)
    if t.ndim < 2:
        raise ValueError(f"a CAM needs at least 2 (spatial) dimensions, got shape {tuple(t.shape)}")
    if torch.isnan(t).any():
        raise ValueError("CAM contains NaN")
    lo = t.amin(dim=(-2, -1), keepdim=True)
    hi = t.amax(dim=(-2, -1), keepdim=True)
    rng = hi - lo
    out = torch.where(rng > _EPS, (t - lo) / rng.clamp(min=_EPS), torch.zeros_like(t))
    return out.numpy() if is_np else out


def upsample_cam(cam, size: tuple[int, int]):
    """Bilinear resize (``align_corners=False``) of ``[h, w]``, ``[B, h, w]`` or ``[B, K, h, w]`` maps to
    ``size = (H, W)``. Returns the input's kind (torch or numpy), float32."""
    is_np = isinstance(cam, np.ndarray)
    t = _as_float_tensor(cam)
    if t.ndim not in (2, 3, 4):
        raise ValueError(f"cam must be [h, w], [B, h, w] or [B, K, h, w], got shape {tuple(t.shape)}")
    size = (int(size[0]), int(size[1]))
    if size[0] < 1 or size[1] < 1:
        raise ValueError(f"size must be positive (H, W), got {size}")
    lead = t.shape[:-2]
    flat = t.reshape(1, -1, *t.shape[-2:])
    out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False).reshape(*lead, *size)
    return out.numpy() if is_np else out


# --- CAM -> boxes -----------------------------------------------------------------------------------------
def cam_to_boxes(
    cam,
    options: CamOptions | None = None,
    *,
    threshold: float = CamOptions.threshold,
    mode: str = CamOptions.mode,
    select: str = CamOptions.select,
    score: str = "mean",
    min_score: float = 0.0,
    min_area: int = 1,
    fallback: str = CamOptions.fallback,
    center_fraction: float = 0.5,
    connectivity: int = 8,
):
    """Boxes from CAMs by thresholding and connected components (seed 001 §3.2, Fig. 3).

    Parameters
    ----------
    cam: ``[B, H, W]`` (returns ``list[list[ScoredBox]]``, one list per map) or ``[H, W]`` (returns
        ``list[ScoredBox]``); torch or numpy. Boxes are in this grid's pixels.
    threshold, mode: which pixels are "on":
        ``"relative"``: ``cam >= threshold * max(cam)`` per map (``threshold`` in [0, 1]; for a ReLU Grad-CAM,
        whose minimum is usually 0, the same as ``threshold`` on the min-max normalised map);
        ``"absolute"``: ``cam >= threshold`` in the map's own units (normalise first with
        :func:`normalize_cam` to make it comparable across images);
        ``"percentile"``: ``cam >= quantile(cam, threshold)`` per map, ``threshold`` a fraction in [0, 1)
        (0.9 keeps the top 10 % of pixels; ties at the cut are kept, pixels equal to the map's minimum
        never are -- a ReLU Grad-CAM is often 0 over most of the image).
        In every mode a map without variation (max - min <= 1e-12, e.g. all zeros) and a map whose maximum is
        <= 0 in relative mode have no "on" pixel.
    select: ``"largest"`` -- the component with most pixels (ties: higher score); ``"max_mean"`` -- the
        component with the highest score (ties: more pixels); ``"all"`` -- every component, best score first.
    score: ``"mean"`` or ``"max"`` activation of a component (in the map's units).
    min_score, min_area: components with ``score < min_score`` or fewer than ``min_area`` pixels are dropped
        before selection.
    fallback: when no component survives: ``"whole"`` -- the whole map ``(0, 0, W, H)``; ``"center"`` -- a
        centred box of ``center_fraction`` of each side; ``"none"`` -- an empty list. Fallback boxes carry
        ``fallback=True`` and score = the map's mean (``"whole"``) or the mean inside the box (``"center"``);
        :func:`count_fallbacks` counts them.
    connectivity: 8 (diagonal neighbours connect) or 4.
    options: a :class:`radclr.cam.options.CamOptions` -- the run's threshold, mode, selection and fallback
        (then those four keywords are not given).
    """
    if options is not None:
        threshold, mode, select, fallback = options.threshold, options.mode, options.select, options.fallback
    _check_options(threshold, mode, select, score, min_area, fallback, center_fraction, connectivity)
    if isinstance(cam, torch.Tensor):
        maps = cam.detach().cpu().double().numpy()
    else:
        maps = np.asarray(cam, dtype=np.float64)
    single = maps.ndim == 2
    if single:
        maps = maps[None]
    if maps.ndim != 3 or maps.shape[-1] < 1 or maps.shape[-2] < 1:
        raise ValueError(f"cam must be [H, W] or [B, H, W], got shape {tuple(np.shape(cam))}")
    if not np.isfinite(maps).all():
        raise ValueError("CAM contains NaN or infinite values")
    on = _threshold(maps, threshold, mode)

    # label all maps in one call: the structure connects pixels within a map, never across maps
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = ndimage.generate_binary_structure(2, 2 if connectivity == 8 else 1)
    labels, n = ndimage.label(on, structure=structure)
    per_map: list[list[ScoredBox]] = [[] for _ in range(maps.shape[0])]
    if n:
        flat = labels.ravel()
        areas = np.bincount(flat, minlength=n + 1)[1:]  # bincount: much faster than ndimage.sum_labels
        if score == "mean":
            values = np.bincount(flat, weights=maps.ravel(), minlength=n + 1)[1:] / areas
        else:
            values = ndimage.maximum(maps, labels, np.arange(1, n + 1))
        for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
            b, rows, cols = sl
            area, val = int(areas[lab - 1]), float(values[lab - 1])
            if area < min_area or val < min_score:
                continue
            per_map[b.start].append(
                ScoredBox(float(cols.start), float(rows.start), float(cols.stop - cols.start),
                          float(rows.stop - rows.start), val, area)
            )
    out = [_select(c, select) or _fallback(maps[i], fallback, center_fraction) for i, c in enumerate(per_map)]
    return out[0] if single else out


def _check_options(threshold, mode, select, score, min_area, fallback, center_fraction, connectivity) -> None:
    if mode not in THRESHOLD_MODES:
        raise ValueError(f"mode must be one of {THRESHOLD_MODES}, got {mode!r}")
    if select not in SELECTIONS:
        raise ValueError(f"select must be one of {SELECTIONS}, got {select!r}")
    if score not in ("mean", "max"):
        raise ValueError(f"score must be 'mean' or 'max', got {score!r}")
    if fallback not in FALLBACKS:
        raise ValueError(f"fallback must be one of {FALLBACKS}, got {fallback!r}")
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold!r}")
    if mode == "relative" and not 0.0 <= threshold <= 1.0:
        raise ValueError(f"relative threshold is a fraction of the map's maximum in [0, 1], got {threshold}")
    if mode == "percentile" and not 0.0 <= threshold < 1.0:
        raise ValueError(
            f"percentile threshold is a quantile in [0, 1) (0.9 keeps the top 10 %), got {threshold}"
        )
    if int(min_area) < 1:
        raise ValueError(f"min_area must be >= 1 pixel, got {min_area}")
    if not 0.0 < center_fraction <= 1.0:
        raise ValueError(f"center_fraction must be in (0, 1], got {center_fraction}")


def _threshold(maps: np.ndarray, threshold: float, mode: str) -> np.ndarray:
    """Boolean "on" pixels per map ``[B, H, W]``."""
    flat = maps.reshape(maps.shape[0], -1)
    lo, hi = flat.min(axis=1), flat.max(axis=1)
    informative = (hi - lo) > _EPS
    if mode == "relative":
        cut = threshold * hi
        informative &= hi > 0
    elif mode == "absolute":
        cut = np.full(maps.shape[0], threshold, dtype=np.float64)
    else:
        cut = np.quantile(flat, threshold, axis=1)
        # a ReLU CAM is often 0 over most of the image: the quantile may then be the minimum itself, and
        # "on" would be everything; pixels at the map's minimum are never on in this mode
        cut = np.maximum(cut, np.nextafter(lo, np.inf))
    return (maps >= cut[:, None, None]) & informative[:, None, None]


def _select(components: list[ScoredBox], select: str) -> list[ScoredBox]:
    if not components:
        return []
    if select == "largest":
        return [max(components, key=lambda c: (c.area, c.score))]
    if select == "max_mean":
        return [max(components, key=lambda c: (c.score, c.area))]
    return sorted(components, key=lambda c: (-c.score, -c.area))


def _fallback(m: np.ndarray, fallback: str, center_fraction: float) -> list[ScoredBox]:
    h, w = m.shape
    if fallback == "none":
        return []
    if fallback == "whole":
        return [ScoredBox(0.0, 0.0, float(w), float(h), float(m.mean()), h * w, fallback=True)]
    bw, bh = max(1, round(w * center_fraction)), max(1, round(h * center_fraction))
    x0, y0 = (w - bw) // 2, (h - bh) // 2
    inside = m[y0:y0 + bh, x0:x0 + bw]
    return [ScoredBox(float(x0), float(y0), float(bw), float(bh), float(inside.mean()), bw * bh, fallback=True)]


def count_fallbacks(boxes: Sequence[Sequence[ScoredBox]]) -> int:
    """Maps whose boxes came from the fallback rule (a ``fallback=True`` box, or no box at all)."""
    return sum(1 for bs in boxes if not bs or any(getattr(b, "fallback", False) for b in bs))



# --- the same on the maps' device ---------------------------------------------------------------------------
def cam_top_boxes(cam: torch.Tensor, options: CamOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`cam_to_box_tensor`'s ``(boxes [B, 4], fallback [B])``, by the faster route for where the maps are:
    on the CPU the first box of :func:`cam_to_boxes` (scipy's labelling: ~9x faster there than the tensor code's
    passes over every pixel; a map without a box gets the whole map, marked fallback), elsewhere (a GPU)
    :func:`cam_to_box_tensor` itself -- no copy of the maps to the host."""
    if cam.device.type != "cpu":
        return cam_to_box_tensor(cam, options)
    if cam.ndim != 3:
        raise ValueError(f"cam must be [B, H, W], got shape {tuple(cam.shape)}")
    h, w = cam.shape[-2:]
    whole = ScoredBox(0.0, 0.0, float(w), float(h), 0.0, fallback=True)
    first = [bx[0] if bx else whole for bx in cam_to_boxes(cam, options)]
    boxes = torch.tensor([[b.x, b.y, b.w, b.h] for b in first], dtype=torch.float64).reshape(-1, 4)
    fell_back = torch.tensor([b.fallback for b in first], dtype=torch.bool)
    return boxes.to(cam.dtype if cam.is_floating_point() else torch.float32), fell_back


def cam_to_box_tensor(cam: torch.Tensor, options: CamOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """The selected box of each map, computed where the maps are (a GPU in BYOP training): ``(boxes [B, 4]`` x, y,
    w, h in the maps' pixels, ``fallback [B]`` bool) -- the first box :func:`cam_to_boxes` returns for the same
    ``options`` (8-connected components from :func:`radclr.ops.components.label_components`, component score =
    mean activation; ``largest``: most pixels, then higher score; ``max_mean`` and ``all``: higher score, then more
    pixels; remaining ties: the component met first in row-major order). A map without a component gets the
    fallback box (``whole``/``center``) or, for ``fallback="none"``, the whole map marked as fallback.
    """
    if cam.ndim != 3:
        raise ValueError(f"cam must be [B, H, W], got shape {tuple(cam.shape)}")
    maps = cam.detach().to(torch.float64)
    if not bool(torch.isfinite(maps).all()):
        raise ValueError("CAM contains NaN or infinite values")
    b, h, w = maps.shape
    flat = maps.reshape(b, -1)
    lo, hi = flat.amin(dim=1), flat.amax(dim=1)
    informative = (hi - lo) > _EPS
    if options.mode == "relative":
        cut = options.threshold * hi
        informative &= hi > 0
    elif options.mode == "absolute":
        cut = torch.full_like(hi, options.threshold)
    else:
        cut = torch.maximum(torch.quantile(flat, options.threshold, dim=1), torch.nextafter(lo, lo + 1))
    on = (maps >= cut[:, None, None]) & informative[:, None, None]
    labels = label_components(on.to(torch.uint8), connectivity=8).reshape(b, -1)  # 1 + first pixel, 0 = off
    n = h * w
    key = torch.arange(b, device=maps.device)[:, None] * (n + 1) + labels  # unique id per (map, component)
    ids = key[labels > 0]
    if ids.numel():
        # per-component statistics in tables indexed by the id itself (b * (n + 1) entries: no sort of the
        # pixels' ids), then the components in increasing id order -- what torch.unique's sorted order gave
        table = b * (n + 1)
        area_t = torch.zeros(table, dtype=torch.float64, device=maps.device).index_add_(
            0, ids, torch.ones_like(ids, dtype=torch.float64))
        uniq = flatnonzero(area_t > 0)
        inv = torch.zeros(table, dtype=torch.long, device=maps.device)
        inv[uniq] = torch.arange(len(uniq), device=maps.device)
        inv = inv[ids]
        area = area_t[uniq]
        score = torch.zeros_like(area).index_add_(0, inv, flat[labels > 0]) / area
        pos = torch.arange(n, device=maps.device).expand(b, n)[labels > 0]
        rows, cols = pos // w, pos % w
        big = torch.full_like(area, float(n))
        r0 = big.scatter_reduce(0, inv, rows.double(), "amin")
        c0 = big.scatter_reduce(0, inv, cols.double(), "amin")
        r1 = torch.zeros_like(area).scatter_reduce(0, inv, rows.double(), "amax", include_self=False)
        c1 = torch.zeros_like(area).scatter_reduce(0, inv, cols.double(), "amax", include_self=False)
        owner = uniq // (n + 1)
        first = (uniq % (n + 1)).double()  # row-major position of the component's first pixel (+1)
        primary, secondary = (area, score) if options.select == "largest" else (score, area)
        # lexicographic max of (primary, secondary, -first) per map: rank the components, take the best rank
        order = torch.argsort(first, stable=True)
        order = order[torch.argsort(-secondary[order], stable=True)]
        order = order[torch.argsort(-primary[order], stable=True)]
        order = order[torch.argsort(owner[order], stable=True)]
        best = torch.full((b,), -1, dtype=torch.long, device=maps.device)
        is_first = torch.ones_like(order, dtype=torch.bool)
        is_first[1:] = owner[order][1:] != owner[order][:-1]
        best[owner[order][is_first]] = order[is_first]
    else:
        best = torch.full((b,), -1, dtype=torch.long, device=maps.device)
    found = best >= 0
    out = torch.zeros((b, 4), dtype=torch.float64, device=maps.device)
    if bool(found.any()):
        k = best[found]
        out[found] = torch.stack([c0[k], r0[k], c1[k] - c0[k] + 1, r1[k] - r0[k] + 1], dim=1)
    if options.fallback == "center":
        bw, bh = max(1, round(w * 0.5)), max(1, round(h * 0.5))
        fb = torch.tensor([(w - bw) // 2, (h - bh) // 2, bw, bh], dtype=torch.float64, device=maps.device)
    else:
        fb = torch.tensor([0.0, 0.0, float(w), float(h)], dtype=torch.float64, device=maps.device)
    out[~found] = fb
    return out.to(cam.dtype if cam.is_floating_point() else torch.float32), ~found
