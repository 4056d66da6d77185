"""Paired comparisons of two variants trained with the same seeds and tested on the same images (the phantom and
real-background localization benchmarks).

* **seed level** (:func:`seed_level`): one number per training seed and variant (the run's mean AUC, its
  localization accuracy IoU > T averaged over findings), paired by seed: per-seed differences, their mean, the
  Student-t 95 % interval and the sign count (:func:`radclr.evaluation.seed_level.paired_seed_diff`). Captures the
  run-to-run variance (initialisation, sample order, and -- where each seed trains on its own data draw -- the
  training data).
* **case level** (:func:`case_level`): each (image, finding) case's outcome averaged over the seeds of a variant,
  the difference resampled by test patient (percentile bootstrap, ``n_boot`` draws). Captures which test patients
  were drawn, with the trained models fixed -- it ignores the training-seed variance, so it is the narrower of the
  two and must never be reported alone.

``rows``: one dict per run with ``variant``, ``seed``, ``auc`` (``{"mean": ...}``), ``iou_accuracy``
(``{"0.1": {"mean": ...}, ...}``), ``cases`` (CSV of the run's per-case IoU: ``image_id, finding, iou``) and
``predictions`` (CSV with ``image_id, patient_id, y_<f>, p_<f>``); paths relative to the repository or absolute.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from radclr.evaluation.seed_level import paired_seed_diff

REPO = Path(__file__).resolve().parents[1]
THRESHOLDS = ("0.1", "0.3", "0.5")

__all__ = ["seed_level", "case_level", "THRESHOLDS"]


def _metric(row: dict, key: str):
    if key == "auc_mean":
        return (row.get("auc") or {}).get("mean")
    t = key.split(">", 1)[1]
    return ((row.get("iou_accuracy") or {}).get(t) or {}).get("mean")


def seed_level(rows: list[dict], a: str, b: str) -> dict:
    """Variant ``a`` minus ``b`` paired by seed, for the mean AUC and IoU > T (mean over findings)."""
    out = {}
    for key in ("auc_mean", *(f"iou>{t}" for t in THRESHOLDS)):
        va = {r["seed"]: _metric(r, key) for r in rows if r["variant"] == a}
        vb = {r["seed"]: _metric(r, key) for r in rows if r["variant"] == b}
        seeds = sorted(set(va) & set(vb))
        if len(seeds) < 2:
            continue
        out[key] = paired_seed_diff({s: va[s] for s in seeds}, {s: vb[s] for s in seeds}, names=(a, b)).to_dict()
    return out


def _path(p: str) -> Path:
    return Path(p) if Path(p).is_absolute() else REPO / p


def _patient_of(predictions_csv) -> dict:
    p = pd.read_csv(predictions_csv, dtype={"image_id": str, "patient_id": str})
    return dict(zip(p["image_id"], p["patient_id"]))


def case_level(rows: list[dict], a: str, b: str, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """Variant ``a`` minus ``b``: localization accuracy (IoU > T, mean over findings of case means) and mean AUC;
    each case's outcome averaged over the seeds of a variant, patients resampled with replacement."""
    def cases(name):
        frames = [pd.read_csv(_path(r["cases"]), dtype={"image_id": str}) for r in rows if r["variant"] == name]
        return pd.concat(frames).groupby(["image_id", "finding"], as_index=False)["iou"].agg(list)

    merged = cases(a).merge(cases(b), on=["image_id", "finding"], suffixes=("_a", "_b"))
    patients = merged["image_id"].map(_patient_of(_path(rows[0]["predictions"]))).to_numpy()
    units, unit_idx = np.unique(patients.astype(str), return_inverse=True)
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
    out["method"] = ("case level: outcomes averaged over each variant's seeds, test patients resampled "
                     f"({n_boot} percentile-bootstrap draws); trained models fixed")
    return out


def _paired_auc(rows, a, b, *, n_boot, seed) -> dict:
    from radclr.evaluation.bootstrap import compare_models

    def probs(name):
        ps = [pd.read_csv(_path(r["predictions"]), dtype={"image_id": str, "patient_id": str}) for r in rows
              if r["variant"] == name]
        base = ps[0]
        pcols = [c for c in base.columns if c.startswith("p_")]
        aligned = [p.set_index("image_id").loc[base["image_id"], pcols].to_numpy() for p in ps]
        return base, pcols, sum(aligned) / len(aligned)  # seed-averaged probabilities

    base, pcols, pa = probs(a)
    base_b, _, pb = probs(b)
    pb = pd.DataFrame(pb, index=base_b["image_id"]).loc[base["image_id"]].to_numpy()
    findings = [c[2:] for c in pcols]
    y = base[[f"y_{f}" for f in findings]].to_numpy(dtype=float)
    r = compare_models(y, pa, pb, findings, patient_ids=base["patient_id"].to_numpy(), n_boot=n_boot,
                       seed=seed + 1, names=(a, b))
    m = r["mean"]
    return {"diff": m["diff"], "ci": [m["ci_low"], m["ci_high"]], "p_value": m["p_value"],
            "note": "AUC of the seed-averaged probabilities (patient bootstrap, radclr.evaluation.compare_models)"}
