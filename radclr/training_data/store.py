"""Decoded, resized training images kept on disk as one memory-mapped array.

Decoding PNG/DICOM every step starves the model, so every image of a dataset is read once, mapped to the
0..255 *store scale*, resized to ``S x S`` and written to ``images-<key>.npy`` (uint8 ``[N, S, S]``) in the
cache folder. The key hashes the file list (path, size, mtime), ``S`` and the intensity rule, so a changed
dataset gets a new store; a store whose build was interrupted (no ``.done`` marker) is rebuilt. Only one process
builds a given store (a file lock; the others wait, then map it), into a temporary name renamed into place when
complete (:func:`radclr.safe_write.build_once`); its size is logged and checked against the free disk space first. The
store's folder is ``data.store_dir`` when set, else the cache folder. A store pickles by its path
(:meth:`ImageStore.__getstate__`): DataLoader workers map the file, they do not receive a copy.

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
import shutil
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
from radclr.safe_write import build_once, describe, publish, remove_leftovers, reserve, temporary_name, writable_dir

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
    path: str | None = None  # the .npy file ``images`` maps (pickling reopens it by this path)

    def __getstate__(self) -> dict:
        """Pickle a file-backed store by its path, not its bytes: a DataLoader worker started with ``spawn`` or
        ``forkserver`` (Python 3.14's default) reopens the memory map instead of receiving a copy of the whole
        array (5.6 GB at 224 px, 29 GB at 512 px for NIH ChestX-ray14)."""
        state = dict(self.__dict__)
        if self.path is not None and isinstance(self.images, np.memmap):
            state["images"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.images is None:
            self.images = np.load(self.path, mmap_mode="r")

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

    A store is reused only when its ``.done`` marker exists and its array has the expected shape. Otherwise one
    process builds it under the lock ``.images-<key>.lock`` while any other process that wants the same store
    waits and then maps it (:func:`radclr.safe_write.build_once`); the array is written under a temporary name
    and renamed into place when complete, so no process ever maps a half-written store. ``decode`` must be a
    module-level function (it runs in ``jobs`` worker processes when ``jobs > 1`` and there are more than 64
    tasks).
    """
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    writable_dir(cache, "store folder (data.store_dir, else data.cache_dir or RADCLR_CACHE)")
    arr_path = cache / f"images-{key}.npy"
    shape = (len(tasks), *(int(v) for v in item_shape))

    def ready():
        return _open_store(arr_path, shape, key)

    def build():
        return _build_store(tasks, decode, shape, arr_path, key, meta=meta, jobs=jobs, progress=progress, desc=desc)

    return build_once(ready, build, cache / f".images-{key}.lock", f"image store {arr_path.name}")


def _paths(arr_path: Path) -> tuple[Path, Path]:
    return arr_path.with_suffix(".json"), arr_path.with_suffix(".done")


def _open_store(arr_path: Path, shape: tuple[int, ...], key: str) -> ImageStore | None:
    """The complete store at ``arr_path`` mapped read-only, or None (missing, unfinished, stale, unreadable)."""
    meta_path, done = _paths(arr_path)
    if not (done.exists() and arr_path.exists() and meta_path.exists()):
        return None
    try:
        images = np.load(arr_path, mmap_mode="r")
        saved = json.loads(meta_path.read_text())
        n = shape[0]
        if images.shape == shape and len(saved["original_hw"]) == n:
            return ImageStore(images, np.asarray(saved["original_hw"], dtype=np.int64).reshape(n, 2), key,
                              path=str(arr_path))
    except (ValueError, OSError, KeyError, json.JSONDecodeError):
        pass
    log.warning("image store %s is unreadable or stale; rebuilding", arr_path)
    return None


def store_size_line(shape: tuple[int, ...]) -> str:
    """``"512 px x 112,120 images = 29.4 GB"`` (``[N, S, S]``) or ``"... x 10 slices x ..."`` (``[N, C, S, S]``)."""
    n, side = shape[0], shape[-1]
    per = f"{shape[1]} slices x " if len(shape) == 4 else ""
    return f"{side} px x {per}{n:,} images = {format_bytes(int(np.prod(shape, dtype=np.int64)))}"


def format_bytes(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} bytes"


def check_disk(folder: Path, need: int, arr_path: Path, what: str = "image store") -> None:
    """:class:`OutputError` naming ``arr_path`` when ``folder``'s disk has less than ``need`` bytes free."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < need:
        raise OutputError(arr_path, f"cannot write the {what} ({format_bytes(need)}): the disk of {folder} has "
                          f"{format_bytes(free)} free -- set data.store_dir (or RADCLR_CACHE) to a larger disk, "
                          "or lower data.image_size (docs/operation.md)")


def _build_store(tasks, decode, shape, arr_path: Path, key: str, *, meta, jobs, progress, desc) -> ImageStore:
    """Decode every task into a temporary array, then publish it with its ``.json`` and ``.done`` marker (called
    with the store's lock held)."""
    meta_path, done = _paths(arr_path)
    n = shape[0]
    done.unlink(missing_ok=True)
    remove_leftovers(arr_path)
    need = int(np.prod(shape, dtype=np.int64)) + 128
    log.info("building image store %s: %s (kept for later runs; see docs/operation.md)", arr_path,
             store_size_line(shape))
    check_disk(arr_path.parent, need, arr_path)
    tmp = temporary_name(arr_path)
    try:
        images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
    except (OSError, ValueError, MemoryError, OverflowError) as e:  # a map the machine cannot hold (ENOMEM, ...)
        tmp.unlink(missing_ok=True)  # not a huge sparse file left behind
        why = describe(e) if isinstance(e, OSError) else (str(e) or type(e).__name__)
        raise OutputError(arr_path, f"cannot allocate the image store ({n} item(s) of {list(shape[1:])}, "
                                    f"{int(np.prod(shape, dtype=np.float64)) / 2**20:,.1f} MiB): {why}") from None
    try:  # claim the disk space now: a full disk is a message here, not a SIGBUS while writing the map
        with open(tmp, "r+b") as f:
            reserve(f.fileno(), os.path.getsize(tmp), arr_path, "image store")
    except BaseException:
        tmp.unlink(missing_ok=True)  # (the map itself goes with the exception)
        raise
    hw = np.zeros((n, 2), dtype=np.int64)
    bar = progress_bar(total=n, desc=desc, unit="img", enabled=progress)
    try:
        if jobs > 1 and n > 64:
            with ProcessPoolExecutor(jobs, initializer=_one_thread) as ex:
                for i, (img, hw_i) in enumerate(ex.map(decode, tasks, chunksize=_chunk(n, jobs))):
                    images[i], hw[i] = img, hw_i
                    bar.update()
        else:
            for i, t in enumerate(tasks):
                images[i], hw[i] = decode(t)
                bar.update()
        images.flush()
        del images
        tmp_meta = temporary_name(meta_path)
        tmp_meta.write_text(json.dumps({"original_hw": hw.tolist(), "n": n, **(meta or {})}))
        publish(tmp, arr_path)
        publish(tmp_meta, meta_path)
    except BaseException:  # an unreadable image, an interrupt: no half-built store is left taking space
        tmp.unlink(missing_ok=True)
        temporary_name(meta_path).unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    done.write_text("ok")
    return ImageStore(np.load(arr_path, mmap_mode="r"), hw, key, path=str(arr_path))


def _one_thread() -> None:
    """Decoder worker start-up: one intra-op thread each (``jobs`` workers already use the cores)."""
    torch.set_num_threads(1)


def _chunk(n: int, jobs: int) -> int:
    return int(max(1, min(64, n // (jobs * 8))))


def default_jobs() -> int:
    """Every core this process may use (``sched_getaffinity``; a container's CPU set counts, not the host's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
