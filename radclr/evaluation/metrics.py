"""Classification metrics: per-finding and mean AUC, accuracy, F1, sensitivity, specificity.

What the seeds report and where it comes from:

* seed 000 §4: accuracy, F1 score and AUC (Tables 1-2);
* seed 001 §4 (Table 1): per-finding AUC and the mean over the 8 findings;
* seed 003 §V-B (Table III): accuracy (ACC), AUC, sensitivity (SEN), specificity (SPE), F1;
* seed 004 §3: accuracy and *weighted* F1 (the support-weighted mean of the per-class F1 scores); its kidney task
  is single-label 4-class (:func:`multiclass_metrics`: arg-max prediction, confusion matrix, macro F1).

Conventions (each one a documented, tested policy):

* Multi-label ``y_true [N, F]`` holds 1 / 0 / NaN; **NaN = unknown** and is masked per finding (the image counts
  for the findings whose label is known). ``y_score [N, F]`` are probabilities (AUC only needs an order, so logits
  work for AUC; thresholds are compared with ``>=``: an image is predicted positive when ``score >= threshold``).
* A metric that is undefined on the given data is **NaN with a reason** (``"reasons"``), never 0.5 and never an
  exception: AUC needs both classes, sensitivity needs a positive, specificity a negative, F1 a positive label or a
  positive prediction.
* The **mean** (seed 001 Table 1 "Mean") of a metric is the unweighted mean over the findings where it is
  defined; ``mean["n_findings"]`` says how many went into it and ``mean["excluded"]`` which were left out and why.
* Bad input raises: shape mismatches ``ValueError`` naming the shapes, label values other than 0/1/NaN or
  non-finite scores :class:`radclr.errors.DataError`.

:class:`MetricAccumulator` collects batches (update / aggregate / reset, as MONAI's ``Cumulative`` metrics do).
:func:`jsonable` turns any result here into plain JSON types (NaN -> ``null``).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.special import expit, softmax
from scipy.stats import rankdata

from radclr.errors import DataError

__all__ = [
    "BINARY_METRICS",
    "THRESHOLD_METRICS",
    "roc_auc_masked",
    "metrics_from_counts",
    "binary_metrics",
    "multilabel_metrics",
    "multiclass_metrics",
    "probabilities",
    "class_indices",
    "confusion_counts",
    "metrics_from_confusion",
    "resolve_thresholds",
    "MetricAccumulator",
    "jsonable",
]

#: metrics reported for every binary task / finding, in report order
BINARY_METRICS = ("auc", "accuracy", "f1", "f1_weighted", "sensitivity", "specificity")
#: the ones that need a decision threshold
THRESHOLD_METRICS = ("accuracy", "f1", "f1_weighted", "sensitivity", "specificity")
DEFAULT_THRESHOLD = 0.5


# --------------------------------------------------------------------------------------------------------------
def probabilities(logits, task: str = "multilabel") -> np.ndarray:
    """Model outputs ``[N, F]`` as probabilities: a sigmoid per finding (``multilabel``) or a softmax over the
    classes (``multiclass``, ``data.task``; each row sums to 1). The logits' float precision is kept."""
    if hasattr(logits, "detach"):
        logits = logits.detach().cpu().numpy()
    x = np.asarray(logits)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if task == "multiclass":
        return softmax(x, axis=-1)
    if task != "multilabel":
        raise ValueError(f"task must be 'multilabel' or 'multiclass', got {task!r}")
    return expit(x)


