"""Speed and agreement of the radiomics engine against PyRadiomics on the same regions, in one run (SPEC §5):
the runner of ``benchmarks/radiomics_bench.py`` (also used by ``scripts/gpu_check.py`` and ``radiomics_kernel_tool.py``).

``run_benchmark`` draws ``n`` square regions of ``size`` pixels at seeded random positions in real images of a
dataset and extracts them, in alternating rounds, with the engine as callers get it (``extract``'s default
backend: the compiled numba kernels on the CPU), with its torch reference path (``backend="torch"``) -- both
batched with ``threads`` threads -- and with PyRadiomics in a single process, one region per call (its normal
use). It reports milliseconds per region per engine and round, the speed-ups (median of the per-round ratios),
the worst relative error ``|a - b| / max(|b|, 1e-12)`` per feature and class, the per-class time split, the load
average before/after every measurement (the machine may be shared), optionally the peak RSS of a fresh process
extracting the batch, and (``jit_cost``) the first-call cost of the kernels. ``BusyLoad`` spins background
processes to measure a loaded machine.

Images smaller than ``size`` (e.g. 512-pixel regions from 384-pixel NIH images) are upsampled by the smallest
integer factor that fits, bicubically in 8 bits (PIL) when the image is 8-bit -- the region is then an 8-bit
image as a CXR would be, and this is recorded in the result (``upsampled``).
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from radclr.data import load_dataset
from radclr.radiomics import kernels
from radclr.radiomics.agreement import compare
from radclr.radiomics.allocator import tune_malloc
from radclr.radiomics.base import Settings
from radclr.radiomics.extract import extract
from radclr.radiomics.pyradiomics_engine import extract_pyradiomics

__all__ = ["default_dataset", "sample_regions", "run_benchmark", "compare", "peak_rss", "jit_cost", "BusyLoad"]

REPO = Path(__file__).resolve().parents[1]

_FULL_IMAGE_BUDGET = 512 * 2**20  # bytes of images+masks above which regions are passed as crops


def default_dataset() -> Path | None:
    """``../shared/data/nih_cxr14`` next to the repository, when it is there."""
    path = REPO.parent / "shared" / "data" / "nih_cxr14"
    return path if (path / "labels.csv").exists() else None


def _upsample(array: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return array
    h, w = array.shape
    if array.min() >= 0 and array.max() <= 255 and np.array_equal(array, np.round(array)):
        img = Image.fromarray(array.astype(np.uint8), mode="L").resize((w * factor, h * factor), Image.BICUBIC)
        return np.asarray(img, dtype=np.float32)
    t = torch.from_numpy(array.astype(np.float32))[None, None]
    return torch.nn.functional.interpolate(t, scale_factor=factor, mode="bicubic", align_corners=False)[0, 0].numpy()


def sample_regions(dataset, n: int, size: int, seed: int = 0) -> dict:
    """``n`` regions of ``size x size`` from ``dataset`` -> dict with ``images``, ``masks`` (torch), metadata."""
    ds = load_dataset(dataset)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(ds), size=n, replace=len(ds) < n)
    arrays, factor = {}, 1
    for i in sorted(set(picks.tolist())):
        a = ds.read(int(i)).array
        if a.ndim != 2:
            raise ValueError(f"{ds.path(int(i))}: expected a 2-D image, got {a.shape}")
        arrays[int(i)] = a
    smallest = min(min(a.shape) for a in arrays.values())
    factor = max(1, math.ceil(size / smallest))
    H = max(a.shape[0] for a in arrays.values()) * factor
    W = max(a.shape[1] for a in arrays.values()) * factor
    full = n * H * W * 5 <= _FULL_IMAGE_BUDGET
    shape = (H, W) if full else (size, size)
    images = np.zeros((n, *shape), dtype=np.float32)
    masks = np.zeros((n, *shape), dtype=bool)
    ups = {}
    for k, i in enumerate(picks.tolist()):
        if i not in ups:
            ups[i] = _upsample(arrays[i], factor)
        a = ups[i]
        y = int(rng.integers(0, a.shape[0] - size + 1))
        x = int(rng.integers(0, a.shape[1] - size + 1))
        if full:
            images[k, : a.shape[0], : a.shape[1]] = a
            masks[k, y : y + size, x : x + size] = True
        else:
            images[k] = a[y : y + size, x : x + size]
            masks[k] = True
    return {
        "images": torch.from_numpy(images),
        "masks": torch.from_numpy(masks),
        "dataset": str(dataset),
        "n_images": len(arrays),
        "upsampled": factor,
        "layout": "boxes on full images" if full else "region crops (whole-crop masks)",
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _median(values: list[float]) -> float:
    return float(np.median(np.asarray(values, dtype=np.float64)))


class BusyLoad:
    """``n`` background processes spinning on the CPU (a "loaded machine"), stopped on exit (by their pid)."""

    def __init__(self, n: int):
        self.n = int(n)
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> "BusyLoad":
        for _ in range(self.n):
            self.procs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        time.sleep(2.0 if self.n else 0.0)  # let the scheduler see them before the first measurement
        return self

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                p.kill()


def run_benchmark(
    dataset,
    n: int = 256,
    size: int = 224,
    settings: Settings | None = None,
    threads: int = 2,
    seed: int = 0,
    rounds: int = 3,
    with_rss: bool = False,
    with_torch: bool = True,
) -> dict:
    """The engine (default backend: compiled kernels on the CPU), its torch reference path and PyRadiomics on the
    same ``n`` regions, in ``rounds`` alternating rounds -> a JSON-able dict (see the module docstring).

    Each round times every engine once on the whole batch (fast path, torch path, PyRadiomics), so a change in
    the machine's load hits all of them alike; the load average is recorded around each measurement. Speed-ups
    are the median of the per-round ratios.
    """
    import radiomics

    settings = settings or Settings()
    malloc_tuned = tune_malloc()
    sample = sample_regions(dataset, n, size, seed)
    images, masks = sample["images"], sample["masks"]
    previous_threads = torch.get_num_threads()
    measurements: list[dict] = []

    def measure(engine: str, rnd: int, fn) -> tuple[float, float, object]:
        load = os.getloadavg()
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        measurements.append({"engine": engine, "round": rnd, "ms_per_region": 1000 * wall / n,
                             "cpu_ms_per_region": 1000 * cpu / n, "load_avg_before": list(load),
                             "load_avg_after": list(os.getloadavg())})
        return wall, cpu, out

    fast_runs, torch_runs, pyr_runs, ratios, torch_ratios = [], [], [], [], []
    fast_profiles, torch_profiles = [], []
    load_before = os.getloadavg()
    torch.set_num_threads(threads)
    try:
        extract(images[:8], masks[:8], settings=settings)  # warm-up: lazy imports, kernels, first allocations
        extract(images[:8], masks[:8], settings=settings, backend="torch")
        extract_pyradiomics(images[:2], masks[:2], settings=settings)
        values = reference = torch_values = None
        for rnd in range(max(1, rounds)):
            prof: dict = {}
            t_fast, c_fast, (names, values) = measure(
                "fast", rnd, lambda: extract(images, masks, settings=settings, profile=prof))
            fast_runs.append((t_fast, c_fast))
            fast_profiles.append(prof)
            if with_torch:
                prof_t: dict = {}
                t_torch, c_torch, (_, torch_values) = measure(
                    "torch", rnd, lambda: extract(images, masks, settings=settings, profile=prof_t, backend="torch"))
                torch_runs.append((t_torch, c_torch))
                torch_profiles.append(prof_t)
            t_pyr, c_pyr, (ref_names, reference) = measure(
                "pyradiomics", rnd, lambda: extract_pyradiomics(images, masks, settings=settings))
            pyr_runs.append((t_pyr, c_pyr))
            ratios.append(t_pyr / t_fast)
            if with_torch:
                torch_ratios.append(t_pyr / t_torch)
    finally:
        torch.set_num_threads(previous_threads)
    load_after = os.getloadavg()
    mid = int(np.argsort([t for t, _ in fast_runs])[len(fast_runs) // 2])  # the median fast round's split
    result = {
        "n": n,
        "size": size,
        "threads": threads,
        "rounds": len(fast_runs),
        "settings": {"binWidth": settings.bin_width} if settings.bin_count is None else {"binCount": settings.bin_count},
        "backend": "numba kernels" if kernels.AVAILABLE else "torch (numba not importable)",
        "fast_ms_per_region": 1000 * _median([t for t, _ in fast_runs]) / n,
        "fast_ms_per_region_runs": [1000 * t / n for t, _ in fast_runs],
        "fast_cpu_ms_per_region": 1000 * _median([c for _, c in fast_runs]) / n,
        "pyradiomics_ms_per_region": 1000 * _median([t for t, _ in pyr_runs]) / n,
        "pyradiomics_ms_per_region_runs": [1000 * t / n for t, _ in pyr_runs],
        "pyradiomics_cpu_ms_per_region": 1000 * _median([c for _, c in pyr_runs]) / n,
        "ratio": _median(ratios),
        "ratio_runs": ratios,
        "fast_class_ms_per_region": {k: 1000 * v / n for k, v in fast_profiles[mid].items()},
        "n_features": len(names),
        **compare(names, values.cpu().numpy(), ref_names, reference.numpy()),
        "measurements": measurements,
        "dataset": Path(sample["dataset"]).name,  # the folder's name: results carry no machine paths
        "n_images": sample["n_images"],
        "upsampled": sample["upsampled"],
        "layout": sample["layout"],
        "seed": seed,
        "malloc_tuned": malloc_tuned,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "(default)"),
        "load_avg_before": list(load_before),
        "load_avg_after": list(load_after),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "numba": kernels.numba_version(),
        "pyradiomics": getattr(radiomics, "__version__", "?"),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if with_torch:
        mid_t = int(np.argsort([t for t, _ in torch_runs])[len(torch_runs) // 2])
        fast_vs_torch = compare(names, values.cpu().numpy(), names, torch_values.cpu().numpy())
        result.update({
            "torch_ms_per_region": 1000 * _median([t for t, _ in torch_runs]) / n,
            "torch_ms_per_region_runs": [1000 * t / n for t, _ in torch_runs],
            "torch_cpu_ms_per_region": 1000 * _median([c for _, c in torch_runs]) / n,
            "torch_ratio": _median(torch_ratios),
            "torch_class_ms_per_region": {k: 1000 * v / n for k, v in torch_profiles[mid_t].items()},
            "fast_vs_torch_worst_rel_error": fast_vs_torch["worst_rel_error"],
        })
    if with_rss:
        result["peak_rss"] = peak_rss(dataset, n, size, settings, threads, seed)
        if with_torch:
            result["peak_rss_torch"] = peak_rss(dataset, n, size, settings, threads, seed, backend="torch")
    return result


def jit_cost() -> dict:
    """First-call cost of the compiled kernels, each in a fresh process: compiling them into an empty numba cache
    (a new machine / install) and loading them from that cache (every later process)."""
    # importlib: ``import radclr.radiomics.extract as f`` gives the package's ``extract`` function, not the module
    code = ("import time, importlib; t0 = time.perf_counter(); f = importlib.import_module('radclr.radiomics.extract'); "
            "t1 = time.perf_counter(); w = f.warm_up_kernels(); import json; "
            "print(json.dumps({'import_s': t1 - t0, 'warm_up_s': w}))")
    out = {}
    with tempfile.TemporaryDirectory() as cache_dir:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
        for label in ("cold_compile", "cached"):
            t0 = time.perf_counter()
            run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
            r = json.loads(run.stdout.strip().splitlines()[-1])
            r["process_s"] = time.perf_counter() - t0
            out[label] = r
    return out


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return None


def _rss_child(dataset: str, n: int, size: int, settings: dict, threads: int, seed: int, backend: str = "auto") -> None:
    tune_malloc()
    torch.set_num_threads(threads)
    sample = sample_regions(dataset, n, size, seed)
    settings = {**settings, "glcm_distances": tuple(settings["glcm_distances"])}
    extract(sample["images"][:4], sample["masks"][:4], settings=Settings(**settings), backend=backend)  # load kernels
    gc.collect()
    try:  # reset the high-water mark, so that the peak below is the extraction's (Linux)
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    before = _status_mb("VmRSS")
    extract(sample["images"], sample["masks"], settings=Settings(**settings), backend=backend)
    peak = _status_mb("VmHWM") if reset else None
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"peak_rss_mb": peak, "rss_before_extract_mb": before, "peak_is_extraction_only": reset,
                      "inputs_mb": sample["images"].numel() * 5 / 2**20, "layout": sample["layout"]}))


def peak_rss(dataset, n: int, size: int, settings: Settings, threads: int, seed: int, backend: str = "auto") -> dict:
    """Peak resident memory of a fresh process that loads the regions and extracts them in one call."""
    args = json.dumps([str(dataset), n, size, asdict(settings), threads, seed, backend])
    here = str(Path(__file__).resolve().parent)
    code = (f"import json, sys; sys.path[:0] = [{here!r}, {str(REPO)!r}]; from radiomics_runner import _rss_child; "
            f"_rss_child(*json.loads({args!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
