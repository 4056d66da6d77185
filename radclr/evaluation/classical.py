"""Seed 004's classical radiomics baseline (Table 2 "Radiomics method", ref. [4]): features -> selection -> classifier.

The pipeline of Gillies et al. as seed 004 §3.4 describes it ("feature preprocessing, feature selecting, and
classification"): radiomic features of the region (NaN/inf -> training median), standardised on the training
split, univariate ANOVA F-test selection of the k best (sklearn ``SelectKBest(f_classif)``), then a logistic
regression with balanced class weights. ``(k, C)`` is chosen on the validation split by AUC from
``k in K_GRID x C in C_GRID``; thresholds on validation; metrics on test with patient-bootstrap CIs -- the same
procedure and output layout as :func:`radclr.evaluation.linear.linear_eval`.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from radclr.evaluation.linear import C_GRID, linear_eval

K_GRID = (5, 10, 20, 50, "all")


def feature_selection_model(entry, *, max_iter: int = 5000, seed: int = 0):
    """``(k, C)`` -> drop constant features -> standardise -> SelectKBest(f_classif, k) -> balanced LR."""
    from sklearn.feature_selection import SelectKBest, VarianceThreshold, f_classif  # slow to import; only used here
    from sklearn.linear_model import LogisticRegression  # slow to import; only used here
    from sklearn.pipeline import make_pipeline  # slow to import; only used here
    from sklearn.preprocessing import StandardScaler  # slow to import; only used here

    k, c = entry
    return make_pipeline(VarianceThreshold(0.0), StandardScaler(),
                         _SafeSelectK(SelectKBest(f_classif, k=k)),
                         LogisticRegression(C=float(c), class_weight="balanced", max_iter=int(max_iter),
                                            random_state=seed))


class _SafeSelectK:
    """SelectKBest whose k is capped at the number of features left (``"all"`` keeps every one)."""

    def __init__(self, selector):
        self.selector = selector

    def fit(self, x, y):
        k = self.selector.k
        if k != "all" and k > x.shape[1]:
            self.selector.set_params(k="all")
        with warnings.catch_warnings():  # constant columns give F = nan; they simply rank last
            warnings.simplefilter("ignore", RuntimeWarning)
            self.selector.fit(x, y)
        return self

    def transform(self, x):
        return self.selector.transform(x)

    def fit_transform(self, x, y):
        return self.fit(x, y).transform(x)

    def get_params(self, deep=True):
        return {"selector": self.selector}

    def set_params(self, **params):
        self.selector = params.get("selector", self.selector)
        return self


def impute_with_training_median(R_train, *others):
    """Non-finite values (degenerate regions) -> the training split's median of that feature (0 if none)."""
    tr = np.where(np.isfinite(np.asarray(R_train, dtype=np.float64)), R_train, np.nan)
    with np.errstate(all="ignore"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(tr, axis=0)
    med = np.where(np.isfinite(med), med, 0.0)
    return [np.where(np.isfinite(r), r, med) for r in (tr, *(np.asarray(o, dtype=np.float64) for o in others))]


def classical_radiomics_eval(R_train, y_train, R_val, y_val, R_test, y_test, *, findings: Sequence[str] | None = None,
                             labeled=None, k_grid: Sequence = K_GRID, c_grid: Sequence[float] = C_GRID,
                             patient_ids_test=None, n_boot: int = 0, seed: int = 0, task: str | None = None) -> dict:
    """The baseline on radiomics ``R_*`` ``[N, P]`` (raw; NaN allowed) -> ``linear_eval``-style result dict with
    ``chosen_C`` holding the chosen ``(k, C)`` per finding (``task="multiclass"``: one multinomial model over the
    classes, as for the kidney's 4 tumour types)."""
    rtr, rva, rte = impute_with_training_median(R_train, R_val, R_test)
    grid = [(k, float(c)) for k in k_grid for c in sorted(c_grid)]
    res = linear_eval(rtr, y_train, rva, y_val, rte, y_test, findings=findings, labeled=labeled, c_grid=grid,
                      patient_ids_test=patient_ids_test, n_boot=n_boot, seed=seed, model_factory=feature_selection_model,
                      task=task)
    res["pipeline"] = ("non-finite -> training median; constant features dropped; StandardScaler; "
                       "SelectKBest(f_classif, k); LogisticRegression(C, class_weight=balanced); (k, C) by "
                       "validation AUC")
    return res
