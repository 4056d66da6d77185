"""Linear evaluation of frozen features by logistic regression (seed 003 §V-B, Table III).

Seed 003: "we ... use the pretrained network as a fixed feature extractor. We adopted logistic regression as a
classifier ... we searched through the parameter space C = {0.01, 0.05, 0.1, 0.2, 0.5, 1}. The logistic
regression weights were automatically adjusted to be inversely proportional to the class frequencies ... The
other parameters were set to their default values. The best model was adopted after a grid search based on the
AUC metric", with patient-wise train/validation/test subsets and stratified k-fold cross-validation, reporting
ACC, AUC, SEN, SPE and F1.

radclr's reading (each point documented in the result):

* Model: ``StandardScaler`` -> ``LogisticRegression(C, class_weight="balanced", max_iter=5000)`` with
  scikit-learn's other defaults (L2, lbfgs). Two departures from "defaults", both needed for a valid result:
  the **scaler is fit on the training rows only** (pretrained features are unscaled; lbfgs converges badly
  without it) and ``max_iter`` is raised from 100 (non-convergence is reported under ``converged``).
* Selection: every C of the grid is fit on the training rows; the C with the highest **validation** AUC is kept
  (ties -> the smaller C, the stronger regularisation); that model predicts the test rows.
* Thresholds for ACC/SEN/SPE/F1 come from the **validation** predictions of the selected model
  (:mod:`radclr.evaluation.thresholds`, default Youden's J; ``threshold_rule="fixed"`` with 0.5 reproduces
  ``LogisticRegression.predict``, what seed 003 most likely reported). Never from test.
* Tasks: ``y [N, F]`` multi-label (1/0/NaN unknown): one binary logistic regression per finding, on the rows
  where that finding is known, C chosen per finding. ``y [N]`` with values 0/1: one binary task. ``y [N]`` with
  more classes (or ``task="multiclass"``, e.g. a run with ``data.task: multiclass``, whose one-hot rows become
  class indices): one multinomial model, selected by macro one-vs-rest AUC, reporting accuracy, weighted and
  macro F1, per-class recall, the confusion matrix and AUC (seed 004 §3's metrics; arg-max, no threshold), with
  patient-bootstrap CIs (``test_ci``: :func:`~radclr.evaluation.bootstrap.multiclass_report`).
* Label fractions: ``labeled [N]`` (bool) marks the training rows whose labels may be used; unlabelled training
  rows are ignored (validation and test keep their labels: they measure, they do not train).
* k-fold (:func:`linear_eval_cv`): patient-wise ``StratifiedGroupKFold``; in each outer fold the remaining
  patients are split once more (patient-wise, stratified) into training and validation for the choice of C and
  the threshold, and the held-out fold is the test set. Per-fold metrics and mean +- sd (ddof 1) are reported.
* Cores: the findings x C fits (k-fold: the findings x folds) are independent and run in worker processes
  (``n_jobs``; default every core once rows x features x fits reach 10^7, below which starting workers costs more
  than it saves). Every fit uses one BLAS thread, in a worker or in this process, so the results are identical
  whatever ``n_jobs``.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any, Sequence

import numpy as np

from radclr.errors import DataError
from radclr.evaluation.bootstrap import classification_report, multiclass_report
from radclr.evaluation.metrics import (
    BINARY_METRICS,
    _as_float_array,
    _auc_known,
    binary_metrics,
    class_indices,
    jsonable,
    multiclass_metrics,
)
from radclr.evaluation.thresholds import choose_threshold

__all__ = ["C_GRID", "make_logistic", "infer_task", "linear_eval", "linear_eval_cv", "patient_folds"]

C_GRID = (0.01, 0.05, 0.1, 0.2, 0.5, 1.0)  # seed 003 §V-B
MAX_ITER = 5000


def make_logistic(C: float, *, max_iter: int = MAX_ITER, seed: int = 0):
    """``StandardScaler -> LogisticRegression(C, class_weight="balanced")`` (seed 003 §V-B); scaler fit at ``fit``."""
    from sklearn.linear_model import LogisticRegression  # slow to import; only used here
    from sklearn.pipeline import make_pipeline  # slow to import; only used here
    from sklearn.preprocessing import StandardScaler  # slow to import; only used here

    return make_pipeline(StandardScaler(),
                         LogisticRegression(C=float(C), class_weight="balanced", max_iter=int(max_iter),
                                            random_state=seed))


# --------------------------------------------------------------------------------------------------------------
# input handling
def infer_task(y) -> str:
    """``"multilabel"`` for ``[N, F]``, ``"binary"`` for ``[N]`` holding only 0/1 (and NaN), else
    ``"multiclass"`` (``[N]`` of class indices 0..K-1)."""
    y = _as_float_array(y, "y")
    if y.ndim == 2:
        return "multilabel"
    if y.ndim != 1:
        raise ValueError(f"labels must be [N] or [N, F], got shape {y.shape}")
    known = y[~np.isnan(y)]
    return "binary" if np.all((known == 0) | (known == 1)) else "multiclass"


def _features(x, name: str) -> np.ndarray:
    x = _as_float_array(x, name)
    if x.ndim != 2:
        raise ValueError(f"{name} must be [N, D] features, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise DataError(f"{name} has {int((~np.isfinite(x)).sum())} non-finite value(s)")
    return x


def _labels(y, n: int, task: str, name: str) -> np.ndarray:
    y = _as_float_array(y, name)
    if y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} rows but the features have {n}")
    if task == "multilabel" and y.ndim == 1:
        y = y[:, None]
    if task != "multilabel" and y.ndim != 1:
        raise ValueError(f"{name} must be [N] for a {task} task, got {y.shape}")
    known = y[~np.isnan(y)]
    if task in ("binary", "multilabel") and np.any((known != 0) & (known != 1)):
        raise DataError(f"{name} must hold 0, 1 or NaN for a {task} task; found {np.unique(known)[:5].tolist()}")
    if task == "multiclass" and np.any((known != np.round(known)) | (known < 0)):
        raise DataError(f"{name} must hold class indices 0..K-1 (or NaN); found {np.unique(known)[:5].tolist()}")
    return y


def _mask(labeled, n: int) -> np.ndarray:
    if labeled is None:
        return np.ones(n, dtype=bool)
    m = np.asarray(labeled)
    if m.shape != (n,) or m.dtype != bool:
        raise ValueError(f"labeled must be a boolean mask of shape ({n},), got {m.dtype} {m.shape}")
    return m


def _task_names(task: str, y: np.ndarray, findings) -> list[str]:
    if task == "multilabel":
        names = [f"finding_{j}" for j in range(y.shape[1])] if findings is None else [str(f) for f in findings]
        if len(names) != y.shape[1]:
            raise ValueError(f"{len(names)} finding names for {y.shape[1]} label columns")
        return names
    if task == "binary":
        if findings is None:
            return ["label"]
        if len(findings) != 1:
            raise ValueError(f"a binary task takes one name, got {list(findings)}")
        return [str(findings[0])]
    return [] if findings is None else [str(f) for f in findings]  # multiclass: class names


# --------------------------------------------------------------------------------------------------------------
# fitting the grid, in parallel over the cores
PARALLEL_MIN_WORK = 10_000_000  # rows x features x fits below which one process is faster than starting workers


def _jobs(n_jobs: int | None, n_tasks: int, work: float) -> int:
    """Worker processes for ``n_tasks`` independent fits: ``n_jobs`` when given (1 = in this process), else every
    available core (:func:`joblib.cpu_count`) once the work is large enough to pay for starting them."""
    if n_jobs is not None:
        if int(n_jobs) < 1:
            raise ValueError(f"n_jobs must be >= 1 or None (every core), got {n_jobs}")
        return max(1, min(int(n_jobs), n_tasks))
    if work < PARALLEL_MIN_WORK:
        return 1
    from joblib import cpu_count  # slow to import; only used here

    return max(1, min(cpu_count(), n_tasks))


def _parallel(function, calls: list[tuple], n_jobs: int) -> list:
    """``[function(*args) for args in calls]``, in ``n_jobs`` worker processes when ``n_jobs > 1``.

    Every call runs with one BLAS thread, in a worker or here, on the same inputs: the results do not depend on
    ``n_jobs`` or on the machine's thread settings. A large array passed to several calls is written once to a
    memory-mapped file the workers share (joblib), not copied into every call."""
    from threadpoolctl import threadpool_limits  # scikit-learn's dependency; slow to import

    if n_jobs <= 1 or len(calls) <= 1:
        with threadpool_limits(limits=1, user_api="blas"):
            return [function(*args) for args in calls]
    from joblib import Parallel, delayed, parallel_config  # slow to import; only used here

    with parallel_config(backend="loky", inner_max_num_threads=1):
        return Parallel(n_jobs=n_jobs)(delayed(function)(*args) for args in calls)


def _fit_entry(x, rows, y, entry, factory, max_iter: int, seed: int):
    """``(model, converged)`` of grid ``entry`` fit on ``x[rows]`` (all rows when ``rows`` is None) and ``y``."""
    model = factory(entry, max_iter=max_iter, seed=seed)
    converged = _fit_quiet(model, x if rows is None else x[rows], y)
    return model, converged


def _fit_grid(x, tasks: list[tuple], *, factory, max_iter: int, seed: int, n_jobs: int | None) -> list[tuple]:
    """Fit every ``(rows, y, grid entry)`` of ``tasks`` on the features ``x``: ``[(model, converged), ...]`` in
    the order of ``tasks``."""
    rows = [len(y) for _, y, _ in tasks]
    jobs = _jobs(n_jobs, len(tasks), float(sum(rows)) * x.shape[1])
    return _parallel(_fit_entry, [(x, r, y, e, factory, max_iter, seed) for r, y, e in tasks], jobs)


# --------------------------------------------------------------------------------------------------------------
# one binary task
class _Skip(Exception):
    """A task that cannot be evaluated on these rows (reason in the message)."""


def _fit_quiet(model, x, y):
    from sklearn.exceptions import ConvergenceWarning  # slow to import; only used here

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x, y)
    return not any(issubclass(w.category, ConvergenceWarning) for w in caught)


def _check_two_classes(ytr, yva) -> None:
    """:class:`_Skip` when the training or validation rows of a binary task hold one class only."""
    if np.unique(ytr).size < 2:
        raise _Skip(f"training rows hold one class ({int(ytr.sum())} positive of {ytr.size})")
    if np.unique(yva).size < 2:
        raise _Skip(f"validation rows hold one class ({int(yva.sum())} positive of {yva.size}): "
                    "C cannot be chosen by validation AUC")


def _binary_task(fitted, ytr, xva, yva, xte, yte, *, c_grid, threshold_rule, name, factory=None):
    """Select among the grid's fitted models by validation AUC, threshold on validation, metrics on test.

    ``fitted``: ``[(model, converged)]`` of every grid entry, fit on the training labels ``ytr``
    (:func:`_fit_grid`; ``factory(entry, max_iter=, seed=)`` built them, default :func:`make_logistic` of C);
    ties go to the earlier entry (the default grid is ascending C: the stronger regularisation)."""
    factory = factory or make_logistic
    models = {c: m for c, (m, _) in zip(c_grid, fitted)}
    converged = {c: ok for c, (_, ok) in zip(c_grid, fitted)}
    val_auc = {c: _auc_known(yva, models[c].predict_proba(xva)[:, 1]) for c in c_grid}
    order = list(c_grid) if factory is not make_logistic else sorted(c_grid)
    best_c = order[max(range(len(order)), key=lambda i: (val_auc[order[i]], -i))]  # ties -> earlier (smaller C)
    model = models[best_c]
    p_val = model.predict_proba(xva)[:, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        thr = choose_threshold(yva, p_val, threshold_rule, name=name)
    p_test = model.predict_proba(xte)[:, 1] if len(xte) else np.zeros(0)
    test = binary_metrics(yte, p_test, thr)
    return {
        "C": best_c, "val_auc": val_auc[best_c], "val_auc_by_C": {repr(c): val_auc[c] for c in c_grid},
        "converged": bool(converged[best_c]), "threshold": thr,
        "n_train": int(ytr.size), "n_train_positive": int(ytr.sum()), "n_val": int(yva.size),
        "n_test": int(test["n"]), "test": test,
    }, p_test


def _multiclass_task(xtr, ytr, xva, yva, xte, yte, *, c_grid, max_iter, seed, class_names, factory=None,
                     n_jobs: int | None = None):
    """One multinomial model per grid entry on train (fit in parallel, :func:`_fit_grid`), selected by validation
    macro one-vs-rest AUC (ties -> the earlier entry; the default grid is ascending C), metrics of the arg-max on
    test."""
    factory = factory or make_logistic
    k = len(class_names) if class_names else \
        int(max(np.max(ytr), np.max(yva), np.max(yte) if yte.size else 0)) + 1
    missing = sorted(set(range(k)) - set(np.unique(ytr).astype(int).tolist()))
    if missing:
        raise DataError(f"training rows lack class(es) {missing}; a multinomial model needs every class")
    fitted = _fit_grid(xtr, [(None, ytr.astype(int), c) for c in c_grid], factory=factory, max_iter=max_iter,
                       seed=seed, n_jobs=n_jobs)
    models = {c: m for c, (m, _) in zip(c_grid, fitted)}
    converged = {c: ok for c, (_, ok) in zip(c_grid, fitted)}
    val_auc = {c: multiclass_metrics(yva, models[c].predict_proba(xva), class_names or None)["auc"] for c in c_grid}
    if all(math.isnan(v) for v in val_auc.values()):
        raise DataError("validation AUC is undefined for every C (validation holds a single class)")
    order = sorted(c_grid) if factory is make_logistic else list(c_grid)
    score = [(-math.inf if math.isnan(val_auc[c]) else val_auc[c]) for c in order]
    best_c = order[max(range(len(order)), key=lambda i: (score[i], -i))]
    p_test = models[best_c].predict_proba(xte) if len(xte) else np.zeros((0, k))
    return {"C": best_c, "val_auc": val_auc[best_c], "val_auc_by_C": {repr(c): val_auc[c] for c in c_grid},
            "converged": bool(converged[best_c]), "n_train": int(ytr.size), "n_val": int(yva.size),
            "n_test": int(yte.size), "test": multiclass_metrics(yte, p_test, class_names or None)}, p_test


def _mean_metrics(per_finding: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for m in BINARY_METRICS:
        vals = [r["test"][m] for r in per_finding.values() if "test" in r and not math.isnan(r["test"][m])]
        out[m] = float(np.mean(vals)) if vals else float("nan")
    out["n_findings"] = sum(1 for r in per_finding.values() if "test" in r)
    return out


def _evaluate_split(task, names, xtr, ytr, ltr, xva, yva, xte, yte, *, c_grid, threshold_rule, max_iter, seed,
                    factory=None, n_jobs: int | None = None):
    """The selection + test procedure on one train/val/test split; every (finding, grid entry) model is fit at once,
    in parallel over ``n_jobs`` processes (:func:`_fit_grid`). Returns (result, test scores)."""
    if task == "multiclass":
        tr = ~np.isnan(ytr) & ltr
        va, te = ~np.isnan(yva), ~np.isnan(yte)
        res, p = _multiclass_task(xtr[tr], ytr[tr], xva[va], yva[va], xte[te], yte[te], c_grid=c_grid,
                                  max_iter=max_iter, seed=seed, class_names=names or None, factory=factory,
                                  n_jobs=n_jobs)
        scores = np.full((len(yte), p.shape[1]), np.nan)
        scores[te] = p
        return {"task": task, "chosen_C": {"all": res["C"]}, **res, "test_metrics": res["test"]}, scores
    ytr2, yva2, yte2 = (v[:, None] if v.ndim == 1 else v for v in (ytr, yva, yte))
    skipped, tasks = {}, []  # tasks: (finding index, training rows, validation rows, test rows)
    for j, f in enumerate(names):
        tr = np.flatnonzero(~np.isnan(ytr2[:, j]) & ltr)
        va, te = ~np.isnan(yva2[:, j]), ~np.isnan(yte2[:, j])
        try:
            _check_two_classes(ytr2[tr, j], yva2[va, j])
        except _Skip as e:
            if task == "binary":
                raise DataError(f"linear evaluation impossible: {e}") from None
            skipped[f] = str(e)
            continue
        tasks.append((j, tr, va, te))
    fitted = _fit_grid(xtr, [(tr, ytr2[tr, j], c) for j, tr, _, _ in tasks for c in c_grid], factory=factory or make_logistic,
                       max_iter=max_iter, seed=seed, n_jobs=n_jobs)
    results = {}
    scores = np.full(yte2.shape, np.nan)
    for k, (j, tr, va, te) in enumerate(tasks):
        grid = fitted[k * len(c_grid):(k + 1) * len(c_grid)]
        results[names[j]], scores[te, j] = _binary_task(grid, ytr2[tr, j], xva[va], yva2[va, j], xte[te], yte2[te, j],
                                                        c_grid=c_grid, threshold_rule=threshold_rule, name=names[j],
                                                        factory=factory)
    per = {f: results[f] if f in results else {"skipped": skipped[f]} for f in names}
    chosen = {f: results[f]["C"] if f in results else None for f in names}
    return {"task": task, "chosen_C": chosen, "per_finding": per, "test_metrics": _mean_metrics(per)}, scores


def _common(task, c_grid, threshold_rule, max_iter):
    return {"task": task, "c_grid": [float(c) if isinstance(c, (int, float)) else c for c in c_grid], "class_weight": "balanced",
            "standardize": "StandardScaler fit on the training rows", "max_iter": int(max_iter),
            "selection": "validation AUC (ties -> smaller C)",
            "threshold_rule": None if task == "multiclass" else threshold_rule}


# --------------------------------------------------------------------------------------------------------------
def linear_eval(X_train, y_train, X_val, y_val, X_test, y_test, *, findings: Sequence[str] | None = None,
                labeled=None, c_grid: Sequence[float] = C_GRID, threshold_rule: str = "youden",
                patient_ids_test=None, n_boot: int = 0, ci: float = 0.95, seed: int = 0,
                max_iter: int = MAX_ITER, return_scores: bool = False, model_factory=None, task: str | None = None,
                n_jobs: int | None = None):
    """Seed 003 linear evaluation on explicit train / validation / test features (see the module doc).

    ``model_factory(entry, max_iter=, seed=)`` replaces the logistic regression of C by another model per
    ``c_grid`` entry (e.g. feature selection + classifier: :mod:`radclr.evaluation.classical`).
    ``task``: ``None`` infers it from the labels (:func:`infer_task`); ``"multiclass"`` forces a single-label task
    (``y [N]`` class indices, or one-hot rows ``[N, K]`` as datasets hold them) even with two classes.
    ``n_jobs``: worker processes for the findings x ``c_grid`` fits (``None``: every core once the features are
    large enough to pay for them; 1: this process); the result does not depend on it.

    ``X_*`` are frozen features ``[N, D]``; ``y_*`` labels (``[N, F]`` multi-label with NaN unknown, ``[N]``
    binary or class indices); ``labeled`` a boolean mask over the *training* rows (label fractions).
    Returns a JSON-serialisable dict: ``task``, ``findings``, ``chosen_C`` (per finding), ``per_finding``
    (C, validation AUC per C, threshold, counts, test metrics -- or ``skipped`` with the reason), ``test``
    (mean over findings of ``auc, accuracy, f1, f1_weighted, sensitivity, specificity``; for multi-class
    ``auc, accuracy, f1_weighted``) and, with ``patient_ids_test`` and ``n_boot > 0``, ``test_ci`` =
    :func:`~radclr.evaluation.bootstrap.classification_report` of the test predictions. With
    ``return_scores=True`` returns ``(result, test_scores)``; ``test_scores`` is ``[N_test, F]`` (NaN where a
    label is unknown or a finding was skipped) or ``[N_test, K]``.
    """
    if not c_grid:
        raise ValueError("c_grid must name at least one C")
    xtr, xva, xte = (_features(x, n) for x, n in ((X_train, "X_train"), (X_val, "X_val"), (X_test, "X_test")))
    if not xtr.shape[1] == xva.shape[1] == xte.shape[1]:
        raise ValueError(f"feature widths differ: train {xtr.shape}, val {xva.shape}, test {xte.shape}")
    task = task or infer_task(y_train)
    if task == "multiclass":  # one-hot rows -> class indices
        n_cls = len(findings) if findings is not None else (np.shape(y_train)[1] if np.ndim(y_train) == 2 else None)
        if np.ndim(y_train) == 2:
            y_train, y_val, y_test = (class_indices(v, n_cls, n) for v, n in
                                      ((y_train, "y_train"), (y_val, "y_val"), (y_test, "y_test")))
    ytr = _labels(y_train, len(xtr), task, "y_train")
    yva = _labels(y_val, len(xva), task, "y_val")
    yte = _labels(y_test, len(xte), task, "y_test")
    names = _task_names(task, ytr, findings)
    res, scores = _evaluate_split(task, names, xtr, ytr, _mask(labeled, len(xtr)), xva, yva, xte, yte,
                                  c_grid=c_grid, threshold_rule=threshold_rule, max_iter=max_iter, seed=seed,
                                  factory=model_factory, n_jobs=n_jobs)
    out = {**_common(task, [c if isinstance(c, (int, float)) else list(c) for c in c_grid], threshold_rule, max_iter),
           "findings": names,
           "n_train_labeled": int(_mask(labeled, len(xtr)).sum()), "n_train": len(xtr), "n_val": len(xva),
           "n_test": len(xte)}
    out.update({k: v for k, v in res.items() if k not in ("task", "test_metrics")})
    out["test"] = res["test_metrics"]
    if patient_ids_test is not None and n_boot > 0 and task == "multiclass" and len(xte):
        out["test_ci"] = multiclass_report(yte, scores, names or None, patient_ids=patient_ids_test, n_boot=n_boot,
                                           ci=ci, seed=seed)
    if patient_ids_test is not None and n_boot > 0 and task != "multiclass":
        thr = {f: res["per_finding"][f].get("threshold", float("nan")) for f in names}
        yte2 = yte[:, None] if yte.ndim == 1 else yte
        ok = [j for j, f in enumerate(names) if "test" in res["per_finding"][f]]
        if ok:
            out["test_ci"] = classification_report(yte2[:, ok], scores[:, ok], [names[j] for j in ok],
                                                   patient_ids=patient_ids_test,
                                                   thresholds={names[j]: thr[names[j]] for j in ok},
                                                   n_boot=n_boot, ci=ci, seed=seed)
    out = jsonable(out)
    return (out, scores) if return_scores else out


# --------------------------------------------------------------------------------------------------------------
def patient_folds(y, groups, n_splits: int = 5, seed: int = 0) -> np.ndarray:
    """Fold index (0..n_splits-1) of every row: ``StratifiedGroupKFold`` over patients, stratified on the 1-D
    labels ``y`` (no NaN). No patient is in two folds. Too few patients of a class raise DataError."""
    from sklearn.model_selection import StratifiedGroupKFold  # slow to import; only used here

    y = np.asarray(y)
    groups = np.asarray(groups, dtype=object)
    if y.ndim != 1 or groups.shape != y.shape:
        raise ValueError(f"y and groups must be 1-D of equal length, got {y.shape} and {groups.shape}")
    if n_splits < 2:
        raise ValueError(f"n_splits must be >= 2, got {n_splits}")
    for c in np.unique(y):
        n_pat = len(set(groups[y == c].tolist()))
        if n_pat < n_splits:
            raise DataError(f"class {c!r} has {n_pat} patient(s), fewer than n_splits={n_splits}: "
                            "every fold needs each class")
    folds = np.full(y.shape[0], -1, dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    codes = np.unique(groups.astype(str), return_inverse=True)[1]
    for k, (_, test) in enumerate(splitter.split(np.zeros((len(y), 1)), y, codes)):
        folds[test] = k
    return folds


def _summary(rows: list[dict[str, Any]], metrics: Sequence[str]) -> dict[str, Any]:
    out = {}
    for m in metrics:
        vals = np.array([r[m] for r in rows if r.get(m) is not None and not math.isnan(r[m])], dtype=float)
        out[m] = {"mean": float(vals.mean()) if vals.size else float("nan"),
                  "sd": float(vals.std(ddof=1)) if vals.size > 1 else float("nan"), "n_folds": int(vals.size)}
    return out


def linear_eval_cv(X, y, groups, *, n_splits: int = 5, val_splits: int = 4, findings: Sequence[str] | None = None,
                   labeled=None, c_grid: Sequence[float] = C_GRID, threshold_rule: str = "youden", seed: int = 0,
                   max_iter: int = MAX_ITER, task: str | None = None, n_jobs: int | None = None) -> dict[str, Any]:
    """Seed 003 linear evaluation by patient-wise stratified k-fold cross-validation on one pool.

    For each finding (multi-label: on the rows where it is known; stratified on it) the patients are split into
    ``n_splits`` folds (:func:`patient_folds`); each fold in turn is the test set and the other patients are
    split once more, patient-wise and stratified, into training ((val_splits-1)/val_splits) and validation
    (1/val_splits) for the choice of C and of the threshold. ``labeled`` restricts the rows used for *training*.
    The (finding, fold) evaluations run in parallel over ``n_jobs`` processes (``None``: every core once the
    features are large enough to pay for them; 1: this process); the result does not depend on it.
    Returns a JSON-serialisable dict: per finding the per-fold results (C, validation AUC, threshold, counts,
    test metrics, test patients) and ``summary`` (mean, sd over folds); ``mean`` = per fold the mean over
    findings, and its summary (seed 003 Table III: ACC, AUC, SEN, SPE, F1).
    """
    x = _features(X, "X")
    task = task or infer_task(y)
    if task == "multiclass" and np.ndim(y) == 2:  # one-hot rows -> class indices
        y = class_indices(y, len(findings) if findings is not None else np.shape(y)[1], "y")
    yy = _labels(y, len(x), task, "y")
    groups = np.asarray(groups, dtype=object)
    if groups.shape != (len(x),):
        raise ValueError(f"groups must hold one patient id per row ({len(x)}), got shape {groups.shape}")
    lab = _mask(labeled, len(x))
    names = _task_names(task, yy, findings)
    columns = [yy] if task == "multiclass" else [yy[:, j] if yy.ndim == 2 else yy for j in range(len(names))]
    col_names = ["all"] if task == "multiclass" else names
    metrics = ("auc", "accuracy", "f1_weighted") if task == "multiclass" else BINARY_METRICS
    skipped: dict[str, str] = {}
    calls = []  # one call of _cv_fold per (finding, fold)
    for col, name in zip(columns, col_names):
        known = np.flatnonzero(~np.isnan(col))
        try:
            folds = patient_folds(col[known], groups[known], n_splits, seed)
        except DataError as e:
            if task == "multilabel":
                skipped[name] = str(e)
                continue
            raise
        for k in range(n_splits):
            test_idx = known[folds == k]
            pool = known[folds != k]
            inner = patient_folds(col[pool], groups[pool], val_splits, seed + 1 + k)
            calls.append((x, col, lab, pool[inner != 0], pool[inner == 0], test_idx, name, k,
                          len(set(groups[test_idx].tolist()))))
    work = float(len(x)) * x.shape[1] * len(c_grid) * len(calls)
    fold_rows = _parallel(functools.partial(_cv_fold, task=task, names=names, metrics=metrics, c_grid=c_grid,
                                            threshold_rule=threshold_rule, max_iter=max_iter, seed=seed),
                          calls, _jobs(n_jobs, len(calls), work))
    rows_of: dict[str, list[dict]] = {}
    for row, call in zip(fold_rows, calls):
        rows_of.setdefault(call[6], []).append(row)
    per: dict[str, Any] = {}
    for name in col_names:
        if name in skipped:
            per[name] = {"skipped": skipped[name]}
        elif name in rows_of:
            per[name] = {"folds": rows_of[name], "summary": _summary(rows_of[name], metrics)}
    out = {**_common(task, [c if isinstance(c, (int, float)) else list(c) for c in c_grid], threshold_rule, max_iter),
           "findings": names, "n_splits": int(n_splits),
           "val_splits": int(val_splits), "seed": int(seed), "n": len(x), "n_patients": len(set(groups.tolist())),
           "per_finding": per}
    fold_maps = [{r["fold"]: r for r in rows_of[name]} for name in col_names if name in rows_of]
    if task == "multilabel" and fold_maps:
        mean_rows = []
        for k in range(n_splits):
            row = {"fold": k}
            for m in metrics:
                vals = [fr[k][m] for fr in fold_maps if k in fr and not math.isnan(fr[k][m])]
                row[m] = float(np.mean(vals)) if vals else float("nan")
            mean_rows.append(row)
        out["mean"] = {"folds": mean_rows, "summary": _summary(mean_rows, metrics)}
    else:
        only = next(iter(per.values()))
        out["mean"] = {"folds": only.get("folds", []), "summary": only.get("summary", {})}
    return jsonable(out)


def _cv_fold(x, col, lab, tr_idx, va_idx, test_idx, name, fold, n_test_patients, *, task, names, metrics, c_grid,
             threshold_rule, max_iter, seed) -> dict:
    """Fold ``fold`` of :func:`linear_eval_cv` for one finding (``col``: its labels; ``name``): the chosen entry,
    its validation AUC (and threshold) and the test metrics, or ``skipped`` with the reason (multi-label)."""
    if task == "multiclass":
        res, _ = _evaluate_split(task, names, x[tr_idx], col[tr_idx], lab[tr_idx], x[va_idx], col[va_idx],
                                 x[test_idx], col[test_idx], c_grid=c_grid, threshold_rule=threshold_rule,
                                 max_iter=max_iter, seed=seed, n_jobs=1)
        row = {"C": res["C"], "val_auc": res["val_auc"], "converged": res["converged"],
               **{m: res["test"][m] for m in metrics}}
    else:
        try:
            res, _ = _evaluate_split("binary", [name], x[tr_idx], col[tr_idx], lab[tr_idx], x[va_idx], col[va_idx],
                                     x[test_idx], col[test_idx], c_grid=c_grid, threshold_rule=threshold_rule,
                                     max_iter=max_iter, seed=seed, n_jobs=1)
        except DataError as e:
            if task != "multilabel":
                raise
            row = {"skipped": str(e), **{m: float("nan") for m in metrics}}
        else:
            r = res["per_finding"][name]
            row = {"C": r["C"], "val_auc": r["val_auc"], "threshold": r["threshold"], "converged": r["converged"],
                   **{m: r["test"][m] for m in metrics}}
    row.update(fold=fold, n_train=int(lab[tr_idx].sum()), n_val=len(va_idx), n_test=len(test_idx),
               n_test_patients=n_test_patients)
    return row
