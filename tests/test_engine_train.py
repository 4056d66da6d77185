"""Integration: every method trains end-to-end from its tiny config on phantom data through the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from radclr.cli.main import main
from golden_metrics import check_against_golden

REPO = Path(__file__).resolve().parents[1]
TINY = sorted((REPO / "configs" / "tiny").glob("*.yaml"))


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RADCLR_CACHE", str(tmp_path_factory.getbasetemp() / "radclr-cache"))


@pytest.mark.parametrize("config", TINY, ids=[c.stem for c in TINY])
def test_tiny_config_trains_and_evaluates(config, tmp_path):
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run), "--no-progress"]) == 0
    for name in ("config.yaml", "splits.csv", "metrics.csv", "metrics.json", "train.log",
                 "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run / name).exists(), name
    metrics = pd.read_csv(run / "metrics.csv")
    assert len(metrics) >= 1 and {"stage", "epoch", "train_loss"} <= set(metrics.columns)
    assert metrics["train_loss"].map(math.isfinite).all()
    split = pd.read_csv(run / "splits.csv")
    assert split.groupby("patient_id")["split"].nunique().max() == 1  # no patient in two parts
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)  # loads without pickle
    assert state["format"] == "radclr-checkpoint-1"
    res = json.loads((run / "metrics.json").read_text())
    if res["method"] != "simclr":  # simclr alone has no classifier: it is judged by linear evaluation
        auc = res["classification"]["auc"]
        assert set(auc) == set(res["findings"]) | {"mean"}
        assert 0.0 <= auc["mean"] <= 1.0
    else:
        assert "linear_eval" in res and "test" in res["linear_eval"]
        cv = res["linear_eval"]["cv"]  # seed 003's patient-wise k-fold (linear_eval_folds: 5)
        assert cv["n_splits"] == 5 and len(cv["mean"]["folds"]) == 5
    if config.stem in ("seed004_finetune_partial", "seed004_linear_eval"):  # frozen parts kept their pretraining
        _check_frozen_after_pretraining(run, config.stem)
    if config.stem.startswith("seed004"):  # seed 004's classical radiomics baseline rides along
        classical = res["classical_radiomics"]
        assert "test" in classical or "skipped" in classical
    if config.stem == "seed001_full":  # the BYOP golden run exercises CAM calibration and localization
        _check_byop_calibrates_and_localizes(run, metrics, res)
    diffs = check_against_golden(config.stem, run)  # every number as recorded (tests/golden_metrics.py)
    assert not diffs, "\n".join(diffs[:20])


def _check_byop_calibrates_and_localizes(run: Path, metrics: pd.DataFrame, res: dict) -> None:
    """Every epoch fits one CAM threshold per finding on the annotated training images (issue 21, item 8); the
    evaluation fits its own on train/val and localizes test lesions above zero."""
    for f in res["findings"]:
        assert metrics[f"train_cam_threshold_{f}"].map(math.isfinite).all(), f
    loc = res["localization"]
    assert loc["cam_threshold"]["fit_on"].startswith("annotated train/val images")
    assert set(loc["cam_threshold"]["per_finding"]) == set(res["findings"])
    assert loc["iou_accuracy"]["0.1"]["mean"] > 0 and loc["iou_accuracy"]["0.3"]["mean"] > 0


def _check_frozen_after_pretraining(run: Path, stem: str) -> None:
    """Weights (and BatchNorm statistics) of what the last stage froze equal the pretraining checkpoint's."""
    pre = torch.load(run / "checkpoints" / "stage-pretrain.pt", weights_only=True)["model"]
    last = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
    frozen = (("parts.encoder.", "parts.image_proj.", "parts.radiomics_encoder.") if stem == "seed004_linear_eval"
              else ("parts.encoder.backbone.layer4.", "parts.radiomics_encoder.mlp.2.", "parts.radiomics_encoder.mlp.4."))
    keys = [k for k in pre if k.startswith(frozen)]
    assert keys and all(torch.equal(pre[k], last[k]) for k in keys)
    trained = [k for k in pre if k.startswith(("parts.encoder.backbone.layer1.", "parts.radiomics_encoder.mlp.0."))]
    assert any(not torch.equal(pre[k], last[k]) for k in trained) == (stem == "seed004_finetune_partial")
    res = json.loads((run / "metrics.json").read_text())
    assert res["classification"]["task"] == "multiclass"  # 4 single-label phantom classes (kidney stand-in)


def test_train_refuses_existing_run_and_bad_resume(tmp_path, capsys):
    cfg = REPO / "configs" / "tiny" / "seed000_resnet18.yaml"
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(run), "--no-progress", "--no-eval"]) == 0
    assert main(["train", str(cfg), "--out", str(run), "--no-progress"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nope")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert main(["train", str(cfg), "--out", str(tmp_path / "r2"), "trainer.epoch=3"]) == 2
    assert "unknown key" in capsys.readouterr().err
