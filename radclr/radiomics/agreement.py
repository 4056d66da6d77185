"""Agreement of two radiomics feature tables (e.g. radclr's engine and PyRadiomics on the same regions).

    names, ours = radclr.radiomics.extract(images, masks)
    ref_names, theirs = radclr.radiomics.extract(images, masks, engine="pyradiomics")
    compare(names, ours, ref_names, theirs)["worst_rel_error"]

The speed benchmark that uses it lives in ``benchmarks/radiomics_runner.py`` (``benchmarks/radiomics_bench.py``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["compare"]


def compare(names: list[str], values: np.ndarray, ref_names: list[str], reference: np.ndarray) -> dict:
    """Worst relative error per feature, per class and overall (NaN in both = 0, NaN in one = inf)."""
    if names != ref_names:
        raise ValueError("the engines returned different feature names")
    a, b = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-12)
    rel[np.isnan(a) & np.isnan(b)] = 0.0
    rel[np.isnan(a) != np.isnan(b)] = np.inf
    per_feature = {n: float(rel[:, j].max()) if len(rel) else 0.0 for j, n in enumerate(names)}
    per_class: dict[str, float] = {}
    for n, v in per_feature.items():
        c = n.split("_")[1]
        per_class[c] = max(per_class.get(c, 0.0), v)
    return {
        "worst_rel_error": max(per_feature.values()) if per_feature else 0.0,
        "worst_rel_error_per_class": per_class,
        "worst_rel_error_per_feature": per_feature,
    }
