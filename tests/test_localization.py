"""Localization accuracy (seed 001 §4, Table 2): IoU against hand-computed values, the case rules for several
ground-truth / predicted boxes, pixel-space checks, baselines, patient bootstrap vs a plain-loop reference."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from radclr.boxes import scale_boxes
from radclr.cam.boxes import ScoredBox
from radclr.data.dataset import Box, CXRDataset
from radclr.errors import DataError
from radclr.evaluation.localization import (
    DEFAULT_THRESHOLDS,
    centre_box_baseline,
    ground_truth_from_dataset,
    iou_accuracy,
    localization_cases,
    mean_box_sizes,
    whole_image_baseline,
)


# --- accuracy: hand-computed --------------------------------------------------------------------------------
def small_case():
    """Three Mass images with IoU 1.0, 0.5 (exactly), 1/3 and one Nodule image with IoU 0.25."""
    gt = {
        "a": {"Mass": [(0, 0, 2, 2)]},
        "b": {"Mass": [(0, 0, 2, 2)]},
        "c": {"Mass": [(0, 0, 2, 2)]},
        "d": {"Nodule": [Box(0, 0, 4, 4, "Nodule")]},
    }
    pred = {
        "a": {"Mass": [ScoredBox(0, 0, 2, 2, 0.9)]},
        "b": {"Mass": [(0, 0, 2, 1)]},
        "c": {"Mass": [(1, 0, 2, 2)]},
        "d": {"Nodule": [(1, 1, 2, 2)], "Mass": [(0, 0, 9, 9)]},  # Mass on d has no GT: ignored
    }
    return pred, gt


def test_iou_accuracy_hand_computed_and_layout():
    pred, gt = small_case()
    out = iou_accuracy(pred, gt)
    assert list(out["iou_accuracy"]) == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"]
    acc = out["iou_accuracy"]
    assert acc["0.2"] == {"Mass": 1.0, "Nodule": 1.0, "mean": 1.0}
    assert acc["0.3"] == {"Mass": 1.0, "Nodule": 0.0, "mean": 0.5}  # 1/3 > 0.3
    assert acc["0.4"]["Mass"] == pytest.approx(2 / 3)
    assert acc["0.5"]["Mass"] == pytest.approx(1 / 3)  # IoU == 0.5 is NOT > 0.5 (seed 001: IoU > T)
    assert acc["0.5"]["mean"] == pytest.approx((1 / 3 + 0) / 2)
    assert out["mean_iou"]["Mass"] == pytest.approx((1 + 0.5 + 1 / 3) / 3)
    assert out["n_images"] == 4 and out["n_cases"] == {"Mass": 3, "Nodule": 1}
    assert out["rule"] == "any_gt" and out["pred_rule"] == "top1" and out["oracle"] is False
    json.dumps(out)  # JSON-serialisable as metrics.json needs


def test_mean_skips_findings_without_cases():
    pred, gt = small_case()
    out = iou_accuracy(pred, gt, thresholds=(0.3,), findings=["Mass", "Nodule", "Pneumonia"])
    assert out["iou_accuracy"]["0.3"] == {"Mass": 1.0, "Nodule": 0.0, "Pneumonia": None, "mean": 0.5}
    assert out["n_cases"]["Pneumonia"] == 0
    only_mass = iou_accuracy(pred, gt, thresholds=(0.3,), findings=["Mass"])
    assert only_mass["ignored_findings"] == ["Nodule"] and only_mass["iou_accuracy"]["0.3"]["mean"] == 1.0


def test_missing_prediction_counts_as_wrong():
    _, gt = small_case()
    out = iou_accuracy({"a": {"Mass": [(0, 0, 2, 2)]}}, gt, thresholds=(0.1,))
    assert out["iou_accuracy"]["0.1"]["Mass"] == pytest.approx(1 / 3)
    assert out["n_missing_predictions"] == {"Mass": 2, "Nodule": 1}


# --- several GT / predicted boxes ------------------------------------------------------------------------------
def test_rules_for_several_ground_truth_boxes():
    gt = {"x": {"Pneumonia": [(0, 0, 10, 10), (50, 50, 10, 10)]}}
    pred = {"x": {"Pneumonia": [(0, 0, 10, 10)]}}
    any_gt = iou_accuracy(pred, gt, thresholds=(0.5,))
    all_gt = iou_accuracy(pred, gt, thresholds=(0.5,), rule="all_gt")
    assert any_gt["iou_accuracy"]["0.5"]["Pneumonia"] == 1.0 and any_gt["n_cases"]["Pneumonia"] == 1
    assert all_gt["iou_accuracy"]["0.5"]["Pneumonia"] == 0.5 and all_gt["n_cases"]["Pneumonia"] == 2
    assert "any GT box" in any_gt["definition"] and "one case per ground-truth box" in all_gt["definition"]


def test_top1_vs_oracle_any_for_several_predicted_boxes():
    gt = {"x": {"Mass": [(40, 40, 10, 10)]}}
    pred = {"x": {"Mass": [(0, 0, 10, 10), (40, 40, 10, 10)]}}  # the selected (first) box is wrong
    top1 = iou_accuracy(pred, gt, thresholds=(0.5,))
    oracle = iou_accuracy(pred, gt, thresholds=(0.5,), pred_rule="any")
    assert top1["iou_accuracy"]["0.5"]["Mass"] == 0.0
    assert oracle["iou_accuracy"]["0.5"]["Mass"] == 1.0
    assert oracle["oracle"] is True and "ORACLE" in oracle["definition"]


def test_all_gt_with_any_pred_matches_each_lesion_separately():
    gt = {"x": {"Nodule": [(0, 0, 4, 4), (20, 20, 4, 4), (40, 0, 4, 4)]}}
    pred = {"x": {"Nodule": [(20, 20, 4, 4), (0, 0, 4, 4)]}}
    cases = localization_cases(pred, gt, findings=["Nodule"], rule="all_gt", pred_rule="any")
    np.testing.assert_allclose(cases["iou"], [1.0, 1.0, 0.0])
    cases = localization_cases(pred, gt, findings=["Nodule"], rule="all_gt", pred_rule="top1")
    np.testing.assert_allclose(cases["iou"], [0.0, 1.0, 0.0])


# --- pixel spaces ----------------------------------------------------------------------------------------------
def test_mismatched_pixel_spaces_raise_and_scaled_boxes_agree():
    gt = {"im": {"Mass": [(512, 256, 128, 256)]}}  # in the 1024-px image
    pred224 = {"im": {"Mass": [ScoredBox(112, 56, 28, 56, 1.0)]}}  # the same box on the 224-px network grid
    with pytest.raises(DataError, match=r"224x224.*1024x1024.*scale_boxes"):
        iou_accuracy(pred224, gt, image_sizes={"im": (1024, 1024)}, prediction_sizes={"im": (224, 224)})
    scaled = {"im": {"Mass": scale_boxes(pred224["im"]["Mass"], (224, 224), (1024, 1024))}}
    out = iou_accuracy(scaled, gt, thresholds=(0.7,), image_sizes={"im": (1024, 1024)})
    assert out["iou_accuracy"]["0.7"]["Mass"] == 1.0


def test_boxes_outside_the_image_raise():
    gt = {"im": {"Mass": [(300, 300, 100, 100)]}}  # GT in 1024-px space, image read at 384 px
    with pytest.raises(DataError, match="ground-truth box .* outside the 384x384 image"):
        iou_accuracy({}, gt, image_sizes={"im": (384, 384)})
    with pytest.raises(DataError, match="predicted box"):
        iou_accuracy({"im": {"Mass": [(0, 0, 500, 10)]}}, {"im": {"Mass": [(0, 0, 10, 10)]}},
                     image_sizes={"im": (384, 384)})
    with pytest.raises(DataError, match="no entry in image_sizes"):
        iou_accuracy({}, gt, image_sizes={"other": (384, 384)})


# --- bootstrap -------------------------------------------------------------------------------------------------
def _loop_bootstrap(cases, patient_of, thresholds, findings, n_boot, seed, ci):
    """Plain loop reference: redraw patients, recompute the accuracy from the drawn patients' cases."""
    units = np.unique([patient_of[i] for i in cases["image_id"]])
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(units), size=(n_boot, len(units)))
    res = {t: {f: [] for f in findings + ["mean"]} for t in thresholds}
    for row in draws:
        chosen = list(units[row])
        for t in thresholds:
            accs = []
            for fi, f in enumerate(findings):
                hits, n = 0, 0
                for u in chosen:
                    sel = [k for k in range(len(cases["iou"]))
                           if patient_of[cases["image_id"][k]] == u and cases["finding"][k] == fi]
                    n += len(sel)
                    hits += sum(cases["iou"][k] > t for k in sel)
                if n:
                    res[t][f].append(hits / n)
                    accs.append(hits / n)
            res[t]["mean"].append(np.mean(accs))
    q = [100 * (1 - ci) / 2, 100 * (1 + ci) / 2]
    return {t: {f: tuple(np.percentile(v, q)) for f, v in per.items()} for t, per in res.items()}


