"""The compiled-kernel backend of the radiomics engine (its CPU fast path): the per-pixel passes in compiled
kernels, the formulas shared with torch.

``extract`` calls :func:`prepare_with_kernels` instead of ``discretize.prepare`` for a group of regions on the CPU
when the compiled kernels (:mod:`radclr.radiomics.kernels`, numba) are available and the group is in their scope. It
returns the same :class:`~radclr.radiomics.base.RegionBatch` -- gray levels, value histogram, level counts -- plus a
:class:`KernelCounts` in ``batch.cache["counts"]`` that builds each class's matrix on first request (GLCM, GLRLM,
GLDM and NGTDM counts, GLSZM zones). The torch feature classes take their matrix from there instead of building
it (``chunked.precomputed``), so every feature formula, and the degenerate-region policy, is the torch engine's.

Backends (``extract(..., backend=...)`` or the ``RADCLR_RADIOMICS_BACKEND`` environment variable):

* ``auto`` (default): compiled kernels for CPU groups they cover, the torch path otherwise (CUDA, no numba);
* ``numba``: the same, but an error when numba is missing or the device is not the CPU;
* ``torch``: the torch reference path everywhere (what the tests compare the kernels with).

Scope of the kernels: ``distances = [1]`` (PyRadiomics' default) and at most 64 gray levels per region
(``levels.DIRECT_MAX_LEVELS``: 8-bit images at binWidth >= 4, any binCount <= 64). Other groups take the torch
path, which handles every setting.
"""

from __future__ import annotations

import logging
import os
import threading

import numpy as np
import torch

from radclr.errors import ConfigError
from radclr.ops.components import Components
from radclr.radiomics import kernels
from radclr.radiomics.base import RegionBatch, Settings
from radclr.radiomics.discretize import _LUT_MAX_ENTRIES, _LUT_MAX_RANGE, BinEdges, _shape_problems, _spacing
from radclr.radiomics.levels import DIRECT_MAX_LEVELS, GrayLevels

__all__ = ["BACKENDS", "resolve_backend", "prepare_with_kernels", "KernelCounts", "single_threaded_torch"]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "numba", "torch")
ENV_VAR = "RADCLR_RADIOMICS_BACKEND"
_warned_missing = False


def resolve_backend(backend: str | None, device: torch.device, settings: Settings) -> bool:
    """True when the compiled kernels should be used for this call (see the module docstring)."""
    global _warned_missing
    choice = backend if backend is not None else os.environ.get(ENV_VAR, "auto") or "auto"
    if choice not in BACKENDS:
        source = "backend" if backend is not None else ENV_VAR
        raise ConfigError(f"unknown radiomics backend {choice!r} ({source}); choose one of {list(BACKENDS)}")
    if choice == "torch":
        return False
    if choice == "numba":
        if not kernels.AVAILABLE:
            raise ConfigError(f"radiomics backend 'numba' needs numba ({kernels.REASON}); pip install numba")
        if device.type != "cpu":
            raise ConfigError(f"radiomics backend 'numba' runs on the CPU, not on {device}")
    if device.type != "cpu":
        return False
    if not kernels.AVAILABLE:
        if not _warned_missing:
            log.warning("radiomics: numba is not importable (%s); the CPU fast path is off, using the torch path "
                        "(pip install numba to enable it)", kernels.REASON)
            _warned_missing = True
        return False
    return tuple(int(d) for d in settings.glcm_distances) == (1,)


def _threads() -> int:
    return max(1, torch.get_num_threads())


_torch_threads_lock = threading.Lock()
_torch_threads_state = {"depth": 0, "saved": 1}


