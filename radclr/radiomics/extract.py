"""``extract``: PyRadiomics features of a batch of 2-D regions, batched in torch or through PyRadiomics.

This is the radiomics view of every method (seed 000 §2, seed 001 §3.2 BYOP re-extraction, SPEC §2): the 102
default 2-D features, named as PyRadiomics names them (``original_glcm_Contrast``), in PyRadiomics' order.

Torch engine: regions are sorted by bounding-box size and processed in groups (about ``_PIXEL_BUDGET`` padded
pixels, or ``batch_size`` regions) so that padding stays small and intermediate tensors stay in cache; inside a
group every class works on the whole group at once (:mod:`radclr.radiomics.discretize`, ``base.FeatureClass``).
On the CPU the per-pixel passes (binning and every class's matrix) run in compiled kernels when numba is
available (:mod:`radclr.radiomics.kernel_backend`; ``backend="torch"`` or ``RADCLR_RADIOMICS_BACKEND=torch`` forces the
torch reference path); the feature formulas are the same code either way.
Degenerate regions follow the policy in ``discretize`` (empty mask -> DataError, PyRadiomics-refused regions and
NaN intensities -> NaN row with a logged reason).
"""

from __future__ import annotations

import contextlib
import logging
import time

import numpy as np
import torch

from radclr.errors import ConfigError, DataError
from radclr.radiomics import kernel_backend, kernels
from radclr.radiomics.base import Settings
from radclr.radiomics.discretize import bounding_boxes, prepare
from radclr.radiomics.params import RadiomicsParams, load_params
from radclr.radiomics.pyradiomics_engine import extract_pyradiomics, region_name
from radclr.radiomics.registry import feature_class, feature_names, resolve_classes

__all__ = ["extract", "feature_names", "warm_up_kernels"]

log = logging.getLogger(__name__)

_PIXEL_BUDGET = 1 << 22  # padded pixels per group in the torch engine
ENGINES = ("torch", "pyradiomics")


def _settings(settings, bin_width, bin_count) -> Settings:
    if settings is None:
        return Settings(bin_width=float(bin_width), bin_count=None if bin_count is None else int(bin_count))
    if not isinstance(settings, Settings):
        raise ConfigError(f"settings must be a radclr.radiomics.Settings, got {type(settings).__name__}")
    if bin_count is not None or float(bin_width) != 25.0:
        raise ConfigError("give the binning either in settings or as bin_width/bin_count, not both")
    return settings


def _groups(height: torch.Tensor, width: torch.Tensor, batch_size: int | None) -> list[np.ndarray]:
    """Region indices grouped by similar bounding-box size (smallest first)."""
    h, w = height.cpu().numpy(), width.cpu().numpy()
    order = np.lexsort((w, h))
    groups, start = [], 0
    while start < len(order):
        stop = start + 1
        hmax, wmax = h[order[start]], w[order[start]]
        while stop < len(order):
            if batch_size is not None:
                if stop - start >= batch_size:
                    break
            else:
                nh, nw = max(hmax, h[order[stop]]), max(wmax, w[order[stop]])
                if (stop - start + 1) * nh * nw > _PIXEL_BUDGET:
                    break
            hmax, wmax = max(hmax, h[order[stop]]), max(wmax, w[order[stop]])
            stop += 1
        groups.append(order[start:stop])
        start = stop
    return groups


