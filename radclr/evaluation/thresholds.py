"""Decision thresholds per finding, chosen on VALIDATION data only.

Accuracy, F1, sensitivity and specificity need a threshold; choosing it on the test set would leak the test
labels into the result (SPEC §5: "scalers and thresholds are fit on training/validation data only"). The
functions here therefore take ``y_true_val`` / ``y_score_val`` -- pass the validation split's labels and the
model's validation scores, store the returned ``{finding: threshold}`` (e.g. in ``metrics.json``) and apply it
unchanged to the test scores (:func:`radclr.evaluation.bootstrap.classification_report`). Never call them with
test data.

Rules (an image is predicted positive when ``score >= threshold``):

* ``"youden"`` (default): maximise Youden's J = sensitivity + specificity - 1 = TPR - FPR on validation.
* ``"max_f1"``: maximise F1 of the positive class on validation.
* ``"fixed"``: the same value (``fixed``, default 0.5) for every finding, validation data unused except for
  shape checks (with balanced class weights this is ``LogisticRegression.predict``, what seed 003 used).

Candidates: between two consecutive distinct validation scores every threshold gives the same validation
operating point, so the candidate is their **midpoint** (robust to a test score landing exactly on a validation
score), and the lowest validation score for "everything positive". Ties of the criterion go to the **highest**
threshold (the more specific operating point). A finding whose known validation labels hold one class has no
defined J/F1: its threshold is NaN (the thresholded test metrics then come out NaN with that reason) unless a
``fallback`` value is given, which is used with a warning.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from radclr.errors import ConfigError
from radclr.evaluation.metrics import _check_1d_pair, _check_2d_pair, _check_scores

__all__ = ["RULES", "threshold_candidates", "choose_threshold", "choose_thresholds"]

RULES = ("youden", "max_f1", "fixed")


def threshold_candidates(y_true_val, y_score_val) -> dict[str, np.ndarray]:
    """Candidate thresholds (descending) with the validation TP/FP/TN/FN each one gives (unknown labels masked).

    Returns arrays ``threshold, tp, fp, tn, fn``: the lowest distinct score (all positive) and the midpoints
    between consecutive distinct scores, highest first.
    """
    y, s = _check_1d_pair(y_true_val, y_score_val)
    known = ~np.isnan(y)
    y, s = y[known] == 1, s[known]
    _check_scores(s, "y_score_val")
    if s.size == 0:
        empty = np.zeros(0)
        return {"threshold": empty, "tp": empty, "fp": empty, "tn": empty, "fn": empty}
    uniq = np.unique(s)  # ascending
    cand = np.concatenate([uniq[:1], (uniq[:-1] + uniq[1:]) / 2.0])[::-1]  # descending
    pos_sorted = np.sort(s[y])
    neg_sorted = np.sort(s[~y])
    # number of positives / negatives with score >= c
    tp = pos_sorted.size - np.searchsorted(pos_sorted, cand, side="left")
    fp = neg_sorted.size - np.searchsorted(neg_sorted, cand, side="left")
    fn = pos_sorted.size - tp
    tn = neg_sorted.size - fp
    return {"threshold": cand, "tp": tp.astype(float), "fp": fp.astype(float), "tn": tn.astype(float),
            "fn": fn.astype(float)}


def choose_threshold(y_true_val, y_score_val, rule: str = "youden", *, fixed: float = 0.5,
                     fallback: float | None = None, name: str = "finding") -> float:
    """One finding's threshold from its VALIDATION labels and scores (never test data), see the module doc.

    Returns NaN (or ``fallback``, with a warning) when the rule is undefined: one class among the known
    validation labels.
    """
    if rule not in RULES:
        raise ConfigError(f"threshold rule must be one of {RULES}, got {rule!r}")
    y, s = _check_1d_pair(y_true_val, y_score_val)
    if rule == "fixed":
        return float(fixed)
    known = ~np.isnan(y)
    n_pos = int(np.sum(y[known] == 1))
    n_neg = int(known.sum()) - n_pos
    if n_pos == 0 or n_neg == 0:
        msg = (f"{name}: cannot choose a {rule} threshold, validation has {n_pos} positive and {n_neg} negative "
               f"known labels")
        if fallback is None:
            warnings.warn(msg + "; threshold is NaN (thresholded metrics will be NaN)", stacklevel=2)
            return float("nan")
        warnings.warn(msg + f"; using the fallback {fallback:g}", stacklevel=2)
        return float(fallback)
    c = threshold_candidates(y, s)
    tp, fp, tn, fn = c["tp"], c["fp"], c["tn"], c["fn"]
    if rule == "youden":
        crit = tp / (tp + fn) - fp / (fp + tn)
    else:  # max_f1
        crit = 2 * tp / np.maximum(2 * tp + fp + fn, 1e-300)
    # first maximum = highest threshold among ties (up to rounding: 2/3 - 0 and 1 - 1/3 differ by one ulp)
    best = int(np.flatnonzero(crit >= np.max(crit) - 1e-12)[0])
    return float(c["threshold"][best])


def choose_thresholds(y_true_val, y_score_val, findings: Sequence[str] | None = None, rule: str = "youden", *,
                      fixed: float = 0.5, fallback: float | None = None) -> dict[str, float]:
    """Thresholds for every finding from VALIDATION data: ``{finding: threshold}`` (NaN where undefined).

    ``y_true_val [N, F]`` (1 / 0 / NaN unknown) and ``y_score_val [N, F]`` are the validation split's labels and
    the model's probabilities; store the result and apply it to the test split. Never pass test data.
    """
    y, s, findings = _check_2d_pair(y_true_val, y_score_val, findings)
    out = {}
    for j, f in enumerate(findings):
        out[f] = choose_threshold(y[:, j], s[:, j], rule, fixed=fixed, fallback=fallback, name=f)
    return out