class single_threaded_torch:
    """``with single_threaded_torch() as threads:`` -- torch runs on one thread inside (the feature formulas work
    on small matrices; an OpenMP team spin-waiting for a descheduled thread made them 10-50x slower on a loaded
    machine), ``threads`` is the number torch had, which the kernels' own thread pool uses instead. Nested or
    concurrent uses (two threads extracting at once) restore torch's setting when the last one leaves."""

    def __enter__(self) -> int:
        with _torch_threads_lock:
            state = _torch_threads_state
            if state["depth"] == 0:
                state["saved"] = torch.get_num_threads()
                if state["saved"] != 1:
                    torch.set_num_threads(1)
            state["depth"] += 1
            return max(1, state["saved"])

    def __exit__(self, *exc) -> None:
        with _torch_threads_lock:
            state = _torch_threads_state
            state["depth"] -= 1
            if state["depth"] == 0 and state["saved"] != 1:
                torch.set_num_threads(state["saved"])


class KernelCounts:
    """Each class's matrix for a prepared group, built by its kernel on first request (so the time lands in that
    class's profile entry and classes that are not asked for cost nothing). GLDM and NGTDM share one pass over
    the 8-neighbourhood: whichever is asked first builds both (its profile entry carries the pass)."""

    def __init__(self, code: np.ndarray, height: np.ndarray, width: np.ndarray, size: int, settings: Settings,
                 threads: int = 1):
        self.code, self.height, self.width, self.size, self.settings = code, height, width, size, settings
        self.threads = threads
        self._done: dict = {}

    def get(self, name: str):
        if name not in self._done:
            self._done[name] = getattr(self, "_" + name)()
        return self._done[name]

    def _run(self, kernel, *args) -> None:
        kernels.run_regions(kernel, self.code.shape[0], self.threads, self.code, self.height, self.width, *args)

    def _glcm(self) -> torch.Tensor:
        from radclr.radiomics.kernels.glcm import glcm_counts  # numba kernels: optional, loaded on first use

        out = np.zeros((self.code.shape[0], 4, self.size, self.size), dtype=np.int32)
        self._run(glcm_counts, out)
        return torch.from_numpy(out)

    def _glrlm(self) -> tuple[torch.Tensor, torch.Tensor]:
        from radclr.radiomics.kernels.glrlm import run_length_counts  # numba kernels: optional, loaded on first use

        B = self.code.shape[0]
        nr = max(self.code.shape[1], self.code.shape[2]) - 2
        out = np.zeros((B, 4, self.size + 1, max(nr, 1)), dtype=np.int32)  # level row 0: outside, dropped
        multi = np.zeros((B, 4), dtype=np.bool_)
        self._run(run_length_counts, out, multi)
        self._glrlm_raw = (out, multi)
        P = out[:, :, 1:]
        if not multi.all():  # PyRadiomics clears the matrix of an angle without a line of two pixels
            P[~multi] = 0
        return torch.from_numpy(P), torch.from_numpy(multi)

    def _glrlm_features(self) -> dict[str, torch.Tensor]:
        from radclr.radiomics.kernels.glrlm import (  # numba kernels: optional, loaded on first use
            FEATURES,
            run_length_features,
        )

        self.get("glrlm")
        out, multi = self._glrlm_raw
        values = np.zeros((out.shape[0], len(FEATURES)), dtype=np.float64)
        kernels.run_regions(run_length_features, out.shape[0], self.threads, out, multi, values)
        table = torch.from_numpy(values)
        return {name: table[:, k] for k, name in enumerate(FEATURES)}

    def _neighbourhood(self) -> tuple[torch.Tensor, torch.Tensor]:
        from radclr.radiomics.kernels.neighbourhood import (
            neighbourhood_counts,  # numba kernels: optional, loaded on first use
        )

        B = self.code.shape[0]
        dep = np.zeros((B, self.size, 9), dtype=np.int32)
        tone = np.zeros((B, self.size, 9), dtype=np.int64)
        self._run(neighbourhood_counts, float(self.settings.gldm_a), dep, tone)
        return torch.from_numpy(dep), torch.from_numpy(tone)

    def _gldm(self) -> torch.Tensor:
        return self.get("neighbourhood")[0]  # one pass builds both GLDM and NGTDM counts

    def _ngtdm(self) -> torch.Tensor:
        return self.get("neighbourhood")[1]

    def _shape2D(self):
        from radclr.radiomics.kernels.shape2d import (  # numba kernels: optional, loaded on first use
            N_STATS,
            shape_counts,
        )

        B, Hp = self.code.shape[0], self.code.shape[1]
        stats = np.zeros((B, N_STATS), dtype=np.int64)
        K = 4 * Hp + 2
        hull_y = np.zeros((B, K), dtype=np.int64)
        hull_x = np.zeros((B, K), dtype=np.int64)
        hull_n = np.zeros(B, dtype=np.int64)
        self._run(shape_counts, stats, hull_y, hull_x, hull_n)
        k = max(int(hull_n.max()), 1) if B else 1
        hull_y, hull_x = (torch.from_numpy(np.ascontiguousarray(a[:, :k])) for a in (hull_y, hull_x))
        return torch.from_numpy(stats), torch.from_numpy(hull_n), hull_y, hull_x

    def _glszm(self):
        from radclr.radiomics.kernels.glszm import zones  # numba kernels: optional, loaded on first use

        B = self.code.shape[0]
        area = self.height.astype(np.int64) * self.width.astype(np.int64)
        offset = np.zeros(B + 1, dtype=np.int64)
        np.cumsum(area, out=offset[1:])
        level = np.empty(int(offset[-1]), dtype=np.uint8)
        size = np.empty(int(offset[-1]), dtype=np.int32)
        n_zones = np.zeros(B, dtype=np.int64)
        self._run(zones, offset, level, size, n_zones)
        keep = np.concatenate([np.arange(o, o + k) for o, k in zip(offset[:-1].tolist(), n_zones.tolist())]) \
            if B else np.zeros(0, dtype=np.int64)
        image = np.repeat(np.arange(B, dtype=np.int64), n_zones)
        value = torch.from_numpy(level[keep].astype(np.int64))
        return Components(batch=torch.from_numpy(image), value=value,
                          size=torch.from_numpy(size[keep].astype(np.int64)), label=torch.empty(0, dtype=torch.int64))


