"""Why numba for the radiomics CPU kernels: the same loop compiled by numba and by gcc -O3 (as a C extension
would be), on the same gray-level maps of real NIH regions, next to the torch builder it replaces.

    .venv/bin/python benchmarks/radiomics_kernel_tool.py [--n 64] [--size 224]

Loop: the GLCM co-occurrence count of ``radclr.radiomics.kernels.glcm`` (4 angles, one pass over the padded
uint8 level map), transcribed line for line to C99 and built with ``gcc -O3 -march=x86-64 -shared`` at run time
(ctypes), once for any x86-64 (what a distributed wheel would target) and once with ``-march=native`` (numba
compiles for the host CPU). All run single-threaded on the same arrays; results must be identical. Also
reported: the time to build each (numba: import + compile into an empty cache; gcc: compile + link). Writes
``benchmarks/results/radiomics_kernel_tool.json``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

C_SOURCE = r"""
#include <stdint.h>
void glcm_counts(int64_t start, int64_t stop, const uint8_t *code, int64_t Hp, int64_t Wp,
                 const int64_t *height, const int64_t *width, int32_t *out, int64_t G) {
    for (int64_t b = start; b < stop; b++) {
        const uint8_t *m = code + b * Hp * Wp;
        int32_t *o = out + b * 4 * G * G;
        for (int64_t r = 1; r <= height[b]; r++) {
            for (int64_t c = 1; c <= width[b]; c++) {
                int64_t i = m[r * Wp + c];
                if (i == 0) continue;
                i -= 1;
                int64_t j = m[(r + 1) * Wp + c + 1]; if (j) o[0 * G * G + i * G + j - 1]++;
                j = m[(r + 1) * Wp + c];             if (j) o[1 * G * G + i * G + j - 1]++;
                j = m[(r + 1) * Wp + c - 1];         if (j) o[2 * G * G + i * G + j - 1]++;
                j = m[r * Wp + c + 1];               if (j) o[3 * G * G + i * G + j - 1]++;
            }
        }
    }
}
"""


def best_of(fn, repeats: int = 7) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    import numpy as np
    import torch

    from radclr.radiomics import Settings, kernel_backend
    from radiomics_runner import default_dataset, sample_regions  # benchmarks/, this script's folder
    from radclr.radiomics.discretize import bounding_boxes
    from radclr.radiomics.glcm import glcm_matrices
    from radclr.radiomics.kernels import numba_version
    from radclr.radiomics.kernels.glcm import glcm_counts
    from radclr.radiomics.neighbours import angles_2d

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "radiomics_kernel_tool.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    sample = sample_regions(default_dataset(), args.n, args.size, seed=0)
    images, masks = sample["images"], sample["masks"]
    boxes = tuple(t.numpy() for t in bounding_boxes(masks))
    batch = kernel_backend.prepare_with_kernels(images, masks, Settings(), None, np.arange(args.n), boxes, threads=1)
    counts = batch.cache["counts"]
    code, height, width, G = counts.code, counts.height, counts.width, counts.size
    B, Hp, Wp = code.shape

    out_numba = np.zeros((B, 4, G, G), dtype=np.int32)
    glcm_counts(0, B, code, height, width, out_numba)  # compiled (or loaded from the cache) before timing

    def run_numba():
        out_numba[:] = 0
        glcm_counts(0, B, code, height, width, out_numba)

    result = {"n": args.n, "size": args.size, "loop": "GLCM counts (4 angles)", "numba": numba_version(),
              "numba_ms_per_region": 1000 * best_of(run_numba) / B}

    cc = shutil.which("gcc") or shutil.which("cc")
    if cc:
        result["gcc"] = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
        for label, march in (("gcc_O3", "-march=x86-64"), ("gcc_O3_native", "-march=native")):
            with tempfile.TemporaryDirectory() as tmp:
                src, lib = Path(tmp) / "glcm.c", Path(tmp) / "glcm.so"
                src.write_text(C_SOURCE)
                t0 = time.perf_counter()
                subprocess.run([cc, "-O3", march, "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
                result[f"{label}_build_s"] = time.perf_counter() - t0
                so = ctypes.CDLL(str(lib))
                i64, ptr = ctypes.c_int64, ctypes.c_void_p
                so.glcm_counts.argtypes = [i64, i64, ptr, i64, i64, ptr, ptr, ptr, i64]
                out_c = np.zeros_like(out_numba)

                def run_c():
                    out_c[:] = 0
                    so.glcm_counts(0, B, code.ctypes.data, Hp, Wp, height.ctypes.data, width.ctypes.data,
                                   out_c.ctypes.data, G)

                result[f"{label}_ms_per_region"] = 1000 * best_of(run_c) / B
                run_c()
                run_numba()
                result[f"{label}_identical_counts"] = bool(np.array_equal(out_c, out_numba))
    code_t = torch.from_numpy(np.ascontiguousarray(code[:, 1:-1, 1:-1]))
    result["torch_ms_per_region"] = 1000 * best_of(lambda: glcm_matrices(code_t, G, angles_2d([1])), 3) / B

    env = {**os.environ, "NUMBA_CACHE_DIR": tempfile.mkdtemp()}
    snippet = ("import time, numpy as np; t0 = time.perf_counter(); from radclr.radiomics.kernels.glcm import "
               "glcm_counts as f; c = np.zeros((1, 4, 4), np.uint8); h = np.ones(1, np.int64); "
               "o = np.zeros((1, 4, 1, 1), np.int32); f(0, 1, c, h, h, o); print(time.perf_counter() - t0)")
    run = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, check=True, env=env,
                         cwd=REPO)
    result["numba_compile_s"] = float(run.stdout.strip().splitlines()[-1])
    shutil.rmtree(env["NUMBA_CACHE_DIR"], ignore_errors=True)
    result["load_avg"] = list(os.getloadavg())
    result["time"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
