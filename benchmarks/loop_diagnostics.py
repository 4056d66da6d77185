"""The BYOP loop's diagnostics over its epochs, read from a run's ``metrics.csv`` (written with
``stages.0.diagnostics=true``; docs/localization.md lists the columns), for the localization benchmarks' results
JSON and the README's account of why single findings collapse (issue 21).

``trajectory(metrics_csv, loop_start)`` -> per epoch: the CAM-box IoU on the annotated training images (mean and per
finding), the fraction of CAM boxes that moved since the last refresh, the contrastive / classification gradient
ratio into the Grad-CAM feature map and the contrastive loss; plus per finding the IoU just before the loop starts,
its lowest value during the loop and its value in the last epoch (``drop`` = before - lowest).

    .venv/bin/python benchmarks/loop_diagnostics.py RUN_DIR/metrics.csv --loop-start 6   # the stage's contrastive_start_epoch; prints the table
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

PREFIX = "train_cam_miou_"


def _values(col: pd.Series) -> list:
    return [None if not np.isfinite(v) else round(float(v), 4) for v in col.to_numpy(dtype=float)]


def trajectory(metrics_csv, loop_start: int) -> dict | None:
    """Diagnostics per epoch of the run's (single) BYOP stage; None without diagnostics columns. ``loop_start``:
    the stage's ``contrastive_start_epoch`` (0-based: the contrastive term acts from epoch ``loop_start + 1`` in the
    1-based ``epoch`` column; each epoch's CAM-box IoU is measured at the epoch's start, i.e. with the weights the
    previous epoch ended with)."""
    m = pd.read_csv(metrics_csv)
    if "train_cam_miou" not in m.columns:
        return None
    m = m.drop_duplicates(subset=["stage", "epoch"], keep="last")
    epoch = m["epoch"].to_numpy(dtype=int)
    out = {"epoch": epoch.tolist(), "loop_start_epoch": loop_start + 1, "cam_miou": _values(m["train_cam_miou"])}
    findings = [c[len(PREFIX):] for c in m.columns if c.startswith(PREFIX)]
    out["cam_miou_per_finding"] = {f: _values(m[PREFIX + f]) for f in findings}
    if "train_box_change" in m.columns:
        out["box_change"] = _values(m["train_box_change"])
    if {"train_grad_fmap_contrastive", "train_grad_fmap_cls"} <= set(m.columns):
        ratio = m["train_grad_fmap_contrastive"].to_numpy(float) / m["train_grad_fmap_cls"].to_numpy(float)
        out["grad_ratio_contrastive_over_cls"] = _values(pd.Series(ratio))
    if "train_loss_contrastive" in m.columns:
        out["loss_contrastive"] = _values(m["train_loss_contrastive"])
    before = epoch <= loop_start + 1  # measured before any contrastive step
    during = epoch > loop_start + 1
    per = {}
    for f in ["mean", *findings]:
        col = m["train_cam_miou" if f == "mean" else PREFIX + f].to_numpy(dtype=float)
        b = col[before & np.isfinite(col)]
        d_mask = during & np.isfinite(col)
        d, d_epochs = col[d_mask], epoch[d_mask]
        if len(b) and len(d):
            per[f] = {"before_loop": round(float(b[-1]), 4), "lowest_in_loop": round(float(d.min()), 4),
                      "epoch_of_lowest": int(d_epochs[d.argmin()]),
                      "last": round(float(d[-1]), 4), "drop": round(float(b[-1] - d.min()), 4)}
    out["summary"] = per
    return out


def of_run(run) -> dict | None:
    """:func:`trajectory` of a run directory (its ``metrics.csv``; the loop start from its ``config.yaml``'s first
    stage with ``contrastive_start_epoch``); None for runs without a BYOP stage or without diagnostics."""
    import yaml

    run = Path(run)
    if not (run / "config.yaml").exists():
        return None
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    starts = [st["contrastive_start_epoch"] for st in cfg.get("stages", []) if "contrastive_start_epoch" in st]
    if not starts or not (run / "metrics.csv").exists():
        return None
    return trajectory(run / "metrics.csv", int(starts[0]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("metrics_csv")
    ap.add_argument("--loop-start", type=int, required=True, help="the stage's contrastive_start_epoch")
    args = ap.parse_args(argv)
    t = trajectory(Path(args.metrics_csv), args.loop_start)
    if t is None:
        print("no diagnostics columns (train with stages.0.diagnostics=true)")
        return 1
    keys = ["cam_miou", *(f"{PREFIX[6:]}{f}" for f in t["cam_miou_per_finding"]), "box_change",
            "grad_ratio_contrastive_over_cls"]
    print("epoch | " + " | ".join(keys))
    for i, e in enumerate(t["epoch"]):
        vals = [t["cam_miou"][i], *(v[i] for v in t["cam_miou_per_finding"].values()),
                (t.get("box_change") or [None] * len(t["epoch"]))[i],
                (t.get("grad_ratio_contrastive_over_cls") or [None] * len(t["epoch"]))[i]]
        mark = " <- loop starts" if e == t["loop_start_epoch"] else ""
        print(f"{e:5d} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in vals) + mark)
    for f, s in t["summary"].items():
        print(f"{f}: before the loop {s['before_loop']:.3f}, lowest in the loop {s['lowest_in_loop']:.3f} "
              f"(epoch {s['epoch_of_lowest']}), last {s['last']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