def _as_numpy_images(images: torch.Tensor) -> np.ndarray:
    x = images.detach()
    if x.dtype not in (torch.float32, torch.float64):
        x = x.to(torch.float64)
    return np.ascontiguousarray(x.numpy())


def prepare_with_kernels(
    images: torch.Tensor,
    masks: torch.Tensor,
    settings: Settings,
    spacing: torch.Tensor | None,
    regions: np.ndarray,
    boxes: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    arrays: tuple[np.ndarray, np.ndarray] | None = None,
    threads: int | None = None,
) -> RegionBatch | None:
    """``discretize.prepare`` with compiled kernels -> :class:`RegionBatch`, or None when the group is out of the
    kernels' scope (more than ``DIRECT_MAX_LEVELS`` gray levels in a region): the caller then uses ``prepare``.

    images/masks: the full ``[N, H, W]`` CPU tensors (``arrays``: their numpy views, when already made);
    regions: ``int64 [B]`` indices of the group; boxes: their ``(top, left, height, width)`` (non-empty).
    threads: threads of the kernels (default: torch's thread count).
    """
    from radclr.radiomics.kernels.binning import (  # numba kernels: optional, loaded on first use
        bin_general,
        bin_integral,
        scan_range,
    )

    img, msk = arrays if arrays is not None else (_as_numpy_images(images), np.ascontiguousarray(masks.numpy()))
    regions = np.ascontiguousarray(regions, dtype=np.int64)
    top, left, height, width = (np.ascontiguousarray(b, dtype=np.int64) for b in boxes)
    B = len(regions)
    hc, wc = max(int(height.max()), 1), max(int(width.max()), 1)
    threads = _threads() if threads is None else max(1, int(threads))
    common = (img.reshape(-1), msk.reshape(-1), img.shape[1], img.shape[2], regions, top, left, height, width)

    mn, mx = np.empty(B), np.empty(B)
    flags = np.zeros(B, dtype=np.int64)
    kernels.run_regions(scan_range, B, threads, *common, mn, mx, flags)
    undefined = _shape_problems(torch.from_numpy(height), torch.from_numpy(width), settings)
    for i in np.flatnonzero(flags & 1).tolist():
        undefined.setdefault(i, "NaN or infinite intensity inside the region (PyRadiomics' binning is undefined)")

    edges = BinEdges(torch.from_numpy(mn), torch.from_numpy(mx), settings)
    n_gray = edges.bin(torch.from_numpy(mx)[:, None]).squeeze(1)  # the level of the largest value
    G = max(int(n_gray.max()), 1)
    if G > DIRECT_MAX_LEVELS:
        return None
    code = np.zeros((B, hc + 2, wc + 2), dtype=np.uint8)
    cache: dict = {}
    lo, hi = (int(mn.min()), int(mx.max())) if not flags.any() else (0, -1)
    R = hi - lo + 1
    if not flags.any() and R <= _LUT_MAX_RANGE and B * R <= _LUT_MAX_ENTRIES:
        # integer intensities: bins through a per-region lookup table, value histogram for firstorder
        values = lo + torch.arange(R, dtype=torch.float64)
        lut = edges.bin(values.expand(B, R))
        hist = np.zeros((B, R), dtype=np.int64)
        lut8 = np.ascontiguousarray(lut.clamp(0, 255).to(torch.uint8).numpy())
        kernels.run_regions(bin_integral, B, threads, *common, lo, lut8, code, hist)
        hist_t = torch.from_numpy(hist)
        # pixels per level: the histogram through the table (values absent from a region count 0)
        counts = torch.zeros(B, G, dtype=torch.int64).scatter_add_(1, (lut - 1).clamp(0, G - 1), hist_t).numpy()
        cache["value_histogram"] = (values, hist_t)
        cache["value_lut"] = (lut, hist_t)
        image = torch.zeros(B, 0, 0, dtype=torch.float64)  # firstorder reads the value histogram instead
    else:
        if edges.count is None:
            mode, params, count = 0, (edges.low, edges.edge1, edges.delta), 0.0
        else:
            mode, params, count = 1, (edges.first, edges.last, edges.step), float(edges.count)
        p0, p1, p2 = (np.ascontiguousarray(p.numpy()) for p in params)
        counts = np.zeros((B, G), dtype=np.int64)
        crop = np.zeros((B, hc, wc), dtype=np.float64)
        top_level = np.ascontiguousarray(n_gray.clamp(1, G).numpy())
        kernels.run_regions(bin_general, B, threads, *common, mode, p0, p1, p2, count, top_level, code, crop, counts)
        image = torch.from_numpy(crop)

    code_t = torch.from_numpy(code)
    binned = code_t[:, 1:-1, 1:-1]  # gray level 1..Ng inside, 0 outside (a view of the padded map)
    mask = binned != 0
    counts_t = torch.from_numpy(counts)
    values_t = torch.arange(1, G + 1, dtype=torch.float64).expand(B, G)
    cache["gray_levels"] = GrayLevels(code=binned, values=values_t, counts=counts_t, size=G, direct=True)
    cache["counts"] = KernelCounts(code, height, width, G, settings, threads)
    batch = RegionBatch(
        image=image,
        mask=mask,
        binned=binned,
        n_gray=n_gray.to(torch.int64),
        spacing=_spacing(spacing, B, torch.device("cpu")),
        settings=settings,
        undefined=undefined,
        cache=cache,
    )
    if settings.minimum_roi_size is not None:
        n_pixels = counts_t.sum(1)
        for i in (n_pixels <= settings.minimum_roi_size).nonzero().flatten().tolist():
            batch.undefined.setdefault(
                i, f"region has {int(n_pixels[i])} pixels, not more than minimumROISize={settings.minimum_roi_size}"
            )
    return batch
