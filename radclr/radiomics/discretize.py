"""Regions -> :class:`RegionBatch`: crop to the mask's bounding box, pad, and discretise gray levels.

Discretisation is PyRadiomics' (``imageoperations.getBinEdges`` + ``binImage``), reproduced edge for edge so that
every pixel lands in the same bin (the seeds use the 102 default PyRadiomics features, SPEC §2):

* ``binWidth`` W: edges ``low + k*W`` with ``low = min - (min % W)`` (Python's sign rule for ``%``), built the way
  ``numpy.arange`` builds them (edge 1 is ``low + W``, edge k is ``low + k*((low + W) - low)``);
  a value's bin is the number of edges ``<=`` it (``numpy.digitize``), so a maximum lying on an edge opens a new bin.
* ``binCount`` N: ``numpy.histogram`` edges (``linspace(min, max, N + 1)``; a flat region gets ``min -+ 0.5``) with
  the last edge raised by 1 so the maximum falls in bin N.

Regions are cropped to their bounding box and padded (top-left aligned, mask False) to the largest crop in the
batch; all of it is gather/index arithmetic over the whole batch, no Python loop over regions.

Degenerate regions (policy, see ``docs/radiomics.md``)
------------------------------------------------------
* empty mask: :class:`~radclr.errors.DataError` naming the region index (nothing can be computed, and an empty
  region is a bug upstream -- a box outside the image, a CAM threshold above the map).
* a single pixel, or a region thinner than ``minimumROIDimensions`` (default 2: a 1-pixel-wide line), or not more
  than ``minimumROISize`` pixels: PyRadiomics refuses these (``checkMask`` raises), so their row is NaN and the
  reason is recorded in ``RegionBatch.undefined`` (and logged by ``extract``).
* NaN or infinite intensities inside the mask: PyRadiomics' binning is undefined on them -> NaN row with reason.
* constant intensity / one gray level: a value, exactly as PyRadiomics computes it (e.g. GLCM Correlation 1).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from radclr.errors import DataError
from radclr.radiomics.base import RegionBatch, Settings

__all__ = ["prepare", "bounding_boxes", "BinEdges"]

# integer-valued regions whose intensity range is at most this wide are binned through a per-region lookup table
# (one gather instead of a dozen float64 passes); firstorder then reads its order statistics from the histogram
_LUT_MAX_RANGE = 1 << 16
_LUT_MAX_ENTRIES = 1 << 24


class BinEdges:
    """PyRadiomics' bin edges for each region of a batch, as a function ``bin(values) -> 1-based bin``.

    ``minimum``/``maximum`` are ``float64 [B]`` (the region's extreme intensities). ``bin`` accepts values of
    shape ``[B, ...]`` and returns ``int64`` of the same shape: the number of edges ``<=`` each value, which is
    what ``numpy.digitize(values, edges)`` returns.
    """

    def __init__(self, minimum: torch.Tensor, maximum: torch.Tensor, settings: Settings):
        _check_settings(settings)
        self.count = settings.bin_count
        mn, mx = minimum.to(torch.float64), maximum.to(torch.float64)
        if self.count is not None:
            flat = mn == mx  # numpy.histogram widens a zero range to [min - 0.5, max + 0.5]
            self.first = torch.where(flat, mn - 0.5, mn)
            self.last = torch.where(flat, mx + 0.5, mx)
            self.step = (self.last - self.first) / self.count
        else:
            w = float(settings.bin_width)
            r = torch.fmod(mn, w)  # numpy/Python float modulo: fmod, then moved to the divisor's sign
            r = torch.where((r != 0) & ((r < 0) != (w < 0)), r + w, r)
            self.low = mn - r
            self.edge1 = self.low + w
            self.delta = self.edge1 - self.low  # numpy.arange's fill step

    def edge(self, k: torch.Tensor, view: tuple[int, ...]) -> torch.Tensor:
        """Edge number ``k`` (float64 tensor of integers) of each region, exactly as numpy computes it."""
        if self.count is not None:
            e = k * self.step.view(view) + self.first.view(view)
            return torch.where(k >= self.count, (self.last + 1.0).view(view), e)
        e = self.low.view(view) + k * self.delta.view(view)
        return torch.where(k == 1, self.edge1.view(view), e)

    def bin(self, values: torch.Tensor) -> torch.Tensor:
        x = values.to(torch.float64)
        view = (-1,) + (1,) * (x.dim() - 1)
        if self.count is not None:
            k = torch.floor((x - self.first.view(view)) / self.step.view(view)).clamp_(0, self.count - 1)
        else:
            k = torch.floor((x - self.low.view(view)) / self.delta.view(view)).clamp_(min=0)
        # the estimate can be one off where rounding puts a value next to an edge: settle it against the edges
        k = torch.where(self.edge(k, view) > x, k - 1, k)
        k_next = k + 1
        up = self.edge(k_next, view) <= x
        if self.count is not None:
            up &= k_next <= self.count
        k = torch.where(up, k_next, k)
        return (k + 1).to(torch.int64)


def _check_settings(settings: Settings) -> None:
    if settings.bin_count is not None:
        if isinstance(settings.bin_count, bool) or int(settings.bin_count) != settings.bin_count or settings.bin_count < 1:
            raise ValueError(f"binCount must be a positive integer, got {settings.bin_count!r}")
    elif not (float(settings.bin_width) > 0 and np.isfinite(float(settings.bin_width))):
        raise ValueError(f"binWidth must be a positive number, got {settings.bin_width!r}")


def bounding_boxes(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(top, left, height, width)`` int64 ``[B]`` of each mask's bounding box (0 size for an empty mask)."""
    m8 = masks.view(torch.uint8) if masks.dtype == torch.bool else (masks != 0).view(torch.uint8)
    rows, cols = m8.amax(2), m8.amax(1)  # integer reductions: much faster than bool any()
    H, W = masks.shape[1:]
    top = rows.argmax(1)
    left = cols.argmax(1)
    bottom = H - 1 - rows.flip(1).argmax(1)
    right = W - 1 - cols.flip(1).argmax(1)
    height = torch.where(rows.amax(1) > 0, bottom - top + 1, 0)
    width = torch.where(cols.amax(1) > 0, right - left + 1, 0)
    return top, left, height, width


def _as_tensor(x, name: str, device=None) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    return x if device is None else x.to(device)


def _spacing(spacing, B: int, device) -> torch.Tensor:
    if spacing is None:
        return torch.ones(B, 2, dtype=torch.float64, device=device)
    s = torch.as_tensor(np.asarray(spacing, dtype=np.float64) if not isinstance(spacing, torch.Tensor) else spacing)
    s = s.to(device=device, dtype=torch.float64)
    if s.shape == (2,):
        s = s.expand(B, 2)
    if s.shape != (B, 2):
        raise ValueError(f"spacing must be [2] or [B, 2] = [{B}, 2] (row, col), got {tuple(s.shape)}")
    if not bool(torch.isfinite(s).all() and (s > 0).all()):
        raise ValueError("spacing must be finite and positive")
    return s.contiguous()


def prepare(
    images,
    masks,
    settings: Settings | None = None,
    spacing: Sequence[float] | torch.Tensor | None = None,
    *,
    regions: torch.Tensor | None = None,
    boxes: tuple[torch.Tensor, ...] | None = None,
) -> RegionBatch:
    """Crop, pad and discretise B regions -> :class:`RegionBatch` (float64 intensities, PyRadiomics bins).

    images: ``[N, H, W]`` intensities (any real dtype; computed in float64). masks: ``[N, H, W]`` bool (nonzero =
    inside). spacing: pixel spacing ``(row, col)`` in mm, ``[2]`` or ``[B, 2]``; 1.0 when None.
    regions: optional ``int64 [B]`` indices of the regions to prepare (default: all N, in order) -- the crops are
    gathered straight from the full tensors. boxes: optional ``(top, left, height, width)`` of those regions as
    returned by :func:`bounding_boxes` (computed when not given).
    Raises ``ValueError`` for wrong shapes and :class:`~radclr.errors.DataError` for empty masks; see the module
    docstring for the other degenerate regions.
    """
    settings = settings or Settings()
    _check_settings(settings)
    images = _as_tensor(images, "images")
    masks = _as_tensor(masks, "masks", images.device)
    if images.dim() != 3 or masks.shape != images.shape:
        raise ValueError(
            f"images and masks must both be [B, H, W]; got images {tuple(images.shape)}, masks {tuple(masks.shape)}"
        )
    if images.is_complex() or images.dtype == torch.bool:
        raise ValueError(f"images must be real-valued, got dtype {images.dtype}")
    masks = masks if masks.dtype == torch.bool else masks != 0
    N, H, W = masks.shape
    device = images.device
    regions = torch.arange(N, device=device) if regions is None else regions.to(device=device, dtype=torch.int64)
    B = int(regions.numel())

    if boxes is None:
        boxes = bounding_boxes(masks[regions])  # one box per entry of ``regions``, in its order
    top, left, height, width = (t.to(device) for t in boxes)
    empty = regions[height == 0].tolist()
    if empty:
        raise DataError(f"region(s) {empty[:20]} have an empty mask: nothing to compute radiomics on")

    # crop: one flat gather per tensor straight from the full batch; positions past a region's own box repeat
    # its last row/column and are switched off in the mask
    hc = max(int(height.max()), 1) if B else 1
    wc = max(int(width.max()), 1) if B else 1
    ri = (top[:, None] + torch.arange(hc, device=device)).clamp_(max=H - 1)
    ci = (left[:, None] + torch.arange(wc, device=device)).clamp_(max=W - 1)
    idx_dtype = torch.int32 if N * H * W < 2**31 else torch.int64
    rows = ((regions[:, None] * H + ri) * W).to(idx_dtype)
    flat_index = (rows[:, :, None] + ci.to(idx_dtype)[:, None, :]).view(-1)
    in_rows = (torch.arange(hc, device=device)[None, :] < height[:, None]).to(torch.uint8)
    in_cols = (torch.arange(wc, device=device)[None, :] < width[:, None]).to(torch.uint8)
    m8 = masks.view(torch.uint8).reshape(-1).index_select(0, flat_index).view(B, hc, wc)
    m8 = m8 * in_rows[:, :, None] * in_cols[:, None, :]
    mask = m8.view(torch.bool)
    crop = images.reshape(-1).index_select(0, flat_index).view(B, hc, wc)

    undefined = _shape_problems(height, width, settings)
    lut_path = _integer_range(crop, B)
    if lut_path is not None:
        batch = _prepare_integral(crop, mask, m8, lut_path, settings, undefined)
    else:
        batch = _prepare_general(crop, mask, settings, undefined)
    batch.spacing = _spacing(spacing, B, device)
    if settings.minimum_roi_size is not None:
        n_pixels = batch.n_pixels
        for i in (n_pixels <= settings.minimum_roi_size).nonzero().flatten().tolist():
            batch.undefined.setdefault(
                i, f"region has {int(n_pixels[i])} pixels, not more than minimumROISize={settings.minimum_roi_size}"
            )
    return batch


def _shape_problems(height: torch.Tensor, width: torch.Tensor, settings: Settings) -> dict[int, str]:
    undefined: dict[int, str] = {}
    dims = (height > 1).to(torch.int64) + (width > 1).to(torch.int64)
    for i in (dims == 0).nonzero().flatten().tolist():
        undefined[i] = "single-pixel region (PyRadiomics refuses a one-voxel mask)"
    if settings.minimum_roi_dimensions > 1:
        for i in ((dims > 0) & (dims < settings.minimum_roi_dimensions)).nonzero().flatten().tolist():
            undefined[i] = (
                f"region is {int(height[i])}x{int(width[i])} pixels: fewer than minimumROIDimensions="
                f"{settings.minimum_roi_dimensions} dimensions (PyRadiomics refuses it)"
            )
    return undefined


def _integer_range(crop: torch.Tensor, B: int) -> tuple[torch.Tensor, int, int] | None:
    """``(crop as int32, smallest value, number of values)`` when every value is an integer of a modest range."""
    if crop.numel() == 0:
        return None
    if crop.dtype.is_floating_point:
        if not bool(torch.isfinite(crop.amin())) or not bool(torch.isfinite(crop.amax())):
            return None
        lo, hi = float(crop.amin()), float(crop.amax())
        if lo < -(2**30) or hi > 2**30:
            return None
        ints = crop.to(torch.int32)
        if not torch.equal(ints.to(crop.dtype), crop):
            return None
    else:
        ints = crop.to(torch.int32) if crop.dtype != torch.int32 else crop
    lo, hi = int(ints.amin()), int(ints.amax())
    n = hi - lo + 1
    if n > _LUT_MAX_RANGE or B * n > _LUT_MAX_ENTRIES:
        return None
    return ints, lo, n


def _prepare_integral(crop, mask, m8, lut_path, settings: Settings, undefined: dict[int, str]) -> RegionBatch:
    """Integer intensities: histogram of the values per region, bins through a per-region lookup table."""
    ints, lo, R = lut_path
    B = crop.shape[0]
    device = crop.device
    b = torch.arange(B, device=device, dtype=torch.int32)
    # flat value index + 1 inside the mask, 0 outside (so that "outside" needs no separate pass)
    index = (ints + (b * R + 1 - lo).view(B, 1, 1)) * m8
    hist = torch.bincount(index.view(-1), minlength=B * R + 1)[1:].view(B, R)
    present = hist > 0
    first = present.to(torch.uint8).argmax(1)
    last = R - 1 - present.flip(1).to(torch.uint8).argmax(1)
    values = lo + torch.arange(R, device=device, dtype=torch.float64)
    mn, mx = values[first], values[last]
    edges = BinEdges(mn, mx, settings)
    lut = edges.bin(values.expand(B, R))  # [B, R] bin of every possible value
    lut_flat = torch.cat([torch.zeros(1, dtype=torch.int64, device=device), lut.flatten()])
    binned = lut_flat.index_select(0, index.view(-1)).view(crop.shape)
    image = torch.mul(crop, m8, out=torch.empty(crop.shape, dtype=torch.float64, device=device))
    n_gray = lut.gather(1, last[:, None]).squeeze(1)
    cache = {"value_histogram": (values, hist), "value_lut": (lut, hist)}
    return RegionBatch(
        image=image,
        mask=mask,
        binned=binned,
        n_gray=n_gray,
        spacing=torch.ones(B, 2, dtype=torch.float64, device=device),
        settings=settings,
        undefined=undefined,
        cache=cache,
    )


def _prepare_general(crop, mask, settings: Settings, undefined: dict[int, str]) -> RegionBatch:
    """Any real intensities: bins computed value by value (NaN/inf inside a region -> NaN row)."""
    B = crop.shape[0]
    device = crop.device
    image = crop.to(torch.float64)
    finite = torch.isfinite(image)
    bad = (mask & ~finite).flatten(1).any(1)
    for i in bad.nonzero().flatten().tolist():
        undefined.setdefault(i, "NaN or infinite intensity inside the region (PyRadiomics' binning is undefined)")
    zero = torch.zeros((), dtype=torch.float64, device=device)
    image = torch.where(mask & finite, image, zero)
    big = torch.tensor(float("inf"), dtype=torch.float64, device=device)
    mn = torch.where(mask, image, big).flatten(1).amin(1)
    mx = torch.where(mask, image, -big).flatten(1).amax(1)
    edges = BinEdges(mn, mx, settings)
    binned = torch.where(mask, edges.bin(image), 0)
    n_gray = edges.bin(mx[:, None]).squeeze(1)
    return RegionBatch(
        image=image,
        mask=mask,
        binned=binned,
        n_gray=n_gray,
        spacing=torch.ones(B, 2, dtype=torch.float64, device=device),
        settings=settings,
        undefined=undefined,
        cache={},
    )
