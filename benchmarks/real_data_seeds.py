"""Real data, several training seeds: supervised vs BYOP (the shipped seed 001 defaults) at 100 % and 10 % labels.

    .venv/bin/python benchmarks/real_data_seeds.py [--seeds 0 1 2] [--epochs 6] [--datasets kermany nih]
                                                   [--fractions 1.0 0.1] [--max-images kermany=1500]

Data, split, encoder and budget as ``benchmarks/real_data.py`` (NIH ChestX-ray14 + the community boxes with the 8
findings of seed 001; a seeded patient-wise ~1,500-image subset of Kermany; one patient-wise, label-stratified
70/10/20 split, seed 0, for every run; ResNet-18 width 0.5 at 128 px, Adam 1e-3, batch 64, E epochs). ``supervised``
is BCE on the image; ``byop`` is ``configs/seed001/recommended.yaml``'s BYOP options (the shipped defaults), the
contrastive loop after E/3 classification epochs. Both are evaluated with the full config's evaluation protocol
(Grad-CAM layer and CAM-threshold rule), so they differ only in how they were trained. Every (dataset, fraction,
method) runs once per training seed (the ``seed`` key: initialisation, sample order).

Reported: mean +- sd over seeds of the mean test AUC (and of NIH's localization accuracy on its boxed test images);
the paired difference BYOP - supervised, per seed (mean +- sd) and on the seed-averaged probabilities with a 95 %
patient-bootstrap interval. Writes ``benchmarks/results/real_data_seeds.json``; ``--tables-only`` reprints it.
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

from radclr.engine.config import resolve_config  # noqa: E402
from radclr.evaluation.bootstrap import compare_models  # noqa: E402

METHODS = ("supervised", "byop")
# BYOP variants for exploration on VALIDATION data (each: full.yaml's BYOP options + these); chosen with --methods,
# compared by the validation value of the checkpoint each run selected (``val_best``) before any test number
VARIANTS = {"byop": {}, "byop-lam0.1": {"lambda": 0.1}, "byop-ramp": {"lambda_warmup_epochs": 3}}


def full_defaults() -> tuple[dict, dict]:
    """(BYOP stage options, evaluation protocol) of the shipped configs/seed001/recommended.yaml (the options
    full.yaml had before Table 3's configs were made a faithful ablation: full.yaml is now focal loss)."""
    cfg = resolve_config(REPO / "configs" / "seed001" / "recommended.yaml")
    skip = ("name", "method", "epochs", "classifier_warmup_epochs", "contrastive_start_epoch")
    stage = {k: v for k, v in cfg["stages"][0].items() if k not in skip}
    return stage, {k: cfg["evaluation"][k] for k in ("cam_threshold", "cam_layer")}


def config(dataset: str, method: str, fraction: float, epochs: int, cache: str, seed: int) -> dict:
    d = DATASETS[dataset]
    byop_options, protocol = full_defaults()
    if method == "supervised":
        stage = {"name": "train", "method": "supervised", "loss": "bce"}
    else:
        stage = {"name": "train", "method": "byop", **byop_options, "classifier_warmup_epochs": 1,
                 "contrastive_start_epoch": max(epochs // 3, 1), **VARIANTS[method]}
    return {"name": f"{dataset}-{method}-{fraction:g}-seed{seed}", "seed": seed,
            "data": {"path": d["path"], "findings": d["findings"], "image_size": 128, "cache_dir": cache,
                     "follow_links": True,  # the Kermany subset links its images folder to the original
                     "label_fraction": fraction, "split": {"val": 0.1, "test": 0.2, "seed": 0}},
            "radiomics": {"region": "box" if method == "supervised" else "cam"},
            "model": {"encoder": "resnet18", "encoder_options": {"width": 0.5}},
            "trainer": {"epochs": epochs, "batch_size": 64, "progress": False, "augment": {"enabled": False},
                        "optimizer": {"name": "adam", "lr": 1e-3}},
            "evaluation": {"n_boot": 1000, **protocol},
            "stages": [stage]}


def selected_checkpoint(run: Path) -> dict:
    """The validation value (the method's monitor: mean AUC) and epoch of the checkpoint the run selected."""
    import torch

    best = torch.load(run / "checkpoints" / "best.pt", map_location="cpu", weights_only=False).get("best") or {}
    return {"val_best": best.get("value"), "best_epoch": best.get("epoch")}


def _predictions(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "predictions_test.csv", dtype={"image_id": str, "patient_id": str})


def paired(runs_a: list[Path], runs_b: list[Path], n_boot: int = 1000) -> dict:
    """Mean-AUC difference a - b: per seed pair, and on the seed-averaged probabilities (patient bootstrap)."""
    pa, pb = [_predictions(r) for r in runs_a], [_predictions(r) for r in runs_b]
    base = pa[0]
    findings = [c[2:] for c in base.columns if c.startswith("p_")]
    y = base[[f"y_{f}" for f in findings]].to_numpy(dtype=float)
    cols = [f"p_{f}" for f in findings]

    def aligned(p):
        return p.set_index("image_id").loc[base["image_id"], cols].to_numpy()

    per_seed = []
    for a, b in zip(pa, pb):
        r = compare_models(y, aligned(a), aligned(b), findings, patient_ids=base["patient_id"].to_numpy(), n_boot=0,
                           names=("a", "b"))
        per_seed.append(float(r["mean"]["diff"]))
    avg = compare_models(y, np.mean([aligned(p) for p in pa], axis=0), np.mean([aligned(p) for p in pb], axis=0),
                         findings, patient_ids=base["patient_id"].to_numpy(), n_boot=n_boot, names=("a", "b"))
    m = avg["mean"]
    return {"per_seed": per_seed, "per_seed_mean": float(np.mean(per_seed)),
            "per_seed_sd": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None,
            "seed_averaged": {"diff": m["diff"], "ci": [m["ci_low"], m["ci_high"]]}}


def _msd(values) -> dict:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    return {"mean": float(v.mean()) if v.size else None, "sd": float(v.std(ddof=1)) if v.size > 1 else None,
            "values": [round(float(x), 4) for x in v]}


def summarise(results: dict, out_dir: Path, seeds: list[int]) -> dict:
    summary = {}
    for ds in results.get("datasets", []):
        for frac in results["fractions"]:
            entry = {}
            methods = results.get("methods", METHODS)
            for method in methods:
                hs = [results["runs"].get(f"{ds}/{method}/{frac:g}/seed{s}") for s in seeds]
                hs = [h for h in hs if h]
                if not hs:
                    continue
                e = {"auc_mean": _msd([h["auc"]["mean"] for h in hs]), "n_seeds": len(hs)}
                if all(h.get("val_best") is not None for h in hs):
                    e["val_best"] = _msd([h["val_best"] for h in hs])
                if ds == "nih" and all(h.get("iou_accuracy") for h in hs):
                    for t in ("0.1", "0.3"):
                        e[f"loc_iou>{t}"] = _msd([h["iou_accuracy"][t]["mean"] for h in hs])
                entry[method] = e
            runs = {m: [out_dir / ds / f"{m}-{frac:g}-seed{s}" for s in seeds] for m in methods}
            for m in methods:
                if m != "supervised" and all((r / "predictions_test.csv").exists()
                                             for r in runs[m] + runs.get("supervised", [])) and "supervised" in runs:
                    entry[f"{m}_minus_supervised"] = paired(runs[m], runs["supervised"])
            summary[f"{ds}/{frac:g}"] = entry
    return summary


def markdown(results: dict) -> str:
    out = ["| dataset | labels | supervised mean AUC (mean ± sd, n seeds) | BYOP mean AUC | BYOP − supervised: "
           "per seed (mean ± sd) | on seed-averaged probabilities [95% CI] |", "|---|---|---|---|---|---|"]
    for key, e in results.get("summary", {}).items():
        ds, frac = key.split("/")

        def cell(m):
            a = (e.get(m) or {}).get("auc_mean") or {}
            return f"{a['mean']:.3f} ± {a['sd'] or 0:.3f} ({e[m]['n_seeds']})" if a.get("mean") is not None else "n/a"
        d = e.get("byop_minus_supervised") or {}
        sa = d.get("seed_averaged") or {}
        out.append(f"| {ds} | {float(frac):.0%} | {cell('supervised')} | {cell('byop')} | "
                   + (f"{d['per_seed_mean']:+.3f} ± {d['per_seed_sd'] or 0:.3f} | {sa['diff']:+.3f} "
                      f"[{sa['ci'][0]:+.3f}, {sa['ci'][1]:+.3f}] |" if d else "n/a | n/a |"))
    val = [(k, m, e[m]["val_best"]) for k, e in results.get("summary", {}).items()
           for m in results.get("methods", METHODS) if "val_best" in (e.get(m) or {})]
    if val:
        out += ["", "Validation value of the checkpoint each run selected (best.pt: validation mean AUC; mean ± sd "
                "over seeds):", "", "| dataset | labels | method | validation mean AUC |", "|---|---|---|---|"]
        for k, m, v in val:
            ds, frac = k.split("/")
            out.append(f"| {ds} | {float(frac):.0%} | {m} | {v['mean']:.3f} ± {v['sd'] or 0:.3f} |")
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
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.1])
    ap.add_argument("--out-dir", default=str(REPO / "benchmarks" / "out" / "real_data_seeds"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "real_data_seeds.json"))
    ap.add_argument("--max-images", nargs="*", default=[], metavar="DATASET=N")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=["supervised", *VARIANTS],
                    help="supervised and BYOP variants (VARIANTS; default: supervised and the shipped byop)")
    ap.add_argument("--tables-only", action="store_true")
    args = ap.parse_args(argv)
    if args.tables_only:
        print(markdown(json.loads(Path(args.out).read_text())))
        return 0
    out_dir = Path(args.out_dir)
    limits = {k: int(v) for k, v in (item.split("=", 1) for item in args.max_images)}
    results = {"machine": machine(), "epochs": args.epochs, "seeds": args.seeds, "fractions": args.fractions,
               "datasets": [], "byop_options": full_defaults()[0], "evaluation_protocol": full_defaults()[1],
               "methods": args.methods, "variants": {m: VARIANTS[m] for m in args.methods if m in VARIANTS},
               "runs": {}}
    if Path(args.out).exists():
        results["runs"] = json.loads(Path(args.out).read_text()).get("runs", {})
    for ds in args.datasets:
        if not prepare_dataset(ds, limits, out_dir):
            continue
        results["datasets"].append(ds)
        for frac in args.fractions:
            for seed in args.seeds:
                for method in args.methods:
                    key = f"{ds}/{method}/{frac:g}/seed{seed}"
                    run = out_dir / ds / f"{method}-{frac:g}-seed{seed}"
                    fresh = not (run / "wall_time_s.txt").exists()
                    m = run_config(config(ds, method, frac, args.epochs, str(out_dir / "cache"), seed), run)
                    h = headline(m)
                    h.update(selected_checkpoint(run))
                    h["commit"] = code_version() if fresh else (results["runs"].get(key) or {}).get("commit", "?")
                    results["runs"][key] = h
                    results["summary"] = summarise(results, out_dir, args.seeds)
                    Path(args.out).write_text(json.dumps(results, indent=1, default=float))
                    print(f"{key}: validation {h['val_best'] or float('nan'):.3f} (selected checkpoint), test mean AUC "
                          f"{h['auc']['mean']:.3f} ({h['wall_time_s']:.0f} s)", flush=True)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
