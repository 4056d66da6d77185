"""Metrics with bootstrap confidence intervals, validation thresholds, linear evaluation, localization.

* :mod:`~radclr.evaluation.metrics` -- per-finding and mean AUC, accuracy, F1 (and weighted F1), sensitivity,
  specificity; NaN labels masked; undefined values are NaN with a reason; :class:`MetricAccumulator`.
* :mod:`~radclr.evaluation.thresholds` -- thresholds per finding chosen on validation data (Youden, max-F1, fixed).
* :mod:`~radclr.evaluation.bootstrap` -- patient-resampling 95 % CIs, the classification report, paired model
  comparison, ROC bands.
* :mod:`~radclr.evaluation.seed_level` -- over training seeds: mean, sd and Student-t interval; the paired
  per-seed difference of two methods with its t interval and sign count.
* :mod:`~radclr.evaluation.linear` -- seed 003 linear evaluation (logistic regression on frozen features).
* :mod:`~radclr.evaluation.localization` -- localization accuracy at IoU thresholds (seed 001 Table 2).
* :mod:`~radclr.evaluation.ridge_r2` -- how much of one representation another explains: cross-validated R^2 of a
  ridge regression (BYOP's training diagnostics).
"""

from radclr.evaluation.bootstrap import (
    BootstrapCI,
    PairedDiff,
    bootstrap_ci,
    bootstrap_roc,
    classification_report,
    compare_models,
    paired_bootstrap_diff,
)
from radclr.evaluation.linear import C_GRID, linear_eval, linear_eval_cv, patient_folds
from radclr.evaluation.metrics import (
    MetricAccumulator,
    binary_metrics,
    jsonable,
    multiclass_metrics,
    multilabel_metrics,
    roc_auc_masked,
)
from radclr.evaluation.seed_level import PairedSeedDiff, SeedInterval, paired_seed_diff, seed_interval
from radclr.evaluation.thresholds import choose_threshold, choose_thresholds

__all__ = [
    "BootstrapCI",
    "PairedDiff",
    "bootstrap_ci",
    "bootstrap_roc",
    "classification_report",
    "compare_models",
    "paired_bootstrap_diff",
    "C_GRID",
    "linear_eval",
    "linear_eval_cv",
    "patient_folds",
    "MetricAccumulator",
    "binary_metrics",
    "jsonable",
    "multiclass_metrics",
    "multilabel_metrics",
    "roc_auc_masked",
    "PairedSeedDiff",
    "SeedInterval",
    "paired_seed_diff",
    "seed_interval",
    "choose_threshold",
    "choose_thresholds",
]
