"""Label efficiency from one command: pretrain once, then fine-tune / linear-evaluate per label fraction."""

from pathlib import Path

import pandas as pd
import pytest

from radclr.cli.main import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RADCLR_CACHE", str(tmp_path / "cache"))


def _split(path):
    return pd.read_csv(path, dtype={"image_id": str, "patient_id": str}).set_index("image_id")


def test_finetune_fractions_share_the_pretraining_and_the_test_set(tmp_path):
    out = tmp_path / "run"
    cfg = REPO / "configs" / "tiny" / "seed000_resnet18_radi.yaml"
    assert main(["train", str(cfg), "--out", str(out), "--label-fractions", "0.5,1", "--no-progress"]) == 0
    summary = pd.read_csv(out / "fractions" / "summary.csv")
    assert list(summary["label_fraction"]) == [0.5, 1.0]
    assert summary["auc"].between(0, 1).all() and (summary["auc_ci_low"] <= summary["auc"]).all()
    pre = _split(out / "splits.csv")
    half, full = _split(out / "fractions" / "0.5" / "splits.csv"), _split(out / "fractions" / "1" / "splits.csv")
    assert (half["split"] == pre["split"]).all() and (full["split"] == pre["split"]).all()  # same patient split
    train = pre["split"] == "train"
    assert 0 < half.loc[train, "labeled"].sum() < full.loc[train, "labeled"].sum() == train.sum()
    # only the label-using stage ran per fraction, starting from the pretrained parts
    cfg_half = (out / "fractions" / "0.5" / "config.yaml").read_text()
    assert "radiomics_contrastive" not in cfg_half and "init_from" in cfg_half and "last.pt" in cfg_half


def test_linear_evaluation_fractions_for_a_label_free_config(tmp_path):
    out = tmp_path / "run"
    cfg = REPO / "configs" / "tiny" / "seed003_simclr.yaml"
    assert main(["train", str(cfg), "--out", str(out), "--label-fractions", "0.5,1", "--no-progress"]) == 0
    summary = pd.read_csv(out / "fractions" / "summary.csv")
    assert list(summary["label_fraction"]) == [0.5, 1.0]
    assert summary["n_labeled"].iloc[0] < summary["n_labeled"].iloc[1]
    assert summary["auc"].between(0, 1).all() and summary["auc_ci_low"].notna().all()
