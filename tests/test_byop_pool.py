"""BYOP's training pool (issue 21, flaw 1): with label fractions BYOP iterates over the labelled training images
only, as supervised does -- a label-free row is never an anchor, never a hard negative and gets no loss (seed 001
§3.3), so in the batches it would only multiply the optimiser steps. ``metrics.csv`` counts steps and images."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest

from radclr.engine.config import resolve_config
from radclr.methods import method_class
from radclr.runs.fractions import split_stages
from radclr.runs.train import train

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny" / "seed001_full.yaml"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RADCLR_CACHE", str(tmp_path / "cache"))


def test_byop_is_a_labelled_stage_for_label_fractions():
    assert method_class("byop").uses_labels
    pre, post = split_stages(resolve_config(TINY))
    assert pre == [] and [s["method"] for s in post] == ["byop"]  # trained once per fraction, not as pretraining


def test_byop_and_supervised_take_the_same_steps_at_a_label_fraction(tmp_path):
    cfg = resolve_config(TINY, ["data.label_fraction=0.5", "trainer.epochs=2"])
    sup = copy.deepcopy(cfg)
    sup["name"] = "tiny-supervised"
    sup["stages"] = [{"name": "train", "method": "supervised", "loss": "bce"}]
    runs = {"byop": train(cfg, tmp_path / "byop", evaluate=False),
            "supervised": train(sup, tmp_path / "sup", evaluate=False)}
    split = pd.read_csv(runs["byop"] / "splits.csv")
    train_rows = split["split"] == "train"
    n_labelled = int((train_rows & split["labeled"]).sum())
    assert 0 < n_labelled < int(train_rows.sum())  # the fraction left some training images unlabelled
    batch = int(cfg["trainer"]["batch_size"])
    for name, run in runs.items():
        m = pd.read_csv(run / "metrics.csv")
        assert {"steps", "images"} <= set(m.columns), name
        # every labelled training image in full batches (the loop drops a short last batch)
        assert list(m["steps"]) == [n_labelled // batch] * 2, name
        assert list(m["images"]) == [n_labelled // batch * batch] * 2, name
    assert list(pd.read_csv(runs["byop"] / "metrics.csv")["steps"]) == \
        list(pd.read_csv(runs["supervised"] / "metrics.csv")["steps"])
