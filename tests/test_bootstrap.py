"""Patient-resampling bootstrap CIs, the classification report and paired model comparison."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from radclr.errors import DataError
from radclr.evaluation.bootstrap import (
    BootstrapCI,
    bootstrap_ci,
    bootstrap_roc,
    classification_report,
    compare_models,
    group_index,
    multiclass_report,
    paired_bootstrap_diff,
    tpr_at_fpr,
)
from radclr.evaluation.metrics import binary_metrics, multiclass_metrics, multilabel_metrics, roc_auc_masked


def _patients(n_patients=150, per_patient=3, f=3, seed=0, signal=0.4):
    """Images grouped by patient; label and score of a patient's images are strongly correlated."""
    rng = np.random.default_rng(seed)
    pid = np.repeat(np.arange(n_patients), per_patient)
    y_pat = (rng.random((n_patients, f)) < 0.3).astype(float)
    y = y_pat[pid]
    s_pat = signal * y_pat + rng.random((n_patients, f))
    s = np.clip(s_pat[pid] + 0.05 * rng.normal(size=y.shape), 0, 2) / 2
    return y, s, pid


def test_ci_contains_point_and_unpacks():
    y, s, pid = _patients()
    r = bootstrap_ci(roc_auc_masked, y[:, 0], s[:, 0], groups=pid, n_boot=300)
    assert isinstance(r, BootstrapCI)
    point, low, high = r
    assert low < point < high
    assert r.n_valid == 300 and r.to_dict()["n_valid_boot"] == 300


def test_ci_narrows_with_more_patients():
    small = _patients(n_patients=80, seed=1)
    large = _patients(n_patients=1500, seed=1)
    w = []
    for y, s, pid in (small, large):
        r = bootstrap_ci(roc_auc_masked, y[:, 0], s[:, 0], groups=pid, n_boot=300)
        w.append(r.high - r.low)
    assert w[1] < 0.5 * w[0]  # ~ sqrt(80 / 1500) = 0.23 expected


def test_patient_resampling_is_wider_than_image_resampling_for_clustered_images():
    # 40 patients x 25 identical images each: there are 40 independent observations, not 1000
    y, s, pid = _patients(n_patients=40, per_patient=25, f=1, seed=2)
    by_patient = bootstrap_ci(roc_auc_masked, y[:, 0], s[:, 0], groups=pid, n_boot=400)
    by_image = bootstrap_ci(roc_auc_masked, y[:, 0], s[:, 0], groups=None, n_boot=400)
    assert by_patient.point == by_image.point
    assert (by_patient.high - by_patient.low) > 2.5 * (by_image.high - by_image.low)  # ~ sqrt(25) = 5 expected


def test_deterministic_for_a_seed():
    y, s, pid = _patients()
    a = bootstrap_ci(roc_auc_masked, y[:, 1], s[:, 1], groups=pid, n_boot=200, seed=7)
    b = bootstrap_ci(roc_auc_masked, y[:, 1], s[:, 1], groups=pid, n_boot=200, seed=7)
    c = bootstrap_ci(roc_auc_masked, y[:, 1], s[:, 1], groups=pid, n_boot=200, seed=8)
    assert a == b and (a.low, a.high) != (c.low, c.high)
    r1 = classification_report(y, s, patient_ids=pid, thresholds=0.5, n_boot=100, seed=3)
    r2 = classification_report(y, s, patient_ids=pid, thresholds=0.5, n_boot=100, seed=3)
    assert r1 == r2


def test_vectorised_auc_equals_resample_loop():
    y, s, pid = _patients(seed=4)
    y[::7, 0] = np.nan
    fast = bootstrap_ci(roc_auc_masked, y[:, 0], s[:, 0], groups=pid, n_boot=150, seed=1)
    loop = bootstrap_ci(lambda a, b: roc_auc_masked(a, b), y[:, 0], s[:, 0], groups=pid, n_boot=150, seed=1)
    assert fast.n_valid == loop.n_valid
    assert fast.low == pytest.approx(loop.low, abs=1e-12) and fast.high == pytest.approx(loop.high, abs=1e-12)


def test_single_class_resamples_are_skipped_and_counted():
    rng = np.random.default_rng(0)
    pid = np.arange(60)
    y = np.zeros(60)
    y[0] = 1  # one positive patient: in ~63 % of resamples
    s = rng.random(60)
    r = bootstrap_ci(roc_auc_masked, y, s, groups=pid, n_boot=400)
    assert 200 < r.n_valid < 320
    assert not math.isnan(r.low)
    r = bootstrap_ci(roc_auc_masked, np.zeros(10), s[:10], groups=None, n_boot=50)
    assert math.isnan(r.point) and r.n_valid == 0 and math.isnan(r.low)


