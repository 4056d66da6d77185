"""Config resolution: defaults, base configs, dotted overrides, and refusals of typos."""

from pathlib import Path

import pytest

from radclr.engine.config import DEFAULTS, apply_override, resolve_config, stage_settings
from radclr.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_defaults_resolve_and_stage_inherits_trainer():
    cfg = resolve_config(base={"stages": [{"name": "a", "method": "supervised", "epochs": 3}]})
    st = stage_settings(cfg, 0)
    assert st["epochs"] == 3  # stage value wins
    assert st["batch_size"] == DEFAULTS["trainer"]["batch_size"]  # inherited
    assert st["method"] == "supervised" and st["options"] == {}


def test_overrides_types_and_lists():
    cfg = resolve_config(base={"stages": [{"name": "a", "method": "supervised"}, {"name": "b", "method": "supervised"}]},
                         overrides=["trainer.epochs=2", "trainer.optimizer.lr=1e-4", "data.findings=[Mass,Nodule]",
                                    "stages.1.epochs=5", "stages.1.loss=focal", "model.weights=null"])
    assert cfg["trainer"]["epochs"] == 2 and cfg["trainer"]["optimizer"]["lr"] == pytest.approx(1e-4)
    assert cfg["data"]["findings"] == ["Mass", "Nodule"]
    assert stage_settings(cfg, 0)["epochs"] == 2 and stage_settings(cfg, 1)["epochs"] == 5
    assert stage_settings(cfg, 1)["options"] == {"loss": "focal"}
    assert cfg["model"]["weights"] is None


@pytest.mark.parametrize("bad, msg", [
    ("trainer.epoch=2", "unknown key 'trainer.epoch'"),
    ("trainr.epochs=2", "unknown key 'trainr'"),
    ("stages.5.epochs=1", "not a valid index"),
    ("trainer.epochs", "key=value"),
])
def test_override_typos_are_refused(bad, msg):
    cfg = resolve_config()
    with pytest.raises(ConfigError, match=msg):
        apply_override(cfg, bad)


def test_plus_adds_key_deliberately():
    cfg = resolve_config()
    apply_override(cfg, "+trainer.augment.max_rotation=5")
    assert cfg["trainer"]["augment"]["max_rotation"] == 5


@pytest.mark.parametrize("user, msg", [
    ({"trainr": {}}, "unknown top-level"),
    ({"data": {"pth": "x"}}, "unknown key"),
    ({"stages": []}, "non-empty"),
    ({"stages": [{"name": "a"}]}, "needs a 'method'"),
    ({"stages": [{"name": "a", "method": "supervised"}, {"name": "a", "method": "simclr"}]}, "unique"),
    ({"data": {"label_fraction": 0}}, "label_fraction"),
    ({"radiomics": {"region": "circle"}}, "radiomics.region"),
    ({"stages": [{"name": "a", "method": "supervised", "best_checkpoint": {"metric": "val_loss", "mode": "up"}}]},
     "best_checkpoint.mode must be min or max"),
    ({"trainer": {"best_checkpoint": {"metric": "val_loss", "mode": "lowest"}}}, "best_checkpoint.mode"),
])
def test_invalid_configs(user, msg):
    with pytest.raises(ConfigError, match=msg):
        resolve_config(base=user)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        resolve_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        resolve_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        resolve_config(lst)


def test_base_inheritance_of_shipped_configs():
    cfg = resolve_config(REPO / "configs" / "seed000" / "resnet18_att_fairradi.yaml")
    assert cfg["model"]["encoder"] == "resnet18_att"  # from resnet18_att_radi
    assert cfg["radiomics"]["region"] == "whole_image"  # own
    assert [s["method"] for s in cfg["stages"]] == ["radiomics_contrastive", "supervised"]  # from resnet18_radi
    assert cfg["trainer"]["optimizer"]["name"] == "sgd"  # from resnet18


def test_every_shipped_config_resolves():
    files = sorted((REPO / "configs").rglob("*.yaml"))
    assert len(files) >= 10
    for f in files:
        resolve_config(f)


def test_retired_keys_of_old_run_configs_are_ignored_not_refused():
    cfg = resolve_config(base={"trainer": {"log_every_steps": 10}, "evaluation": {"splits": ["val", "test"]}})
    assert "log_every_steps" not in cfg["trainer"] and "splits" not in cfg["evaluation"]
    with pytest.raises(ConfigError, match="log_every_step"):  # a typo of a live key is still refused
        resolve_config(base={"trainer": {"log_every_step": 10}})


