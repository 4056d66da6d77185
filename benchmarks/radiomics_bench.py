"""Radiomics engine benchmark: torch (batched, 2 threads) vs PyRadiomics (single process) on real NIH regions.

    .venv/bin/python benchmarks/radiomics_bench.py [--dataset DIR] [--n 256] [--sizes 224 512] [--threads 2]

For each size: ``n`` regions of size x size pixels from ``../shared/data/nih_cxr14`` (384-px images; 512-px
regions come from images upsampled 2x, bicubic, 8-bit), both engines in one run, ms/region, the ratio, the worst
relative error per feature/class, the torch per-class time split and the load average (the machine may be
shared). For the first size the peak RSS of a fresh process extracting the whole batch is measured as well.
Writes ``benchmarks/results/radiomics_bench.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from radclr.radiomics import Settings  # noqa: E402
from radclr.radiomics.benchmark import default_dataset, run_benchmark  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default=None, help="dataset folder (default ../shared/data/nih_cxr14)")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--sizes", type=int, nargs="+", default=[224, 512])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bin-count", type=int, default=None)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "radiomics_bench.json"))
    args = ap.parse_args(argv)
    dataset = args.dataset or default_dataset()
    if dataset is None:
        print("no dataset: pass --dataset (../shared/data/nih_cxr14 is not there)", file=sys.stderr)
        return 2
    settings = Settings(bin_count=args.bin_count)
    results = {}
    for k, size in enumerate(args.sizes):
        r = run_benchmark(dataset, n=args.n, size=size, settings=settings, threads=args.threads, with_rss=k == 0)
        results[str(size)] = r
        print(json.dumps({key: r[key] for key in ("size", "torch_ms_per_region", "pyradiomics_ms_per_region",
                                                   "ratio", "worst_rel_error", "load_avg_before")}), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"\n| region | n | torch ms/region ({args.threads} threads) | PyRadiomics ms/region | ratio | worst rel. error |")
    print("|---|---|---|---|---|---|")
    for size, r in results.items():
        print(f"| {size}x{size} | {r['n']} | {r['torch_ms_per_region']:.2f} | {r['pyradiomics_ms_per_region']:.1f} | "
              f"{r['ratio']:.1f}x | {r['worst_rel_error']:.1e} |")
    first = results[str(args.sizes[0])]
    split = ", ".join(f"{k} {v:.2f}" for k, v in first["torch_class_ms_per_region"].items())
    print(f"\ntorch time split at {args.sizes[0]} (ms/region): {split}")
    if "peak_rss" in first:
        rss = first["peak_rss"]
        print(f"peak RSS, {args.n} x {args.sizes[0]}^2 in one call: {rss['peak_rss_mb']:.0f} MB "
              f"({rss['rss_before_extract_mb']:.0f} MB before extracting, inputs {rss['inputs_mb']:.0f} MB)")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