def test_classification_report_structure_and_values():
    y, s, pid = _patients(f=3, seed=6)
    y[::5, 1] = np.nan
    y[:, 2] = 0  # no positive anywhere
    thr = {"A": 0.4, "B": 0.5, "C": 0.5}
    rep = classification_report(y, s, ["A", "B", "C"], patient_ids=pid, thresholds=thr, n_boot=200, seed=0)
    json.dumps(rep, allow_nan=False)
    point = multilabel_metrics(y, s, ["A", "B", "C"], thr)
    for f in ("A", "B"):
        e = rep["per_finding"][f]
        for m in ("auc", "accuracy", "f1", "f1_weighted", "sensitivity", "specificity"):
            assert e[m]["value"] == pytest.approx(point["per_finding"][f][m])
            assert e[m]["ci_low"] <= e[m]["value"] <= e[m]["ci_high"]
        assert e["n_patients"] == len(np.unique(pid[~np.isnan(y[:, "AB".index(f)])]))
    # the interval of AUC is the one bootstrap_ci gives with the same seed (same patients drawn)
    alone = bootstrap_ci(roc_auc_masked, y[:, 1], s[:, 1], groups=pid, n_boot=200, seed=0)
    assert rep["per_finding"]["B"]["auc"]["ci_low"] == pytest.approx(alone.low, abs=1e-12)
    assert rep["per_finding"]["B"]["auc"]["ci_high"] == pytest.approx(alone.high, abs=1e-12)
    # ... and so is sensitivity's (vectorised confusion counts vs a per-resample loop)
    sens = bootstrap_ci(lambda a, b: binary_metrics(a, b, 0.4)["sensitivity"], y[:, 0], s[:, 0], groups=pid,
                        n_boot=200, seed=0)
    assert rep["per_finding"]["A"]["sensitivity"]["ci_low"] == pytest.approx(sens.low, abs=1e-12)
    assert rep["per_finding"]["A"]["sensitivity"]["ci_high"] == pytest.approx(sens.high, abs=1e-12)
    # finding C: undefined AUC -> null with a reason, left out of the mean
    c = rep["per_finding"]["C"]
    assert c["auc"]["value"] is None and c["auc"]["n_valid_boot"] == 0 and "one class" in c["reasons"]["auc"]
    assert c["n_positive"] == 0 and c["specificity"]["value"] is not None
    assert rep["mean"]["n_findings"]["auc"] == 2 and "C" in rep["mean"]["excluded"]["auc"]
    assert rep["mean"]["auc"]["value"] == pytest.approx(point["mean"]["auc"])
    assert rep["mean"]["auc"]["ci_low"] <= rep["mean"]["auc"]["value"] <= rep["mean"]["auc"]["ci_high"]
    assert rep["n_images"] == len(pid) and rep["n_patients"] == 150
    assert rep["bootstrap"]["resampling"] == "patients"


def test_classification_report_without_bootstrap_and_nan_threshold():
    y, s, pid = _patients(f=2, seed=7)
    rep = classification_report(y, s, ["A", "B"], patient_ids=pid, thresholds={"A": 0.5, "B": float("nan")},
                                n_boot=0)
    assert rep["per_finding"]["A"]["auc"]["ci_low"] is None
    assert rep["per_finding"]["B"]["accuracy"]["value"] is None
    assert "no threshold" in rep["per_finding"]["B"]["reasons"]["accuracy"]
    assert rep["per_finding"]["B"]["auc"]["value"] is not None


def test_paired_difference():
    y, s_good, pid = _patients(f=1, seed=8, signal=1.0)
    rng = np.random.default_rng(9)
    s_bad = rng.random(len(pid))
    better = paired_bootstrap_diff(roc_auc_masked, y[:, 0], s_good[:, 0], s_bad, groups=pid, n_boot=300)
    assert better.diff > 0 and better.low > 0 and better.p_value < 0.01
    same = paired_bootstrap_diff(roc_auc_masked, y[:, 0], s_good[:, 0], s_good[:, 0], groups=pid, n_boot=300)
    assert same.diff == 0 and same.low == 0 and same.high == 0 and same.p_value == 1.0
    # two different models of equal quality: the interval must include 0
    s_twin = np.clip(s_good[:, 0] + 0.02 * np.random.default_rng(10).normal(size=len(pid)), 0, 1)
    twin = paired_bootstrap_diff(roc_auc_masked, y[:, 0], s_good[:, 0], s_twin, groups=pid, n_boot=300)
    assert twin.low <= 0 <= twin.high
    # the generic (loop) path gives the same answer
    loop = paired_bootstrap_diff(lambda a, b: roc_auc_masked(a, b), y[:, 0], s_good[:, 0], s_bad, groups=pid,
                                 n_boot=300)
    assert loop.low == pytest.approx(better.low, abs=1e-12) and loop.high == pytest.approx(better.high, abs=1e-12)


