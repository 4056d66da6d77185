"""Real data, several training seeds, equal budgets: supervised vs M1, M3 and BYOP at 100 % and 10 % labels.

    .venv/bin/python benchmarks/real_data_seeds.py [--seeds 0 1 2 3 4] [--epochs 6] [--datasets kermany nih]
        [--fractions 1.0 0.1] [--max-images kermany=1500] [--methods supervised M1 M3 byop]
        [--augment off|on|choose]

Data, split, encoder as ``benchmarks/real_data.py`` (NIH ChestX-ray14 + the community boxes with the 8 findings of
seed 001; a seeded patient-wise ~1,500-image subset of Kermany; one patient-wise, label-stratified 70/10/20 split,
seed 0, for every run; ResNet-18 width 0.5 at 128 px, Adam 1e-3, batch 64). Every (dataset, fraction, method) runs
once per training seed (the ``seed`` key: initialisation, sample order, augmentation draws).

Equal budgets (issue 21, item 5):

* **augmentation**: the same for every method -- ``--augment off`` (default: the stronger supervised baseline at 10 %
  Kermany labels, issue 21) or ``on`` -- or ``choose``: every method trained both ways and, per (dataset, fraction,
  method), the setting with the higher mean validation value of the selected checkpoints is reported (2 settings
  each, counted in ``settings_tried``).
* **checkpoint rule**: every method keeps the epoch with the best validation mean AUC (the labelled stage's
  ``best_checkpoint: {metric: val_auc_mean, mode: max}``), among the epochs of its labelled stage (M1/M3:
  the fine-tuning stage; BYOP: the engine keeps its rule of taking best.pt from the loop's epochs only -- its
  classification warm-up epochs are a different model, README "Choices").
* **optimiser steps**: E epochs over the labelled training images for every method's labelled stage (supervised E,
  BYOP E, M1/M3 fine-tuning E) -- equal labelled steps; M1 and M3 add ``--pretrain-epochs`` (default E/2) of
  label-free pretraining on all training images, which IS the method (reported as extra steps, not hidden).
  Each run's optimiser steps per stage (from its ``metrics.csv``'s ``steps`` column where the engine writes it, else
  ceil(images / batch) x epochs) are recorded as ``steps``.
* ``supervised-steps`` (a control, with ``--methods ... supervised M1 ... supervised-steps``): supervised trained
  for as many optimiser steps as the same seed's M1 run in all (:func:`steps_matched_epochs`) -- does M1's
  pretraining help by what it learns or by its extra steps? Reported as ``M1_minus_supervised-steps``.
* ``byop``: ``configs/seed001/recommended.yaml``'s BYOP options (the shipped BCE defaults), its contrastive loop after E/3
  classification epochs; evaluated, like the others, with recommended.yaml's evaluation protocol (Grad-CAM layer and
  CAM-threshold rule).

Reported: mean +- sd and 95 % t interval over seeds of the mean test AUC (and of NIH's localization accuracy on its
boxed test images); each method - supervised **paired by seed** (per-seed differences, mean, Student-t 95 %
interval, sign count: :func:`radclr.evaluation.seed_level.paired_seed_diff`) and at **case level** (the seed-averaged
probabilities, 95 % patient-bootstrap interval). Writes ``benchmarks/results/real_data_seeds.json``;
``--tables-only`` reprints it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import headline, machine, run_config  # noqa: E402
from real_data import DATASETS, code_version, prepare_dataset  # noqa: E402
from real_data import stages as pretrain_stages  # noqa: E402

from radclr.engine.config import resolve_config  # noqa: E402
from radclr.evaluation.bootstrap import compare_models  # noqa: E402
from radclr.evaluation.seed_level import paired_seed_diff, seed_interval  # noqa: E402

METHODS = ("supervised", "M1", "M3", "byop")
CHECKPOINT_RULE = {"metric": "val_auc_mean", "mode": "max"}
# BYOP variants for exploration on VALIDATION data (each: full.yaml's BYOP options + these); chosen with --methods,
# compared by the validation value of the checkpoint each run selected (``val_best``) before any test number
VARIANTS = {"byop": {}, "byop-lam0.1": {"lambda": 0.1}, "byop-ramp": {"lambda_warmup_epochs": 3}}


def full_defaults() -> tuple[dict, dict]:
    """(BYOP stage options, evaluation protocol) of the shipped configs/seed001/recommended.yaml (the BCE options
    full.yaml had before Table 3's configs were made a faithful ablation: full.yaml is now focal loss)."""
    cfg = resolve_config(REPO / "configs" / "seed001" / "recommended.yaml")
    skip = ("name", "method", "epochs", "classifier_warmup_epochs", "contrastive_start_epoch", "best_checkpoint")
    stage = {k: v for k, v in cfg["stages"][0].items() if k not in skip}
    return stage, {k: cfg["evaluation"][k] for k in ("cam_threshold", "cam_layer")}


def config(dataset: str, method: str, fraction: float, epochs: int, cache: str, seed: int, augment: bool = False,
           pretrain_epochs: int | None = None) -> dict:
    d = DATASETS[dataset]
    byop_options, protocol = full_defaults()
    if method in ("supervised", "supervised-steps"):  # supervised-steps: epochs from steps_matched_epochs
        stages = [{"name": "train", "method": "supervised", "loss": "bce", "epochs": epochs}]
    elif method in ("M1", "M3"):
        pre, fine = pretrain_stages(method, 2)  # the stage definitions of real_data.py, epochs set here
        pre["epochs"] = max(epochs // 2, 1) if pretrain_epochs is None else pretrain_epochs
        fine["epochs"] = epochs
        stages = [pre, fine]
    else:
        stages = [{"name": "train", "method": "byop", **byop_options, "classifier_warmup_epochs": 1, "epochs": epochs,
                   "contrastive_start_epoch": max(epochs // 3, 1), **VARIANTS[method]}]
    stages[-1]["best_checkpoint"] = dict(CHECKPOINT_RULE)  # the labelled stage (pretraining keeps its own)
    aug = "on" if augment else "off"
    return {"name": f"{dataset}-{method}-{fraction:g}-aug{aug}-seed{seed}", "seed": seed,
            "data": {"path": d["path"], "findings": d["findings"], "image_size": 128, "cache_dir": cache,
                     "follow_links": True,  # the Kermany subset links its images folder to the original
                     "label_fraction": fraction, "split": {"val": 0.1, "test": 0.2, "seed": 0}},
            "radiomics": {"region": "cam" if method.startswith("byop") else "box"},
            "model": {"encoder": "resnet18", "encoder_options": {"width": 0.5}},
            "trainer": {"epochs": epochs, "batch_size": 64, "progress": False, "augment": {"enabled": bool(augment)},
                        "optimizer": {"name": "adam", "lr": 1e-3}},
            "evaluation": {"n_boot": 1000, **protocol},
            "stages": stages}


def optimiser_steps(run: Path) -> dict:
    """Optimiser steps per stage: the ``steps`` column of metrics.csv where the engine writes it, else the
    estimate ceil(images / batch) x epochs from the run's split and config."""
    import math

    import yaml

    m = pd.read_csv(run / "metrics.csv")
    if "steps" in m.columns:
        return {str(k): int(v) for k, v in m.groupby("stage")["steps"].sum().items()} | {"source": "metrics.csv"}
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    split = pd.read_csv(run / "splits.csv")
    train = split[split["split"] == "train"]
    labelled = int(train["labeled"].astype(bool).sum()) if "labeled" in train.columns else len(train)
    out = {"source": "estimate: ceil(images / batch) x epochs"}
    for st in cfg["stages"]:
        n = len(train) if st["method"] in ("simclr", "radiomics_contrastive") else labelled
        batch = int(st.get("batch_size") or cfg["trainer"]["batch_size"])
        epochs = int(st.get("epochs") or cfg["trainer"]["epochs"])
        out[st["name"]] = math.ceil(n / batch) * epochs
    return out


def steps_matched_epochs(supervised_run: Path, m1_run: Path, epochs: int) -> int:
    """Epochs for ``supervised-steps``: supervised trained for as many optimiser steps as the same seed's M1 run
    took in all (label-free pretraining + fine-tuning) -- the control that tells a gain of the pretraining's
    *content* from a gain of its extra steps (at 10 % labels supervised's E epochs are a handful of steps)."""
    import math

    per_epoch = optimiser_steps(supervised_run)["train"] / epochs
    total = sum(v for k, v in optimiser_steps(m1_run).items() if k != "source")
    return max(epochs, math.ceil(total / per_epoch))


def selected_checkpoint(run: Path) -> dict:
    """The validation value (the method's monitor: mean AUC) and epoch of the checkpoint the run selected."""
    import torch

    best = torch.load(run / "checkpoints" / "best.pt", map_location="cpu", weights_only=False).get("best") or {}
    return {"val_best": best.get("value"), "best_epoch": best.get("epoch")}


def _predictions(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "predictions_test.csv", dtype={"image_id": str, "patient_id": str})


def paired(runs_a: dict[int, Path], runs_b: dict[int, Path], n_boot: int = 1000) -> dict:
    """Mean-AUC difference a - b: paired by seed (t interval, sign count) and on the seed-averaged probabilities
    (patient bootstrap). ``runs_*``: ``{seed: run directory}`` with the same seeds."""
    seeds = sorted(set(runs_a) & set(runs_b))
    pa, pb = {k: _predictions(runs_a[k]) for k in seeds}, {k: _predictions(runs_b[k]) for k in seeds}
    base = pa[seeds[0]]
    findings = [c[2:] for c in base.columns if c.startswith("p_")]
    y = base[[f"y_{f}" for f in findings]].to_numpy(dtype=float)
    cols = [f"p_{f}" for f in findings]
    pid = base["patient_id"].to_numpy()

    def aligned(p):
        return p.set_index("image_id").loc[base["image_id"], cols].to_numpy()

    def mean_auc(p):
        return float(compare_models(y, aligned(p), aligned(p), findings, patient_ids=pid, n_boot=0)["mean"]["a"])

    seed_level = paired_seed_diff({k: mean_auc(pa[k]) for k in seeds}, {k: mean_auc(pb[k]) for k in seeds},
                                  names=("a", "b")).to_dict()
    avg = compare_models(y, np.mean([aligned(pa[k]) for k in seeds], axis=0),
                         np.mean([aligned(pb[k]) for k in seeds], axis=0), findings, patient_ids=pid, n_boot=n_boot,
                         names=("a", "b"))
    m = avg["mean"]
    return {"seed_level": seed_level,
            "case_level": {"diff": m["diff"], "ci": [m["ci_low"], m["ci_high"]], "p_value": m["p_value"],
                           "note": "seed-averaged probabilities, test patients resampled (trained models fixed)"}}


def _msd(values) -> dict:
    si = seed_interval(values)
    fin = lambda x: float(x) if np.isfinite(x) else None  # noqa: E731
    return {"mean": fin(si.mean), "sd": fin(si.sd), "t_ci": [fin(si.low), fin(si.high)],
            "values": [round(float(x), 4) for x in si.values]}


def run_dir(out_dir: Path, ds: str, method: str, frac: float, aug: str, seed: int) -> Path:
    return out_dir / ds / f"{method}-{frac:g}-aug{aug}-seed{seed}"


def run_key(ds: str, method: str, frac: float, aug: str, seed: int) -> str:
    return f"{ds}/{method}/{frac:g}/aug{aug}/seed{seed}"


def chosen_augment(results: dict, ds: str, method: str, frac: float, seeds: list[int]) -> str | None:
    """The augmentation setting reported for a method: the one asked for, or (``choose``) the one whose selected
    checkpoints have the higher mean validation value over seeds."""
    modes = ["off", "on"] if results["augment"] == "choose" else [results["augment"]]
    scores = {}
    for aug in modes:
        hs = [results["runs"].get(run_key(ds, method, frac, aug, s)) for s in seeds]
        if hs and all(h and h.get("val_best") is not None for h in hs):
            scores[aug] = float(np.mean([h["val_best"] for h in hs]))
    return max(scores, key=scores.get) if scores else None


def summarise(results: dict, out_dir: Path, seeds: list[int]) -> dict:
    summary = {}
    methods = results.get("methods", METHODS)
    for ds in results.get("datasets", []):
        for frac in results["fractions"]:
            entry, runs = {}, {}
            for method in methods:
                aug = chosen_augment(results, ds, method, frac, seeds)
                if aug is None:
                    continue
                hs = [results["runs"][run_key(ds, method, frac, aug, s)] for s in seeds]
                e = {"augment": aug, "n_seeds": len(hs), "auc_mean": _msd([h["auc"]["mean"] for h in hs]),
                     "val_best": _msd([h["val_best"] for h in hs]), "steps": hs[0].get("steps"),
                     "settings_tried": 2 if results["augment"] == "choose" else 1}
                if ds == "nih" and all(h.get("iou_accuracy") for h in hs):
                    for t in ("0.1", "0.3"):
                        e[f"loc_iou>{t}"] = _msd([h["iou_accuracy"][t]["mean"] for h in hs])
                entry[method] = e
                runs[method] = {s: run_dir(out_dir, ds, method, frac, aug, s) for s in seeds}
            for ref in ("supervised", "supervised-steps"):  # the latter: the equal-total-steps control
                for m in runs:
                    both = [*runs[m].values(), *runs.get(ref, {}).values()]
                    if m not in ("supervised", ref) and ref in runs and all((r / "predictions_test.csv").exists()
                                                                            for r in both):
                        entry[f"{m}_minus_{ref}"] = paired(runs[m], runs[ref])
            summary[f"{ds}/{frac:g}"] = entry
    return summary


def _diff_cells(d: dict | None) -> tuple[str, str]:
    """(seed-level cell, case-level cell) of a paired difference, or dashes."""
    if not d:
        return "—", "—"
    sl, cl = d["seed_level"], d["case_level"]
    lo, hi = sl["t_ci"]
    seed_cell = (f"{sl['mean_diff']:+.3f} [{lo:+.3f}, {hi:+.3f}] ({sl['sign']['a_better']}/{sl['sign']['b_better']})"
                 if lo is not None and np.isfinite(lo) else f"{sl['mean_diff']:+.3f}")
    return seed_cell, f"{cl['diff']:+.3f} [{cl['ci'][0]:+.3f}, {cl['ci'][1]:+.3f}]"


def markdown(results: dict) -> str:
    out = ["| dataset | labels | method (augment) | mean AUC (mean ± sd, n seeds) | − supervised, seed level: mean "
           "[95 % t CI] (better/worse seeds) | − supervised, case level [95 % CI] |", "|---|---|---|---|---|---|"]
    for key, e in results.get("summary", {}).items():
        ds, frac = key.split("/")
        for m in results.get("methods", METHODS):
            if m not in e:
                continue
            a = e[m]["auc_mean"]
            cell = f"{a['mean']:.3f} ± {a['sd'] or 0:.3f} ({e[m]['n_seeds']})" if a.get("mean") is not None else "n/a"
            seed_cell, case_cell = _diff_cells(e.get(f"{m}_minus_supervised"))
            out.append(f"| {ds} | {float(frac):.0%} | {m} ({e[m]['augment']}) | {cell} | {seed_cell} | {case_cell} |")
    control = [(k, m, e[f"{m}_minus_supervised-steps"]) for k, e in results.get("summary", {}).items()
               for m in results.get("methods", METHODS) if f"{m}_minus_supervised-steps" in e]
    if control:
        out += ["", "Against supervised trained for M1's total optimiser steps (``supervised-steps``):", "",
                "| dataset | labels | method | − supervised-steps, seed level | case level [95 % CI] |",
                "|---|---|---|---|---|"]
        for k, m, d in control:
            ds, frac = k.split("/")
            out.append(f"| {ds} | {float(frac):.0%} | {m} | " + " | ".join(_diff_cells(d)) + " |")
    val = [(k, m, e[m]) for k, e in results.get("summary", {}).items()
           for m in results.get("methods", METHODS) if m in e]
    if val:
        out += ["", "Validation value of the checkpoint each run selected (validation mean AUC; mean ± sd over "
                "seeds), optimiser steps per stage, settings tried:", "",
                "| dataset | labels | method | validation mean AUC | steps | settings tried |",
                "|---|---|---|---|---|---|"]
        for k, m, e in val:
            ds, frac = k.split("/")
            v = e["val_best"]
            steps = ", ".join(f"{s}: {n}" for s, n in (e.get("steps") or {}).items() if s != "source")
            out.append(f"| {ds} | {float(frac):.0%} | {m} | {v['mean']:.3f} ± {v['sd'] or 0:.3f} | {steps} | "
                       f"{e['settings_tried']} |")
    loc = [(k, e) for k, e in results.get("summary", {}).items() if k.startswith("nih/")]
    if any("loc_iou>0.1" in (e.get("supervised") or {}) for _, e in loc):
        out += ["", "NIH localization on the boxed test images (community Mass/Nodule boxes; mean ± sd over seeds):",
                "", "| labels | method | IoU>0.1 | IoU>0.3 |", "|---|---|---|---|"]
        for k, e in loc:
            for m in results.get("methods", METHODS):
                if "loc_iou>0.1" in (e.get(m) or {}):
                    a, b = e[m]["loc_iou>0.1"], e[m]["loc_iou>0.3"]
                    out.append(f"| {float(k.split('/')[1]):.0%} | {m} | {a['mean']:.3f} ± {a['sd'] or 0:.3f} | "
                               f"{b['mean']:.3f} ± {b['sd'] or 0:.3f} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--pretrain-epochs", type=int, default=None, help="M1/M3 label-free epochs (default E/2)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.1])
    ap.add_argument("--augment", choices=("off", "on", "choose"), default="off",
                    help="augmentation for every method, or chosen per method on validation (default off)")
    ap.add_argument("--out-dir", default=str(REPO / "benchmarks" / "out" / "real_data_seeds"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "real_data_seeds.json"))
    ap.add_argument("--max-images", nargs="*", default=[], metavar="DATASET=N")
    ap.add_argument("--methods", nargs="+", default=list(METHODS),
                    choices=["supervised", "M1", "M3", "supervised-steps", *VARIANTS],
                    help="supervised, M1 (radiomics-contrastive), M3 (SimCLR) and BYOP variants (VARIANTS)")
    ap.add_argument("--tables-only", action="store_true")
    args = ap.parse_args(argv)
    if args.tables_only:
        print(markdown(json.loads(Path(args.out).read_text())))
        return 0
    out_dir = Path(args.out_dir)
    limits = {k: int(v) for k, v in (item.split("=", 1) for item in args.max_images)}
    results = {"machine": machine(), "epochs": args.epochs, "pretrain_epochs": args.pretrain_epochs,
               "seeds": args.seeds, "fractions": args.fractions, "augment": args.augment,
               "checkpoint_rule": CHECKPOINT_RULE, "datasets": [], "byop_options": full_defaults()[0],
               "evaluation_protocol": full_defaults()[1], "methods": args.methods,
               "variants": {m: VARIANTS[m] for m in args.methods if m in VARIANTS}, "runs": {}}
    if Path(args.out).exists():
        old = json.loads(Path(args.out).read_text())
        if old.get("augment") is not None:  # results of the equal-budget protocol (older files lack the key)
            results["runs"] = old.get("runs", {})
    augs = ["off", "on"] if args.augment == "choose" else [args.augment]
    for ds in args.datasets:
        if not prepare_dataset(ds, limits, out_dir):
            continue
        results["datasets"].append(ds)
        for frac in args.fractions:
            for seed in args.seeds:
                for method in args.methods:
                    for aug in augs:
                        key = run_key(ds, method, frac, aug, seed)
                        run = run_dir(out_dir, ds, method, frac, aug, seed)
                        fresh = not (run / "wall_time_s.txt").exists()
                        epochs = args.epochs
                        if method == "supervised-steps":
                            refs = [run_dir(out_dir, ds, m, frac, aug, seed) for m in ("supervised", "M1")]
                            if not all((r / "wall_time_s.txt").exists() for r in refs):
                                raise SystemExit("supervised-steps needs the same seed's supervised and M1 runs: "
                                                 "list them before it in --methods")
                            epochs = steps_matched_epochs(*refs, args.epochs)
                        cfg = config(ds, method, frac, epochs, str(out_dir / "cache"), seed, aug == "on",
                                     args.pretrain_epochs)
                        h = headline(run_config(cfg, run))
                        h.update(selected_checkpoint(run))
                        h["steps"] = optimiser_steps(run)
                        h["epochs"] = epochs
                        h["commit"] = code_version() if fresh else (results["runs"].get(key) or {}).get("commit", "?")
                        results["runs"][key] = h
                        results["summary"] = summarise(results, out_dir, args.seeds)
                        Path(args.out).write_text(json.dumps(results, indent=1, default=float))
                        print(f"{key}: validation {h['val_best'] or float('nan'):.3f} (selected checkpoint), test "
                              f"mean AUC {h['auc']['mean']:.3f} ({h['wall_time_s']:.0f} s)", flush=True)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
