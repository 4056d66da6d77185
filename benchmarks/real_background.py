"""Lesions on real chest X-rays: supervised vs BYOP trained on lesions inserted into NIH normals, tested on lesions
in normals of patients never trained on.

    # 1. choose --contrast on VALIDATION (supervised's AUC ~0.85-0.90); writes real_background_calibration.json
    .venv/bin/python benchmarks/real_background.py --calibrate 0.2 0.35 0.5 0.75 1.0
    # 2. the benchmark (contrast from the calibration file unless --contrast is given)
    .venv/bin/python benchmarks/real_background.py --seeds 0 1 2 3 4 [--variants supervised byop]
    # a tiny end-to-end check (minutes): --seeds 0 1 --epochs 2 --n-train 60 --n-test 40 --out benchmarks/out/rb_tiny.json

Protocol (fixed before any number was looked at):

* **Backgrounds**: the ``No Finding`` images of ``--background`` (default ``../shared/data/nih_cxr14``: 600 normals),
  split ONCE by a hash of the patient id into a *train* part (70 % of patients) and a *holdout* part (30 %)
  (:func:`radclr.data.background_lesions.patient_part`): no holdout patient is ever trained on, whatever the seeds.
* **Training data of seed k**: ``radclr data synth --background BG --part train --seed TRAIN_BASE+k --contrast C``
  (``--n-train`` images, default every train-part normal, written at ``--size`` px): a fresh lesion draw per
  training seed, the same draw for both variants of that seed. Ground-truth boxes are kept for 20 % of the annotated
  patients (``data.box_fraction`` of ``configs/phantom/common.yaml``), as on phantoms.
* **Test data**: one draw on the holdout part (``--part holdout --seed TEST_SEED``, ``--n-test`` images, default
  every holdout normal), every lesion boxed, the same for every run.
* **Variants**: ``configs/phantom/supervised.yaml`` and ``configs/phantom/byop.yaml`` (same encoder, image size 128,
  batch, optimiser, epochs, checkpoint rule of their own config) with ``data.path`` set to the training draw; each run
  is evaluated with ``radclr evaluate RUN --data TEST`` (its best checkpoint; CAM thresholds fit on its own annotated
  train/val images, never on the test draw).
* **Contrast calibration** (``--calibrate C1 C2 ...``): for each candidate, supervised trained on a calibration draw
  of the TRAIN part (seed CAL_BASE+k, ``--cal-seeds``), scored on the run's own held-out split (train-part patients
  that run did not train on) -- a validation set; the holdout part is never looked at. The contrast whose mean AUC
  is closest to 0.875 is chosen (and flagged when outside 0.85-0.90).
* **Reported**: per variant mean +- sd and t interval over seeds of the mean AUC and of the localization accuracy
  (IoU > 0.1/0.3/0.5) per finding; BYOP - supervised paired by seed (per-seed differences, Student-t 95 % interval,
  sign count) and at case level (seed-averaged outcomes, test patients resampled) -- :mod:`paired`.

Writes ``--out`` (default ``benchmarks/results/real_background.json``) and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import machine  # noqa: E402
from loop_diagnostics import of_run  # noqa: E402
from paired import THRESHOLDS, case_level, seed_level  # noqa: E402

from radclr.data.background_lesions import background_pool, write_background_lesions  # noqa: E402
from radclr.engine.config import resolve_config  # noqa: E402
from radclr.evaluation.seed_level import seed_interval  # noqa: E402
from radclr.runs import evaluate_run, train  # noqa: E402

VARIANTS = {"supervised": ("supervised", []),  # configs/phantom/<name>.yaml + overrides
            "byop": ("byop", ["stages.0.diagnostics=true"])}  # per-epoch diagnostics (they do not change the step)
TRAIN_BASE, CAL_BASE, TEST_SEED = 100, 900, 7001
HOLDOUT = 0.3
TARGET_AUC, TARGET_RANGE = 0.875, (0.85, 0.90)
CALIBRATION_FILE = REPO / "benchmarks" / "results" / "real_background_calibration.json"


def _rel(path: Path) -> str:
    """``path`` relative to the repository (``../shared/...`` for the data beside it): no machine paths in results."""
    resolved = Path(path).resolve()
    if resolved.is_relative_to(REPO):
        return str(resolved.relative_to(REPO))
    return os.path.relpath(Path(path).absolute(), REPO)  # lexical: the shared folder may be a link


def draw(root: Path, args, part: str, seed: int, n: int | None, contrast: float) -> Path:
    """A lesion draw (cached by its arguments)."""
    n = n or len(background_pool(args.background, part, HOLDOUT))
    path = root / "data" / f"{part}-seed{seed}-n{n}-c{contrast:g}-s{args.size}"
    if not (path / "labels.csv").exists():
        if path.exists():
            shutil.rmtree(path)
        write_background_lesions(path, args.background, n=n, seed=seed, contrast=contrast, size=args.size,
                                 part=part, holdout=HOLDOUT)
    return path


def train_run(name: str, seed: int, data: Path, run: Path, args) -> float:
    """Train variant ``name`` with training seed ``seed`` on ``data`` into ``run`` (reused when finished)."""
    done = run / "wall_time_s.txt"
    if not done.exists():
        if run.exists():
            shutil.rmtree(run)
        config, overrides = VARIANTS[name]
        cfg = resolve_config(REPO / "configs" / "phantom" / f"{config}.yaml",
                             [f"data.path={data}", f"trainer.epochs={args.epochs}", *overrides, *args.override,
                              f"seed={seed}", f"data.cache_dir={Path(args.out_dir) / 'cache'}",
                              f"evaluation.n_boot={args.n_boot}"])
        t0 = time.time()
        train(cfg, run, progress=False, evaluate=True)
        done.write_text(f"{time.time() - t0:.1f}")
    return float(done.read_text())


def run_one(name: str, seed: int, args, contrast: float, test: Path) -> dict:
    out_dir = Path(args.out_dir)
    data = draw(out_dir, args, "train", TRAIN_BASE + seed, args.n_train, contrast)
    run = out_dir / "runs" / f"{name}-seed{seed}-{data.name}"
    wall = train_run(name, seed, data, run, args)
    target = run / "evaluations" / f"{test.name}.json"
    if not target.exists():
        evaluate_run(run, data_path=str(test), out=target, progress=False, n_boot=args.n_boot)
    m = json.loads(target.read_text())
    side = Path(m["results_dir"])
    loc = m.get("localization") or {}
    return {"variant": name, "seed": seed, "train_draw": data.name, "wall_time_s": wall,
            "auc": m["classification"]["auc"], "iou_accuracy": loc.get("iou_accuracy"),
            "cam_threshold": (loc.get("cam_threshold") or {}).get("threshold"),
            "cases": _rel(side / "localization_all.csv"), "predictions": _rel(side / "predictions_all.csv"),
            "history": _rel(run / "metrics.csv"), "loop_diagnostics": of_run(run)}


def calibrate(args) -> dict:
    """Supervised AUC on validation (the run's own held-out split of train-part patients) for each contrast."""
    out_dir = Path(args.out_dir)
    scores = {}
    for c in args.calibrate:
        aucs = []
        for k in args.cal_seeds:
            data = draw(out_dir, args, "train", CAL_BASE + k, args.n_train, c)
            run = out_dir / "calibration" / f"supervised-seed{k}-{data.name}"
            train_run("supervised", k, data, run, args)
            m = json.loads((run / "metrics.json").read_text())
            aucs.append(m["classification"]["auc"]["mean"])
            print(f"contrast {c:g} seed {k}: validation mean AUC {aucs[-1]:.3f}", flush=True)
        scores[f"{c:g}"] = {"auc_mean": float(np.mean(aucs)), "values": aucs}
    best = min(scores, key=lambda c: abs(scores[c]["auc_mean"] - TARGET_AUC))
    auc = scores[best]["auc_mean"]
    return {"contrast": float(best), "val_auc_mean": auc,
            "in_target": bool(TARGET_RANGE[0] <= auc <= TARGET_RANGE[1]), "target": TARGET_AUC,
            "target_range": list(TARGET_RANGE), "scores": scores, "cal_seeds": args.cal_seeds,
            "rule": "supervised (configs/phantom/supervised.yaml) on a TRAIN-part calibration draw; AUC of the run's "
                    "own held-out split (train-part patients it did not train on); closest to the target",
            "epochs": args.epochs, "n_train": args.n_train, "size": args.size, "machine": machine()}


def summarise(rows: list[dict]) -> dict:
    def msd(values):
        si = seed_interval(values)
        fin = lambda x: float(x) if np.isfinite(x) else None  # noqa: E731
        return {"mean": fin(si.mean), "sd": fin(si.sd), "t_ci": [fin(si.low), fin(si.high)],
                "values": [round(v, 4) for v in si.values]}

    out = {}
    for name in dict.fromkeys(r["variant"] for r in rows):
        rs = [r for r in rows if r["variant"] == name]
        entry = {"n_seeds": len(rs), "auc_mean": msd([r["auc"]["mean"] for r in rs]),
                 "wall_time_s": msd([r["wall_time_s"] for r in rs])}
        for t in THRESHOLDS:
            entry[f"iou>{t}"] = ({f: msd([r["iou_accuracy"][t][f] for r in rs if r["iou_accuracy"]])
                                  for f in rs[0]["iou_accuracy"][t]} if rs[0]["iou_accuracy"] else None)
        out[name] = entry
    return out


def print_tables(summary: dict, diffs: dict) -> None:
    print("\n| variant | seeds | mean AUC | IoU>0.1 | IoU>0.3 | IoU>0.5 | train wall s |\n"
          "|---|---|---|---|---|---|---|")
    for name, s in summary.items():
        cells = [f"{s['auc_mean']['mean']:.3f} ± {s['auc_mean']['sd'] or 0:.3f}"]
        for t in THRESHOLDS:
            m = (s[f"iou>{t}"] or {}).get("mean") or {}
            cells.append(f"{_num(m.get('mean')):.3f} ± {m.get('sd') or 0:.3f}")
        print(f"| {name} | {s['n_seeds']} | " + " | ".join(cells) + f" | {s['wall_time_s']['mean']:.0f} |")
    for name, d in diffs.items():
        print(f"\n{name} - supervised | seed level: mean [95 % t CI] (seeds A better / B better) | "
              "case level [95 % CI]")
        for key in ("auc_mean", *(f"iou>{t}" for t in THRESHOLDS)):
            sl, cl = d["seed_level"].get(key), d["case_level"][key]
            seed_cell = "n/a" if not sl else (
                f"{sl['mean_diff']:+.3f} [{_f(sl['t_ci'][0])}, {_f(sl['t_ci'][1])}] "
                f"({sl['sign']['a_better']}/{sl['sign']['b_better']})")
            print(f"  {key:9s} | {seed_cell} | {cl['diff']:+.3f} [{cl['ci'][0]:+.3f}, {cl['ci'][1]:+.3f}]")


def _num(x) -> float:
    return float("nan") if x is None else float(x)


def _f(x) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:+.3f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--background", default=str(REPO.parent / "shared" / "data" / "nih_cxr14"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--n-train", type=int, default=None, help="images per training draw (default: every train-part "
                    "normal)")
    ap.add_argument("--n-test", type=int, default=None, help="test images (default: every holdout normal)")
    ap.add_argument("--size", type=int, default=256, help="side of the written images (training reads 128 px)")
    ap.add_argument("--contrast", type=float, default=None,
                    help="lesion contrast (default: the calibration file's choice)")
    ap.add_argument("--calibrate", type=float, nargs="+", default=None, metavar="C",
                    help="contrast-calibration mode: try these contrasts on validation and write --calibration-file")
    ap.add_argument("--cal-seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--calibration-file", default=str(CALIBRATION_FILE))
    ap.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides for every run")
    ap.add_argument("--n-boot", type=int, default=200, help="bootstrap draws of each run's own CIs")
    ap.add_argument("--n-boot-paired", type=int, default=2000, help="bootstrap draws of the case-level difference")
    ap.add_argument("--out-dir", default=str(REPO / "benchmarks" / "out" / "real_background"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "real_background.json"))
    args = ap.parse_args(argv)
    if not (Path(args.background) / "labels.csv").exists():
        ap.error(f"background dataset {args.background} not found")
    if args.calibrate:
        result = calibrate(args)
        Path(args.calibration_file).write_text(json.dumps(result, indent=1))
        flag = "" if result["in_target"] else " (OUTSIDE 0.85-0.90: try other contrasts)"
        print(f"\nchosen contrast {result['contrast']:g}: validation mean AUC {result['val_auc_mean']:.3f}{flag}\n"
              f"written: {args.calibration_file}")
        return 0
    contrast = args.contrast
    calibration = None
    if contrast is None:
        if not Path(args.calibration_file).exists():
            ap.error(f"no --contrast and no calibration file {args.calibration_file}: run --calibrate first")
        calibration = json.loads(Path(args.calibration_file).read_text())
        contrast = calibration["contrast"]
    test = draw(Path(args.out_dir), args, "holdout", TEST_SEED, args.n_test, contrast)
    rows = []
    for seed in args.seeds:
        for name in args.variants:
            rows.append(run_one(name, seed, args, contrast, test))
            r = rows[-1]
            iou = (r["iou_accuracy"] or {}).get("0.3", {}).get("mean")
            print(f"{name} seed {seed}: AUC {r['auc']['mean']:.3f}, IoU>0.3 {iou if iou is None else round(iou, 3)} "
                  f"({r['wall_time_s']:.0f} s)", flush=True)
    summary = summarise(rows)
    diffs = ({n: {"seed_level": seed_level(rows, n, "supervised"),
                  "case_level": case_level(rows, n, "supervised", n_boot=args.n_boot_paired)}
              for n in summary if n != "supervised"} if "supervised" in summary else {})
    Path(args.out).write_text(json.dumps({
        "machine": machine(), "background": _rel(Path(args.background)), "contrast": contrast,
        "calibration": calibration, "epochs": args.epochs, "seeds": args.seeds, "size": args.size,
        "train_draws": {s: f"part train, seed {TRAIN_BASE + s}" for s in args.seeds},
        "test_draw": {"part": "holdout", "seed": TEST_SEED, "path": _rel(test),
                      "n": json.loads((test / "synth.json").read_text())["n"]},
        "holdout_fraction": HOLDOUT, "variants": {n: VARIANTS[n] for n in summary}, "overrides": args.override,
        "runs": rows, "summary": summary, "paired_vs_supervised": diffs}, indent=1, default=str))
    print_tables(summary, diffs)
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