def test_compare_models_report():
    y, s, pid = _patients(f=3, seed=11, signal=1.0)
    noise = np.random.default_rng(12).random(s.shape)
    out = compare_models(y, s, noise, ["A", "B", "C"], patient_ids=pid, n_boot=200, names=("radclr", "random"))
    json.dumps(out, allow_nan=False)
    assert out["names"] == ["radclr", "random"]
    for f in "ABC":
        e = out["per_finding"][f]
        assert e["diff"] == pytest.approx(e["a"] - e["b"]) and e["ci_low"] > 0
    assert out["mean"]["ci_low"] > 0 and out["mean"]["n_findings"] == 3
    same = compare_models(y, s, s, ["A", "B", "C"], patient_ids=pid, n_boot=100)
    assert same["mean"]["ci_low"] == 0 == same["mean"]["ci_high"]


def test_bootstrap_roc_curve_and_band():
    y, s, pid = _patients(f=1, seed=13)
    r = bootstrap_roc(y[:, 0], s[:, 0], groups=pid, n_boot=200)
    fpr, tpr, _ = roc_curve(y[:, 0], s[:, 0])
    np.testing.assert_allclose(r["tpr"], tpr_at_fpr(fpr, tpr, r["fpr"]), atol=1e-12)
    assert r["auc"]["value"] == pytest.approx(roc_auc_masked(y[:, 0], s[:, 0]))
    assert np.all(r["tpr_low"] <= r["tpr"] + 1e-12) and np.all(r["tpr"] <= r["tpr_high"] + 1e-12)
    assert r["tpr"][-1] == 1.0 and r["n_valid_boot"] == 200


def test_tpr_at_fpr_vertical_segments():
    # vertices: (0,0) -> (0,0.5) vertical, -> (0.5,0.5), -> (0.5,1) vertical, -> (1,1)
    fpr = np.array([0.0, 0.0, 0.5, 0.5, 1.0])
    tpr = np.array([0.0, 0.5, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(tpr_at_fpr(fpr, tpr, np.array([0.0, 0.25, 0.5, 0.75, 1.0])),
                               [0.5, 0.5, 1.0, 1.0, 1.0])


def test_bad_bootstrap_input():
    with pytest.raises(DataError, match="missing"):
        group_index(np.array(["a", None, "b"], dtype=object), 3)
    with pytest.raises(ValueError, match="one entry per image"):
        group_index(["a", "b"], 3)
    with pytest.raises(ValueError, match="ci"):
        bootstrap_ci(roc_auc_masked, [0, 1], [0.1, 0.2], groups=None, ci=95)
    with pytest.raises(ValueError, match="same length"):
        bootstrap_ci(roc_auc_masked, [0, 1, 1], [0.1, 0.2], groups=None)


# ------------------------------------------------------------------------------------------------- multi-class
def _multiclass_task(n=90, k=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n).astype(float)
    p = rng.dirichlet(np.ones(k), n) + 0.5 * np.eye(k)[y.astype(int)]
    return y, p / p.sum(1, keepdims=True), np.arange(n) // 3  # three images per patient


def test_multiclass_report_equals_explicit_patient_resampling():
    """The weighted confusion matrices and vectorised AUCs give exactly the intervals of recomputing
    multiclass_metrics on every explicitly resampled patient set (same seed -> same draws)."""
    y, p, pid = _multiclass_task()
    rep = multiclass_report(y, p, ["a", "b", "c", "d"], patient_ids=pid, n_boot=60, seed=5)
    assert rep["task"] == "multiclass" and rep["mean"]["accuracy"]["value"] == multiclass_metrics(y, p)["accuracy"]
    for key in ("accuracy", "f1_weighted", "f1_macro", "auc"):
        ref = bootstrap_ci(lambda yy, pp, key=key: multiclass_metrics(yy, pp)[key], y, p, groups=pid, n_boot=60, seed=5)
        got = rep["mean"][key]
        assert (got["ci_low"], got["ci_high"]) == pytest.approx((ref.low, ref.high), rel=1e-12), key
    ref = bootstrap_ci(lambda yy, pp: multiclass_metrics(yy, pp)["per_class"]["1"]["recall"], y, p, groups=pid,
                       n_boot=60, seed=5)
    assert rep["per_finding"]["b"]["recall"]["ci_low"] == pytest.approx(ref.low)
    assert rep["multiclass"]["confusion_matrix"] == multiclass_metrics(y, p)["confusion_matrix"]
    json.dumps(rep, allow_nan=False)


def test_multiclass_report_unknown_rows_and_absent_class():
    y, p, pid = _multiclass_task(n=30, k=3, seed=1)
    y[y == 2] = 0  # class 2 never occurs: its AUC and recall are undefined and left out of the means
    y[:3] = np.nan
    rep = multiclass_report(y, p, None, patient_ids=pid, n_boot=20)
    assert rep["per_finding"]["2"]["auc"]["value"] is None and "2" in rep["mean"]["excluded"]["auc"]
    assert rep["mean"]["n_findings"]["auc"] == 2 and rep["per_finding"]["0"]["n_unknown"] == 3
    assert rep["mean"]["f1_macro"]["value"] == pytest.approx(multiclass_metrics(y, p)["f1_macro"])
