"""Seed 004's classical radiomics baseline: selection + classifier chosen on validation, NaN-safe."""

import numpy as np

from radclr.evaluation.classical import classical_radiomics_eval, impute_with_training_median


def _data(n, rng, informative=3, p=40):
    R = rng.normal(size=(n, p))
    y = (R[:, :informative].sum(1) + 0.3 * rng.normal(size=n) > 0).astype(float)
    return R, y


def test_selects_informative_features_and_beats_chance():
    rng = np.random.default_rng(0)
    (rtr, ytr), (rva, yva), (rte, yte) = (_data(n, rng) for n in (300, 120, 200))
    rtr[0, 5] = np.nan  # a degenerate region in training
    rte[1, 7] = np.inf
    res = classical_radiomics_eval(rtr, ytr, rva, yva, rte, yte, findings=["Mass"], k_grid=(3, 20, "all"),
                                   patient_ids_test=np.arange(200), n_boot=50)
    assert res["test"]["auc"] > 0.9
    k, c = res["chosen_C"]["Mass"]
    assert k in (3, 20, "all") and c in (0.01, 0.05, 0.1, 0.2, 0.5, 1.0)
    assert res["test_ci"]["mean"]["auc"]["ci_low"] <= res["test"]["auc"] <= res["test_ci"]["mean"]["auc"]["ci_high"]


def test_random_labels_stay_near_chance():
    rng = np.random.default_rng(1)
    rtr, rva, rte = (rng.normal(size=(n, 30)) for n in (200, 100, 400))
    ytr, yva, yte = (rng.integers(0, 2, n).astype(float) for n in (200, 100, 400))
    res = classical_radiomics_eval(rtr, ytr, rva, yva, rte, yte, findings=["x"])
    assert abs(res["test"]["auc"] - 0.5) < 0.1


def test_imputation_uses_training_median_only():
    tr = np.array([[1.0, np.nan], [3.0, np.nan], [np.nan, np.nan]])
    te = np.array([[np.nan, np.inf]])
    a, b = impute_with_training_median(tr, te)
    np.testing.assert_array_equal(b, [[2.0, 0.0]])
    assert np.isfinite(a).all()
