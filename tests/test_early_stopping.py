"""Early stopping (seed 000 §4.1: "200 epochs ... early stopped if the loss did not decrease")."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from radclr.cli.main import main
from radclr.engine.config import resolve_config
from radclr.engine.optim import early_stop_due
from radclr.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _rows(values, stage="s"):
    return [{"stage": stage, "epoch": i + 1, "train_loss": v} for i, v in enumerate(values)]


def test_rule_patience_min_delta_mode_and_other_stages():
    cfg = {"patience": 2, "monitor": "train_loss", "mode": "min", "min_delta": 0.0}
    assert early_stop_due(_rows([1.0, 0.9, 0.8]), "s", cfg) == (False, "")
    assert not early_stop_due(_rows([1.0, 0.9, 0.95]), "s", cfg)[0]  # 1 epoch without improvement
    stop, why = early_stop_due(_rows([1.0, 0.9, 0.95, 0.9]), "s", cfg)  # equal is no improvement
    assert stop and "since epoch 2" in why
    assert not early_stop_due(_rows([1.0, 0.9, 0.95, 0.9]), "s", {**cfg, "patience": 0})[0]  # off
    assert early_stop_due(_rows([1.0, 0.95, 0.92]), "s", {**cfg, "min_delta": 0.1})[0]  # too small to count
    assert early_stop_due(_rows([0.5, 0.7, 0.6]), "s", {**cfg, "mode": "max"})[0] is False
    assert early_stop_due(_rows([0.5, math.nan, 0.4]), "s", {**cfg, "mode": "max"})[0]
    other = _rows([1.0, 2.0, 3.0], stage="pretrain") + _rows([1.0], stage="s")  # only the stage's own rows count
    assert not early_stop_due(other, "s", cfg)[0]
    with pytest.raises(ConfigError, match="min or max"):
        early_stop_due(_rows([1.0, 1.0, 1.0]), "s", {**cfg, "mode": "lower"})


def test_seed000_configs_follow_the_paper_protocol():
    for name in ("resnet18", "resnet18_radi", "resnet18_att_fairradi"):
        cfg = resolve_config(REPO / "configs" / "seed000" / f"{name}.yaml")
        t = cfg["trainer"]
        assert t["epochs"] == 200 and t["batch_size"] == 64 and t["early_stopping"]["patience"] > 0
        assert t["optimizer"] == {"name": "sgd", "lr": 0.1, "momentum": 0.0, "weight_decay": 0.0}
        assert t["schedule"]["name"] == "none" and t["augment"]["enabled"] is False
        assert cfg["data"]["split"]["val"] == 0.0 and cfg["data"]["split"]["test"] == 0.25


def test_a_stage_stops_early_and_the_run_still_evaluates(tmp_path):
    run = tmp_path / "run"
    cfg = REPO / "configs" / "tiny" / "seed000_resnet18.yaml"
    assert main(["train", str(cfg), "--out", str(run), "--no-progress", f"data.cache_dir={tmp_path / 'c'}",
                 "trainer.epochs=5", "trainer.early_stopping.patience=1", "trainer.early_stopping.min_delta=100",
                 "data.split.val=0.0"]) == 0
    hist = pd.read_csv(run / "metrics.csv")
    assert hist["epoch"].tolist() == [1, 2]  # epoch 2 did not improve on epoch 1 by 100: stop before epoch 3
    assert "early stopping before epoch 3" in (run / "train.log").read_text()
    assert (run / "metrics.json").exists() and (run / "checkpoints" / "stage-finetune.pt").exists()
    assert "fixed 0.5" in json.loads((run / "metrics.json").read_text())["classification"]["threshold_rule"]
