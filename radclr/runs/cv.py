"""Patient-wise k-fold cross-validation of a whole configuration (seed 004 §3.1: "patient wise five-fold
cross-validation"; seed 003 §V-B).

``radclr train CONFIG --out RUN --folds 5`` makes one stratified patient-wise assignment of the dataset into
k folds (seeded by ``data.split.seed``) and runs every stage of the configuration k times: in round f, fold f is
the test part, fold (f + 1) mod k the validation part (checkpoint selection, thresholds) and the other k - 2
folds train. Every image is tested exactly once; no patient is in two parts of a round. ``RUN/fold<f>/`` holds
each round's run; ``RUN/cv_summary.json`` / ``cv_summary.csv`` hold per-fold test metrics and mean +- sd
(accuracy, weighted F1 and AUC, as seed 004 Table 1-2 report; a multi-class run, ``data.task: multiclass``, its
arg-max accuracy, weighted and macro F1 and mean one-vs-rest AUC).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd

from radclr.data.splits import check_patient_disjoint, kfold_patients
from radclr.engine.config import resolve_config
from radclr.errors import ConfigError, RadclrError
from radclr.runs.train import train
from radclr.safe_write import writable_dir
from radclr.training_data import open_dataset

CV_METRICS = ("auc", "accuracy", "f1", "sensitivity", "specificity")


def fold_tables(ds, k: int, seed: int) -> list[pd.DataFrame]:
    """One split table (``image_id, patient_id, split, labeled``) per round (see module docstring)."""
    folds = kfold_patients(ds, k=k, seed=seed)
    tables = []
    for f in range(k):
        t = folds[["image_id", "patient_id"]].copy()
        fold = folds["fold"].to_numpy()
        t["split"] = np.where(fold == f, "test", np.where(fold == (f + 1) % k, "val", "train"))
        t["labeled"] = True
        check_patient_disjoint(t)
        tables.append(t)
    return tables


def train_cross_validation(config, out, k: int, overrides=(), *, progress=None) -> Path:
    """Train and evaluate ``config`` once per fold into ``out/fold<f>`` and summarise (see module docstring)."""
    if k < 3:
        raise ConfigError(f"--folds needs k >= 3 (a test and a validation fold per round), got {k}")
    out = Path(out)
    if (out / "cv_summary.json").exists():
        raise RadclrError(f"{out} already holds a cross-validation; choose another --out")
    cfg = resolve_config(config, overrides)
    ds = open_dataset(cfg["data"])
    writable_dir(out, "output folder")
    rows = []
    for f, table in enumerate(fold_tables(ds, k, int(cfg["data"]["split"]["seed"]))):
        run = out / f"fold{f}"
        split_file = out / f"split_fold{f}.csv"
        table.to_csv(split_file, index=False)
        fcfg = copy.deepcopy(cfg)
        fcfg["data"]["split"]["file"] = str(split_file)
        if (run / "metrics.json").exists():  # a finished round is kept (re-running resumes the CV)
            pass
        elif (run / "checkpoints" / "last.pt").exists():
            train(None, run, resume=True, progress=progress)
        else:
            train(fcfg, run, progress=progress)
        metrics = json.loads((run / "metrics.json").read_text())
        rows.append(fold_row(f, metrics))
    summary = summarize(rows)
    pd.DataFrame(rows).to_csv(out / "cv_summary.csv", index=False)
    (out / "cv_summary.json").write_text(json.dumps({"k": k, "folds": rows, "summary": summary}, indent=2, default=float))
    return out


def fold_row(fold: int, metrics: dict) -> dict:
    cls = metrics.get("classification") or {}
    row = {"fold": fold, "n_test_images": cls.get("n_images")}
    if cls.get("task") == "multiclass":  # one value per metric (arg-max), no thresholded per-finding means
        row.update({m: None for m in CV_METRICS})
        row.update(accuracy=cls.get("accuracy"), f1_weighted=cls.get("f1_weighted"), f1_macro=cls.get("f1_macro"),
                   auc=(cls.get("auc") or {}).get("mean"))
        return row
    for m in CV_METRICS:
        row[m] = (cls.get(m) or {}).get("mean")
    mean = ((cls.get("report") or {}).get("mean") or {})
    row["f1_weighted"] = (mean.get("f1_weighted") or {}).get("value") if isinstance(mean.get("f1_weighted"), dict) else None
    return row


def summarize(rows: list[dict]) -> dict:
    out = {}
    for m in (*CV_METRICS, "f1_weighted", "f1_macro"):
        v = np.array([r[m] for r in rows if r.get(m) is not None], dtype=float)
        v = v[np.isfinite(v)]
        out[m] = {"mean": float(v.mean()) if v.size else None, "sd": float(v.std(ddof=1)) if v.size > 1 else None,
                  "n_folds": int(v.size)}
    return out
