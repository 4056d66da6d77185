"""Issue 18's proof: time and peak memory of every data-side stage on a simulated NIH ChestX-ray14 layout of N images.

    python benchmarks/scale.py [--sizes 1000,10000,112120] [--stages load,split,prepare1,prepareall,radiomics,
                               train,evaluate,report,predict] [--root DIR] [--px 64] [--steps 20] [--jobs N]
                               [--out benchmarks/results/scale.json]

The layout (:func:`write_layout`) is NIH's own: ``Data_Entry_2017_v2020.csv`` (N rows; ~3.6 images per patient as
in the release's 112,120 / 30,805; findings drawn independently with NIH's prevalences, else "No Finding"),
``BBox_List_2017.csv`` (NIH's 984 boxes per 112,120 images, scaled to N, in the released 1024 px space),
``train_val_list.txt`` / ``test_list.txt`` and ``images_001 .. images_012/images/<patient>_<k>.png``: small
synthetic PNGs (``--px``, default 64) under distinct names, so 112 k of them fit the disk (~0.5 GB) and the time.
A layout is written once under ``--root/nih-<N>-<px>px`` and reused by later calls (``.complete`` marker).

Each stage runs in its own Python process (``--worker``), so its peak memory (``ru_maxrss``: the process and,
separately, its child processes) is its own; ``baseline_rss_mb`` is the process after its imports, before the
stage. Stages, in order (a later one needs the earlier ones' files, e.g. ``evaluate`` the trained run):

* ``load`` -- :func:`radclr.data.load_dataset` + :func:`radclr.data.validate.validate_dataset` (reads every image);
* ``split`` -- patient-wise stratified split (val 0.1, test 0.2) + a 10 % label fraction;
* ``prepare1`` / ``prepareall`` -- the image store built from scratch with 1 process / every core
  (:func:`radclr.training_data.prepare.prepare_shared_data`, as ``radclr data prepare`` does);
* ``radiomics`` -- the fixed-region radiomics of every image (region ``box``: boxes where annotated, else the whole
  image -- seed 000's regime, every row computed), from scratch, as one cached array;
* ``train`` -- one epoch of a supervised ResNet-18 (width 0.25) whose labelled images are capped to ``--steps``
  batches of 64 (``data.label_fraction``); validation on the whole validation split; store + split mapped;
* ``evaluate`` -- :func:`radclr.runs.evaluate.evaluate_run` with 1,000 bootstrap resamples on the test split;
* ``report`` -- :func:`radclr.report.write_report` (CPU);
* ``predict`` -- the first :func:`radclr.predict.predict` call on one image (loads the run, builds the radiomics
  reference population).

Results are merged into ``--out`` (keyed by N and stage; other sizes' entries are kept), with ``ms_per_image``
and, where both sizes were measured, the growth of the per-image cost from 10,000 to 112,120 images (the issue's
target: at most 1.5x). ``--stages`` and ``--sizes`` select; a failing stage is recorded with its error and the
later ones still run when they can.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ("load", "split", "prepare1", "prepareall", "radiomics", "train", "evaluate", "report", "predict")
NIH_IMAGES, NIH_PATIENTS, NIH_BOXES = 112_120, 30_805, 984
# NIH ChestX-ray14 label counts (Data_Entry_2017): prevalences of the simulated findings
NIH_COUNTS = {"Atelectasis": 11559, "Cardiomegaly": 2776, "Effusion": 13317, "Infiltration": 19894, "Mass": 5782,
              "Nodule": 6331, "Pneumonia": 1431, "Pneumothorax": 5302, "Consolidation": 4667, "Edema": 2303,
              "Emphysema": 2516, "Fibrosis": 1686, "Pleural_Thickening": 3385, "Hernia": 227}
BOXED = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax"]
BATCH = 64


# --------------------------------------------------------------------------------------------------------------
# the simulated layout
# --------------------------------------------------------------------------------------------------------------
def write_layout(root: Path, n: int, px: int = 64, seed: int = 0) -> Path:
    """An NIH ChestX-ray14 folder of ``n`` synthetic ``px`` x ``px`` PNGs (module docstring); reused if complete."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    root = Path(root)
    marker = root / ".complete"
    if marker.exists() and json.loads(marker.read_text()) == {"n": n, "px": px, "seed": seed}:
        return root
    if root.exists():
        shutil.rmtree(root)
    rng = np.random.default_rng(seed)
    n_pat = max(1, round(n * NIH_PATIENTS / NIH_IMAGES))
    patient = np.sort(rng.integers(0, n_pat, size=n))
    names, follow = [], []
    seen: dict[int, int] = {}
    for p in patient:
        k = seen.get(int(p), 0)
        seen[int(p)] = k + 1
        names.append(f"{int(p) + 1:08d}_{k:03d}.png")
        follow.append(k)
    findings = list(NIH_COUNTS)
    prev = np.array([NIH_COUNTS[f] / NIH_IMAGES for f in findings])
    hot = rng.random((n, len(findings))) < prev
    labels = ["|".join(f for f, h in zip(findings, row) if h) or "No Finding" for row in hot]
    w = rng.integers(2000, 3000, size=n)
    entries = pd.DataFrame({
        "Image Index": names, "Finding Labels": labels, "Follow-up #": follow, "Patient ID": patient + 1,
        "Patient Age": rng.integers(20, 90, size=n), "Patient Gender": rng.choice(["M", "F"], size=n),
        "View Position": rng.choice(["PA", "AP"], size=n), "OriginalImage[Width": w, "Height]": w,
        "OriginalImagePixelSpacing[x": 0.143, "y]": 0.143})
    root.mkdir(parents=True)
    entries.to_csv(root / "Data_Entry_2017_v2020.csv", index=False)
    # boxes: NIH's density, on images that carry the boxed finding, in the released 1024 px space
    n_box = max(10, round(n * NIH_BOXES / NIH_IMAGES))
    cand = [(i, f) for f in BOXED for i in np.flatnonzero(hot[:, findings.index(f)])]
    pick = rng.choice(len(cand), size=min(n_box, len(cand)), replace=False)
    rows = []
    for j in pick:
        i, f = cand[j]
        bw, bh = rng.uniform(60, 400, size=2)
        x, y = rng.uniform(50, 1024 - 50 - bw), rng.uniform(50, 1024 - 50 - bh)
        rows.append((names[i], "Infiltrate" if f == "Infiltration" else f, x, y, bw, bh, "", "", ""))
    pd.DataFrame(rows, columns=["Image Index", "Finding Label", "Bbox [x", "y", "w", "h]", "Unnamed: 6",
                                "Unnamed: 7", "Unnamed: 8"]).to_csv(root / "BBox_List_2017.csv", index=False)
    test_pat = set(rng.choice(n_pat, size=max(1, n_pat // 4), replace=False).tolist())
    is_test = np.array([int(p) in test_pat for p in patient])
    (root / "train_val_list.txt").write_text("\n".join(np.asarray(names)[~is_test]) + "\n")
    (root / "test_list.txt").write_text("\n".join(np.asarray(names)[is_test]) + "\n")
    # images: a smooth chest-like field + noise, different in every file
    yy, xx = np.mgrid[0:px, 0:px] / px
    base = 120 + 60 * np.cos(3 * (xx - 0.5)) * np.cos(2.5 * (yy - 0.5))
    per_folder = -(-n // 12)
    for i, name in enumerate(names):
        folder = root / f"images_{i // per_folder + 1:03d}" / "images"
        if i % per_folder == 0:
            folder.mkdir(parents=True, exist_ok=True)
        img = base + rng.normal(0, 12, size=(px, px)) + 30 * np.sin(xx * (3 + i % 7) + i)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / name, compress_level=1)
    marker.write_text(json.dumps({"n": n, "px": px, "seed": seed}))
    return root


# --------------------------------------------------------------------------------------------------------------
# stages (each in its own process: see main)
# --------------------------------------------------------------------------------------------------------------
def stage_config(layout: Path, work: Path, px: int, steps: int) -> dict:
    """The run configuration every stage shares (cache under ``work``)."""
    from radclr.engine.config import resolve_config

    n = len((layout / "Data_Entry_2017_v2020.csv").read_text().splitlines()) - 1
    frac = min(1.0, steps * BATCH / max(1.0, 0.7 * n))
    return resolve_config(base={
        "name": "scale",
        "data": {"path": str(layout), "image_size": px, "cache_dir": str(work / "cache"), "label_fraction": frac,
                 "split": {"val": 0.1, "test": 0.2, "seed": 0}},
        "model": {"encoder": "resnet18", "encoder_options": {"width": 0.25, "no_max_pool": True}},
        "trainer": {"epochs": 1, "batch_size": BATCH, "eval_batch_size": 256, "progress": False,
                    "precise_bn_batches": 5, "device": "cpu"},
        "stages": [{"name": "train", "method": "supervised"}],
        "evaluation": {"n_boot": 1000},
    })


def _fresh(folder: Path, pattern: str) -> None:
    for p in folder.glob(pattern):
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def run_stage(stage: str, layout: Path, work: Path, px: int, steps: int, jobs: int | None) -> dict:
    """Run one stage in this process; ``{"seconds": ..., **details}``."""
    from radclr.training_data.store import default_jobs

    cfg = stage_config(layout, work, px, steps)
    cache = work / "cache"
    run_dir = work / "run"
    details: dict = {}
    t0 = time.perf_counter()
    if stage == "load":
        from radclr.data import load_dataset
        from radclr.data.validate import validate_dataset

        ds = load_dataset(layout)
        t1 = time.perf_counter()
        problems = validate_dataset(layout, progress=False)
        details = {"images": len(ds), "boxes": len(ds.boxes), "load_s": round(t1 - t0, 3),
                   "validate_s": round(time.perf_counter() - t1, 3),
                   "errors": sum(p.severity == "error" for p in problems)}
    elif stage == "split":
        from radclr.data import load_dataset
        from radclr.data import splits as S

        ds = load_dataset(layout)
        t0 = time.perf_counter()
        table = S.split_patients(ds, val=0.1, test=0.2, seed=0)
        t1 = time.perf_counter()
        table = S.apply_label_fraction(ds, table, 0.1, seed=0)
        details = {"split_s": round(t1 - t0, 3), "label_fraction_s": round(time.perf_counter() - t1, 3),
                   "labeled": int(table["labeled"].sum())}
    elif stage in ("prepare1", "prepareall"):
        from radclr.training_data.prepare import prepare_shared_data

        cache.mkdir(parents=True, exist_ok=True)
        _fresh(cache, "images-*")
        k = 1 if stage == "prepare1" else (jobs or default_jobs())
        info = prepare_shared_data(cfg, need_radiomics=False, jobs=k, progress=False)
        details = {"jobs": k, "store_mb": round(info["store_bytes"] / 1e6, 1), **info["seconds"]}
    elif stage == "radiomics":
        from radclr.training_data.fixed_radiomics import FIXED_FOLDER
        from radclr.training_data.prepare import prepare_shared_data

        _fresh(cache / FIXED_FOLDER, "*")
        info = prepare_shared_data(cfg, need_radiomics=True, radiomics_rows="all", jobs=jobs or default_jobs(),
                                   progress=False)
        details = {"rows": info["radiomics_computed"], **info["seconds"]}
    elif stage == "train":
        from radclr.runs.train import train

        if run_dir.exists():
            shutil.rmtree(run_dir)
        train(cfg, run_dir, progress=False, evaluate=False)
        import csv

        rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
        details = {k: rows[-1].get(k) for k in ("train_time_s", "time_s", "val_auc_mean") if k in rows[-1]}
    elif stage == "evaluate":
        from radclr.runs.evaluate import evaluate_run

        m = evaluate_run(run_dir, n_boot=1000, progress=False, device="cpu")
        details = {"auc_mean": (m.get("classification") or {}).get("auc", {}).get("mean")}
    elif stage == "report":
        from radclr.report import write_report

        write_report(run_dir, device="cpu")
    elif stage == "predict":
        from radclr.data import load_dataset
        from radclr.predict import predict

        ds = load_dataset(layout)
        for p in run_dir.glob("radiomics_reference*"):
            p.unlink()
        out = predict(run_dir, [ds.records["path"].iloc[0]], None, device="cpu")
        details = {"timing_ms": out[0].get("timing_ms")}
    else:
        raise SystemExit(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    return {"seconds": round(time.perf_counter() - t0, 3), **details}


def _rss_mb(who) -> float:
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)  # KiB on Linux


def worker(args) -> int:
    """``--worker STAGE``: one stage, one JSON line on stdout (the last line)."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    import radclr.training_data.prepare  # noqa: F401 - the imports count in the baseline, not the stage
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    base = _rss_mb(resource.RUSAGE_SELF)
    try:
        res = run_stage(args.worker, Path(args.layout), Path(args.work), args.px, args.steps, args.jobs)
    except Exception as e:  # recorded, not fatal to the benchmark
        res = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
    res.update(baseline_rss_mb=base, peak_rss_mb=_rss_mb(resource.RUSAGE_SELF),
               children_peak_rss_mb=_rss_mb(resource.RUSAGE_CHILDREN))
    print(json.dumps(res))
    return 0


# --------------------------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------------------------
def growth(results: dict, small: str = "10000", big: str = str(NIH_IMAGES)) -> dict:
    """Per-image cost at ``big`` / at ``small`` for every stage measured at both (issue 18: <= 1.5)."""
    out = {}
    a, b = results.get(small, {}), results.get(big, {})
    for st in STAGES:
        x, y = (a.get(st) or {}).get("ms_per_image"), (b.get(st) or {}).get("ms_per_image")
        if x and y:
            out[st] = round(y / x, 3)
    return out


STAGE_NAMES = {"load": "load + validate", "split": "split + label fraction", "prepare1": "data prepare: store, 1 process",
               "prepareall": "data prepare: store, every core", "radiomics": "data prepare: fixed radiomics",
               "train": "one epoch (capped steps)", "evaluate": "evaluate (bootstrap 1000)", "report": "report",
               "predict": "predict, first call"}


def markdown_table(record: dict) -> str:
    """The README's table: seconds (ms per image) and peak memory per stage and size, growth 10 k -> 112 k."""
    results = record.get("results", {})
    sizes = sorted(results, key=int)
    grow = growth(results)
    head = "| stage | " + " | ".join(f"N = {int(n):,}" for n in sizes) + " | per-image growth 10 k -> 112 k |"
    lines = [head, "|---" * (len(sizes) + 2) + "|"]
    for st in STAGES:
        cells = []
        for n in sizes:
            r = results[n].get(st)
            if not r:
                cells.append("--")
            elif "seconds" not in r:
                cells.append("failed")
            else:
                cells.append(f"{r['seconds']:.1f} s ({r['ms_per_image']:.2f} ms/img), {r['peak_rss_mb']:.0f} MB")
        g = grow.get(st)
        lines.append(f"| {STAGE_NAMES[st]} | " + " | ".join(cells) + f" | {f'{g:.2f}x' if g else '--'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,112120", help="comma-separated N")
    ap.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    ap.add_argument("--root", default=os.environ.get("RADCLR_SCALE_ROOT", str(Path(tempfile.gettempdir()) / "radclr-scale")),
                    help="where layouts and working folders are kept (reused)")
    ap.add_argument("--px", type=int, default=64, help="side of the synthetic PNGs and of the store (default 64)")
    ap.add_argument("--steps", type=int, default=20, help="training steps of the one epoch (label-fraction cap)")
    ap.add_argument("--jobs", type=int, default=None, help="processes for prepareall (default: every core)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per stage before it is recorded as failed")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "scale.json"))
    ap.add_argument("--table", action="store_true", help="print the README table of --out and exit")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--layout", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.table:
        print(markdown_table(json.loads(Path(args.out).read_text())))
        return 0
    stages = [s for s in args.stages.split(",") if s]
    bad = [s for s in stages if s not in STAGES]
    if bad:
        ap.error(f"unknown stage(s) {bad}; stages: {', '.join(STAGES)}")
    out = Path(args.out)
    record = json.loads(out.read_text()) if out.exists() else {}
    results = record.setdefault("results", {})
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.setdefault("OMP_NUM_THREADS", "1")
    for n in [int(s) for s in args.sizes.split(",") if s]:
        root = Path(args.root)
        t0 = time.perf_counter()
        layout = write_layout(root / f"nih-{n}-{args.px}px", n, args.px)
        print(f"N={n:,}: layout {layout} ready ({time.perf_counter() - t0:.1f} s)", flush=True)
        work = root / f"work-{n}-{args.px}px"
        work.mkdir(parents=True, exist_ok=True)
        per = results.setdefault(str(n), {})
        for st in stages:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", st, "--layout", str(layout),
                   "--work", str(work), "--px", str(args.px), "--steps", str(args.steps)]
            if args.jobs:
                cmd += ["--jobs", str(args.jobs)]
            t1 = time.perf_counter()
            try:
                p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
                lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
                res = json.loads(lines[-1]) if lines else {"error": f"exit {p.returncode}: {p.stderr[-2000:]}"}
            except subprocess.TimeoutExpired:
                res = {"error": f"timed out after {args.timeout:.0f} s"}
            res["wall_s"] = round(time.perf_counter() - t1, 2)
            res["measured_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            if "seconds" in res:
                res["ms_per_image"] = round(1000 * res["seconds"] / n, 4)
            per[st] = res
            print(f"  {st:10s} " + (f"{res['seconds']:9.2f} s  {res['ms_per_image']:.3f} ms/img  peak "
                                    f"{res['peak_rss_mb']:.0f} MB (children {res['children_peak_rss_mb']:.0f})"
                                    if "seconds" in res else f"FAILED: {res['error'][:300]}"), flush=True)
            record["growth_10k_to_112k"] = growth(results)
            res["command"] = (f".venv/bin/python benchmarks/scale.py --sizes {args.sizes} --stages {args.stages} "
                              f"--px {args.px} --steps {args.steps}")  # the invocation that measured this entry
            res["machine"] = _machine()
            record.update(px=args.px, steps=args.steps, target_growth=1.5)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(record, indent=1))
    print(f"results in {out}")
    return 0


def _machine() -> dict:
    import platform

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "load_average": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version()}


if __name__ == "__main__":
    sys.exit(main())
