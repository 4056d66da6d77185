"""3-D inputs for seed 004: a CT volume + tumour mask -> a ``n x S x S`` stack of slices fed to a 2-D CNN as channels.

Seed 004 §3.1 (KiTS19): "we uniformly select 10 slice images for each tumor area because of a wide range of slice
thicknesses. If there are less than 10 slices, select slices repeatedly from the middle to the ends. And we resize
these tumor slices to 10 x 64 x 64, and then send them to CNN as a whole." The tumour's radiomics come from
PyRadiomics on the 3-D volume (§2.3). Enabled by ``data.volume`` (see :func:`volume_settings`); ``docs/volumes.md``.

Stack of one case (:func:`tumour_stack`):

1. **Slices** -- the ``m`` axial slices (first array axis) that contain at least one mask voxel, in order; ``n`` of
   them are chosen by :func:`select_slices` (uniform when ``m >= n``; every slice plus repeats from the middle
   outwards when ``m < n``), kept in anatomical order.
2. **Crop** -- every chosen slice is cropped to the same in-plane box: the bounding box of the mask over *all* its
   slices, enlarged by ``margin`` x its height/width on each side and clipped to the volume. Voxels in the box but
   outside the mask are kept (as in the 2-D ROI crop: the network sees the tumour and its immediate
   surroundings).
3. **Intensity -> store scale 0..255** (:func:`to_store_window`) -- with ``window = [lo, hi]`` (e.g. CT
   ``[-200, 300]`` HU): ``255 * (clip(x, lo, hi) - lo) / (hi - lo)``; without a window, min-max over the cropped
   stack (not the whole volume: a CT's range runs from air to bone and contrast, which would squash the tumour
   into a few grey levels); a constant stack maps to 0.
4. **Resize** -- each slice to ``S x S`` with antialiased bilinear interpolation (aspect not kept, as the paper's
   fixed 64 x 64); the store then rounds to uint8, and the network receives ``/ 255`` (seed 004: "normalized to
   [0, 1]").
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from radclr.errors import ConfigError, DataError, require_package
from radclr.io import read_image, read_mask
from radclr.progress import progress_bar
from radclr.radiomics.cache import FeatureCache, config_digest
from radclr.radiomics.pyradiomics_engine import PyRadiomicsEngine, pyradiomics_params
from radclr.radiomics.regions import radiomics_settings
from radclr.training_data.store import build_cached_store, files_key

log = logging.getLogger(__name__)

VOLUME_STORE_VERSION = 1
VOLUME_KEYS = ("n_slices", "size", "window", "margin", "jobs")
VOLUME_REGIONS = ("roi_crop", "box")  # both mean "the tumour mask" for volumes


# --------------------------------------------------------------------------------------------------------------
# settings
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VolumeSettings:
    """``data.volume``: slices per stack, slice size, intensity window (None = min-max), crop margin, processes."""

    n_slices: int = 10
    size: int = 64
    window: tuple[float, float] | None = None
    margin: float = 0.0
    jobs: int = 1  # worker processes for decoding and PyRadiomics (not part of any cache key)

    def spec(self) -> str:
        """What the stack store depends on (``jobs`` does not change a value)."""
        return json.dumps({"n": self.n_slices, "size": self.size, "window": self.window, "margin": self.margin})


def volume_settings(cfg: dict) -> VolumeSettings | None:
    """The run's :class:`VolumeSettings` (None = 2-D mode), validated against the rest of the config.

    Raises :class:`ConfigError` naming the key for: unknown keys, ``n_slices < 1``, ``size < 8``, a window that is
    not ``[lo, hi]`` with ``lo < hi``, a negative margin, ``jobs < 1``; ``radiomics.engine`` other than
    ``pyradiomics`` (the torch engine computes 2-D features only); ``radiomics.region`` other than ``roi_crop`` /
    ``box`` (a volume's radiomics region is its mask; ``whole_image`` and BYOP's ``cam`` have no 3-D meaning here).
    """
    raw = cfg["data"].get("volume")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError("data.volume must be a mapping {n_slices, size, window, margin, jobs} or null, "
                          f"got {raw!r}")
    unknown = sorted(set(raw) - set(VOLUME_KEYS))
    if unknown:
        raise ConfigError(f"data.volume: unknown key(s) {unknown}; known: {list(VOLUME_KEYS)}")

    def integer(key, default, minimum):
        v = raw.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ConfigError(f"data.volume.{key} must be an integer >= {minimum}, got {v!r}")
        return int(v)

    window = raw.get("window")
    if window is not None:
        ok = isinstance(window, (list, tuple)) and len(window) == 2 and all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) for w in window)
        if not ok or not float(window[0]) < float(window[1]):
            raise ConfigError("data.volume.window must be [lo, hi] with lo < hi (e.g. CT [-200, 300] HU), "
                              f"got {window!r}")
        window = (float(window[0]), float(window[1]))
    margin = raw.get("margin", 0.0)
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 10:
        raise ConfigError(f"data.volume.margin must be a number in [0, 10) (fraction of the ROI size), got {margin!r}")
    vs = VolumeSettings(n_slices=integer("n_slices", 10, 1), size=integer("size", 64, 8), window=window,
                        margin=float(margin), jobs=integer("jobs", 1, 1))
    rad = cfg["radiomics"]
    if rad.get("engine") != "pyradiomics":
        raise ConfigError("data.volume needs radiomics.engine: pyradiomics (3-D radiomics of the tumour volume; the "
                          f"torch engine computes 2-D features only), got {rad.get('engine')!r}")
    if rad.get("region") not in VOLUME_REGIONS:
        raise ConfigError(f"data.volume: radiomics.region must be one of {list(VOLUME_REGIONS)} (the tumour mask), "
                          f"got {rad.get('region')!r}")
    return vs


def input_channels(cfg: dict) -> int:
    """Image channels the encoder takes: ``data.volume.n_slices`` for stacks, else 1."""
    vs = volume_settings(cfg)
    return 1 if vs is None else vs.n_slices


# --------------------------------------------------------------------------------------------------------------
# one case
# --------------------------------------------------------------------------------------------------------------
def select_slices(m: int, n: int) -> np.ndarray:
    """Indices (into the ``m`` ROI slices, ascending) of the ``n`` slices of a stack -- seed 004 §3.1's rule.

    * ``m >= n`` ("uniformly select"): the middle slice of each of ``n`` equal parts, ``floor((k + 1/2) m / n)``
      for ``k = 0..n-1`` (``m = n`` gives every slice once; ``m = 20, n = 10`` gives 1, 3, ..., 19).
    * ``m < n`` ("select slices repeatedly from the middle to the ends"): every slice once, then the ``n - m``
      extra copies go to the slices in order of distance from the middle (ties: the lower index first),
      cycling through that order again if needed; the stack stays in anatomical order. For ``n = 10``:
      ``m = 3`` -> 0 0 0 1 1 1 1 2 2 2; ``m = 4`` -> 0 0 1 1 1 2 2 2 3 3; ``m = 7`` -> 0 1 2 2 3 3 4 4 5 6;
      ``m = 1`` -> ten copies of slice 0.
    """
    m, n = int(m), int(n)
    if m < 1 or n < 1:
        raise ValueError(f"select_slices needs m >= 1 ROI slices and n >= 1, got m={m}, n={n}")
    if m >= n:
        return ((2 * np.arange(n) + 1) * m) // (2 * n)
    middle_first = sorted(range(m), key=lambda i: (abs(2 * i - (m - 1)), i))
    counts = np.ones(m, dtype=np.int64)
    for k in range(n - m):
        counts[middle_first[k % m]] += 1
    return np.repeat(np.arange(m), counts)


def roi_slices(mask: np.ndarray) -> np.ndarray:
    """Ascending indices of the slices (first axis) of a ``[D, H, W]`` mask that contain a region voxel."""
    return np.flatnonzero(np.asarray(mask).reshape(mask.shape[0], -1).any(axis=1))


def roi_box(mask: np.ndarray, margin: float = 0.0) -> tuple[int, int, int, int]:
    """In-plane box ``(r0, r1, c0, c1)`` (end exclusive) of a ``[D, H, W]`` mask over all its slices, enlarged by
    ``margin`` x its height / width on each side (rounded to whole pixels) and clipped to the slice."""
    rows = np.flatnonzero(mask.any(axis=(0, 2)))
    cols = np.flatnonzero(mask.any(axis=(0, 1)))
    if rows.size == 0:
        raise DataError("the tumour mask is empty")
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    dr, dc = int(round(margin * (r1 - r0))), int(round(margin * (c1 - c0)))
    H, W = mask.shape[1:]
    return max(0, r0 - dr), min(H, r1 + dr), max(0, c0 - dc), min(W, c1 + dc)


def to_store_window(a: np.ndarray, window: tuple[float, float] | None = None) -> np.ndarray:
    """Intensities -> float 0..255: ``255 (clip(a, lo, hi) - lo) / (hi - lo)`` for ``window = (lo, hi)``, else
    min-max over ``a`` (a constant array maps to 0)."""
    a = np.asarray(a, dtype=np.float32)
    if window is not None:
        lo, hi = float(window[0]), float(window[1])
        if not lo < hi:
            raise ValueError(f"window must satisfy lo < hi, got {window}")
        return (np.clip(a, lo, hi) - lo) * np.float32(255.0 / (hi - lo))
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros_like(a)
    return (a - lo) * np.float32(255.0 / (hi - lo))


def resize_slices(stack: np.ndarray, size: int) -> np.ndarray:
    """``[n, h, w]`` -> ``[n, size, size]`` float32, antialiased bilinear, every slice independently."""
    t = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))[None]
    if tuple(t.shape[-2:]) == (size, size):
        return t[0].numpy()
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0].numpy()


def tumour_stack(volume: np.ndarray, mask: np.ndarray, n_slices: int = 10, size: int = 64, *,
                 window: tuple[float, float] | None = None, margin: float = 0.0) -> np.ndarray:
    """Seed 004 §3.1's ``n_slices x size x size`` tumour stack of one case, float32 on the 0..255 store scale.

    volume: ``[D, H, W]`` intensities (e.g. HU); mask: ``[D, H, W]`` tumour mask (nonzero = tumour). The steps
    -- slice selection, common in-plane ROI crop, intensity mapping, resize -- are in the module docstring.
    Raises ValueError for mismatched shapes and :class:`DataError` for an empty mask or NaN/inf in the crop.
    """
    volume, mask = np.asarray(volume), np.asarray(mask) != 0
    if volume.ndim != 3 or mask.shape != volume.shape:
        raise ValueError(f"volume and mask must both be [D, H, W]; got volume {volume.shape}, mask {mask.shape}")
    if int(n_slices) < 1 or int(size) < 1:
        raise ValueError(f"n_slices and size must be >= 1, got {n_slices}, {size}")
    z = roi_slices(mask)
    if z.size == 0:
        raise DataError("the tumour mask is empty")
    chosen = z[select_slices(z.size, int(n_slices))]
    r0, r1, c0, c1 = roi_box(mask, margin)
    crop = volume[chosen, r0:r1, c0:c1].astype(np.float32)
    if not np.isfinite(crop).all():
        raise DataError("the volume has NaN or infinite values in the tumour crop")
    out = resize_slices(to_store_window(crop, window), int(size))
    return np.clip(out, 0.0, 255.0)


def read_case(image_path, mask_path) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """A volume, its mask (bool) and voxel spacing ``(z, y, x)`` mm; a 2-D file counts as one slice.

    :class:`DataError` (naming both files) when the mask's shape differs from the image's.
    """
    img = read_image(image_path)
    vol = img.array
    spacing = tuple(float(s) for s in (img.spacing or (1.0,) * vol.ndim))
    msk = read_mask(mask_path)
    if vol.ndim == 2:
        vol, spacing = vol[None], (1.0, *spacing)
    if msk.ndim == 2:
        msk = msk[None]
    if msk.shape != vol.shape:
        raise DataError(f"{mask_path}: mask shape {msk.shape} differs from the shape {vol.shape} of {image_path}")
    return vol, msk, spacing  # type: ignore[return-value]


def _decode_volume(task):
    """Store decoder (worker process): one case -> (uint8 ``[n, S, S]`` stack, in-plane ``(H, W)``)."""
    image_path, mask_path, n, size, window, margin = task
    vol, msk, _ = read_case(image_path, mask_path)
    try:
        stack = tumour_stack(vol, msk, n, size, window=window, margin=margin)
    except DataError as e:
        raise DataError(f"{image_path} (mask {mask_path}): {e}") from None
    return np.rint(stack).astype(np.uint8), vol.shape[-2:]


# --------------------------------------------------------------------------------------------------------------
# a dataset
# --------------------------------------------------------------------------------------------------------------
def case_files(dataset) -> tuple[list[str], list[str]]:
    """Image and mask paths of every record; :class:`DataError` listing the images without a mask."""
    missing = [iid for iid in dataset.image_ids if iid not in dataset.masks]
    if missing:
        raise DataError(f"{dataset.name}: data.volume needs a tumour mask for every image (masks/ folder or a mask "
                        f"column); {len(missing)} image(s) have none, e.g. {missing[:3]}")
    return [str(p) for p in dataset.records["path"]], [str(dataset.masks[i]) for i in dataset.image_ids]


def build_volume_store(dataset, n_slices: int = 10, size: int = 64, cache_dir=None, *, window=None,
                       margin: float = 0.0, jobs: int = 1, progress: bool = True):
    """Every case's tumour stack, uint8 ``[N, n_slices, size, size]`` memory-mapped and cached like
    :func:`radclr.training_data.store.build_store` (key = these settings + every image and mask file's path, size and
    mtime; ``.done`` marker; rebuilt when stale). ``original_hw`` holds each volume's in-plane size."""
    vs = VolumeSettings(int(n_slices), int(size), None if window is None else (float(window[0]), float(window[1])),
                        float(margin), int(jobs))
    images, masks = case_files(dataset)
    key = files_key(f"volume-v{VOLUME_STORE_VERSION}|{vs.spec()}|", [p for pair in zip(images, masks) for p in pair])
    tasks = [(i, m, vs.n_slices, vs.size, vs.window, vs.margin) for i, m in zip(images, masks)]
    store = build_cached_store(tasks, _decode_volume, (vs.n_slices, vs.size, vs.size), key, cache_dir,
                               meta={"volume": json.loads(vs.spec())}, jobs=vs.jobs, progress=progress,
                               desc=f"tumour stacks -> {vs.n_slices}x{vs.size}x{vs.size}")
    store.volume = vs
    return store


