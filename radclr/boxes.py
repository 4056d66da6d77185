"""Box geometry, in one place: what a box is, how it moves between pixel grids, how boxes overlap, and which
pixels a box covers. Data loading, BYOP, evaluation, predict and figures all use this module, so a box means
the same pixels everywhere.

Convention: a box is ``x, y, w, h`` -- top-left corner and size -- in pixels of one image grid; pixel
``(row r, col c)`` covers ``[c, c+1) x [r, r+1)``. Boxes arrive as :class:`Box`, as any object with ``x, y, w, h``
attributes (e.g. :class:`radclr.cam.boxes.ScoredBox`), as 4-sequences or as ``[..., 4]`` arrays/tensors.

The one rasterisation rule (:func:`boxes_to_masks`): pixel ``(r, c)`` belongs to a box when the box covers any
part of it -- ``floor(x) <= c < ceil(x + w)`` and ``floor(y) <= r < ceil(y + h)`` -- clipped to the image. Integer
boxes cover exactly their pixels; a fractional box (e.g. a 1024-px NIH box rescaled to 224 px) never loses a pixel
it touches, and a sub-pixel box still covers one pixel, so a lesion's radiomics always see the whole lesion.
"""

from __future__ import annotations

from dataclasses import dataclass, is_dataclass, replace
from typing import Any, Sequence

import numpy as np