@pytest.mark.parametrize("overrides, msg", [
    (["evaluation.cam_layer=layer4"], r"evaluation.cam_layer must be method \| last \| layer3, got 'layer4'"),
    (["evaluation.cam_threshold=auto_per_findings"], r"evaluation.cam_threshold must be auto \| auto_per_finding"),
    (["evaluation.cam_threshold=1.5"], r"evaluation.cam_threshold.* got 1.5"),
    (["trainer.best_checkpoint.metric=val_los", "trainer.best_checkpoint.mode=min"],
     r"stages.0.best_checkpoint.metric: 'val_los' is not a validation column .* val_auc_mean, val_loss"),
    (["data.findings=[Mass,Nodule]", "trainer.best_checkpoint.metric=val_auc_Effusion"],
     r"'val_auc_Effusion' .* val_auc_Mass, val_auc_Nodule, val_auc_mean, val_loss\)"),
    (["stages.0.method=simclr", "trainer.best_checkpoint.metric=val_auc_mean"],
     r"'val_auc_mean' is not a validation column .* method 'simclr' \(its columns: val_loss\)"),
    (["stages.0.method=byop", "trainer.best_checkpoint.metric=val_loss"], r"its columns: val_auc_mean, val_loss_cls"),
])
def test_values_read_after_training_are_checked_with_the_config(tmp_path, overrides, msg):
    """A misspelt evaluation.cam_layer / cam_threshold or a best_checkpoint.metric naming no metrics.csv column
    used to pass the config check and fail (or silently pick the last epoch) after training; now the run is refused
    before its directory exists."""
    from radclr.runs.train import train

    with pytest.raises(ConfigError, match=msg):
        resolve_config(overrides=overrides)
    with pytest.raises(ConfigError, match=msg):
        train(None, tmp_path / "run", overrides)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("overrides", [
    ["evaluation.cam_layer=layer3", "evaluation.cam_threshold=0.4"],
    ["evaluation.cam_threshold=method", "trainer.best_checkpoint.metric=val_auc_Anything"],  # findings from data
    ["data.findings=[Mass]", "trainer.best_checkpoint.metric=val_auc_Mass", "trainer.best_checkpoint.mode=max"],
    ["stages.0.method=byop", "trainer.best_checkpoint.metric=val_loss_cls"],
])
def test_valid_evaluation_and_best_checkpoint_values_pass(overrides):
    resolve_config(overrides=overrides)


def test_a_finetuning_stage_after_a_classifier_stage_may_choose_by_auc():
    cfg = {"stages": [{"name": "sup", "method": "supervised"},
                      {"name": "ssl", "method": "simclr", "best_checkpoint": {"metric": "val_auc_mean", "mode": "max"}}]}
    resolve_config(base=cfg)  # the classifier the first stage trained still scores the validation images


def test_every_shipped_config_passes_the_check():
    for path in sorted((REPO / "configs").rglob("*.yaml")):
        resolve_config(path)


def test_data_section_typed_once_with_the_config_defaults():
    """The data path reads a frozen DataConfig made from the config's data section (issue 18); its defaults are
    DEFAULTS["data"]'s, and a bad value or unknown key names data.<key>."""
    import dataclasses

    from radclr.engine.config import DEFAULTS
    from radclr.errors import ConfigError
    from radclr.training_data.data_config import DataConfig, PhantomConfig, SplitConfig

    def plain(value):
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return value

    assert plain(DataConfig()) == DEFAULTS["data"]  # one set of defaults
    assert DataConfig.from_dict(DEFAULTS["data"]) == DataConfig()
    dc = DataConfig.from_dict({"path": ["a", "b"], "findings": ["Mass"], "split": {"seed": 3},
                               "phantom": {"n": 12}, "image_size": 64})
    assert dc.path == ("a", "b") and dc.findings == ("Mass",) and dc.image_size == 64
    assert dc.split == SplitConfig(seed=3) and dc.phantom == PhantomConfig(n=12)
    assert DataConfig.from_dict(dc) is dc
    with pytest.raises(dataclasses.FrozenInstanceError):
        dc.image_size = 128
    for bad, key in (({"image_size": "big"}, "data.image_size"), ({"split": {"seed": 1.5}}, "data.split.seed"),
                     ({"follow_links": "yes"}, "data.follow_links"), ({"findings": "Mass"}, "data.findings"),
                     ({"phantom": {"m": 3}}, "data.phantom"), ({"imagesize": 3}, "data: unknown")):
        with pytest.raises(ConfigError, match=key):
            DataConfig.from_dict(bad)
