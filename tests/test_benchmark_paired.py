"""benchmarks/paired.py: the seed-level and case-level paired differences the localization benchmarks report."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from paired import case_level, seed_level  # noqa: E402


def _rows(tmp_path: Path) -> list[dict]:
    """Two variants x 2 seeds on 4 test images (4 patients), one finding; IoU and probabilities chosen by hand."""
    y = [1, 1, 0, 0]
    iou = {("a", 0): [0.5, 0.4, 0.0, 0.0], ("a", 1): [0.5, 0.2, 0.0, 0.0],
           ("b", 0): [0.2, 0.4, 0.0, 0.0], ("b", 1): [0.2, 0.1, 0.0, 0.0]}
    prob = {"a": [0.9, 0.8, 0.2, 0.1], "b": [0.9, 0.1, 0.2, 0.3]}
    rows = []
    for (v, s), ious in iou.items():
        ids = [f"i{k}" for k in range(4)]
        cases = pd.DataFrame({"image_id": ids, "finding": "Mass", "iou": ious})
        pred = pd.DataFrame({"image_id": ids, "patient_id": [f"P{k}" for k in range(4)], "y_Mass": y,
                             "p_Mass": prob[v]})
        cases.to_csv(tmp_path / f"{v}{s}_cases.csv", index=False)
        pred.to_csv(tmp_path / f"{v}{s}_pred.csv", index=False)
        acc3 = float(np.mean([i > 0.3 for i in ious[:2]]))  # the two lesion cases
        rows.append({"variant": v, "seed": s, "auc": {"mean": {"a": 1.0, "b": 0.75}[v] - 0.01 * s},
                     "iou_accuracy": {"0.1": {"mean": 1.0}, "0.3": {"mean": acc3}, "0.5": {"mean": 0.0}},
                     "cases": str(tmp_path / f"{v}{s}_cases.csv"), "predictions": str(tmp_path / f"{v}{s}_pred.csv")})
    return rows


def test_seed_level_pairs_runs_by_seed(tmp_path):
    d = seed_level(_rows(tmp_path), "a", "b")
    # IoU>0.3 per seed: a = 1.0, 0.5; b = 0.5, 0.0 -> differences 0.5, 0.5
    assert d["iou>0.3"]["diffs"] == pytest.approx([0.5, 0.5]) and d["iou>0.3"]["sign"]["a_better"] == 2
    assert d["auc_mean"]["diffs"] == pytest.approx([0.25, 0.25]) and d["auc_mean"]["seeds"] == [0, 1]


def test_case_level_averages_seeds_then_differs(tmp_path):
    d = case_level(_rows(tmp_path), "a", "b", n_boot=200)
    # IoU>0.3 case means over seeds: a (1, 0.5, 0, 0), b (0, 0.5, 0, 0) over the 4 cases of the finding -> +0.25
    assert d["iou>0.3"]["diff"] == pytest.approx(0.25)
    assert d["iou>0.3"]["ci"][0] <= 0.25 <= d["iou>0.3"]["ci"][1]
    # AUC of the seed-averaged probabilities: a 1.0, b 0.5 (positives 0.9, 0.1 vs negatives 0.2, 0.3)
    assert d["auc_mean"]["diff"] == pytest.approx(0.5)
