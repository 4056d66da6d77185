"""`radclr doctor`: what this machine gives radclr -- the first command to run on a new box.

Modelled on ``python -m torch.utils.collect_env``: one command, plain ``name: value`` lines, the versions and devices
a bug report needs. Each check yields an :class:`Item`; those with ``warning`` set say what will go wrong (a CPU
torch on a GPU machine, a cache folder too small for the configured image store, no numba ...) and what to do.
Nothing here fails: a missing package is a line, not an exception, and the command exits 0 with warnings.

With a config, the cache folder is the one the config uses (``data.cache_dir``, else ``RADCLR_CACHE``, else
``~/.cache/radclr``) and the space it needs is estimated from the data the config names: the image store is
``N x C x S x S`` bytes (uint8; :mod:`radclr.training_data.store`), plus the phantom files for synthetic data.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import multiprocessing as mp
import os
import platform
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["Item", "as_json", "doctor", "format_items", "store_bytes_needed"]

GiB = 1024**3


@dataclass
class Item:
    """One line of the report: ``section``, ``name``: ``value`` (text), and a warning when something is wrong."""

    section: str
    name: str
    value: str
    warning: str | None = None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _package(section: str, name: str, dists: tuple[str, ...], module: str, missing: str | None) -> Item:
    """A package's version from its metadata (not imported: PyRadiomics and SimpleITK are slow to import)."""
    version = next((v for v in map(_version, dists) if v), None)
    if version is None and importlib.util.find_spec(module) is not None:
        version = "installed (version unknown)"
    return Item(section, name, version or "not installed", None if version else missing)


def _torch_items() -> list[Item]:
    import torch

    from radclr.runtime.device import unused_gpu_note

    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else ("ROCm " + torch.version.hip
                                                                      if getattr(torch.version, "hip", None) else "CPU")
    items = [Item("torch", "version", torch.__version__), Item("torch", "build", build),
             Item("torch", "threads", str(torch.get_num_threads()))]
    available = torch.cuda.is_available()
    items.append(Item("torch", "CUDA available", str(available), unused_gpu_note()))
    if available:
        for k in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(k)
            items.append(Item("torch", f"GPU {k}", f"{p.name}, {p.total_memory / GiB:.1f} GiB, "
                                                 f"compute capability {p.major}.{p.minor}"))
        items.append(Item("torch", "bf16 autocast", str(torch.cuda.is_bf16_supported())))
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    items.append(Item("torch", "cuDNN", str(cudnn) if cudnn else "none"))
    return items


def _package_items() -> list[Item]:
    from radclr.radiomics.kernels import AVAILABLE as NUMBA_OK
    from radclr.radiomics.kernels import REASON as NUMBA_WHY

    numba = _package("packages", "numba", ("numba",), "numba", None)
    if not NUMBA_OK:
        numba.warning = (f"numba unusable ({NUMBA_WHY}): the radiomics engine's CPU fast path falls back to torch "
                         "(several times slower)")
    return [
        numba,
        _package("packages", "MONAI", ("monai",), "monai", "MONAI is missing: radclr cannot build its networks"),
        _package("packages", "pydicom", ("pydicom",), "pydicom", "pydicom is missing: DICOM images cannot be read"),
        _package("packages", "PyRadiomics", ("pyradiomics-bhklab", "pyradiomics"), "radiomics", None),
        _package("packages", "SimpleITK", ("SimpleITK", "simpleitk"), "SimpleITK", None),
        _package("packages", "numpy", ("numpy",), "numpy", None),
        _package("packages", "scipy", ("scipy",), "scipy", None),
    ]


def _system_items() -> list[Item]:
    from radclr import __version__

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    return [
        Item("system", "radclr", __version__),
        Item("system", "python", f"{platform.python_version()} ({sys.executable})"),
        Item("system", "platform", platform.platform()),
        Item("system", "CPU cores usable", str(cores)),
        Item("system", "multiprocessing start method",
             f"{mp.get_start_method(allow_none=True) or mp.get_all_start_methods()[0]} "
             f"(available: {', '.join(mp.get_all_start_methods())})"),
        Item("system", "chromium", browser or "not found (only the report's headless-browser test needs it)"),
    ]