def extract(
    images,
    masks,
    *,
    bin_width: float = 25.0,
    bin_count: int | None = None,
    classes=None,
    settings: Settings | None = None,
    spacing=None,
    engine: str = "torch",
    device=None,
    batch_size: int | None = None,
    params=None,
    jobs: int = 1,
    profile: dict | None = None,
    region_names=None,
    backend: str | None = None,
) -> tuple[list[str], torch.Tensor]:
    """PyRadiomics features of B 2-D regions -> ``(names, float64 [B, F])``.

    images: ``[B, H, W]`` float intensities (torch or numpy; integers are accepted and used as floats).
    masks: ``[B, H, W]`` bool region masks (boxes: :func:`radclr.boxes.boxes_to_masks`).
    bin_width / bin_count: PyRadiomics ``binWidth`` / ``binCount`` (``bin_count`` wins when set).
    classes: None (all 7 classes, 102 features), a list of class names, or ``{class: [features] | None}``.
    settings: a full :class:`Settings` instead of ``bin_width``/``bin_count``.
    spacing: pixel spacing (row, col) in mm, ``[2]`` or ``[B, 2]`` (TotalEnergy and shape2D use it).
    engine: ``"torch"`` (batched, CPU or CUDA) or ``"pyradiomics"`` (the reference, one region per call,
        ``jobs`` processes; the only engine for filtered image types -- pass them in ``params``).
    device: torch device for the torch engine (default: the images' device).
    batch_size: regions per group in the torch engine (default: by a padded-pixel budget).
    params: a :class:`radclr.radiomics.params.RadiomicsParams` (or a path to a PyRadiomics YAML); replaces
        ``bin_width``/``bin_count``/``classes``/``settings``.
    profile: optional dict that receives seconds spent per stage (``prepare`` and each class).
    region_names: optional name of each region (e.g. ``"img.png box 2 (Mass at x=..)"``) used in the logged
        reasons of NaN rows instead of the region's index in this batch.
    backend: how the torch engine computes on the CPU -- ``"auto"`` (default; compiled numba kernels for the
        per-pixel passes when numba is importable, the torch path otherwise and on CUDA), ``"numba"`` (the same,
        an error without numba or off the CPU) or ``"torch"`` (the torch reference path). None reads the
        ``RADCLR_RADIOMICS_BACKEND`` environment variable (default ``auto``). See
        :mod:`radclr.radiomics.kernel_backend`.

    Values are returned on the device the torch engine ran on (CPU for the pyradiomics engine). Rows of regions
    PyRadiomics refuses (single pixel, 1-pixel-wide line, NaN intensities) are NaN and the reason is logged;
    an empty mask raises :class:`~radclr.errors.DataError` naming the region.
    """
    if engine not in ENGINES:
        raise ConfigError(f"unknown radiomics engine {engine!r}; choose one of {list(ENGINES)}")
    if params is not None:
        p = params if isinstance(params, RadiomicsParams) else load_params(params)
        if classes is not None or settings is not None or bin_count is not None or float(bin_width) != 25.0:
            raise ConfigError("give either params or bin_width/bin_count/classes/settings, not both")
        if engine == "torch":
            p.check_torch()
        settings, classes = p.settings, p.classes
    if engine == "pyradiomics":
        return extract_pyradiomics(
            images,
            masks,
            settings=_settings(settings, bin_width, bin_count),
            classes=classes,
            spacing=spacing,
            params=params,
            jobs=jobs,
            region_names=region_names,
        )
    if int(jobs) != 1:
        raise ConfigError("jobs applies to engine='pyradiomics'; the torch engine runs batched in one process")
    settings = _settings(settings, bin_width, bin_count)
    plan = resolve_classes(classes)
    names = [f"original_{c}_{f}" for c, feats in plan for f in feats]

    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if isinstance(masks, np.ndarray):
        masks = torch.from_numpy(np.ascontiguousarray(masks))
    if not isinstance(images, torch.Tensor) or not isinstance(masks, torch.Tensor):
        raise ValueError("images and masks must be torch tensors or numpy arrays")
    if images.dim() != 3 or tuple(masks.shape) != tuple(images.shape):
        raise ValueError(
            f"images and masks must both be [B, H, W]; got images {tuple(images.shape)}, masks {tuple(masks.shape)}"
        )
    masks = masks.to(images.device)
    masks = masks if masks.dtype == torch.bool else masks != 0
    device = torch.device(device) if device is not None else images.device
    if batch_size is not None and int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    # the fast path: compiled kernels on the kernels' own threads, torch itself on one thread meanwhile
    use_kernels = kernel_backend.resolve_backend(backend, device, settings)
    with kernel_backend.single_threaded_torch() if use_kernels else contextlib.nullcontext(1) as threads:
        out = _extract_groups(images, masks, names, plan, settings, spacing, device, batch_size, profile,
                              use_kernels, threads, region_names)
    return names, out


