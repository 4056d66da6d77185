"""Benchmark ``radclr predict``: milliseconds per image at 224 x 224 on this CPU, warm, radiomics included.

    python benchmarks/predict_bench.py [--run RUN] [--n 40] [--threads 1] [--out benchmarks/results/predict_bench.json]

What is timed: :meth:`radclr.predict.Predictor.predict_one` on real NIH ChestX-ray14 images
(``../shared/data/nih_cxr14``, 384 x 384 PNG) from the run's TEST split -- read + store scale + resize, forward,
Grad-CAM of the top finding (and of every finding above its threshold), CAM -> box, radiomics of the box(es)
(torch engine, 102 features), overlay PNG(s) written to disk. The model, thresholds and the radiomics reference
population are loaded once before timing ("warm"); one untimed warm-up image first.

Without ``--run`` a small ResNet-18 supervised run at image size 224 is trained once into ``--work`` (one epoch on
10 % of the training labels: the timing does not depend on how well it classifies) and reused on later calls.
Exits 0 with a message when the NIH folder is absent (the benchmark is optional, CI never needs it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NIH = REPO.parent / "shared" / "data" / "nih_cxr14"
NIH8 = "[Atelectasis,Cardiomegaly,Effusion,Infiltration,Mass,Nodule,Pneumonia,Pneumothorax]"
STEPS = ("preprocess", "forward", "cam", "boxing", "radiomics", "overlay")


def train_bench_run(work: Path) -> Path:
    from radclr.runs.train import train

    run = work / "run224"
    if (run / "metrics.json").exists():
        return run
    overrides = [f"data.path={NIH}", "data.image_size=224", f"data.findings={NIH8}", "data.label_fraction=0.1",
                 "trainer.epochs=1", "trainer.batch_size=32", "evaluation.n_boot=20", "trainer.progress=false"]
    print(f"training a 224-px benchmark run into {run} (once) ...", flush=True)
    return train(REPO / "configs" / "seed000" / "resnet18.yaml", run, overrides, progress=False)


def percentile(values, q: float) -> float:
    xs = sorted(values)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def time_images(predictor, paths, out_dir) -> dict:
    """Warm-up on ``paths[0]``, then wall time and per-step split of ``predict_one`` on the others."""
    predictor.predict_one(paths[0], out_dir)  # warm-up (first-call allocations, colour map, fonts)
    totals, cpu, steps, n_regions = [], [], {s: [] for s in STEPS}, []
    for p in paths[1:]:
        t, c = time.perf_counter(), time.process_time()
        res = predictor.predict_one(p, out_dir)
        totals.append((time.perf_counter() - t) * 1000.0)
        cpu.append((time.process_time() - c) * 1000.0)
        for s in STEPS:
            steps[s].append(res["timing_ms"][s])
        n_regions.append(len(res["regions"]))
    return {"n_images": len(totals), "median_ms": round(statistics.median(totals), 1),
            "p90_ms": round(percentile(totals, 0.9), 1), "mean_ms": round(statistics.fmean(totals), 1),
            "min_ms": round(min(totals), 1), "max_ms": round(max(totals), 1),
            "median_cpu_ms": round(statistics.median(cpu), 1),
            "median_ms_per_step": {s: round(statistics.median(v), 1) for s, v in steps.items()},
            "p90_ms_per_step": {s: round(percentile(v, 0.9), 1) for s, v in steps.items()},
            "regions_per_image": {"mean": round(statistics.fmean(n_regions), 2), "max": max(n_regions)}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", help="a trained run at image size 224 (default: train one into --work)")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "radclr-predict-bench"))
    ap.add_argument("--n", type=int, default=40, help="images to time (>= 30)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (the 2-core dev box is shared)")
    ap.add_argument("--reference-max-images", type=int, default=2000)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "predict_bench.json"))
    args = ap.parse_args(argv)
    if not (NIH / "labels.csv").exists():
        print(f"skipped: real data {NIH} not available (this benchmark needs NIH ChestX-ray14 images)")
        return 0
    if args.n < 30:
        ap.error("--n must be at least 30")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import numpy as np
    import pandas as pd
    import torch

    torch.set_num_threads(args.threads)
    from radclr.predict import Predictor

    run = Path(args.run) if args.run else train_bench_run(Path(args.work))
    t0 = time.perf_counter()
    predictor = Predictor(run, device="cpu", reference_max_images=args.reference_max_images)
    setup_s = time.perf_counter() - t0
    if predictor.size != 224:
        print(f"warning: the run's image size is {predictor.size}, not 224", file=sys.stderr)
    split = pd.read_csv(run / "splits.csv", dtype={"image_id": str, "patient_id": str})
    test_ids = split.loc[split["split"] == "test", "image_id"].tolist()
    rng = np.random.default_rng(0)
    ids = [test_ids[i] for i in sorted(rng.choice(len(test_ids), size=min(args.n + 1, len(test_ids)), replace=False))]
    paths = [NIH / "images" / i for i in ids]
    out_dir = Path(tempfile.mkdtemp(prefix="radclr-predict-bench-"))
    modes = {}
    for mode, top_only in (("all_positive_findings", False), ("top_finding_only", True)):
        predictor.top_only = top_only
        modes[mode] = time_images(predictor, paths, out_dir)
    main_mode = modes["all_positive_findings"]
    result = {
        "what": "radclr predict, ms per image, warm (model + reference loaded once), radiomics + overlay PNG included",
        "n_images": main_mode["n_images"], "data": "nih_cxr14 test-split PNGs (384 x 384)",
        "model_input": predictor.size, "encoder": predictor.run.cfg["model"]["encoder"],
        "findings": predictor.findings,
        "median_ms": main_mode["median_ms"], "p90_ms": main_mode["p90_ms"],
        "median_cpu_ms": main_mode["median_cpu_ms"],
        "median_ms_per_step": main_mode["median_ms_per_step"], "target_ms": 250,
        "meets_target": main_mode["median_ms"] < 250, "modes": modes,
        "timing": "wall clock (perf_counter) per predict_one call; median_cpu_ms = CPU time of this process per "
                  "image (1 torch thread: what the wall time would be without other load on the shared machine)",
        "note": "default mode: CAM, box, radiomics and overlay for the top finding AND every finding above its "
                "validation threshold (regions_per_image); top_finding_only = `radclr predict --top-only`",
        "setup_s": round(setup_s, 1), "reference_boxes": len(predictor.reference) if predictor.reference else 0,
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