__all__ = ["Box", "box_xywh", "as_box_array", "clip_box", "union_box", "scale_boxes", "iou", "pairwise_iou",
           "boxes_to_masks", "pixel_span", "box_changes", "box_change_rate"]


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in image pixels: top-left ``(x, y)``, size ``(w, h)``, optional finding ``label``."""

    x: float
    y: float
    w: float
    h: float
    label: str = ""

    @property
    def x2(self) -> float:
        return self.x + self.w

    @property
    def y2(self) -> float:
        return self.y + self.h

    def scaled(self, sx: float, sy: float) -> "Box":
        return Box(self.x * sx, self.y * sy, self.w * sx, self.h * sy, self.label)

    def as_array(self) -> np.ndarray:
        return np.array([self.x, self.y, self.w, self.h], dtype=np.float64)


# --- conversion -----------------------------------------------------------------------------------------------
def box_xywh(box) -> tuple[float, float, float, float]:
    """``(x, y, w, h)`` of a Box, a ScoredBox (anything with ``x, y, w, h``), or a 4-sequence."""
    if hasattr(box, "x") and hasattr(box, "w"):
        return float(box.x), float(box.y), float(box.w), float(box.h)
    a = np.asarray(box, dtype=np.float64).reshape(-1)
    if a.shape != (4,):
        raise ValueError(f"a box is (x, y, w, h), got {box!r}")
    return float(a[0]), float(a[1]), float(a[2]), float(a[3])


def as_box_array(boxes) -> np.ndarray:
    """``float64 [N, 4]`` of ``boxes`` (None, an array ``[..., 4]``, or a sequence of boxes in any accepted form);
    ValueError for NaN or a negative width/height."""
    if boxes is None:
        return np.zeros((0, 4))
    if hasattr(boxes, "detach"):  # a torch tensor
        boxes = boxes.detach().cpu().numpy()
    if isinstance(boxes, np.ndarray):
        arr = np.asarray(boxes, dtype=np.float64)
        if arr.shape[-1:] != (4,):
            raise ValueError(f"boxes must be [..., 4] arrays of (x, y, w, h), got shape {arr.shape}")
        arr = arr.reshape(-1, 4)
    else:
        arr = np.array([box_xywh(b) for b in boxes], dtype=np.float64).reshape(-1, 4)
    return _checked(arr)


def _checked(arr: np.ndarray) -> np.ndarray:
    if np.isnan(arr).any():
        raise ValueError("boxes contain NaN")
    if (arr[..., 2:] < 0).any():
        raise ValueError("boxes with negative width or height")
    return arr


def clip_box(x: float, y: float, w: float, h: float, height: float, width: float):
    """``(x, y, w, h)`` clipped to a ``height x width`` image, or None when nothing of the box is inside."""
    x0, y0 = max(x, 0.0), max(y, 0.0)
    x1, y1 = min(x + w, float(width)), min(y + h, float(height))
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return None
    return x0, y0, x1 - x0, y1 - y0


def union_box(boxes: Sequence) -> Box | None:
    """The smallest box holding every box of ``boxes`` (None for none)."""
    arr = as_box_array(boxes)
    if not len(arr):
        return None
    x0, y0 = arr[:, 0].min(), arr[:, 1].min()
    x1, y1 = (arr[:, 0] + arr[:, 2]).max(), (arr[:, 1] + arr[:, 3]).max()
    return Box(float(x0), float(y0), float(x1 - x0), float(y1 - y0))


def scale_boxes(boxes: Any, from_size: tuple[int, int], to_size: tuple[int, int]):
    """Move boxes from a ``from_size = (H, W)`` pixel grid to ``to_size = (H', W')``: x, w scale by W'/W and
    y, h by H'/H (both grids span the same field of view, as with a resized image or an upsampled CAM).

    ``boxes``: a box object (Box, ScoredBox: returned as the same type), a numpy array ``[..., 4]``, or a
    (nested) list/tuple of these; the same structure is returned.
    """
    fh, fw = (float(v) for v in from_size)
    th, tw = (float(v) for v in to_size)
    if min(fh, fw, th, tw) <= 0:
        raise ValueError(f"sizes must be positive (H, W), got from_size={from_size}, to_size={to_size}")
    return _scale(boxes, tw / fw, th / fh)


def _scale(obj, sx: float, sy: float):
    if isinstance(obj, Box):
        return obj.scaled(sx, sy)
    if is_dataclass(obj) and hasattr(obj, "x") and hasattr(obj, "w"):  # ScoredBox and the like
        return replace(obj, x=obj.x * sx, y=obj.y * sy, w=obj.w * sx, h=obj.h * sy)
    if isinstance(obj, np.ndarray) or hasattr(obj, "detach"):  # numpy array or torch tensor
        a = np.asarray(obj.detach().cpu() if hasattr(obj, "detach") else obj, dtype=np.float64)
        if a.shape[-1:] != (4,):
            raise ValueError(f"box arrays must be [..., 4] (x, y, w, h), got shape {a.shape}")
        return a * np.array([sx, sy, sx, sy])
    if isinstance(obj, (list, tuple)):
        return type(obj)(_scale(o, sx, sy) for o in obj)
    raise TypeError(f"cannot scale a {type(obj).__name__}: expected a box, an array [..., 4] or a list")


# --- overlap --------------------------------------------------------------------------------------------------
def iou(a, b) -> np.ndarray:
    """Intersection over union of ``x, y, w, h`` boxes, elementwise with numpy broadcasting over the leading
    dimensions (``[N, 4]`` with ``[N, 4]`` -> ``[N]``; ``[N, 1, 4]`` with ``[1, M, 4]`` -> ``[N, M]``).

    Zero-area safe: when the union is 0 (both boxes degenerate) the IoU is 0, never NaN. Two torch tensors give a
    tensor on their device (BYOP compares its boxes where they are); anything else a numpy array.
    """
    if hasattr(a, "detach") and hasattr(b, "detach"):  # torch tensors: the same arithmetic, on their device
        import torch  # see _as_box_tensor

        xp, a, b = torch, a.detach().double(), b.detach().double()
    else:
        xp, a, b = np, np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        for arr in (a, b):
            if arr.shape[-1:] != (4,):
                raise ValueError(f"boxes must be [..., 4] arrays of (x, y, w, h), got shape {arr.shape}")
            _checked(arr)
    ax2, ay2 = a[..., 0] + a[..., 2], a[..., 1] + a[..., 3]
    bx2, by2 = b[..., 0] + b[..., 2], b[..., 1] + b[..., 3]
    iw = (xp.minimum(ax2, bx2) - xp.maximum(a[..., 0], b[..., 0])).clip(min=0)
    ih = (xp.minimum(ay2, by2) - xp.maximum(a[..., 1], b[..., 1])).clip(min=0)
    inter = iw * ih
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    safe = xp.where(union > 0, union, xp.ones_like(union))
    return xp.where(union > 0, inter / safe, xp.zeros_like(union))


def pairwise_iou(a, b) -> np.ndarray:
    """``[N, M]`` IoU of every box in ``a`` with every box in ``b`` (any accepted form; N or M may be 0)."""
    a, b = as_box_array(a), as_box_array(b)
    return iou(a[:, None, :], b[None, :, :])


# --- pixels ---------------------------------------------------------------------------------------------------
def _pixel_edges(b, H: int, W: int) -> tuple:
    """The rule (module docstring): columns ``x0 <= c < x1``, rows ``y0 <= r < y1`` of float64 boxes ``[N, 4]``."""
    x0 = b[:, 0].floor().clamp(0, W)
    x1 = (b[:, 0] + b[:, 2]).ceil().clamp(0, W)
    y0 = b[:, 1].floor().clamp(0, H)
    y1 = (b[:, 1] + b[:, 3]).ceil().clamp(0, H)
    return x0, x1, y0, y1


def _as_box_tensor(boxes, device=None):
    """float64 ``[N, 4]`` torch tensor of boxes (torch is imported here, not at the top: the data layer and
    ``radclr data ...`` use this module without loading torch)."""
    import torch  # the data layer stays torch-free

    if isinstance(boxes, torch.Tensor):
        b = boxes.detach().to(device=device if device is not None else boxes.device, dtype=torch.float64)
    else:
        b = torch.as_tensor(as_box_array(boxes), dtype=torch.float64, device=device)
    b = b.reshape(-1, 4)
    if not bool(torch.isfinite(b).all()) or bool((b[:, 2:] < 0).any()):
        raise ValueError("boxes must be finite with non-negative width and height")
    return b


def boxes_to_masks(boxes, shape: tuple[int, int], *, device=None):
    """``bool [N, H, W]``: one mask per box of ``boxes`` (``[N, 4]`` array/tensor or a sequence of boxes) in an
    ``H x W`` image, by the one rule of this module (a pixel the box touches is inside; clipped to the image).

    Built on ``device`` (default: the device of a tensor input, else CPU), so BYOP's Grad-CAM boxes become masks
    on the GPU without a round trip. A box wholly outside the image gives an empty mask; what an empty region
    means is the caller's policy (:mod:`radclr.radiomics.regions` uses the whole image).
    """
    if len(shape) != 2:
        raise ValueError(f"shape must be (H, W), got {shape}")
    b = _as_box_tensor(boxes, device)
    H, W = int(shape[0]), int(shape[1])
    x0, x1, y0, y1 = _pixel_edges(b, H, W)
    rows = _arange_like(b, H)
    cols = _arange_like(b, W)
    in_r = (rows[None, :] >= y0[:, None]) & (rows[None, :] < y1[:, None])
    in_c = (cols[None, :] >= x0[:, None]) & (cols[None, :] < x1[:, None])
    return in_r[:, :, None] & in_c[:, None, :]


def _arange_like(b, n: int):
    import torch  # see _as_box_tensor

    return torch.arange(n, dtype=b.dtype, device=b.device)


def pixel_span(box, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(c0, c1, r0, r1)``: the columns ``c0 <= c < c1`` and rows ``r0 <= r < r1`` one box covers in an
    ``H x W`` image -- the pixels of :func:`boxes_to_masks` (e.g. to draw its outline)."""
    x0, x1, y0, y1 = (int(v[0]) for v in _pixel_edges(_as_box_tensor([box_xywh(box)]), int(shape[0]), int(shape[1])))
    return x0, x1, y0, y1