def _extract_groups(images, masks, names, plan, settings, spacing, device, batch_size, profile, use_kernels: bool,
                    threads: int, region_names=None) -> torch.Tensor:
    """The torch engine's loop over groups of similar-sized regions (``extract`` after its checks)."""
    B = images.shape[0]
    boxes = bounding_boxes(masks)
    height, width = boxes[2], boxes[3]
    empty = (height == 0).nonzero().flatten().tolist()
    if empty:
        raise DataError(f"region(s) {empty[:20]} have an empty mask: nothing to compute radiomics on")
    spacing_all = None
    if spacing is not None:
        s = spacing if isinstance(spacing, torch.Tensor) else torch.as_tensor(np.asarray(spacing, dtype=np.float64))
        spacing_all = s.to(torch.float64).expand(B, 2) if s.shape == (2,) else s
        if spacing_all.shape != (B, 2):
            raise ValueError(f"spacing must be [2] or [B, 2] = [{B}, 2], got {tuple(s.shape)}")

    out = torch.full((B, len(names)), float("nan"), dtype=torch.float64, device=device)
    timing = profile  # None: no timing, and no waiting for the GPU to time it
    if images.device != device:  # the whole batch moves once; each group then gathers its crops there
        images, masks = images.to(device), masks.to(device)
        boxes = tuple(t.to(device) for t in boxes)
    if use_kernels:
        arrays = (kernel_backend._as_numpy_images(images), np.ascontiguousarray(masks.numpy()))
        boxes_np = tuple(t.numpy() for t in boxes)
    for idx in _groups(height, width, batch_size):
        sel = torch.as_tensor(idx, device=device)
        group_spacing = None if spacing_all is None else spacing_all[torch.as_tensor(idx)].to(device)
        t0 = time.perf_counter()
        batch = None
        if use_kernels:
            batch = kernel_backend.prepare_with_kernels(images, masks, settings, group_spacing, idx,
                                      tuple(t[idx] for t in boxes_np), arrays, threads)
        if batch is None:  # torch path (or a group outside the kernels' scope, e.g. > 64 gray levels)
            batch = prepare(images, masks, settings, group_spacing, regions=sel,
                            boxes=tuple(t[sel] for t in boxes))
        _tick(timing, "prepare", t0, device)
        cols = []
        for cname, feats in plan:
            t0 = time.perf_counter()
            values = feature_class(cname)(batch).execute(feats)
            cols.extend(values[f] for f in feats)
            _tick(timing, cname, t0, device)
        block = torch.stack(cols, 1) if cols else torch.zeros(len(idx), 0, dtype=torch.float64, device=device)
        for local, reason in batch.undefined.items():
            block[local] = float("nan")
            log.warning("radiomics: %s: %s; its features are NaN", region_name(region_names, int(idx[local])), reason)
        out[torch.as_tensor(idx, device=device)] = block
    return out


def _tick(timing: dict | None, key: str, t0: float, device: torch.device) -> None:
    """Add the seconds since ``t0`` to ``timing[key]`` when profiling (on CUDA after waiting for the queued
    kernels, which is why nothing is timed -- nor waited for -- without a ``profile`` dict)."""
    if timing is None:
        return
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    timing[key] = timing.get(key, 0.0) + time.perf_counter() - t0


def warm_up_kernels() -> float:
    """Compile (or load from numba's cache) every kernel on a tiny batch -> seconds it took; 0 without numba."""
    if not kernels.AVAILABLE:
        return 0.0
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    for dtype in (torch.float32, torch.float64):
        images = torch.from_numpy(rng.integers(0, 256, (2, 8, 8)).astype(np.float64)).to(dtype)
        masks = torch.ones(2, 8, 8, dtype=torch.bool)
        extract(images, masks, backend="numba")
        extract(images + 0.5, masks, backend="numba")  # the general (non-integer) binning route
    return time.perf_counter() - t0