# --------------------------------------------------------------------------------------------------------------
# input checks
def _as_float_array(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DataError(f"{name} must be numeric: {e}") from None


def _check_binary_labels(y: np.ndarray, name: str = "y_true") -> None:
    known = y[~np.isnan(y)]
    bad = known[(known != 0) & (known != 1)]
    if bad.size:
        raise DataError(f"{name} must hold 0, 1 or NaN (unknown); found {np.unique(bad)[:5].tolist()}")


def _check_scores(s: np.ndarray, name: str = "y_score") -> None:
    if not np.all(np.isfinite(s)):
        n = int((~np.isfinite(s)).sum())
        raise DataError(f"{name} has {n} non-finite value(s) (NaN/inf); scores must be finite")


def _check_1d_pair(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    y = _as_float_array(y_true, "y_true")
    s = _as_float_array(y_score, "y_score")
    if y.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"y_true and y_score must be 1-D of equal length, got {y.shape} and {s.shape}")
    _check_binary_labels(y)
    return y, s


def _check_2d_pair(y_true, y_score, findings) -> tuple[np.ndarray, np.ndarray, list[str]]:
    y = _as_float_array(y_true, "y_true")
    s = _as_float_array(y_score, "y_score")
    if y.ndim == 1:
        y = y[:, None]
    if s.ndim == 1:
        s = s[:, None]
    if y.ndim != 2 or s.shape != y.shape:
        raise ValueError(f"y_true and y_score must both be [N, F], got {np.shape(y_true)} and {np.shape(y_score)}")
    findings = [f"finding_{j}" for j in range(y.shape[1])] if findings is None else [str(f) for f in findings]
    if len(findings) != y.shape[1]:
        raise ValueError(f"{len(findings)} finding names for {y.shape[1]} label columns")
    if len(set(findings)) != len(findings):
        raise ValueError(f"finding names must be unique, got {findings}")
    _check_binary_labels(y)
    return y, s, findings


# --------------------------------------------------------------------------------------------------------------
# AUC
def _auc_known(y: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney AUC with mid-ranks for ties (= area under the ROC curve, ties counted 1/2)."""
    pos = y == 1
    n_pos = int(pos.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)  # average ranks for ties
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_auc_masked(y_true, y_score) -> float:
    """Area under the ROC curve of one finding, ignoring unknown (NaN) labels.

    The rank (Mann-Whitney) form: AUC = P(score_pos > score_neg) + 1/2 P(score_pos = score_neg), identical to
    ``sklearn.metrics.roc_auc_score``. Returns NaN when the known labels hold only one class (AUC is undefined
    there; never 0.5). Scores may be probabilities or logits (only their order matters).
    """
    y, s = _check_1d_pair(y_true, y_score)
    known = ~np.isnan(y)
    _check_scores(s[known])
    return _auc_known(y[known], s[known])


def auc_per_finding(y_true, y_score, findings: Sequence[str]) -> dict[str, float]:
    """``{finding: AUC, "mean": mean over findings with a defined AUC}`` (NaN labels ignored; NaN when a
    finding has one class only)."""
    out = {f: roc_auc_masked(y_true[:, j], y_score[:, j]) for j, f in enumerate(findings)}
    vals = [v for v in out.values() if not math.isnan(v)]
    out["mean"] = float(np.mean(vals)) if vals else float("nan")
    return out


# --------------------------------------------------------------------------------------------------------------
# thresholded metrics
def _ratio(num, den):
    """num / den elementwise with NaN where den == 0 (works on scalars and arrays)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return out


def metrics_from_counts(tp, fp, tn, fn) -> dict[str, Any]:
    """Accuracy, F1 (of the positive class), weighted F1, sensitivity and specificity from confusion counts.

    * accuracy = (TP + TN) / N
    * sensitivity (recall, TPR) = TP / (TP + FN)          -- NaN without positives
    * specificity (TNR) = TN / (TN + FP)                   -- NaN without negatives
    * F1 = 2 TP / (2 TP + FP + FN)                        -- NaN when there is no positive label or prediction
    * weighted F1 (seed 004 §3) = (P * F1_pos + N_neg * F1_neg) / N with F1_neg = 2 TN / (2 TN + FN + FP),
      the support-weighted mean of both classes' F1 (``sklearn.metrics.f1_score(average="weighted")``).

    Counts may be scalars or equal-shape arrays (bootstrap resamples, weighted counts); the result has their shape.
    """
    tp, fp, tn, fn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, tn, fn))
    n = tp + fp + tn + fn
    n_pos = tp + fn
    n_neg = tn + fp
    f1_pos = _ratio(2 * tp, 2 * tp + fp + fn)
    f1_neg = _ratio(2 * tn, 2 * tn + fn + fp)
    # a class with zero support contributes weight 0 (its NaN F1 must not poison the weighted mean)
    weighted = _ratio(np.where(n_pos > 0, n_pos * np.nan_to_num(f1_pos), 0.0)
                      + np.where(n_neg > 0, n_neg * np.nan_to_num(f1_neg), 0.0), n)
    out = {
        "accuracy": _ratio(tp + tn, n),
        "f1": f1_pos,
        "f1_weighted": weighted,
        "sensitivity": _ratio(tp, n_pos),
        "specificity": _ratio(tn, n_neg),
    }
    if out["accuracy"].ndim == 0:
        return {k: float(v) for k, v in out.items()}
    return out


