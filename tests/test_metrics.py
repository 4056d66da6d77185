"""Classification metrics (seed 000 §4, seed 001 Table 1, seed 003 Table III, seed 004 §3) and validation
thresholds: formulas against hand-computed values and scikit-learn, masking and undefined-value policies."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score, roc_auc_score, roc_curve

from radclr.errors import ConfigError, DataError
from radclr.evaluation.metrics import (
    MetricAccumulator,
    binary_metrics,
    jsonable,
    metrics_from_counts,
    multiclass_metrics,
    multilabel_metrics,
    resolve_thresholds,
    roc_auc_masked,
)
from radclr.evaluation.thresholds import choose_threshold, choose_thresholds, threshold_candidates


def _random_task(n=300, f=4, seed=0, unknown=0.15):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, f)) < 0.3).astype(float)
    s = np.round(np.clip(0.35 * y + 0.8 * rng.random((n, f)), 0, 1), 2)  # rounded: plenty of ties
    y[rng.random((n, f)) < unknown] = np.nan
    return y, s


# ----------------------------------------------------------------------------------------------------------- AUC
def test_auc_matches_sklearn_with_ties_and_masking():
    y, s = _random_task()
    for j in range(y.shape[1]):
        k = ~np.isnan(y[:, j])
        assert roc_auc_masked(y[:, j], s[:, j]) == pytest.approx(roc_auc_score(y[k, j], s[k, j]), abs=1e-12)


def test_auc_hand_values():
    assert roc_auc_masked([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert roc_auc_masked([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert roc_auc_masked([0, 1], [0.5, 0.5]) == 0.5  # a tie counts one half
    # 2 positives x 2 negatives = 4 pairs: (0.8>0.3, 0.8>0.6, 0.4>0.3, 0.4<0.6) -> 3/4
    assert roc_auc_masked([1, 0, 1, 0], [0.8, 0.3, 0.4, 0.6]) == 0.75
    # NaN labels are ignored, not counted as negatives
    assert roc_auc_masked([1, 0, np.nan, np.nan], [0.8, 0.3, 0.99, 0.0]) == 1.0


def test_single_class_auc_is_nan_not_half():
    assert math.isnan(roc_auc_masked([1, 1, 1, np.nan], [0.1, 0.5, 0.9, 0.2]))
    assert math.isnan(roc_auc_masked([0, 0], [0.1, 0.2]))
    assert math.isnan(roc_auc_masked([np.nan, np.nan], [0.1, 0.2]))


# ----------------------------------------------------------------------------------------- thresholded metrics
def test_binary_metrics_by_hand():
    y = np.array([1, 1, 0, 0, 1])
    s = np.array([0.9, 0.4, 0.6, 0.1, 0.7])
    m = binary_metrics(y, s, 0.5)  # predictions 1 0 1 0 1 -> TP 2, FN 1, FP 1, TN 1
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (2, 1, 1, 1)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["sensitivity"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(1 / 2)
    assert m["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    # weighted F1 = (3 * F1_pos + 2 * F1_neg) / 5 with F1_neg = 2*1 / (2*1 + 1 + 1)
    assert m["f1_weighted"] == pytest.approx((3 * (2 / 3) + 2 * 0.5) / 5)
    pred = (s >= 0.5).astype(int)
    assert m["f1"] == pytest.approx(f1_score(y, pred))
    assert m["f1_weighted"] == pytest.approx(f1_score(y, pred, average="weighted"))
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["reasons"] == {}


def test_threshold_is_inclusive():
    m = binary_metrics([1, 0], [0.5, 0.49], 0.5)
    assert m["tp"] == 1 and m["tn"] == 1


def test_undefined_thresholded_metrics_are_nan_with_reason():
    m = binary_metrics([0, 0, 0, np.nan], [0.1, 0.2, 0.9, 0.5], 0.5)
    assert math.isnan(m["sensitivity"]) and math.isnan(m["auc"])
    assert m["specificity"] == pytest.approx(2 / 3)
    assert m["f1"] == 0.0  # a false positive and no positive label: F1 = 0, defined
    assert "no positive label" in m["reasons"]["sensitivity"]
    assert "one class" in m["reasons"]["auc"]
    assert m["n_unknown"] == 1 and m["n"] == 3
    m = binary_metrics([0, 0], [0.1, 0.2], 0.5)  # no positive label and no positive prediction
    assert math.isnan(m["f1"]) and "f1" in m["reasons"]
    m = binary_metrics([0, 1], [0.1, 0.7], float("nan"))
    assert m["auc"] == 1.0 and math.isnan(m["accuracy"]) and "no threshold" in m["reasons"]["accuracy"]


def test_metrics_from_counts_vectorised_matches_scalar():
    counts = np.array([[3, 1, 5, 2], [0, 0, 4, 0], [2, 2, 0, 1]], dtype=float)
    vec = metrics_from_counts(*counts.T)
    for i, row in enumerate(counts):
        sc = metrics_from_counts(*row)
        for k, v in sc.items():
            assert (math.isnan(v) and math.isnan(vec[k][i])) or vec[k][i] == pytest.approx(v)


# ------------------------------------------------------------------------------------------------- multilabel
def test_multilabel_masking_and_mean():
    y, s = _random_task(f=3)
    y[:, 2] = np.where(np.isnan(y[:, 2]), np.nan, 0.0)  # finding 2: negatives only
    out = multilabel_metrics(y, s, ["A", "B", "C"], {"A": 0.5, "B": 0.4, "C": 0.5})
    for j, f in enumerate(["A", "B"]):
        k = ~np.isnan(y[:, j])
        assert out["per_finding"][f]["auc"] == pytest.approx(roc_auc_score(y[k, j], s[k, j]))
        assert out["per_finding"][f]["n"] == int(k.sum())
    assert out["per_finding"]["B"]["threshold"] == 0.4
    assert math.isnan(out["per_finding"]["C"]["auc"])
    # the mean over findings with both classes: A and B only
    assert out["mean"]["auc"] == pytest.approx(np.mean([out["per_finding"][f]["auc"] for f in "AB"]))
    assert out["mean"]["n_findings"]["auc"] == 2
    assert "C" in out["mean"]["excluded"]["auc"]
    assert out["mean"]["n_findings"]["specificity"] == 3
    json.dumps(jsonable(out), allow_nan=False)


def test_default_threshold_is_recorded():
    y, s = _random_task(f=2)
    out = multilabel_metrics(y, s)
    assert out["findings"] == ["finding_0", "finding_1"]
    assert all(out["per_finding"][f]["threshold"] == 0.5 for f in out["findings"])


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(3, 1\)"):
        multilabel_metrics(np.zeros((3, 2)), np.zeros((3, 1)))
    with pytest.raises(DataError, match="0, 1 or NaN"):
        roc_auc_masked([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(DataError, match="non-finite"):
        roc_auc_masked([0, 1, 1], [0.1, np.nan, 0.3])
    # a NaN score where the label is unknown is fine (that row is masked)
    assert roc_auc_masked([0, np.nan, 1], [0.1, np.nan, 0.3]) == 1.0
    with pytest.raises(DataError, match="no threshold for finding"):
        resolve_thresholds({"A": 0.5}, ["A", "B"])
    with pytest.raises(ValueError, match="unique"):
        multilabel_metrics(np.zeros((2, 2)), np.zeros((2, 2)), ["A", "A"])


# ------------------------------------------------------------------------------------------------- multiclass
def test_multiclass_matches_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 200)
    logits = rng.normal(size=(200, 3)) + 1.5 * np.eye(3)[y]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    m = multiclass_metrics(y, p, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p.argmax(1)))
    assert m["f1_weighted"] == pytest.approx(f1_score(y, p.argmax(1), average="weighted"))
    assert m["auc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert m["n_classes_in_auc"] == 3


def test_multiclass_macro_f1_recall_precision_confusion_match_sklearn():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 150)
    p = rng.dirichlet([1, 1, 1, 1], 150) + 0.6 * np.eye(4)[y]
    m = multiclass_metrics(y, p, ["w", "x", "y", "z"])
    pred = p.argmax(1)
    assert m["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["confusion_matrix"] == confusion_matrix(y, pred, labels=[0, 1, 2, 3]).tolist()
    assert [m["recall"][c] for c in "wxyz"] == pytest.approx(recall_score(y, pred, average=None).tolist())
    assert [m["per_class"][c]["precision"] for c in "wxyz"] == pytest.approx(
        precision_score(y, pred, average=None).tolist())
    # one-hot rows (how datasets hold single-label tasks) give the same result; a row without a 1 is unknown
    onehot = np.eye(4)[y]
    onehot[0] = np.nan
    m2 = multiclass_metrics(onehot, p, ["w", "x", "y", "z"])
    assert m2["n_unknown"] == 1 and m2["accuracy"] == pytest.approx(accuracy_score(y[1:], pred[1:]))
    with pytest.raises(DataError, match="more than one class"):
        multiclass_metrics(np.ones((2, 4)), p[:2])


def test_multiclass_absent_class_and_unknown():
    y = np.array([0, 1, 0, 1, np.nan])
    p = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
    m = multiclass_metrics(y, p)
    assert math.isnan(m["per_class"]["2"]["auc"]) and "auc[2]" in m["reasons"]
    assert m["n_classes_in_auc"] == 2 and m["n"] == 4 and m["n_unknown"] == 1
    assert m["f1_weighted"] == pytest.approx(f1_score([0, 1, 0, 1], [0, 1, 2, 1], average="weighted",
                                                      labels=[0, 1, 2]))
    # macro F1 over the classes present among the labels; a class without support has NaN recall, with a reason
    assert m["f1_macro"] == pytest.approx(f1_score([0, 1, 0, 1], [0, 1, 2, 1], average="macro", labels=[0, 1]))
    assert math.isnan(m["recall"]["2"]) and "recall[2]" in m["reasons"]
    with pytest.raises(DataError, match="class indices"):
        multiclass_metrics([0, 3], p[:2])


# ------------------------------------------------------------------------------------------------ accumulator
def test_accumulator_equals_one_shot_and_resets():
    y, s = _random_task(n=120, f=2)
    acc = MetricAccumulator(["A", "B"])
    for i in range(0, 120, 32):
        acc.update(y[i:i + 32], s[i:i + 32])
    assert len(acc) == 120
    assert acc.aggregate(0.5) == multilabel_metrics(y, s, ["A", "B"], 0.5)
    acc.reset()
    with pytest.raises(ValueError, match="empty"):
        acc.aggregate()
    with pytest.raises(ValueError, match=r"\[B, F\]"):
        acc.update(np.zeros((4, 2)), np.zeros((4, 3)))


def test_accumulator_takes_torch_tensors_and_multiclass():
    torch = pytest.importorskip("torch")
    acc = MetricAccumulator(task="multiclass")
    acc(torch.tensor([0, 1, 1]), torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], requires_grad=True))
    out = acc.aggregate()
    assert out["accuracy"] == pytest.approx(2 / 3) and out["auc"] == 1.0


# ------------------------------------------------------------------------------------------------- thresholds
def test_youden_hand_case():
    y = [0, 0, 0, 0, 1, 1, 1]
    s = [0.1, 0.2, 0.3, 0.6, 0.4, 0.8, 0.9]
    # candidates (midpoints): 0.85 J=1/3, 0.7 J=2/3, 0.5 J=2/3-1/4, 0.35 J=1-1/4=0.75 (best), 0.25 J=0.5, ...
    assert choose_threshold(y, s, "youden") == pytest.approx(0.35)
    # max F1: 0.7 -> 4/5, 0.35 -> 6/7 (best)
    assert choose_threshold(y, s, "max_f1") == pytest.approx(0.35)
    assert choose_threshold(y, s, "fixed", fixed=0.3) == 0.3


def test_youden_tie_goes_to_higher_threshold():
    y = [0, 0, 1, 1, 0, 1]
    s = [0.1, 0.4, 0.35, 0.8, 0.2, 0.7]  # J = 2/3 at 0.275 and at 0.55
    assert choose_threshold(y, s) == pytest.approx(0.55)


def test_thresholds_reach_the_optimum_sklearn_finds():
    y, s = _random_task(n=400, f=3, seed=5)
    thr = choose_thresholds(y, s, ["a", "b", "c"])
    for j, f in enumerate("abc"):
        k = ~np.isnan(y[:, j])
        fpr, tpr, _ = roc_curve(y[k, j], s[k, j])
        m = binary_metrics(y[:, j], s[:, j], thr[f])
        assert m["sensitivity"] + m["specificity"] - 1 == pytest.approx(np.max(tpr - fpr), abs=1e-12)
    thr_f1 = choose_thresholds(y, s, ["a", "b", "c"], "max_f1")
    for j, f in enumerate("abc"):
        best = max(binary_metrics(y[:, j], s[:, j], t)["f1"] for t in np.unique(s[:, j]))
        assert binary_metrics(y[:, j], s[:, j], thr_f1[f])["f1"] == pytest.approx(best, abs=1e-12)


def test_threshold_candidates_counts():
    c = threshold_candidates([1, 0, 1, np.nan], [0.9, 0.5, 0.2, 0.7])
    np.testing.assert_allclose(c["threshold"], [0.7, 0.35, 0.2])
    np.testing.assert_array_equal(c["tp"], [1, 1, 2])
    np.testing.assert_array_equal(c["fp"], [0, 1, 1])


def test_single_class_validation_threshold_policy():
    with pytest.warns(UserWarning, match="cannot choose"):
        assert math.isnan(choose_threshold([0, 0, 0], [0.1, 0.2, 0.3], name="Hernia"))
    with pytest.warns(UserWarning, match="fallback 0.5"):
        assert choose_threshold([1, 1], [0.1, 0.2], fallback=0.5) == 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        thr = choose_thresholds(np.array([[0, 1], [0, 0], [0, 1.0]]), np.array([[0.1, 0.9], [0.2, 0.1], [0.3, 0.8]]),
                                ["Hernia", "Mass"])
    assert math.isnan(thr["Hernia"]) and thr["Mass"] == pytest.approx(0.45)
    with pytest.raises(ConfigError, match="youden"):
        choose_threshold([0, 1], [0.1, 0.2], "otsu")


def test_cross_validated_r2_of_a_ridge_regression():
    from radclr.evaluation.ridge_r2 import cross_validated_r2

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    assert cross_validated_r2(x, x @ rng.normal(size=(5, 3))) > 0.99  # y linear in x: explained
    assert cross_validated_r2(x, rng.normal(size=(200, 3))) < 0.05  # unrelated: nothing explained
    assert np.isnan(cross_validated_r2(x[:8], x[:8]))  # too few rows for 5 folds
    assert np.isnan(cross_validated_r2(x, np.ones((200, 2))))  # constant y
