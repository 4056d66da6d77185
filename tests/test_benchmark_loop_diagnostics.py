"""benchmarks/loop_diagnostics.py: the BYOP loop's per-epoch diagnostics read from metrics.csv (issue 21)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from loop_diagnostics import of_run, trajectory  # noqa: E402


def _metrics(tmp_path: Path) -> Path:
    """Five epochs, loop from epoch 3 (contrastive_start_epoch 2): Mass holds, Nodule collapses in epoch 4."""
    m = pd.DataFrame({"stage": "train", "epoch": [1, 2, 3, 4, 5],
                      "train_cam_miou": [0.1, 0.4, 0.5, 0.3, 0.35],
                      "train_cam_miou_Mass": [0.1, 0.4, 0.5, 0.5, 0.6],
                      "train_cam_miou_Nodule": [0.1, 0.4, 0.5, 0.0, 0.1],
                      "train_box_change": [float("nan"), float("nan"), float("nan"), 0.8, 0.2],
                      "train_grad_fmap_cls": [1.0, 1.0, 1.0, 0.5, 1.0],
                      "train_grad_fmap_contrastive": [float("nan"), float("nan"), 20.0, 10.0, 1.0]})
    path = tmp_path / "metrics.csv"
    m.to_csv(path, index=False)
    return path


def test_trajectory_per_finding_drop(tmp_path):
    t = trajectory(_metrics(tmp_path), loop_start=2)
    assert t["loop_start_epoch"] == 3
    assert t["cam_miou_per_finding"]["Nodule"] == [0.1, 0.4, 0.5, 0.0, 0.1]
    assert t["grad_ratio_contrastive_over_cls"] == [None, None, 20.0, 20.0, 1.0]
    # epoch 3's IoU is measured before its first contrastive step: it is the "before" value
    assert t["summary"]["Nodule"] == {"before_loop": 0.5, "lowest_in_loop": 0.0, "epoch_of_lowest": 4, "last": 0.1,
                                      "drop": 0.5}
    assert t["summary"]["Mass"]["drop"] == pytest.approx(0.0) and t["summary"]["Mass"]["last"] == 0.6
    assert t["summary"]["mean"]["lowest_in_loop"] == 0.3


def test_of_run_reads_the_loop_start_and_skips_runs_without_diagnostics(tmp_path):
    _metrics(tmp_path)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"stages": [{"method": "byop", "contrastive_start_epoch": 3}]}))
    assert of_run(tmp_path)["summary"]["Nodule"]["before_loop"] == 0.0  # epoch 4 is now the last one before
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"stages": [{"method": "supervised"}]}))
    assert of_run(tmp_path) is None
    pd.DataFrame({"stage": ["train"], "epoch": [1], "train_loss": [0.5]}).to_csv(tmp_path / "metrics.csv", index=False)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"stages": [{"method": "byop", "contrastive_start_epoch": 0}]}))
    assert of_run(tmp_path) is None
