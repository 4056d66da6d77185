"""Phantom localization benchmark: does the radiomics view (BYOP) localize better than plain supervised Grad-CAM?

    .venv/bin/python benchmarks/phantom_localization.py --stage val  --variants supervised byop ...   # choose
    .venv/bin/python benchmarks/phantom_localization.py --stage test --variants supervised byop        # report

Protocol (written down before any number was looked at; see the README):

* **Training data**: the built-in phantoms of ``configs/phantom/common.yaml`` (400 images at 128 px, phantom seed 1,
  ground-truth boxes kept for 20 % of the annotated patients).
* **Validation phantoms** (``--stage val``; settings are chosen on these only): 120 images, phantom seed 2, every
  lesion boxed. **Test phantoms** (``--stage test``; looked at once, for the configurations chosen on validation):
  120 images, phantom seed 3, every lesion boxed. Neither seed is ever trained on.
* Each variant is ``configs/phantom/<config>.yaml`` plus overrides, trained with ``--seeds`` training seeds (the
  ``seed`` key: initialisation, sample order; the data and its split stay the same), evaluated with
  ``radclr evaluate RUN --data PHANTOMS`` (best checkpoint as the config says -- the validation classification loss
  of the run's own split; CAM threshold fit on the run's own annotated train/val images -- never on the evaluated
  phantoms). Training is the same for both stages: ``--stage test`` reuses the runs trained for ``--stage val`` and
  only evaluates them on the test phantoms.
* Reported per variant: mean +- sd over seeds of the mean AUC and of the localization accuracy (IoU > T) per
  finding; and the **paired** difference to ``supervised``: per (image, finding) case, the correctness averaged over
  the seeds of each variant, resampled by patient (2000 bootstrap draws) -> mean difference with a 95 % interval.

Writes ``--out`` (JSON: every run's headline numbers, the summaries and the paired differences) and prints tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import machine  # noqa: E402

from radclr.data.phantom import write_phantom_dataset  # noqa: E402
from radclr.engine.config import resolve_config  # noqa: E402
from radclr.runs import evaluate_run, train  # noqa: E402

STAGES = {"val": 2, "test": 3}  # phantom seed of the evaluation set
EVAL_VERSION = "3"  # bumped when the evaluation code changes (3: grid 0.1..0.95, threshold per finding, layer3)
N_EVAL = 120
THRESHOLDS = ("0.1", "0.3", "0.5")

# name -> (config file under configs/phantom, overrides[, evaluation overrides]); variants that differ only in
# evaluation overrides share the trained run (the run directory is cloned with its checkpoints linked)
VARIANTS: dict[str, tuple] = {
    "supervised": ("supervised", []),
    "byop": ("byop", []),  # the shipped configs/phantom/byop.yaml
    # the candidates of the validation round (see benchmarks/results/phantom_localization_exploration.json)
    "byop-cam": ("byop", ["stages.0.lambda=0.1", "stages.0.background_negative=false"]),
    "byop-cam-bg-focal": ("byop", ["stages.0.loss=focal", "stages.0.alpha=null"]),
    "byop-global": ("byop", ["stages.0.embedding_pool=global", "stages.0.background_negative=false",
                             "stages.0.lambda=0.1"]),
    # the readout alone (evaluation overrides on the supervised runs): the paper's layer4 map and one threshold
    "supervised-layer4-one": ("supervised", [], ["evaluation.cam_layer=last", "evaluation.cam_threshold=auto"]),
    "supervised-layer4-perfinding": ("supervised", [], ["evaluation.cam_layer=last"]),
    "supervised-layer3-one": ("supervised", [], ["evaluation.cam_threshold=auto"]),
}


def eval_phantoms(root: Path, stage: str) -> Path:
    path = root / f"phantoms-{stage}-seed{STAGES[stage]}"
    if not (path / "labels.csv").exists():
        write_phantom_dataset(path, n=N_EVAL, size=128, seed=STAGES[stage])
    return path


def run_one(name: str, seed: int, args, out_dir: Path, phantoms: Path) -> dict:
    config, overrides, *rest = VARIANTS[name]
    if config == "byop":  # per-epoch diagnostics in metrics.csv (they do not change what is trained)
        overrides = ["stages.0.diagnostics=true", *overrides]
    eval_overrides = rest[0] if rest else []
    trained = next(n for n, v in VARIANTS.items() if v[:2] == tuple(VARIANTS[name][:2]) and not (v[2:] and v[2]))
    run = out_dir / "runs" / f"{trained}-seed{seed}"
    done = run / "wall_time_s.txt"
    if not done.exists():
        if run.exists():
            import shutil

            shutil.rmtree(run)
        cfg = resolve_config(REPO / "configs" / "phantom" / f"{config}.yaml",
                             [*overrides, f"seed={seed}", f"trainer.epochs={args.epochs}",
                              f"data.cache_dir={out_dir / 'cache'}", f"evaluation.n_boot={args.n_boot}"])
        t0 = time.time()
        train(cfg, run, progress=False, evaluate=True)
        done.write_text(f"{time.time() - t0:.1f}")
    if eval_overrides:
        run = _clone_for_evaluation(run, out_dir / "runs" / f"{name}-seed{seed}", eval_overrides, args)
    target = run / "evaluations" / f"{phantoms.name}.json"
    stamp = run / "evaluated_with.txt"  # the code that evaluated it: re-evaluate runs evaluated by older code
    if target.exists() and (not stamp.exists() or stamp.read_text() != EVAL_VERSION):
        evaluate_run(run, progress=False, n_boot=args.n_boot)  # the primary evaluation (CAM calibration)
        target.unlink()
    if not target.exists():
        evaluate_run(run, data_path=str(phantoms), out=target, progress=False, n_boot=args.n_boot)
        stamp.write_text(EVAL_VERSION)
    m = json.loads(target.read_text())
    side = Path(m["results_dir"])
    loc = m.get("localization") or {}
    return {"variant": name, "seed": seed, "wall_time_s": float(done.read_text()),
            "auc": m["classification"]["auc"], "iou_accuracy": loc.get("iou_accuracy"),
            "cam_threshold": (loc.get("cam_threshold") or {}).get("threshold"),
            "cases": _rel(side / "localization_all.csv"), "predictions": _rel(side / "predictions_all.csv"),
            "history": _rel(run / "metrics.csv")}


def _rel(path: Path) -> str:
    """``path`` relative to the repository when inside it (results JSON without machine paths)."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _clone_for_evaluation(run: Path, clone: Path, overrides: list[str], args) -> Path:
    """A run directory sharing ``run``'s checkpoints, with other evaluation settings, evaluated on its own data."""
    import yaml

    if not (clone / "metrics.json").exists():
        (clone / "checkpoints").mkdir(parents=True, exist_ok=True)
        for f in (run / "checkpoints").iterdir():
            link = clone / "checkpoints" / f.name
            if not link.exists():
                link.symlink_to(f.resolve())
        for name in ("splits.csv", "metrics.csv", "wall_time_s.txt"):
            (clone / name).write_bytes((run / name).read_bytes())
        cfg = resolve_config(run / "config.yaml", overrides)
        (clone / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        evaluate_run(clone, progress=False, n_boot=args.n_boot)
    return clone


def summarise(rows: list[dict]) -> dict:
    out = {}
    for name in dict.fromkeys(r["variant"] for r in rows):
        rs = [r for r in rows if r["variant"] == name]
        entry = {"n_seeds": len(rs), "auc_mean": _msd([r["auc"]["mean"] for r in rs]),
                 "wall_time_s": _msd([r["wall_time_s"] for r in rs])}
        for t in THRESHOLDS:
            entry[f"iou>{t}"] = {f: _msd([r["iou_accuracy"][t][f] for r in rs if r["iou_accuracy"]])
                                 for f in rs[0]["iou_accuracy"][t]} if rs[0]["iou_accuracy"] else None
        out[name] = entry
    return out


def _msd(values) -> dict:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    return {"mean": float(v.mean()) if v.size else None, "sd": float(v.std(ddof=1)) if v.size > 1 else None,
            "values": [round(float(x), 4) for x in v]}


def paired_difference(rows: list[dict], a: str, b: str, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """Variant ``a`` minus ``b``: localization accuracy (IoU > T, mean over findings of case means) and mean AUC;
    each case's outcome averaged over the seeds of a variant, patients resampled with replacement."""
    def cases(name):
        frames = [pd.read_csv(REPO / r["cases"]) for r in rows if r["variant"] == name]
        df = pd.concat(frames).groupby(["image_id", "finding"], as_index=False)["iou"].agg(list)
        return df

    ca, cb = cases(a), cases(b)
    merged = ca.merge(cb, on=["image_id", "finding"], suffixes=("_a", "_b"))
    patients = merged["image_id"].map(_patient_of(REPO / rows[0]["predictions"])).to_numpy()
    units, unit_idx = np.unique(patients, return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(units), size=(n_boot, len(units)))
    counts = np.stack([np.bincount(d, minlength=len(units)) for d in draws]).astype(float)  # [n_boot, U]
    findings = sorted(merged["finding"].unique())
    out = {}
    for t in THRESHOLDS:
        ta = merged["iou_a"].map(lambda v: float(np.mean(np.asarray(v) > float(t)))).to_numpy()
        tb = merged["iou_b"].map(lambda v: float(np.mean(np.asarray(v) > float(t)))).to_numpy()
        point, boots = [], []
        for f in findings:
            sel = (merged["finding"] == f).to_numpy()
            w = np.zeros((len(units),))
            np.add.at(w, unit_idx[sel], 1.0)
            d = np.zeros((len(units),))
            np.add.at(d, unit_idx[sel], ta[sel] - tb[sel])
            point.append(d.sum() / w.sum())
            with np.errstate(invalid="ignore", divide="ignore"):
                boots.append((counts @ d) / (counts @ w))
        boot_mean = np.nanmean(np.stack(boots), axis=0)
        out[f"iou>{t}"] = {"diff": float(np.mean(point)), "ci": [float(np.percentile(boot_mean, 2.5)),
                                                               float(np.percentile(boot_mean, 97.5))],
                           "per_finding": dict(zip(findings, map(float, point)))}
    out["auc_mean"] = _paired_auc(rows, a, b, n_boot=n_boot, seed=seed)
    return out


def _patient_of(predictions_csv: str) -> dict:
    p = pd.read_csv(predictions_csv, dtype={"image_id": str, "patient_id": str})
    return dict(zip(p["image_id"], p["patient_id"]))


def _paired_auc(rows, a, b, *, n_boot, seed) -> dict:
    from radclr.evaluation.metrics import auc_per_finding

    def probs(name):
        ps = [pd.read_csv(REPO / r["predictions"], dtype={"image_id": str, "patient_id": str}) for r in rows
              if r["variant"] == name]
        base = ps[0]
        pcols = [c for c in base.columns if c.startswith("p_")]
        mean = sum(p[pcols].to_numpy() for p in ps) / len(ps)  # seed-averaged probabilities
        return base, pcols, mean

    base, pcols, pa = probs(a)
    _, _, pb = probs(b)
    findings = [c[2:] for c in pcols]
    y = base[[f"y_{f}" for f in findings]].to_numpy(dtype=float)
    units, idx = np.unique(base["patient_id"].to_numpy(), return_inverse=True)
    rng = np.random.default_rng(seed + 1)
    point = auc_per_finding(y, pa, findings)["mean"] - auc_per_finding(y, pb, findings)["mean"]
    diffs = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(units), size=len(units))
        rows_ = np.concatenate([np.flatnonzero(idx == u) for u in pick])
        da = auc_per_finding(y[rows_], pa[rows_], findings)["mean"]
        db = auc_per_finding(y[rows_], pb[rows_], findings)["mean"]
        diffs.append(da - db)
    d = np.asarray(diffs)
    d = d[np.isfinite(d)]
    return {"diff": float(point), "ci": [float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))],
            "note": "AUC of the seed-averaged probabilities"}