def test_patient_bootstrap_matches_plain_loop_reference():
    rng = np.random.default_rng(5)
    gt, pred, patient_of = {}, {}, {}
    for i in range(14):
        iid, f = f"img{i:02d}", ("Mass", "Nodule")[i % 2]
        gt[iid] = {f: [(10, 10, 20, 20)]}
        shift = float(rng.integers(0, 20))
        pred[iid] = {f: [(10 + shift, 10, 20, 20)]}
        patient_of[iid] = f"p{i // 3}"  # several images per patient
    thresholds = (0.2, 0.5)
    out = iou_accuracy(pred, gt, thresholds=thresholds, patient_ids=patient_of, n_boot=300, seed=11, ci=0.9)
    cases = localization_cases(pred, gt, findings=["Mass", "Nodule"])
    ref = _loop_bootstrap(cases, patient_of, thresholds, ["Mass", "Nodule"], 300, 11, 0.9)
    for t in thresholds:
        for f in ("Mass", "Nodule", "mean"):
            got = out["iou_accuracy_ci"][f"{t:g}"][f]
            assert (got["ci_low"], got["ci_high"]) == pytest.approx(ref[t][f]), (t, f)
    assert out["bootstrap"]["unit"] == "patient" and out["bootstrap"]["n_units"] == 5


