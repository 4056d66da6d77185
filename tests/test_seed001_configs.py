"""Seed 001 Table 3 is a faithful ablation (issue 21, flaw 3): configs/seed001/{base,focal,byop,full}.yaml resolve,
through the real config loader, to the same run apart from the two keys the paper ablates -- ``loss`` (cross-entropy
vs focal loss, §3.3) and ``byop`` (the loop, §3.2) -- and Full is focal + BYOP as in the paper. recommended.yaml is
Full with cross-entropy. Also the loader's stage mapping (``stages: {NAME: {...}}`` updates the base's stages)."""

from __future__ import annotations

from pathlib import Path

import pytest

from radclr.engine.config import resolve_config, stage_settings
from radclr.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "seed001"
ROWS = {"base": ("bce", False), "focal": ("focal", False), "byop": ("bce", True), "full": ("focal", True),
        "recommended": ("bce", True)}
ABLATED = ("loss", "byop")


def _resolved(name: str) -> dict:
    cfg = resolve_config(CONFIGS / f"{name}.yaml")
    assert len(cfg["stages"]) == 1
    return cfg


@pytest.mark.parametrize("name", sorted(ROWS))
def test_each_row_sets_exactly_its_loss_and_loop(name):
    options = stage_settings(_resolved(name), 0)["options"]
    assert (options["loss"], options["byop"]) == ROWS[name]


def test_the_four_table3_configs_differ_only_in_loss_and_byop():
    runs = {}
    for name in ("base", "focal", "byop", "full", "recommended"):
        cfg = _resolved(name)
        settings = stage_settings(cfg, 0)
        settings["options"] = {k: v for k, v in settings["options"].items() if k not in ABLATED}
        rest = {k: v for k, v in cfg.items() if k not in ("name", "stages")}
        runs[name] = (settings, rest)
    first = runs["full"]
    for name, run in runs.items():
        assert run == first, name
    # the shared options are full.yaml's own: CAM-pooled pairs, background negative, layer3, per-finding
    # thresholds, the loop from epoch 5 at lr 1e-3
    opts = first[0]["options"]
    assert opts["embedding_pool"] == "cam" and opts["background_negative"] is True
    assert opts["cam_layer"] == "layer3" and opts["cam_threshold"] == "auto_per_finding"
    assert opts["contrastive_start_epoch"] == 5 and first[0]["optimizer"]["lr"] == pytest.approx(1e-3)


def test_a_stage_mapping_updates_the_base_stages_by_name(tmp_path):
    (tmp_path / "parent.yaml").write_text("stages:\n  - {name: pre, method: simclr}\n"
                                          "  - {name: fine, method: supervised, loss: bce, epochs: 3}\n")
    (tmp_path / "child.yaml").write_text("base: parent.yaml\nstages:\n  fine: {loss: focal}\n")
    stages = resolve_config(tmp_path / "child.yaml")["stages"]
    assert stages == [{"name": "pre", "method": "simclr"},
                      {"name": "fine", "method": "supervised", "loss": "focal", "epochs": 3}]
    (tmp_path / "typo.yaml").write_text("base: parent.yaml\nstages:\n  fin: {loss: focal}\n")
    with pytest.raises(ConfigError, match=r"typo.yaml.*no stage named 'fin'.*\['pre', 'fine'\]"):
        resolve_config(tmp_path / "typo.yaml")
    (tmp_path / "orphan.yaml").write_text("stages:\n  fine: {loss: focal}\n")
    with pytest.raises(ConfigError, match="orphan.yaml.*no base"):
        resolve_config(tmp_path / "orphan.yaml")
