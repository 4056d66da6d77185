"""Real-data benchmark: supervised vs M1 vs M3 vs M2 at 100 % and 10 % labels on Kermany and NIH (issue 6).

    .venv/bin/python benchmarks/real_data.py [--epochs 6] [--datasets kermany nih] [--fractions 1.0 0.1]
                                             [--max-images kermany=1500]

Data (``../shared/data``): ``kermany_pediatric`` (5,216 images; findings Pneumonia, Bacterial, Viral) and
``nih_cxr14`` + ``nih_community_boxes`` combined (1,441 images; the 8 findings of seed 001; 273 weak Mass/Nodule
boxes on 46 images). ``--max-images DATASET=N`` trains on a seeded, patient-wise random subset of about N images of
a folder-format dataset (whole patients, written to OUT_DIR/subsets/, images linked, not copied), to fit the
benchmark into a CPU budget. One patient-wise, label-stratified 70/10/20 split per dataset (seed 0), identical for every
method, so all methods are tested on the same images.

Equal budget: every method gets the same number of epochs E (one epoch = one pass over the images a stage
uses): supervised E epochs; M1 (seed 000 radiomics-contrastive) and M3 (seed 003 SimCLR) E/2 epochs of
label-free pretraining on all training images + E/2 epochs of fine-tuning on the labelled ones; M2 (seed 001
BYOP, Full: focal + the Grad-CAM->box->radiomics loop; contrastive after E/3 classification epochs) E epochs,
semi-supervised. On NIH, M2-Base (BCE, fixed-region radiomics) too (seed 001 Table 3). At 10 % labels the
labelled subset is whole patients, nested in the 100 % set. Same encoder for all (ResNet-18 width 0.5 at 128 px,
sized for this 2-core CPU), Adam 1e-3 (pretraining 3e-4), batch 64.

Reports test AUC per finding and mean with 95 % patient-bootstrap CIs, the paired bootstrap difference of each
method's mean AUC against the supervised baseline at the same label fraction (does it beat the baseline?),
localization on NIH's boxed test images, and wall time. Writes ``benchmarks/results/real_data.json``.
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

from common import SHARED, fmt_ci, headline, machine, run_config  # noqa: E402

NIH8 = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax"]
DATASETS = {
    "kermany": {"path": str(SHARED / "kermany_pediatric"), "findings": None},
    "nih": {"path": [str(SHARED / "nih_cxr14"), str(SHARED / "nih_community_boxes")], "findings": NIH8},
}


def stages(method: str, epochs: int) -> list[dict]:
    half = max(epochs // 2, 1)
    pre = {"optimizer": {"name": "adam", "lr": 3e-4}, "epochs": half}
    if method == "supervised":
        return [{"name": "train", "method": "supervised", "loss": "bce", "epochs": epochs}]
    if method == "M1":
        return [{"name": "pretrain", "method": "radiomics_contrastive", **pre},
                {"name": "finetune", "method": "supervised", "head_input": "projection", "epochs": half}]
    if method == "M3":
        return [{"name": "pretrain", "method": "simclr", "temperature": 0.5, **pre},
                {"name": "finetune", "method": "supervised", "epochs": half}]
    byop = {"name": "train", "method": "byop", "epochs": epochs, "classifier_warmup_epochs": 1,
            "contrastive_start_epoch": max(epochs // 3, 1), "cam_threshold": "auto"}
    if method == "M2-full":
        return [{**byop, "loss": "focal", "byop": True}]
    if method == "M2-base":
        return [{**byop, "loss": "bce", "byop": False}]
    raise ValueError(method)


def config(dataset: str, method: str, fraction: float, epochs: int, cache: str) -> dict:
    d = DATASETS[dataset]
    region = "cam" if method.startswith("M2") else "box"
    return {"name": f"{dataset}-{method}-{fraction:g}", "seed": 0,
            "data": {"path": d["path"], "findings": d["findings"], "image_size": 128, "cache_dir": cache,
                     "follow_links": True,  # the Kermany subset links its images folder to the original
                     "label_fraction": fraction, "split": {"val": 0.1, "test": 0.2, "seed": 0}},
            "radiomics": {"region": region},
            "model": {"encoder": "resnet18", "encoder_options": {"width": 0.5}},
            "trainer": {"epochs": epochs, "batch_size": 64, "progress": False,
                        "augment": {"enabled": method != "M2-full" and method != "M2-base"},
                        "optimizer": {"name": "adam", "lr": 1e-3}},
            "evaluation": {"n_boot": 1000},
            "stages": stages(method, epochs)}


def code_version() -> str:
    """``git describe``-style id of the radclr code in this checkout (``+dirty`` with uncommitted changes)."""
    import subprocess

    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "radclr"], cwd=REPO, capture_output=True,
                               text=True, check=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def patient_subset(root: Path, n_images: int, dest: Path, seed: int = 0) -> Path:
    """A folder-format copy of ``root`` holding whole, randomly chosen patients (seeded) up to ~``n_images`` images:
    ``labels.csv`` filtered, ``images/`` a symlink to the original folder (unlisted images are ignored)."""
    labels = pd.read_csv(root / "labels.csv", dtype={"patient_id": str})
    if len(labels) <= n_images:
        return root
    rng = np.random.default_rng(seed)
    counts = labels.groupby("patient_id").size()
    order = rng.permutation(counts.index.to_numpy())
    keep = order[: int(np.searchsorted(np.cumsum(counts.loc[order].to_numpy()), n_images, side="right")) + 1]
    sub = labels[labels["patient_id"].isin(set(keep))]
    dest.mkdir(parents=True, exist_ok=True)
    sub.to_csv(dest / "labels.csv", index=False)
    if not (dest / "images").exists():
        (dest / "images").symlink_to((root / "images").resolve(), target_is_directory=True)
    return dest


def paired_vs_baseline(run: Path, baseline: Path, n_boot: int = 1000) -> dict:
    """Mean-AUC difference (method - supervised) on the same test images, patient-paired bootstrap."""
    from radclr.evaluation.bootstrap import compare_models

    a = pd.read_csv(run / "predictions_test.csv", dtype={"image_id": str, "patient_id": str})
    b = pd.read_csv(baseline / "predictions_test.csv", dtype={"image_id": str, "patient_id": str})
    b = b.set_index("image_id").loc[a["image_id"]].reset_index()
    findings = [c[2:] for c in a.columns if c.startswith("p_")]
    y = a[[f"y_{f}" for f in findings]].to_numpy(dtype=float)
    res = compare_models(y, a[[f"p_{f}" for f in findings]].to_numpy(), b[[f"p_{f}" for f in findings]].to_numpy(),
                         findings, patient_ids=a["patient_id"].to_numpy(), n_boot=n_boot, names=("method", "supervised"))
    return res


def prepare_dataset(ds: str, limits: dict, out_dir: Path) -> bool:
    """Make ``DATASETS[ds]`` ready to train on; False (printed) when its data is absent. With ``limits[ds]``
    (``--max-images``) a seeded patient-wise subset of about that many images replaces its path."""
    paths = DATASETS[ds]["path"]
    if not all(Path(p).exists() for p in ([paths] if isinstance(paths, str) else paths)):
        print(f"skip {ds}: data not found under {SHARED}")
        return False
    if ds in limits:
        if not isinstance(paths, str):
            raise SystemExit(f"--max-images: {ds} combines several folders; subsets are for one folder only")
        sub = patient_subset(Path(paths), limits[ds], out_dir / "subsets" / f"{ds}-{limits[ds]}")
        DATASETS[ds] = {**DATASETS[ds], "path": str(sub)}
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.1])
    ap.add_argument("--methods", nargs="+", default=["supervised", "M1", "M3", "M2-full", "M2-base"])
    ap.add_argument("--out-dir", default=str(REPO / "benchmarks" / "out" / "real_data"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "real_data.json"))
    ap.add_argument("--max-images", nargs="*", default=[], metavar="DATASET=N",
                    help="train on a seeded patient-wise subset of about N images of DATASET (folder format only)")
    ap.add_argument("--tables-only", action="store_true", help="print the Markdown tables of --out and exit")
    args = ap.parse_args(argv)
    if args.tables_only:
        print(markdown(json.loads(Path(args.out).read_text())))
        return 0
    out_dir = Path(args.out_dir)
    limits = {k: int(v) for k, v in (item.split("=", 1) for item in args.max_images)}
    results = {"machine": machine(), "epochs": args.epochs, "runs": {}}
    if Path(args.out).exists():
        results["runs"] = json.loads(Path(args.out).read_text()).get("runs", {})
    for ds in args.datasets:
        if not prepare_dataset(ds, limits, out_dir):
            continue
        if ds in limits:
            results.setdefault("subsets", {})[ds] = {"max_images": limits[ds], "images": int(len(
                pd.read_csv(Path(DATASETS[ds]["path"]) / "labels.csv")))}
        for frac in args.fractions:
            for method in args.methods:
                if method == "M2-base" and ds != "nih":
                    continue
                key = f"{ds}/{method}/{frac:g}"
                run = out_dir / ds / f"{method}-{frac:g}"
                fresh = not (run / "wall_time_s.txt").exists()
                m = run_config(config(ds, method, frac, args.epochs, str(out_dir / "cache")), run)
                h = headline(m)
                # the code a run was trained with: this checkout for a new run, else what the JSON recorded
                h["commit"] = code_version() if fresh else (results["runs"].get(key) or {}).get("commit", "unknown")
                base = out_dir / ds / f"supervised-{frac:g}"
                if method != "supervised" and (base / "predictions_test.csv").exists():
                    h["vs_supervised"] = paired_vs_baseline(run, base)
                results["runs"][key] = h
                Path(args.out).write_text(json.dumps(results, indent=2, default=float))
                print(f"{key}: mean AUC {fmt_ci(h['auc']['mean'], h['auc_ci']['mean'])}  ({h['wall_time_s']:.0f} s)",
                      flush=True)
    print(markdown(results))
    return 0


def markdown(results: dict) -> str:
    """The README tables: every run's mean AUC and paired difference vs supervised; NIH per finding, Base vs
    Full (seed 001 Table 3 setting); NIH localization on the boxed test images."""
    runs = results["runs"]
    out = ["| dataset | labels | method | mean test AUC [95% CI] | diff vs supervised [95% CI] | wall s | code |",
           "|---|---|---|---|---|---|---|"]
    for key, h in runs.items():
        ds, method, frac = key.split("/")
        d = (h.get("vs_supervised") or {}).get("mean") or {}
        diff = fmt_ci(d.get("diff"), [d.get("ci_low"), d.get("ci_high")]) if d else "-"
        out.append(f"| {ds} | {float(frac):.0%} | {method} | {fmt_ci(h['auc']['mean'], h['auc_ci']['mean'])} | "
                   f"{diff} | {h['wall_time_s']:.0f} | {h.get('commit', '?')} |")
    for frac in ("1", "0.1"):
        base, full = runs.get(f"nih/M2-base/{frac}"), runs.get(f"nih/M2-full/{frac}")
        if not (base and full):
            continue
        out += ["", f"NIH, {float(frac):.0%} labels, test AUC per finding [95% CI], M2 Base vs Full:", "",
                "| finding | Base (BCE, fixed regions) | Full (focal + BYOP loop) |", "|---|---|---|"]
        for f in NIH8 + ["mean"]:
            out.append(f"| {f} | {fmt_ci(base['auc'].get(f), base['auc_ci'].get(f))} | "
                       f"{fmt_ci(full['auc'].get(f), full['auc_ci'].get(f))} |")
    loc_rows = []
    for key, h in runs.items():
        acc = (h.get("iou_accuracy") or {})
        if key.startswith("nih/") and acc:
            ci = (h.get("iou_accuracy_ci") or {})
            def cell(t):
                m = (ci.get(t) or {}).get("mean") or {}
                return fmt_ci(acc[t]["mean"], [m.get("ci_low"), m.get("ci_high")]) if acc.get(t) else "n/a"
            cells = [cell("0.1"), cell("0.3")]
            loc_rows.append(f"| {key} | {cells[0]} | {cells[1]} |")
    if loc_rows:
        base = next((h.get("baselines") for k, h in runs.items() if k.startswith("nih/") and h.get("baselines")), None) or {}
        out += ["", "NIH localization (boxed test images; mean over the boxed findings):", "",
                "| run | T(IoU)=0.1 | T(IoU)=0.3 |", "|---|---|---|", *loc_rows]
        for name in ("centre_box", "whole_image"):
            b = base.get(name) or {}
            if b:
                out.append(f"| {name.replace('_', '-')} baseline | {b.get('0.1', {}).get('mean', 0):.3f} | "
                           f"{b.get('0.3', {}).get('mean', 0):.3f} |")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