def store_bytes_needed(cfg: dict) -> tuple[int, str]:
    """``(bytes, how)``: the space the config's training data takes in the cache folder when nothing is built yet
    -- the uint8 image store ``N x C x S x S`` plus, for synthetic data, the phantom files (one 8-bit image, or a
    float32 volume of 16 slices, per case, uncompressed: an upper bound)."""
    from radclr.training_data.volumes import volume_settings

    data = cfg["data"]
    size, channels = int(data["image_size"]), 1
    vs = volume_settings(cfg)
    if vs is not None:
        size, channels = int(vs.size), int(vs.n_slices)
    path = data["path"]
    phantom = data.get("phantom") or {}
    extra, source = 0, str(path)
    if path in ("phantom", "phantom_volumes"):
        n, side = int(phantom.get("n", 240)), int(phantom.get("size", 128))
        # phantom volumes: float32 [depth 16, side, side] each (radclr.data.phantom_volumes), before compression
        extra = n * side * side * (16 * 4 if path == "phantom_volumes" else 1)
        source = f"{path} n={n}"
    else:
        from radclr.training_data.prepare import open_dataset

        n = len(open_dataset(data))
    store = n * channels * size * size
    how = (f"image store {n} x {channels} x {size} x {size} uint8 = {store / GiB:.2f} GiB"
           + (f" + phantom files <= {extra / GiB:.2f} GiB" if extra else "") + f" ({source})")
    return store + extra, how


def _cache_items(cfg: dict | None) -> list[Item]:
    from radclr.training_data.store import default_cache_dir

    folder = Path((cfg or {}).get("data", {}).get("cache_dir") or default_cache_dir()).expanduser()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    items = [Item("cache", "folder", f"{folder}" + ("" if folder.exists() else " (not created yet)")),
             Item("cache", "free space", f"{free / GiB:.1f} GiB (on the disk of {existing})")]
    if not os.access(existing, os.W_OK):
        items[0].warning = f"{existing} is not writable: set data.cache_dir or RADCLR_CACHE"
    if cfg is not None:
        try:
            need, how = store_bytes_needed(cfg)
        except Exception as e:  # a dataset that cannot be opened: say so, the rest of the report stands
            items.append(Item("cache", "needed by the config", "unknown", f"cannot size the data: {e}"))
        else:
            short = None if free >= 1.1 * need else (f"the config needs about {need / GiB:.2f} GiB in the cache "
                                                     f"folder, {free / GiB:.1f} GiB are free")
            items.append(Item("cache", "needed by the config", how, short))
    return items


def doctor(cfg: dict | None = None) -> list[Item]:
    """Every check, in report order: system, torch (build, CUDA, GPUs, cuDNN), packages, cache folder (with a
    resolved config: the space its data needs against the free space)."""
    items: list[Item] = []
    for part in (_system_items, _torch_items, _package_items):
        items += part()
    return items + _cache_items(cfg)


def format_items(items: list[Item]) -> str:
    """Plain lines: a heading per section, ``name: value``, then every warning as ``WARNING: ...``."""
    lines, section = [], None
    for it in items:
        if it.section != section:
            section = it.section
            lines.append(f"{'' if not lines else chr(10)}[{section}]")
        lines.append(f"{it.name}: {it.value}")
    warnings = [it.warning for it in items if it.warning]
    lines += [""] + [f"WARNING: {w}" for w in warnings] if warnings else ["", "no warnings"]
    return "\n".join(lines)


def as_json(items: list[Item]) -> dict:
    """``{section: {name: value}}`` plus ``warnings`` (a list) -- for ``radclr doctor --json``."""
    out: dict = {}
    for it in items:
        out.setdefault(it.section, {})[it.name] = it.value
    out["warnings"] = [it.warning for it in items if it.warning]
    out["items"] = [asdict(it) for it in items]
    return out