def volume_radiomics(dataset, rad_cfg: dict, cache_dir, *, jobs: int = 1, progress: bool = True,
                     chunk: int = 32) -> tuple[list[str], np.ndarray]:
    """3-D PyRadiomics features of every case's tumour (volume + mask at the file's resolution and spacing, raw
    intensities, e.g. HU) with the run's radiomics settings or parameter file -- seed 004 §2.3. Each case's row is
    cached in the radiomics :class:`~radclr.radiomics.cache.FeatureCache` (``cache_dir/radiomics``; key: the image
    and mask files -- path, size, mtime --, the PyRadiomics parameters and versions).

    Volumes are read ``chunk`` at a time; for the Original image type each is cut to its tumour's bounding box
    before it is sent (the features do not change: PyRadiomics crops to that box itself).
    """
    # PyRadiomics (heavy; only its version is needed here)
    radiomics = require_package("radiomics", package="pyradiomics-bhklab", purpose="3-D radiomics of volumes")

    if rad_cfg.get("params"):
        params = pyradiomics_params(params=rad_cfg["params"], volume=True)
    else:
        settings, classes = radiomics_settings(rad_cfg)
        params = pyradiomics_params(settings, classes, volume=True)
    images, masks = case_files(dataset)
    config = config_digest("pyradiomics-3d", {"params": params, "pyradiomics": getattr(radiomics, "__version__", "?")})
    cache = FeatureCache(Path(cache_dir) / "radiomics")
    keys = [cache.key(files_key("image", [img]), files_key("mask", [msk]), config) for img, msk in zip(images, masks)]
    rows: list = [cache.get(k) for k in keys]
    names = next((r[0] for r in rows if r is not None), None)
    todo = [i for i, r in enumerate(rows) if r is None or r[0] != names]
    bar = progress_bar(total=len(todo), desc="3-D radiomics (PyRadiomics)", unit="vol", enabled=progress and bool(todo))
    if todo:
        with PyRadiomicsEngine(params, jobs=int(jobs)) as engine:
            crop = engine.crop  # Original image type only: the tumour's bounding box is all PyRadiomics uses
            step = max(1, int(chunk)) if crop else max(1, int(jobs))  # whole volumes (filters) are large: few at a time
            for s in range(0, len(todo), step):
                part = todo[s:s + step]
                vols, msks, sps = [], [], []
                for i in part:
                    vol, msk, sp = read_case(images[i], masks[i])
                    if not msk.any():
                        raise DataError(f"{masks[i]}: the tumour mask of {images[i]} is empty")
                    if crop:
                        box = tuple(slice(int(a.min()), int(a.max()) + 1) for a in np.nonzero(msk))
                        vol, msk = vol[box], msk[box]
                    vols.append(vol.astype(np.float64))
                    msks.append(msk)
                    sps.append(sp)
                got, values = engine.extract_volumes(vols, msks, sps, progress=bar.update)
                names = names or list(got)
                if list(got) != names:
                    raise DataError("3-D radiomics: feature names changed between cases; clear the radiomics cache")
                for i, v in zip(part, values):
                    rows[i] = (names, v)
                    cache.put(keys[i], names, v)
    bar.close()
    values = np.stack([r[1] for r in rows]) if rows else np.zeros((0, 0))
    return list(names or []), values
