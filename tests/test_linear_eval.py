"""Seed 003 linear evaluation: logistic regression on frozen features, C chosen by validation AUC,
patient-wise stratified k-fold."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from radclr.errors import DataError
from radclr.evaluation.linear import C_GRID, infer_task, linear_eval, linear_eval_cv, make_logistic, patient_folds
from radclr.evaluation.thresholds import choose_threshold


def _pool(n=600, d=16, seed=0, signal=1.0, n_patients=250):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    logit = signal * (x[:, 0] - 0.5 * x[:, 1])
    y = (logit + rng.normal(size=n) > 0).astype(float)
    pid = rng.integers(0, n_patients, n)
    return x, y, pid


def _split(x, y, a=300, b=400):
    return x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:]


def test_seed003_grid():
    assert C_GRID == (0.01, 0.05, 0.1, 0.2, 0.5, 1.0)
    model = make_logistic(0.2)
    assert model[-1].C == 0.2 and model[-1].class_weight == "balanced"


def test_chooses_the_c_with_best_validation_auc_brute_force():
    x, y, _ = _pool(seed=1, signal=0.4)
    xtr, ytr, xva, yva, xte, yte = _split(x, y)
    res, scores = linear_eval(xtr, ytr, xva, yva, xte, yte, return_scores=True)
    aucs = {}
    for c in C_GRID:
        m = make_logistic(c).fit(xtr, ytr)
        aucs[c] = roc_auc_score(yva, m.predict_proba(xva)[:, 1])
    best = max(sorted(C_GRID), key=lambda c: (aucs[c], -c))
    r = res["per_finding"]["label"]
    assert r["C"] == best and res["chosen_C"] == {"label": best}
    for c in C_GRID:
        assert r["val_auc_by_C"][repr(c)] == pytest.approx(aucs[c])
    # test metrics come from that model; threshold from its validation scores
    m = make_logistic(best).fit(xtr, ytr)
    np.testing.assert_allclose(scores[:, 0], m.predict_proba(xte)[:, 1])
    assert res["test"]["auc"] == pytest.approx(roc_auc_score(yte, m.predict_proba(xte)[:, 1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert r["threshold"] == pytest.approx(choose_threshold(yva, m.predict_proba(xva)[:, 1], "youden"))
    json.dumps(res, allow_nan=False)


def test_separable_and_random_labels():
    x, y, _ = _pool(n=800, seed=2, signal=50.0)  # practically separable
    res = linear_eval(*_split(x, y, 400, 550))
    assert res["test"]["auc"] > 0.99 and res["test"]["accuracy"] > 0.95
    rng = np.random.default_rng(3)
    y_rand = (rng.random(800) < 0.4).astype(float)
    res = linear_eval(*_split(x, y_rand, 400, 550))
    assert abs(res["test"]["auc"] - 0.5) < 0.1


def test_labeled_mask_equals_training_on_the_subset():
    x, y, _ = _pool(seed=4)
    xtr, ytr, xva, yva, xte, yte = _split(x, y)
    labeled = np.zeros(len(xtr), dtype=bool)
    labeled[::5] = True
    a = linear_eval(xtr, ytr, xva, yva, xte, yte, labeled=labeled)
    b = linear_eval(xtr[labeled], ytr[labeled], xva, yva, xte, yte)
    assert a["per_finding"]["label"]["n_train"] == labeled.sum() == b["per_finding"]["label"]["n_train"]
    assert a["test"] == b["test"] and a["chosen_C"] == b["chosen_C"]
    with pytest.raises(ValueError, match="boolean mask"):
        linear_eval(xtr, ytr, xva, yva, xte, yte, labeled=np.ones(len(xtr)))


def test_multilabel_with_unknowns_and_a_skipped_finding():
    x, y, pid = _pool(seed=5)
    rng = np.random.default_rng(6)
    y2 = np.stack([y, (x[:, 2] > 0.3).astype(float), np.zeros(len(y))], axis=1)
    y2[rng.random(y2.shape) < 0.2] = np.nan
    xtr, ytr, xva, yva, xte, yte = _split(x, y2)
    res, scores = linear_eval(xtr, ytr, xva, yva, xte, yte, findings=["A", "B", "Never"],
                              patient_ids_test=pid[400:], n_boot=50, return_scores=True)
    assert res["task"] == "multilabel"
    assert "one class" in res["per_finding"]["Never"]["skipped"] and res["chosen_C"]["Never"] is None
    assert res["test"]["n_findings"] == 2
    assert res["per_finding"]["A"]["n_train"] == int((~np.isnan(ytr[:, 0])).sum())
    assert np.isnan(scores[np.isnan(yte[:, 0]), 0]).all() and np.isnan(scores[:, 2]).all()
    assert set(res["test_ci"]["findings"]) == {"A", "B"}
    assert res["test_ci"]["mean"]["auc"]["value"] == pytest.approx(res["test"]["auc"])
    json.dumps(res, allow_nan=False)


def test_binary_task_with_one_training_class_raises():
    x, y, _ = _pool(seed=7)
    with pytest.raises(DataError, match="one class"):
        linear_eval(x[:50], np.zeros(50), x[50:100], y[50:100], x[100:], y[100:])


def test_multiclass_task():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(500, 8))
    y = np.digitize(x[:, 0] + 0.3 * rng.normal(size=500), [-0.5, 0.5]).astype(float)
    assert infer_task(y) == "multiclass"
    res = linear_eval(*_split(x, y, 250, 350), findings=["benign", "mid", "malignant"])
    assert res["task"] == "multiclass" and res["chosen_C"]["all"] in C_GRID
    assert res["test"]["auc"] > 0.85 and res["test"]["accuracy"] > 0.6 and "f1_weighted" in res["test"]
    assert set(res["test"]["per_class"]) == {"benign", "mid", "malignant"}


def test_patient_folds_keep_patients_together_and_stratify():
    x, y, pid = _pool(n=900, seed=9, n_patients=300)
    folds = patient_folds(y, pid, n_splits=5, seed=0)
    assert set(folds.tolist()) == set(range(5))
    for p in np.unique(pid):
        assert np.unique(folds[pid == p]).size == 1  # no patient in two folds
    rates = [y[folds == k].mean() for k in range(5)]
    assert max(rates) - min(rates) < 0.12
    with pytest.raises(DataError, match="fewer than n_splits"):
        patient_folds(np.r_[np.ones(3), np.zeros(30)], np.arange(33), n_splits=5)


def test_kfold_cross_validation():
    x, y, pid = _pool(n=700, seed=10, signal=50.0, n_patients=250)
    res = linear_eval_cv(x, y, pid, n_splits=5)
    folds = res["per_finding"]["label"]["folds"]
    assert len(folds) == 5 and all(f["C"] in C_GRID for f in folds)
    assert sum(f["n_test"] for f in folds) == len(x)  # every image tested exactly once
    assert sum(f["n_test_patients"] for f in folds) == len(np.unique(pid))  # every patient in one test fold
    s = res["mean"]["summary"]
    assert s["auc"]["mean"] > 0.99 and s["auc"]["n_folds"] == 5 and s["auc"]["sd"] >= 0
    assert set(s) == {"auc", "accuracy", "f1", "f1_weighted", "sensitivity", "specificity"}
    json.dumps(res, allow_nan=False)
    y_rand = (np.random.default_rng(11).random(len(x)) < 0.5).astype(float)
    res = linear_eval_cv(x, y_rand, pid, n_splits=5)
    assert abs(res["mean"]["summary"]["auc"]["mean"] - 0.5) < 0.08


def test_kfold_multilabel_mean_over_findings():
    x, y, pid = _pool(n=600, seed=12, signal=3.0)
    y2 = np.stack([y, (x[:, 3] > 0).astype(float)], axis=1)
    y2[::9, 1] = np.nan
    res = linear_eval_cv(x, y2, pid, n_splits=3, findings=["A", "B"], c_grid=(0.1, 1.0))
    a = res["per_finding"]["A"]["folds"]
    b = res["per_finding"]["B"]["folds"]
    assert sum(f["n_test"] for f in b) == int((~np.isnan(y2[:, 1])).sum())
    for k in range(3):
        assert res["mean"]["folds"][k]["auc"] == pytest.approx((a[k]["auc"] + b[k]["auc"]) / 2)


def test_kfold_train_val_test_are_patient_disjoint(monkeypatch):
    import radclr.evaluation.linear as linear

    x, y, pid = _pool(n=500, seed=13, n_patients=150)
    x = np.column_stack([x, np.arange(len(x))])  # last column identifies the row
    seen = []
    original = linear._evaluate_split

    def spy(task, names, xtr, ytr, ltr, xva, yva, xte, yte, **kw):
        seen.append(tuple(set(pid[a[:, -1].astype(int)].tolist()) for a in (xtr, xva, xte)))
        return original(task, names, xtr, ytr, ltr, xva, yva, xte, yte, **kw)

    monkeypatch.setattr(linear, "_evaluate_split", spy)
    linear_eval_cv(x, y, pid, n_splits=4, c_grid=(1.0,))
    assert len(seen) == 4
    for tr, va, te in seen:
        assert not (tr & va) and not (tr & te) and not (va & te)
    assert set().union(*(te for _, _, te in seen)) == set(pid.tolist())


def test_parallel_fits_equal_the_serial_ones():
    """Issue 18 item 7: findings x C (and the k-fold's findings x folds) fit in worker processes give exactly the
    serial result -- every number, every chosen C, every test score."""
    x, y, pid = _pool(n=500, seed=14, signal=2.0)
    rng = np.random.default_rng(15)
    y3 = np.stack([y, (x[:, 2] > 0.3).astype(float), np.zeros(len(y))], axis=1)
    y3[rng.random(y3.shape) < 0.2] = np.nan
    parts = _split(x, y3, 250, 350)
    serial, s_scores = linear_eval(*parts, findings=["A", "B", "Never"], patient_ids_test=pid[350:], n_boot=20,
                                   return_scores=True, n_jobs=1)
    parallel, p_scores = linear_eval(*parts, findings=["A", "B", "Never"], patient_ids_test=pid[350:], n_boot=20,
                                     return_scores=True, n_jobs=2)
    assert parallel == serial and "skipped" in parallel["per_finding"]["Never"]
    np.testing.assert_array_equal(p_scores, s_scores)
    y_cls = np.digitize(x[:, 0] + 0.3 * rng.normal(size=len(x)), [-0.5, 0.5]).astype(float)
    mc = _split(x, y_cls, 250, 350)
    assert linear_eval(*mc, n_jobs=2) == linear_eval(*mc, n_jobs=1)
    cv = dict(findings=["A", "B", "Never"], n_splits=3, c_grid=(0.1, 1.0))
    assert linear_eval_cv(x, y3, pid, n_jobs=2, **cv) == linear_eval_cv(x, y3, pid, n_jobs=1, **cv)


def test_fits_run_in_worker_processes_only_when_worth_it():
    import os

    import joblib

    import radclr.evaluation.linear as linear

    pids = linear._parallel(lambda i: os.getpid(), [(i,) for i in range(4)], 2)
    assert os.getpid() not in pids  # really other processes
    assert linear._jobs(None, 84, 100 * 64 * 84) == 1  # a tiny problem: starting workers costs more
    assert linear._jobs(None, 84, 78_000 * 512 * 84) == min(joblib.cpu_count(), 84)  # every core the machine has
    assert linear._jobs(3, 2, 0) == 2 and linear._jobs(1, 84, 1e12) == 1
    with pytest.raises(ValueError, match="n_jobs"):
        linear._jobs(0, 4, 0)
