"""Decoded, resized training images kept on disk as one memory-mapped array.

Decoding PNG/DICOM every step starves the model, so every image of a dataset is read once, mapped to the
0..255 *store scale*, resized to ``S x S`` and written to ``images-<key>.npy`` (uint8 ``[N, S, S]``) in the
cache folder. The key hashes the file list (path, size, mtime), ``S`` and the intensity rule, so a changed
dataset gets a new store; a store whose build was interrupted (no ``.done`` marker) is rebuilt.

Intensity rule (``data.intensity``):
* ``auto``: 8-bit files are kept as they are (0..255); anything else (16-bit PNG, DICOM, NIfTI) is min-max
  scaled per image to 0..255. Radiomics bin widths (PyRadiomics default 25) therefore mean the same thing for
  every source.
* ``minmax``: every image min-max scaled to 0..255.
* ``none``: values are clipped to 0..255 unchanged.

Resizing squashes to a square (aspect not kept; documented -- NIH images are square and the Kermany source is
already squashed) with antialiased bilinear interpolation; boxes are rescaled with the same factors
(:meth:`ImageStore.box_scale`).

The same cache machinery (:func:`build_cached_store`: key, ``.done`` marker, validity check, worker processes)
also holds multi-channel items ``[N, C, S, S]`` made by another decoder -- seed 004's 3-D tumour stacks
(:mod:`radclr.training_data.volumes`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from radclr.data.dataset import CXRDataset
from radclr.errors import DataError, OutputError
from radclr.io import read_image
from radclr.progress import progress_bar
from radclr.safe_write import describe, reserve, writable_dir

log = logging.getLogger(__name__)
STORE_VERSION = 1


def default_cache_dir() -> Path:
    env = os.environ.get("RADCLR_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    return Path(base) / "radclr"


def to_store_scale(array: np.ndarray, meta: dict, rule: str = "auto", source: str | None = None) -> np.ndarray:
    """Map a decoded image (float32, file intensity scale) to float 0..255 (see module docstring); ``source``
    (the file) names the image in errors."""
    a = np.asarray(array, dtype=np.float32)
    where = f"{source}: " if source else ""
    if a.ndim != 2:
        raise DataError(f"{where}expected a 2-D image, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise DataError(f"{where}image contains {int((~np.isfinite(a)).sum())} NaN or infinite value(s)")
    eight_bit = int(meta.get("bit_depth", 0) or 0) == 8 or (a.min() >= 0 and a.max() <= 255 and meta.get("format") in ("png", "jpeg"))
    if rule == "none" or (rule == "auto" and eight_bit):
        return np.clip(a, 0, 255)
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros_like(a)
    return (a - lo) * (255.0 / (hi - lo))


def resize_image(a: np.ndarray, size: int) -> np.ndarray:
    """``[H, W]`` -> ``[size, size]`` float32, antialiased bilinear (aspect not kept)."""
    if a.shape == (size, size):
        return a.astype(np.float32)
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None]
    out = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out[0, 0].numpy()


@dataclass
class ImageStore:
    """uint8 ``[N, S, S]`` images (or ``[N, C, S, S]`` multi-channel items, e.g. 3-D stacks) aligned with a
    dataset's records, plus each file's original ``(H, W)`` (in-plane size for volumes)."""

    images: np.ndarray
    original_hw: np.ndarray  # int64 [N, 2]
    key: str
    volume: object = None  # the VolumeSettings a 3-D stack store was built with (radclr.training_data.volumes), else None

    @property
    def size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def channels(self) -> int:
        """Channels of one item: 1 for ``[N, S, S]`` images, ``C`` for ``[N, C, S, S]`` stacks."""
        return int(self.images.shape[1]) if self.images.ndim == 4 else 1

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def box_scale(self, i: int) -> tuple[float, float]:
        """(sx, sy) multiplying box coordinates in file pixels to store pixels for image ``i``."""
        h, w = self.original_hw[i]
        return self.size / float(w), self.size / float(h)


def files_key(spec: str, paths) -> str:
    """16-hex key of a build ``spec`` and the files it reads (path, size, mtime: a changed file changes it)."""
    h = hashlib.sha1()
    h.update(spec.encode())
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}|missing\n".encode())
    return h.hexdigest()[:16]


def _store_key(dataset: CXRDataset, size: int, rule: str) -> str:
    return files_key(f"v{STORE_VERSION}|{size}|{rule}|", dataset.records["path"])


def _decode_one(args):
    path, size, rule = args
    img = read_image(path)
    a = img.array
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    scaled = to_store_scale(a, img.meta, rule, source=path)
    return np.clip(np.rint(resize_image(scaled, size)), 0, 255).astype(np.uint8), a.shape[-2:]


def build_store(dataset: CXRDataset, size: int, cache_dir: str | Path | None = None, rule: str = "auto",
                jobs: int = 1, progress: bool = True) -> ImageStore:
    """Decode + resize every image of ``dataset`` once (cached; see module docstring)."""
    tasks = [(str(p), size, rule) for p in dataset.records["path"]]
    return build_cached_store(tasks, _decode_one, (size, size), _store_key(dataset, size, rule), cache_dir,
                              meta={"size": size, "rule": rule}, jobs=jobs, progress=progress,
                              desc=f"decoding images -> {size}px")


def build_cached_store(tasks: list, decode, item_shape: tuple[int, ...], key: str,
                       cache_dir: str | Path | None = None, *, meta: dict | None = None, jobs: int = 1,
                       progress: bool = True, desc: str = "decoding") -> ImageStore:
    """The cached uint8 ``[N, *item_shape]`` store of ``decode(task) -> (uint8 item, original (H, W))`` over
    ``tasks`` (one per dataset record, in order), kept as ``images-<key>.npy`` in ``cache_dir``.

    A store is reused only when its ``.done`` marker exists and its array has the expected shape; otherwise (an
    interrupted build, a stale or unreadable file) it is rebuilt. ``decode`` must be a module-level function
    (it runs in ``jobs`` worker processes when ``jobs > 1`` and there are more than 64 tasks).
    """
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    writable_dir(cache, "cache folder (data.cache_dir or RADCLR_CACHE)")
    arr_path, meta_path, done = cache / f"images-{key}.npy", cache / f"images-{key}.json", cache / f"images-{key}.done"
    n = len(tasks)
    shape = (n, *(int(v) for v in item_shape))
    if done.exists() and arr_path.exists() and meta_path.exists():
        try:
            images = np.load(arr_path, mmap_mode="r")
            saved = json.loads(meta_path.read_text())
            if images.shape == shape and len(saved["original_hw"]) == n:
                return ImageStore(images, np.asarray(saved["original_hw"], dtype=np.int64).reshape(n, 2), key)
        except (ValueError, OSError, KeyError, json.JSONDecodeError):
            pass
        log.warning("image store %s is unreadable or stale; rebuilding", arr_path)
    done.unlink(missing_ok=True)
    try:
        images = np.lib.format.open_memmap(arr_path, mode="w+", dtype=np.uint8, shape=shape)
    except (OSError, ValueError, MemoryError, OverflowError) as e:  # a map the machine cannot hold (ENOMEM, ...)
        arr_path.unlink(missing_ok=True)  # not a huge sparse file left behind
        why = describe(e) if isinstance(e, OSError) else (str(e) or type(e).__name__)
        raise OutputError(arr_path, f"cannot allocate the image store ({n} item(s) of {list(shape[1:])}, "
                                    f"{int(np.prod(shape, dtype=np.float64)) / 2**20:,.1f} MiB): {why}") from None
    try:  # claim the disk space now: a full disk is a message here, not a SIGBUS while writing the map
        with open(arr_path, "r+b") as f:
            reserve(f.fileno(), os.path.getsize(arr_path), arr_path, "image store")
    except BaseException:
        arr_path.unlink(missing_ok=True)  # (the map itself goes with the exception)
        raise
    log.info("building image store %s: %d item(s), %.1f MiB (kept in the cache folder for later runs; see "
             "docs/operation.md)", arr_path, n, os.path.getsize(arr_path) / 2**20)
    hw = np.zeros((n, 2), dtype=np.int64)
    bar = progress_bar(total=n, desc=desc, unit="img", enabled=progress)
    try:
        if jobs > 1 and n > 64:
            with ProcessPoolExecutor(jobs) as ex:
                for i, (img, hw_i) in enumerate(ex.map(decode, tasks, chunksize=16)):
                    images[i], hw[i] = img, hw_i
                    bar.update()
        else:
            for i, t in enumerate(tasks):
                images[i], hw[i] = decode(t)
                bar.update()
    except BaseException:  # an unreadable image, an interrupt: no half-built store is left taking space
        arr_path.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    images.flush()
    del images
    meta_path.write_text(json.dumps({"original_hw": hw.tolist(), "n": n, **(meta or {})}))
    done.write_text("ok")
    return ImageStore(np.load(arr_path, mmap_mode="r"), hw, key)
