"""``data.task: multiclass`` (seed 004's 4-class kidney task): one class per image, softmax cross-entropy, arg-max
metrics with patient-bootstrap CIs; a 4-class folder dataset trains, evaluates, predicts, reports and tabulates
end to end from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from data_factories import KIDNEY, kidney_like_folder, make_folder
from radclr.cli.main import main
from radclr.data import load_dataset
from radclr.data.phantom_classes import write_single_label_phantoms
from radclr.errors import ConfigError, DataError
from radclr.methods import MethodContext, method_class
from radclr.methods.supervised import masked_cross_entropy
from radclr.training_data import open_dataset

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------------------------
def test_class_index_one_label_per_image_or_a_named_error(tmp_path):
    ok = load_dataset(make_folder(tmp_path / "ok", [("a.png", "p1", "A"), ("b.png", "p2", "B"), ("c.png", "p3", "")]))
    idx = ok.class_index()
    assert idx[:2].tolist() == [0, 1] and np.isnan(idx[2])  # blank = unlabelled
    several = load_dataset(make_folder(tmp_path / "two", [("a.png", "p1", "A|B"), ("b.png", "p2", "B")]))
    with pytest.raises(DataError, match=r"one label per image.*a\.png"):
        several.class_index()
    normal = load_dataset(make_folder(tmp_path / "nf", [("a.png", "p1", "A"), ("b.png", "p2", "No Finding"),
                                                        ("c.png", "p3", "B")]))
    with pytest.raises(DataError, match=r"class of their own.*b\.png|b\.png.*class of their own"):
        normal.class_index()


def test_single_label_phantoms_are_balanced_with_exact_boxes(tmp_path):
    ds = write_single_label_phantoms(tmp_path / "p", n=24, size=48, seed=0)
    assert (np.nansum(ds.labels == 1, axis=1) == 1).all() and not ds.is_normal().any()
    counts = (ds.labels == 1).sum(axis=0)
    assert counts.min() >= 4 and counts.sum() == 24
    assert all(len(ds.boxes_for(i)) == 1 and ds.boxes_for(i)[0].label == ds.label_names(k)[0]
               for k, i in enumerate(ds.image_ids))
    # data.path: phantom with data.task: multiclass uses them (cached apart from the multi-label phantoms)
    cfg = {"path": "phantom", "task": "multiclass", "phantom": {"n": 12, "size": 48, "seed": 0},
           "cache_dir": str(tmp_path / "cache"), "box_fraction": 1.0, "split": {"seed": 0}}
    assert (np.nansum(open_dataset(cfg).labels == 1, axis=1) == 1).all()


def test_masked_cross_entropy_ignores_unlabelled_rows():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [5.0, -5.0, 0.0]], requires_grad=True)
    target = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, np.nan], [np.nan, np.nan, np.nan]])
    loss = masked_cross_entropy(logits, target)
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits[:2], torch.tensor([0, 1])).item())
    loss.backward()
    assert logits.grad[2].abs().sum() == 0
    assert masked_cross_entropy(logits, torch.full((3, 3), float("nan"))).item() == 0.0


def test_methods_refuse_a_task_they_cannot_train():
    ctx = MethodContext(findings=["A", "B", "C"], radiomics_names=["f1", "f2"], task="multiclass",
                        model_cfg={"encoder": "resnet18", "encoder_options": {"width": 0.25}, "proj_dim": 8,
                                   "proj_hidden": 8, "radiomics_hidden": [8, 8], "radiomics_dim": 8},
                        image_size=32, dataset_size=4)
    with pytest.raises(ConfigError, match="byop.*multilabel"):
        method_class("byop")(torch.nn.ModuleDict(), ctx, {})
    with pytest.raises(ConfigError, match="softmax cross-entropy"):
        method_class("supervised")(torch.nn.ModuleDict(), ctx, {"loss": "focal"})
    assert method_class("supervised")(torch.nn.ModuleDict(), ctx, {}).classifies


# --------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kidney_run(tmp_path_factory):
    """``radclr train`` on a 4-class folder dataset with data.task=multiclass (whole-image supervised CNN)."""
    base = tmp_path_factory.mktemp("multiclass")
    data = kidney_like_folder(base / "kidney4")
    run = base / "run"
    rc = main(["train", str(REPO / "configs" / "tiny" / "seed000_resnet18.yaml"), "--out", str(run), "--no-progress",
               f"data.path={data}", "data.task=multiclass", f"data.cache_dir={base / 'cache'}", "trainer.epochs=2"])
    assert rc == 0
    return run, data


def test_cli_trains_and_evaluates_a_four_class_dataset(kidney_run):
    run, _ = kidney_run
    m = json.loads((run / "metrics.json").read_text())
    cls = m["classification"]
    assert cls["task"] == "multiclass" and m["findings"] == list(KIDNEY.values())
    mc = cls["multiclass"]
    assert set(mc) >= {"accuracy", "f1_weighted", "f1_macro", "recall", "confusion_matrix"}
    cm = np.asarray(mc["confusion_matrix"])
    assert cm.shape == (4, 4) and cm.sum() == cls["n_images"]
    assert cls["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    for key in ("accuracy", "f1_weighted"):
        lo, hi = cls["ci"][key]
        assert lo <= cls[key] <= hi
    assert not (run / "thresholds.json").exists()  # arg-max: nothing to fit on validation
    pred = pd.read_csv(run / "predictions_test.csv")
    p = pred[[f"p_{c}" for c in KIDNEY.values()]].to_numpy()
    assert np.allclose(p.sum(axis=1), 1.0)  # softmax over the classes
    assert (pred["predicted_class"].to_numpy() == np.asarray(list(KIDNEY.values()))[p.argmax(1)]).all()
    hist = pd.read_csv(run / "metrics.csv")
    assert {"val_auc_ccRCC", "val_auc_mean"} <= set(hist.columns)


def test_predict_report_and_table_of_a_multiclass_run(kidney_run, tmp_path, capsys):
    run, data = kidney_run
    pred = pd.read_csv(run / "predictions_test.csv", dtype={"image_id": str}).iloc[0]
    image = data / "images" / pred["image_id"]
    out = tmp_path / "pred"
    assert main(["predict", str(run), str(image), "--out", str(out), "--no-reference", "--no-progress"]) == 0
    text = capsys.readouterr().out
    res = json.loads((out / "predictions.json").read_text())[0]
    assert res["task"] == "multiclass" and res["predicted_class"] == pred["predicted_class"]
    assert res["probability"] == pytest.approx(pred[f"p_{res['predicted_class']}"], abs=1e-5)
    assert res["positive_findings"] == [res["predicted_class"]] and res["thresholds"] == {}
    assert f"class: {res['predicted_class']}" in text and "threshold" not in text.split("\n")[1]
    assert main(["report", str(run), "--no-progress"]) == 0
    html = (run / "report.html").read_text()
    assert "Confusion matrix" in html and "F1 (macro)" in html
    capsys.readouterr()
    assert main(["table", str(run), "--layout", "accuracy-weighted-f1"]) == 0
    assert "all classes" in capsys.readouterr().out
