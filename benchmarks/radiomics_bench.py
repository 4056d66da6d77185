"""Radiomics engine benchmark: fast path (numba kernels) and torch path vs PyRadiomics on real NIH regions.

    .venv/bin/python benchmarks/radiomics_bench.py [--dataset DIR] [--n 64 256] [--sizes 224] [--threads 2]
                                                   [--rounds 3] [--load 2] [--out FILE]

For each size and each n: n regions of size x size pixels from ``../shared/data/nih_cxr14`` (384-px images;
512-px regions come from images upsampled 2x, bicubic, 8-bit), the engine's default (compiled kernels), its torch
reference path and PyRadiomics (single process) timed in ``--rounds`` alternating rounds in one run: ms/region,
speed-ups (median of the per-round ratios), worst relative error per feature/class, per-class time split, the
load average around every measurement. For the first size and the largest n: peak RSS of a fresh process
extracting the batch (both paths), and the kernels' first-call cost (compile into an empty numba cache, then
load from it). ``--load K`` runs K processes spinning on the CPU for the whole measurement (a loaded machine).
Writes ``benchmarks/results/radiomics_bench.json`` (``radiomics_bench_loaded.json`` with ``--load``) and prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from radclr.radiomics import Settings  # noqa: E402
from radiomics_runner import BusyLoad, default_dataset, jit_cost, run_benchmark  # noqa: E402


def _portable(arg: str) -> str:
    """A command-line word without this machine's paths: inside the repository relative to it, else the name."""
    path = Path(arg)
    if not path.is_absolute():
        return arg
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default=None, help="dataset folder (default ../shared/data/nih_cxr14)")
    ap.add_argument("--n", type=int, nargs="+", default=[64, 256], help="regions per measurement (default 64 256)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[224])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per measurement (default 3)")
    ap.add_argument("--load", type=int, default=0, metavar="K", help="K busy background processes (default 0)")
    ap.add_argument("--bin-count", type=int, default=None)
    ap.add_argument("--no-rss", action="store_true", help="skip the peak-RSS and first-call measurements")
    ap.add_argument("--out", default=None,
                    help="JSON to write (default benchmarks/results/radiomics_bench[_loaded].json)")
    args = ap.parse_args(argv)
    dataset = args.dataset or default_dataset()
    if dataset is None:
        print("no dataset: pass --dataset (../shared/data/nih_cxr14 is not there)", file=sys.stderr)
        return 2
    out = Path(args.out or REPO / "benchmarks" / "results"
               / ("radiomics_bench_loaded.json" if args.load else "radiomics_bench.json"))
    settings = Settings(bin_count=args.bin_count)
    command = "python benchmarks/radiomics_bench.py " + " ".join(
        _portable(a) for a in (sys.argv[1:] if argv is None else argv))
    results: dict = {"command": command.strip(), "load_processes": args.load,
                     "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"), "results": {}}
    biggest = max(args.n)
    with BusyLoad(args.load):
        for k, size in enumerate(args.sizes):
            for n in args.n:
                r = run_benchmark(dataset, n=n, size=size, settings=settings, threads=args.threads,
                                  rounds=args.rounds, with_rss=not args.no_rss and k == 0 and n == biggest)
                results["results"][f"{size}x{n}"] = r
                print(json.dumps({key: r.get(key) for key in (
                    "size", "n", "fast_ms_per_region", "torch_ms_per_region", "pyradiomics_ms_per_region", "ratio",
                    "torch_ratio", "worst_rel_error", "load_avg_before", "load_avg_after")}), flush=True)
        if not args.no_rss:
            results["jit_cost"] = jit_cost()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")

    print("\n| region | n | fast ms/region | torch ms/region | PyRadiomics ms/region | speed-up (fast) | "
          "speed-up (torch) | worst rel. error | load avg before -> after |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results["results"].values():
        print(f"| {r['size']}x{r['size']} | {r['n']} | {r['fast_ms_per_region']:.2f} | "
              f"{r.get('torch_ms_per_region', float('nan')):.2f} | {r['pyradiomics_ms_per_region']:.1f} | "
              f"{r['ratio']:.1f}x | {r.get('torch_ratio', float('nan')):.1f}x | {r['worst_rel_error']:.1e} | "
              f"{r['load_avg_before'][0]:.1f} -> {r['load_avg_after'][0]:.1f} |")
    for key, r in results["results"].items():
        split = ", ".join(f"{c} {v:.3f}" for c, v in r["fast_class_ms_per_region"].items())
        print(f"fast path time split {key} (ms/region): {split}")
        if "peak_rss" in r:
            for label, rss in (("fast", r["peak_rss"]), ("torch", r.get("peak_rss_torch"))):
                if rss:
                    print(f"peak RSS {label}, {r['n']} x {r['size']}^2 in one call: {rss['peak_rss_mb']:.0f} MB "
                          f"({rss['rss_before_extract_mb']:.0f} MB before extracting, "
                          f"inputs {rss['inputs_mb']:.0f} MB)")
    if "jit_cost" in results:
        j = results["jit_cost"]
        print(f"first call: compile {j['cold_compile']['warm_up_s']:.1f} s (empty cache), "
              f"load from cache {j['cached']['warm_up_s']:.2f} s")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