def print_tables(summary: dict, diffs: dict) -> None:
    print("\n| variant | seeds | mean AUC | IoU>0.1 | IoU>0.3 | IoU>0.5 | wall s |\n|---|---|---|---|---|---|---|")
    for name, s in summary.items():
        cells = [f"{s['auc_mean']['mean']:.3f} ± {s['auc_mean']['sd'] or 0:.3f}"]
        for t in THRESHOLDS:
            m = (s[f"iou>{t}"] or {}).get("mean") or {}
            cells.append(f"{m.get('mean', float('nan')):.3f} ± {m.get('sd') or 0:.3f}")
        print(f"| {name} | {s['n_seeds']} | " + " | ".join(cells) + f" | {s['wall_time_s']['mean']:.0f} |")
    if diffs:
        print("\n| variant - supervised | IoU>0.3 (paired, 95 % CI) | mean AUC (paired, 95 % CI) |\n|---|---|---|")
        for name, d in diffs.items():
            loc, auc = d["iou>0.3"], d["auc_mean"]
            print(f"| {name} | {loc['diff']:+.3f} [{loc['ci'][0]:+.3f}, {loc['ci'][1]:+.3f}] | "
                  f"{auc['diff']:+.3f} [{auc['ci'][0]:+.3f}, {auc['ci'][1]:+.3f}] |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=sorted(STAGES), required=True)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--n-boot", type=int, default=200, help="bootstrap draws of each run's own CIs")
    ap.add_argument("--out-dir", default=str(REPO / "benchmarks" / "out" / "phantom_localization_v2"))
    ap.add_argument("--out", default=None, help="results JSON (default: benchmarks/results/phantom_localization_"
                    "<stage>.json)")
    args = ap.parse_args(argv)
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {unknown}; known: {sorted(VARIANTS)}")
    out_dir = Path(args.out_dir)
    phantoms = eval_phantoms(out_dir, args.stage)
    rows = []
    for name in args.variants:
        for seed in args.seeds:
            rows.append(run_one(name, seed, args, out_dir, phantoms))
            r = rows[-1]
            print(f"{name} seed {seed}: AUC {r['auc']['mean']:.3f}, IoU>0.3 {r['iou_accuracy']['0.3']['mean']:.3f} "
                  f"({r['wall_time_s']:.0f} s)", flush=True)
    summary = summarise(rows)
    diffs = {n: paired_difference(rows, n, "supervised") for n in summary if n != "supervised"} \
        if "supervised" in summary else {}
    out = Path(args.out or REPO / "benchmarks" / "results" / f"phantom_localization_{args.stage}.json")
    out.write_text(json.dumps({"machine": machine(), "stage": args.stage, "eval_phantom_seed": STAGES[args.stage],
                               "n_eval": N_EVAL, "epochs": args.epochs, "seeds": args.seeds,
                               "variants": {n: VARIANTS[n] for n in summary}, "runs": rows, "summary": summary,
                               "paired_vs_supervised": diffs}, indent=1, default=str))
    print_tables(summary, diffs)
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