# --- change between two boxes of one image --------------------------------------------------------------------
def box_changes(prev_boxes: Sequence, new_boxes: Sequence, iou_thr: float = 0.5) -> np.ndarray:
    """Per image: did its box change between two refreshes (BYOP)? ``bool [N]``.

    ``prev_boxes[i]`` / ``new_boxes[i]``: the image's box, its list of boxes (the first -- the selected one -- is
    compared; an empty list means no box), or an ``[N, 4]`` array row. A box changed if ``IoU(prev, new) <
    iou_thr``; no box on both sides is "unchanged", a box on one side only is "changed". Boxes must be in the
    same pixel grid.
    """
    if len(prev_boxes) != len(new_boxes):
        raise ValueError(f"prev_boxes and new_boxes differ in length: {len(prev_boxes)} != {len(new_boxes)}")
    if not 0.0 <= iou_thr <= 1.0:
        raise ValueError(f"iou_thr must be in [0, 1], got {iou_thr}")
    changed = np.zeros(len(prev_boxes), dtype=bool)
    pa, pb, idx = [], [], []
    for i, (p, q) in enumerate(zip(prev_boxes, new_boxes)):
        p, q = _first_box(p), _first_box(q)
        if p is None and q is None:
            continue
        if p is None or q is None:
            changed[i] = True
            continue
        pa.append(box_xywh(p))
        pb.append(box_xywh(q))
        idx.append(i)
    if idx:
        changed[np.array(idx)] = iou(np.array(pa), np.array(pb)) < iou_thr
    return changed


def box_change_rate(prev_boxes: Sequence, new_boxes: Sequence, iou_thr: float = 0.5) -> float:
    """Fraction of images whose box changed between two refreshes (:func:`box_changes`); NaN for no images."""
    ch = box_changes(prev_boxes, new_boxes, iou_thr)
    return float(ch.mean()) if len(ch) else float("nan")


def _first_box(entry):
    if entry is None:
        return None
    if isinstance(entry, (list, tuple)) and (len(entry) == 0 or not np.isscalar(entry[0])):
        return entry[0] if len(entry) else None
    return entry