def test_bootstrap_resamples_patients_not_images():
    pred, gt = small_case()
    one_patient = {i: "same" for i in gt}
    out = iou_accuracy(pred, gt, thresholds=(0.4,), patient_ids=one_patient, n_boot=200)
    ci = out["iou_accuracy_ci"]["0.4"]["Mass"]
    assert ci["ci_low"] == ci["ci_high"] == pytest.approx(2 / 3)  # one patient: every resample is the data
    by_image = iou_accuracy(pred, gt, thresholds=(0.4,), n_boot=200)
    ci = by_image["iou_accuracy_ci"]["0.4"]["Mass"]
    assert ci["ci_low"] < 2 / 3 < ci["ci_high"] and by_image["bootstrap"]["unit"] == "image"
    with pytest.raises(DataError, match="patient_ids has no entry"):
        iou_accuracy(pred, gt, patient_ids={"a": "p"}, n_boot=10)


# --- baselines --------------------------------------------------------------------------------------------------
def test_whole_and_centre_baselines():
    sizes = {"a": (100, 200), "b": (100, 200)}
    gt = {"a": {"Mass": [(80, 40, 40, 20)]}, "b": {"Mass": [(0, 0, 20, 10)]}}
    whole = whole_image_baseline(gt, sizes)
    assert whole["a"]["Mass"] == [(0.0, 0.0, 200.0, 100.0)]
    out = iou_accuracy(whole, gt, thresholds=(0.01,), image_sizes=sizes)
    assert out["mean_iou"]["Mass"] == pytest.approx((800 / 20000 + 200 / 20000) / 2)
    assert mean_box_sizes(gt, sizes) == {"Mass": pytest.approx((0.15, 0.15))}
    centre = centre_box_baseline(gt, sizes)
    np.testing.assert_allclose(centre["a"]["Mass"][0], (85.0, 42.5, 30.0, 15.0))
    fixed = centre_box_baseline(gt, sizes, box_sizes={"Mass": (0.2, 0.2)})  # e.g. fit on training data
    np.testing.assert_allclose(fixed["b"]["Mass"][0], (80.0, 40.0, 40.0, 20.0))
    assert iou_accuracy(fixed, gt, thresholds=(0.9,))["iou_accuracy"]["0.9"]["Mass"] == 0.5
    with pytest.raises(DataError, match="no box size for finding 'Mass'"):
        centre_box_baseline(gt, sizes, box_sizes={"Nodule": (0.1, 0.1)})


def test_ground_truth_from_dataset(tmp_path):
    records = pd.DataFrame({"image_id": ["i1", "i2"], "path": ["a.png", "b.png"], "patient_id": ["p", "q"],
                            "width": [300, 200], "height": [100, 150]})
    boxes = pd.DataFrame({"image_id": ["i1", "i1", "i2"], "label": ["Mass", "Mass", "Nodule"],
                          "x": [1.0, 5.0, 2.0], "y": [1.0, 5.0, 2.0], "w": [2.0, 2.0, 3.0], "h": [2.0, 2.0, 3.0]})
    ds = CXRDataset("toy", "csv", tmp_path, ["Mass", "Nodule"], records, np.eye(2), boxes)
    gt = ground_truth_from_dataset(ds)
    assert [(b.x, b.w) for b in gt["i1"]["Mass"]] == [(1.0, 2.0), (5.0, 2.0)] and list(gt["i2"]) == ["Nodule"]
    assert list(ground_truth_from_dataset(ds, findings=["Nodule"])) == ["i2"]


# --- bad options --------------------------------------------------------------------------------------------------
def test_bad_options_raise():
    pred, gt = small_case()
    with pytest.raises(ValueError, match="thresholds"):
        iou_accuracy(pred, gt, thresholds=(0.5, 1.5))
    with pytest.raises(ValueError, match="rule must be"):
        iou_accuracy(pred, gt, rule="best")
    with pytest.raises(ValueError, match="pred_rule must be"):
        iou_accuracy(pred, gt, pred_rule="oracle")
    with pytest.raises(ValueError, match="duplicates"):
        iou_accuracy(pred, gt, findings=["Mass", "Mass"])
    with pytest.raises(ValueError, match="prediction_sizes needs image_sizes"):
        iou_accuracy(pred, gt, prediction_sizes={"a": (10, 10)})
    assert DEFAULT_THRESHOLDS == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