def _reasons(values: Mapping[str, float], n_pos: int, n_neg: int, threshold: float) -> dict[str, str]:
    why = {}
    if n_pos + n_neg == 0:
        return {k: "no image with a known label" for k in values if math.isnan(values[k])}
    for k, v in values.items():
        if not math.isnan(v):
            continue
        if k == "auc":
            why[k] = f"only one class among known labels ({n_pos} positive, {n_neg} negative)"
        elif math.isnan(threshold):
            why[k] = "no threshold (it could not be chosen on validation data)"
        elif k == "sensitivity":
            why[k] = "no positive label"
        elif k == "specificity":
            why[k] = "no negative label"
        elif k in ("f1", "f1_weighted"):
            why[k] = f"no positive label and no prediction >= threshold {threshold:g}"
        else:
            why[k] = "undefined on these data"
    return why


def binary_metrics(y_true, y_score, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """All :data:`BINARY_METRICS` of one finding at ``threshold`` (positive when ``score >= threshold``).

    Unknown (NaN) labels are masked. Returns the metrics, the counts (``n``, ``n_positive``, ``n_negative``,
    ``n_unknown``, ``tp``, ``fp``, ``tn``, ``fn``), the ``threshold`` used and ``reasons`` for every NaN metric.
    A NaN threshold (none could be chosen) makes the thresholded metrics NaN, with that reason.
    """
    y, s = _check_1d_pair(y_true, y_score)
    threshold = float(threshold)
    known = ~np.isnan(y)
    yk, sk = y[known], s[known]
    _check_scores(sk)
    out: dict[str, Any] = {"auc": _auc_known(yk, sk)}
    if math.isnan(threshold):
        counts = {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
        out.update({k: float("nan") for k in THRESHOLD_METRICS})
    else:
        pos, pred = yk == 1, sk >= threshold
        counts = {"tp": int(np.sum(pos & pred)), "fp": int(np.sum(~pos & pred)),
                  "tn": int(np.sum(~pos & ~pred)), "fn": int(np.sum(pos & ~pred))}
        out.update(metrics_from_counts(**counts))
    n_pos = int(np.sum(yk == 1))
    n_neg = int(yk.size - n_pos)
    values = {k: out[k] for k in BINARY_METRICS}
    return {**values, "threshold": threshold, "n": int(yk.size), "n_positive": n_pos, "n_negative": n_neg,
            "n_unknown": int((~known).sum()), **counts, "reasons": _reasons(values, n_pos, n_neg, threshold)}


def resolve_thresholds(thresholds, findings: Sequence[str]) -> dict[str, float]:
    """Thresholds per finding from ``None`` (0.5 each), a number (the same for all), a sequence (in finding order)
    or a mapping ``{finding: threshold}`` that must name every finding (a missing one raises DataError)."""
    if thresholds is None:
        return {f: DEFAULT_THRESHOLD for f in findings}
    if isinstance(thresholds, Mapping):
        missing = [f for f in findings if f not in thresholds]
        if missing:
            raise DataError(f"no threshold for finding(s) {missing}; thresholds given for {sorted(thresholds)}")
        return {f: float(thresholds[f]) if thresholds[f] is not None else float("nan") for f in findings}
    if np.ndim(thresholds) == 0:
        return {f: float(thresholds) for f in findings}
    seq = list(thresholds)
    if len(seq) != len(findings):
        raise ValueError(f"{len(seq)} thresholds for {len(findings)} findings")
    return {f: float(t) if t is not None else float("nan") for f, t in zip(findings, seq)}


def _mean_block(per: Mapping[str, Mapping[str, Any]], metrics: Sequence[str]) -> dict[str, Any]:
    mean: dict[str, Any] = {}
    n_findings: dict[str, int] = {}
    excluded: dict[str, dict[str, str]] = {}
    for m in metrics:
        vals = [(f, per[f][m]) for f in per]
        ok = [v for _, v in vals if not math.isnan(v)]
        mean[m] = float(np.mean(ok)) if ok else float("nan")
        n_findings[m] = len(ok)
        for f, v in vals:
            if math.isnan(v):
                excluded.setdefault(m, {})[f] = per[f].get("reasons", {}).get(m, "undefined")
    mean["n_findings"] = n_findings
    mean["excluded"] = excluded
    return mean


def multilabel_metrics(y_true, y_score, findings: Sequence[str] | None = None, thresholds=None) -> dict[str, Any]:
    """Per-finding :func:`binary_metrics` and their mean (macro over findings where a metric is defined).

    ``y_true [N, F]`` with 1 / 0 / NaN (unknown, masked per finding), ``y_score [N, F]`` probabilities,
    ``thresholds`` as :func:`resolve_thresholds` accepts (choose them on validation data with
    :func:`radclr.evaluation.thresholds.choose_thresholds`; ``None`` means 0.5 and is recorded as such).
    Returns ``{"findings": [...], "per_finding": {finding: {...}}, "mean": {metric: value, "n_findings": {...},
    "excluded": {metric: {finding: reason}}}, "n_images": N}``.
    """
    y, s, findings = _check_2d_pair(y_true, y_score, findings)
    thr = resolve_thresholds(thresholds, findings)
    per = {f: binary_metrics(y[:, j], s[:, j], thr[f]) for j, f in enumerate(findings)}
    return {"findings": findings, "per_finding": per, "mean": _mean_block(per, BINARY_METRICS),
            "n_images": int(y.shape[0])}


# --------------------------------------------------------------------------------------------------------------
# single-label multi-class (seed 004: kidney tumour types; accuracy and weighted F1)
def class_indices(y_true, n_classes: int, name: str = "y_true") -> np.ndarray:
    """``y_true`` as float class indices ``[N]`` (NaN = unknown). Accepts indices ``[N]`` or one-hot rows
    ``[N, K]`` (1 / 0 / NaN: exactly one 1 gives its column; a row without a 1 is unknown). Other values raise
    DataError."""
    y = _as_float_array(y_true, name)
    if y.ndim == 2:
        if y.shape[1] != n_classes:
            raise ValueError(f"{name} has {y.shape[1]} one-hot columns for {n_classes} classes")
        _check_binary_labels(y, name)
        ones = np.nansum(y == 1, axis=1)
        if np.any(ones > 1):
            raise DataError(f"{name}: {int(np.sum(ones > 1))} row(s) have more than one class (single-label task)")
        out = np.full(y.shape[0], np.nan)
        out[ones == 1] = np.argmax(y[ones == 1] == 1, axis=1)
        return out
    if y.ndim != 1:
        raise ValueError(f"{name} must be class indices [N] or one-hot rows [N, K], got shape {y.shape}")
    known = y[~np.isnan(y)]
    bad = (known != np.round(known)) | (known < 0) | (known >= n_classes)
    if np.any(bad):
        raise DataError(f"{name} must hold class indices 0..{n_classes - 1} (or NaN); found "
                        f"{np.unique(known[bad])[:5].tolist()}")
    return y


def confusion_counts(y_idx: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``[K, K]`` counts: row = true class, column = predicted class (integer index arrays)."""
    return np.bincount(y_idx * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def metrics_from_confusion(cm) -> dict[str, Any]:
    """Accuracy, weighted and macro F1, per-class recall, precision and F1 from confusion matrices.

    ``cm [..., K, K]`` (rows true, columns predicted; counts or bootstrap weights). Per class c: recall =
    TP / support (NaN without support), precision = TP / predicted-c (NaN when never predicted), F1 = 2 TP /
    (2 TP + FP + FN). Weighted F1 (seed 004 §3) = sum_c support_c F1_c / N (``f1_score(average="weighted")``);
    macro F1 = unweighted mean of F1 over the classes **present among the labels** (support > 0), i.e.
    ``f1_score(average="macro", labels=<classes present>)``.
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support = cm.sum(axis=-1)
    predicted = cm.sum(axis=-2)
    n = support.sum(axis=-1)
    recall = _ratio(tp, support)
    precision = _ratio(tp, predicted)
    f1 = _ratio(2 * tp, support + predicted)
    present = support > 0
    weighted = _ratio(np.sum(np.where(present, support * np.nan_to_num(f1), 0.0), axis=-1), n)
    n_present = present.sum(axis=-1)
    macro = _ratio(np.sum(np.where(present, np.nan_to_num(f1), 0.0), axis=-1), n_present)
    return {"accuracy": _ratio(tp.sum(axis=-1), n), "f1_weighted": weighted, "f1_macro": macro,
            "recall": recall, "precision": precision, "f1": f1, "support": support}


def multiclass_metrics(y_true, y_score, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Single-label K-class metrics of the arg-max prediction: accuracy, weighted F1 (seed 004 §3), macro F1,
    per-class recall / precision / F1, the confusion matrix, and the macro one-vs-rest AUC (mean over classes
    with both "is k" and "is not k" present among the labels).

    ``y_true`` integer class indices ``[N]`` 0..K-1 (NaN = unknown, masked) or one-hot rows ``[N, K]``;
    ``y_score [N, K]`` class probabilities (or logits). A class absent from the labels has NaN AUC and recall
    with a reason and is left out of the AUC and macro-F1 means; its F1 has weight 0 (support 0), as in
    ``f1_score(average="weighted")``. ``confusion_matrix[i][j]`` counts images of true class i predicted j.
    """
    s = _as_float_array(y_score, "y_score")
    if s.ndim != 2:
        raise ValueError(f"y_score must be [N, K], got {s.shape}")
    k = s.shape[1]
    if k < 2:
        raise ValueError(f"y_score needs at least 2 class columns, got {s.shape}")
    y = class_indices(y_true, k)
    if y.shape[0] != s.shape[0]:
        raise ValueError(f"y_true must be [N] and y_score [N, K], got {y.shape} and {s.shape}")
    names = [str(c) for c in (class_names if class_names is not None else range(k))]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for {k} score columns")
    known = ~np.isnan(y)
    yk, sk = y[known].astype(np.int64), s[known]
    _check_scores(sk)
    pred = np.argmax(sk, axis=1)
    n = yk.size
    cm = confusion_counts(yk, pred, k)
    m = metrics_from_confusion(cm)
    per_class: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    for c, name in enumerate(names):
        support = int(m["support"][c])
        auc = _auc_known((yk == c).astype(np.float64), sk[:, c])
        if math.isnan(auc):
            reasons[f"auc[{name}]"] = f"class {name!r} has {support} of {n} known labels (one-vs-rest needs both)"
        if support == 0:
            reasons[f"recall[{name}]"] = f"class {name!r} has no image among the known labels"
        per_class[name] = {"auc": auc, "f1": float(m["f1"][c]), "recall": float(m["recall"][c]),
                           "precision": float(m["precision"][c]), "support": support,
                           "sensitivity": float(m["recall"][c])}
    aucs = [v["auc"] for v in per_class.values() if not math.isnan(v["auc"])]
    out = {
        "accuracy": float(m["accuracy"]) if n else float("nan"),
        "f1_weighted": float(m["f1_weighted"]) if n else float("nan"),
        "f1_macro": float(m["f1_macro"]) if n else float("nan"),
        "auc": float(np.mean(aucs)) if aucs else float("nan"),
        "n_classes_in_auc": len(aucs),
        "recall": {name: per_class[name]["recall"] for name in names},
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "classes": names,
        "n": int(n),
        "n_unknown": int((~known).sum()),
        "reasons": reasons,
    }
    if n == 0:
        out["reasons"]["all"] = "no image with a known label"
    return out


# --------------------------------------------------------------------------------------------------------------
class MetricAccumulator:
    """Collect ``(y_true, y_score)`` batch by batch, compute the metrics once at the end.

    MONAI's pattern (``monai/metrics/metric.py``: ``Cumulative``): :meth:`update` (also ``acc(y_true, y_score)``)
    appends a batch, :meth:`aggregate` computes over everything seen, :meth:`reset` empties the buffers -- call it
    explicitly between epochs. ``task="multilabel"`` (``y_true [B, F]`` with NaN unknown, ``y_score [B, F]``) or
    ``"multiclass"`` (``y_true [B]`` class indices, ``y_score [B, K]``). Torch tensors are accepted (detached,
    moved to CPU).
    """

    def __init__(self, findings: Sequence[str] | None = None, task: str = "multilabel"):
        if task not in ("multilabel", "multiclass"):
            raise ValueError(f"task must be 'multilabel' or 'multiclass', got {task!r}")
        self.findings = None if findings is None else [str(f) for f in findings]
        self.task = task
        self.reset()

    def reset(self) -> None:
        self._y: list[np.ndarray] = []
        self._s: list[np.ndarray] = []

    def update(self, y_true, y_score) -> None:
        y = _as_float_array(y_true, "y_true")
        s = _as_float_array(y_score, "y_score")
        if self.task == "multilabel":
            if y.ndim == 1:
                y = y[:, None]
            if s.ndim == 1:
                s = s[:, None]
            if y.ndim != 2 or s.shape != y.shape:
                raise ValueError(f"y_true and y_score must both be [B, F], got {y.shape} and {s.shape}")
        elif y.ndim != 1 or s.ndim != 2 or s.shape[0] != y.shape[0]:
            raise ValueError(f"y_true must be [B] and y_score [B, K], got {y.shape} and {s.shape}")
        if self._s and s.shape[1:] != self._s[0].shape[1:]:
            raise ValueError(f"batch y_score {s.shape} does not match earlier batches {self._s[0].shape}")
        self._y.append(y.copy())
        self._s.append(s.copy())

    __call__ = update

    def __len__(self) -> int:
        return int(sum(len(y) for y in self._y))

    def get_buffer(self) -> tuple[np.ndarray, np.ndarray]:
        """Everything accumulated so far: ``(y_true, y_score)`` concatenated over batches."""
        if not self._y:
            raise ValueError("MetricAccumulator is empty: call update() before aggregate()/get_buffer()")
        return np.concatenate(self._y), np.concatenate(self._s)

    def aggregate(self, thresholds=None) -> dict[str, Any]:
        """:func:`multilabel_metrics` (with ``thresholds``) or :func:`multiclass_metrics` of all batches."""
        y, s = self.get_buffer()
        if self.task == "multilabel":
            return multilabel_metrics(y, s, self.findings, thresholds)
        return multiclass_metrics(y, s, self.findings)


# --------------------------------------------------------------------------------------------------------------
def jsonable(obj: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays -> Python numbers/lists, NaN/inf -> ``None``, tuples -> lists,
    mapping keys -> str. ``json.dumps(jsonable(x), allow_nan=False)`` then succeeds."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj
