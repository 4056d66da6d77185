"""Transfer to another dataset (seeds 003 and 004 evaluate frozen features on other tasks): ``model.init_from``
takes the parts that fit (``model.init_parts``), and ``radclr evaluate RUN --linear-eval --data OTHER`` probes a
run's frozen encoder on a dataset with other findings (logistic regression, C grid, patient-wise folds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from data_factories import KIDNEY, kidney_like_folder
from radclr.cli.main import main
from radclr.engine.checkpoint import init_parts_from, save_checkpoint
from radclr.errors import ConfigError
from radclr.evaluation.linear import C_GRID

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny" / "seed000_resnet18.yaml"


def test_init_parts_takes_what_fits_and_reports_the_rest(tmp_path):
    torch.manual_seed(0)
    src = nn.ModuleDict({"encoder": nn.Linear(4, 3), "classifier": nn.Linear(3, 5), "simclr_head": nn.Linear(3, 2)})
    save_checkpoint({"model": {f"parts.{k}": v for k, v in src.state_dict().items()}, "findings": list("ABCDE")},
                    tmp_path / "c.pt")
    dst = nn.ModuleDict({"encoder": nn.Linear(4, 3), "classifier": nn.Linear(3, 2), "image_proj": nn.Linear(3, 3)})
    rep = init_parts_from(dst, tmp_path / "c.pt")
    assert rep["loaded"] == ["encoder"] and rep["not_used"] == ["simclr_head"]
    assert "shape mismatch" in rep["skipped"]["classifier"] and rep["skipped"]["image_proj"] == "not in the checkpoint"
    assert torch.equal(dst["encoder"].weight, src["encoder"].weight)
    with pytest.raises(ConfigError, match="'classifier' cannot be loaded: shape mismatch"):
        init_parts_from(dst, tmp_path / "c.pt", ["encoder", "classifier"])
    # the same number of outputs for other findings is no fit
    same = nn.ModuleDict({"encoder": nn.Linear(4, 3), "classifier": nn.Linear(3, 5)})
    rep = init_parts_from(same, tmp_path / "c.pt", findings=list("VWXYZ"))
    assert rep["loaded"] == ["encoder"] and "classifies the checkpoint's findings" in rep["skipped"]["classifier"]
    assert init_parts_from(same, tmp_path / "c.pt", findings=list("ABCDE"))["loaded"] == ["encoder", "classifier"]
    with pytest.raises(ConfigError, match="not a part of this run"):
        init_parts_from(dst, tmp_path / "c.pt", ["radiomics_encoder"])
    bad = nn.ModuleDict({"encoder": nn.Linear(6, 3)})
    with pytest.raises(ConfigError, match="image encoder cannot be loaded"):
        init_parts_from(bad, tmp_path / "c.pt")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A run trained on the 4-finding multi-label phantoms, and a dataset with other findings (4 tumour types)."""
    base = tmp_path_factory.mktemp("transfer")
    run = base / "pre"
    assert main(["train", str(TINY), "--out", str(run), "--no-progress", f"data.cache_dir={base / 'cache'}"]) == 0
    return run, kidney_like_folder(base / "kidney4"), base


def test_finetune_on_another_dataset_takes_the_encoder_not_the_classifier(pretrained, capsys):
    run, other, base = pretrained
    ckpt = run / "checkpoints" / "last.pt"
    out = base / "fine"
    common = ["--no-progress", f"data.path={other}", "data.task=multiclass", f"data.cache_dir={base / 'cache'}",
              f"model.init_from={ckpt}", "trainer.epochs=1"]
    assert main(["train", str(TINY), "--out", str(base / "bad"), *common, "model.init_parts=[encoder,classifier]"]) == 2
    assert "'classifier' cannot be loaded: it classifies the checkpoint's findings" in capsys.readouterr().err
    assert main(["train", str(TINY), "--out", str(out), *common]) == 0
    log = (out / "train.log").read_text()
    assert "initialised part(s) ['encoder'] from" in log
    assert "part 'classifier' keeps its initialisation: it classifies the checkpoint's findings" in log
    res = json.loads((out / "metrics.json").read_text())
    assert res["findings"] == list(KIDNEY.values()) and res["classification"]["task"] == "multiclass"


def test_linear_eval_of_the_frozen_encoder_on_another_dataset(pretrained, capsys):
    run, other, _ = pretrained
    before = (run / "checkpoints" / "best.pt").read_bytes()
    assert main(["evaluate", str(run), "--linear-eval", "--data", str(other), "--task", "multiclass", "--folds", "3",
                 "--no-progress"]) == 0
    printed = json.loads(capsys.readouterr().out)
    path = run / "evaluations" / "kidney4-best-linear" / "metrics.json"
    res = json.loads(path.read_text())
    assert printed["results"] == str(path.parent) and res["findings"] == list(KIDNEY.values())
    lin = res["linear_eval"]
    assert lin["task"] == "multiclass" and lin["n_splits"] == 3 and lin["c_grid"] == list(C_GRID)
    folds = lin["mean"]["folds"]
    assert len(folds) == 3 and sum(f["n_test"] for f in folds) == res["n_images"] == 48
    assert all(f["C"] in C_GRID and 0.0 <= f["f1_weighted"] <= 1.0 for f in folds)
    assert lin["mean"]["summary"]["accuracy"]["n_folds"] == 3
    assert (run / "checkpoints" / "best.pt").read_bytes() == before  # the run itself is untouched
    # multi-label view of the same images (each tumour type as a finding), a subset of the findings
    assert main(["evaluate", str(run), "--linear-eval", "--data", str(other), "--findings", "ccRCC,pRCC",
                 "--folds", "3", "--no-progress", "--out", str(run / "ml.json")]) == 0
    ml = json.loads((run / "ml.json").read_text())
    assert ml["findings"] == ["ccRCC", "pRCC"] and set(ml["linear_eval"]["per_finding"]) == {"ccRCC", "pRCC"}
    assert main(["evaluate", str(run), "--folds", "3"]) == 2  # --folds without --linear-eval
