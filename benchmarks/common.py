"""Shared plumbing of the benchmark scripts: train a config into a run folder and pull its headline numbers."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def run_config(cfg: dict, out: Path, *, reuse: bool = True, checkpoint: str = "best") -> dict:
    """Train + evaluate ``cfg`` into ``out`` (training reused when it already finished); evaluates ``checkpoint``
    (``best`` -> RUN/metrics.json, otherwise RUN/metrics_<checkpoint>.json); returns the metrics + wall time."""
    from radclr.runs.evaluate import evaluate_run
    from radclr.runs.train import train

    out = Path(out)
    trained = (out / "wall_time_s.txt").exists() and (out / "metrics.json").exists()
    if not (reuse and trained):
        if out.exists():
            import shutil

            shutil.rmtree(out)
        t0 = time.time()
        train(cfg, out, progress=False, evaluate=True)
        (out / "wall_time_s.txt").write_text(f"{time.time() - t0:.1f}")
    done = out / ("metrics.json" if checkpoint == "best" else f"metrics_{checkpoint}.json")
    if not done.exists():
        evaluate_run(out, checkpoint=checkpoint, out=done, progress=False)
    metrics = json.loads(done.read_text())
    metrics["wall_time_s"] = float((out / "wall_time_s.txt").read_text()) if (out / "wall_time_s.txt").exists() else None
    return metrics


def headline(metrics: dict) -> dict:
    """Mean and per-finding test AUC with 95 % CIs, localization at T=0.3 if any, wall time."""
    cls = metrics.get("classification") or {}
    out = {"wall_time_s": metrics.get("wall_time_s")}
    if cls:
        out["auc"] = cls["auc"]
        out["auc_ci"] = cls["ci"]["auc"]
    loc = metrics.get("localization") or {}
    if "iou_accuracy" in loc:
        out["iou_accuracy"] = loc["iou_accuracy"]
        out["iou_accuracy_ci"] = loc.get("iou_accuracy_ci")
        out["baselines"] = loc.get("baselines")
        out["cam_threshold"] = loc.get("cam_threshold")
    if "linear_eval" in metrics:
        out["linear_eval"] = metrics["linear_eval"].get("test")
    return out


def fmt_ci(value, ci) -> str:
    if value is None:
        return "n/a"
    lo, hi = (ci or [None, None])[:2]
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else f"{value:.3f}"


def machine() -> dict:
    import platform

    import torch

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "load_average": os.getloadavg()}
