"""`radclr predict`: the run's own test probabilities from PNG and DICOM files, boxes in file pixels, overlay,
radiomics percentiles in the training reference population, explanations, and refusal of bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from data_factories import truncate, write_dicom, write_png, write_sitk
from radclr.cli.main import main
from radclr.errors import DataError, ImageReadError, RadclrError
from radclr.predict import REFERENCE_FILE, Predictor, RadiomicsReference, explain, feature_label, percentiles
from radclr.visualize.overlays import overlay_figure, save_overlay_png, title_band_px
from run_factories import byop_run, simclr_run, tiny_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return byop_run(tmp_path_factory)


@pytest.fixture(scope="module")
def predictor(run):
    return Predictor(run, device="cpu")


@pytest.fixture(scope="module")
def test_images(run):
    """``[(image_id, png path, {finding: p from predictions_test.csv})]`` of the run's test split."""
    from radclr.training_data import open_dataset

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    ds = open_dataset(cfg["data"])
    paths = dict(zip(ds.image_ids, ds.records["path"]))
    pred = pd.read_csv(run / "predictions_test.csv", dtype={"image_id": str})
    findings = [c[2:] for c in pred.columns if c.startswith("p_")]
    return [(r.image_id, paths[r.image_id], {f: getattr(r, f"p_{f}") for f in findings})
            for r in pred.head(4).itertuples()]


# --------------------------------------------------------------------------------------------------------------
# unit: percentiles, labels, explanations, overlay
# --------------------------------------------------------------------------------------------------------------
def test_percentiles_mid_rank_by_hand():
    ref = np.array([[1.0, 5.0], [2.0, np.nan], [3.0, 5.0], [4.0, 5.0]])
    got = percentiles(ref, [2.5, 5.0])
    assert got[0] == pytest.approx(50.0)  # 2 of 4 below
    assert got[1] == pytest.approx(50.0)  # NaN reference value ignored: 3 ties of 3 -> (0 + 1.5) / 3
    assert percentiles(ref, [2.0, 4.0]).tolist() == pytest.approx([37.5, 0.0])  # (1 + 0.5) / 4; below all 3
    assert percentiles(ref, [0.0, 9.0]).tolist() == pytest.approx([0.0, 100.0])
    assert np.isnan(percentiles(ref, [np.nan, 5.0])[0])
    with pytest.raises(ValueError, match="expected 2 feature values"):
        percentiles(ref, [1.0])


def test_feature_labels_and_explanations():
    assert feature_label("original_glcm_Contrast") == "GLCM contrast"
    assert feature_label("original_firstorder_10Percentile") == "first-order 10 percentile"
    assert feature_label("original_glcm_Idmn") == "GLCM IDMN"
    assert feature_label("original_gldm_LargeDependenceLowGrayLevelEmphasis") == \
        "GLDM large dependence low gray level emphasis"
    names = ["original_glcm_Contrast", "original_firstorder_Mean", "original_shape2D_Elongation",
             "original_ngtdm_Busyness"]
    lines = explain(names, [412.0, 80.0, 1.0, 3.0], [94.2, 51.0, 100.0, 3.0], top_k=2)
    assert lines == ["NGTDM busyness = 3: 3rd percentile of training boxes (low)",  # |3 - 50| > |94.2 - 50|
                     "GLCM contrast = 412: 94th percentile of training boxes (high)"]  # shape skipped
    assert explain(names, [1, 2, 3, 4], [np.nan] * 4) == []


def test_fast_overlay_png_matches_the_matplotlib_figure_layout(tmp_path):
    img = np.tile(np.linspace(0, 255, 40), (30, 1))
    cam = np.zeros((6, 8))
    cam[2, 3] = 1.0
    box = [10.0, 5.0, 12.0, 9.0]
    fast = np.asarray(Image.open(save_overlay_png(img, cam, [], [box], tmp_path / "f.png", title="Mass  p=0.90")))
    overlay_figure(img, cam, [], [box], title="Mass  p=0.90").savefig(tmp_path / "m.png", dpi=100, format="png")
    ref = np.asarray(Image.open(tmp_path / "m.png"))
    assert fast.shape[:2] == ref.shape[:2] == (30 + title_band_px(30), 40)
    band = title_band_px(30)
    red = (fast[..., 0] == 255) & (fast[..., 1] == 0) & (fast[..., 2] == 0)
    rows, cols = np.nonzero(red[band:])
    assert (cols.min(), cols.max(), rows.min(), rows.max()) == (10, 21, 5, 13)  # the box's own pixels
    # image + heatmap blend: the same colours as matplotlib's rendering away from the box edges (within 2 levels)
    away = np.ones((30, 40), bool)
    away[3:16, 8:24] = False
    diff = np.abs(fast[band:].astype(float) - ref[band:, :, :3].astype(float))[away]
    assert diff.max() <= 2.0 and fast[band:][away].std() > 10  # and it is not blank


# --------------------------------------------------------------------------------------------------------------
# integration: a trained BYOP run
# --------------------------------------------------------------------------------------------------------------
def test_reference_population_saved_once(run, predictor):
    ref = predictor.reference
    assert isinstance(ref, RadiomicsReference) and (run / REFERENCE_FILE).exists()
    split = pd.read_csv(run / "splits.csv")
    assert len(ref) == int((split["split"] == "train").sum())  # all training images (fewer than 2000)
    assert ref.meta["checkpoint"].startswith("best.pt") and ref.meta["image_size"] == 48
    z = np.load(run / REFERENCE_FILE)
    assert set(z["image_ids"]) <= set(split.loc[split["split"] == "train", "image_id"])  # training images only
    boxes = z["boxes"]
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 0] + boxes[:, 2] <= 48 + 1e-6).all()
    assert len(ref.names) == 102 and ref.values.shape == (len(ref), 102)


def test_reference_reads_only_its_sample_and_equals_the_stores(run, tmp_path, monkeypatch):
    """Issue 18 item 7: predict's first call builds the reference from the ~2,000 sampled files, not the run's
    whole image store -- and gets what the store's pixels give (the report builds it from the store)."""
    import shutil

    import radclr.predict as P
    import radclr.training_data.store as St
    from radclr.runs.run import load_run
    from radclr.training_data import prepare_data

    copy = tmp_path / "run"
    shutil.copytree(run, copy)  # the reference file of the shared run stays as the other tests expect
    loaded = load_run(copy, "best", "cpu")
    data = prepare_data(loaded.cfg, copy, need_radiomics=False, progress=False)
    P.build_radiomics_reference(copy, max_images=10, seed=5, run=loaded, data=data)
    from_store = dict(np.load(copy / REFERENCE_FILE))

    def no_store(*a, **k):
        raise AssertionError("the reference built an image store")

    reads = []
    read = P.read_image
    monkeypatch.setattr(P, "read_image", lambda path: reads.append(path) or read(path))
    monkeypatch.setattr(St, "build_cached_store", no_store)
    P.build_radiomics_reference(copy, max_images=10, seed=5, run=loaded)
    from_files = dict(np.load(copy / REFERENCE_FILE))
    assert len(reads) == 10 and len(set(reads)) == 10  # the sample's files, each once
    train = set(data.split.loc[data.split["split"] == "train", "image_id"])
    assert len(from_files["image_ids"]) == 10 and set(from_files["image_ids"]) <= train
    for key in ("names", "image_ids", "findings", "fallback", "boxes", "values"):
        np.testing.assert_array_equal(from_files[key], from_store[key], err_msg=key)


def test_png_probabilities_equal_the_runs_test_predictions(predictor, test_images, tmp_path):
    results = predictor([p for _, p, _ in test_images], tmp_path)
    for (iid, _, expected), res in zip(test_images, results):
        for f, p in expected.items():
            assert res["probabilities"][f] == pytest.approx(p, abs=1e-5), (iid, f)
        assert set(res["thresholds"]) == set(expected)
        assert res["positive_findings"] == [f for f in sorted(expected, key=lambda f: -res["probabilities"][f])
                                            if res["probabilities"][f] >= res["thresholds"][f]]
        assert res["image_size"] == [64, 64] and res["model_input_size"] == 48
        for region in res["regions"]:
            x, y, w, h = region["box"]
            assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= 64 + 1e-6 and y + h <= 64 + 1e-6
            assert region["box"] == pytest.approx([v * 64 / 48 for v in region["box_model"]], abs=0.01)
            pct = [v["percentile"] for v in region["radiomics"].values() if v["percentile"] is not None]
            assert len(pct) > 50 and all(0.0 <= q <= 100.0 for q in pct)
            assert len(region["explanation"]) == 1 + 5 and region["explanation"][0].startswith("box area")
            png = Image.open(region["overlay"])
            assert png.size == (64, 64 + title_band_px(64))
        assert res["regions"][0]["finding"] == max(expected, key=lambda f: res["probabilities"][f])
        assert res["box"] == res["regions"][0]["box"] and res["radiomics"] is res["regions"][0]["radiomics"]
        assert set(res["timing_ms"]) == {"preprocess", "forward", "cam", "boxing", "radiomics", "overlay"}
    json.dumps(results)  # JSON-ready


def test_radiomics_of_the_box_are_the_training_region_rule(predictor, test_images):
    """The region's radiomics equal the torch engine on the store-scale image with the one box -> mask rule and
    the run's radiomics settings."""
    import torch

    from radclr.boxes import boxes_to_masks
    from radclr.radiomics import extract
    from radclr.radiomics.regions import radiomics_settings

    res = predictor.predict_one(test_images[0][1])
    _, small = predictor.preprocess(test_images[0][1])
    mask = boxes_to_masks([res["regions"][0]["box_model"]], (48, 48))
    settings, classes = radiomics_settings(predictor.run.cfg["radiomics"])
    names, vals = extract(torch.from_numpy(small[None].astype(np.float64)), mask, settings=settings, classes=classes)
    got = [res["radiomics"][n]["value"] for n in names]
    want = vals[0].numpy()
    assert np.allclose(np.array(got, dtype=float), want, equal_nan=True)


def test_boxes_are_the_ones_evaluation_scored(run, predictor):
    """Same CAM options as the run's evaluation, and the same box (file pixels) for every (image, finding) that
    evaluation localized (localization_test.csv) and predict boxes too."""
    from radclr.training_data import open_dataset

    metrics = json.loads((run / "metrics.json").read_text())
    assert predictor.cam_options.to_dict() == metrics["localization"]["cam_options"]
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    ds = open_dataset(cfg["data"])
    paths = dict(zip(ds.image_ids, ds.records["path"]))
    loc = pd.read_csv(run / "localization_test.csv", dtype={"image_id": str})
    compared = 0
    for iid, rows in loc.groupby("image_id"):
        for region in predictor.predict_one(paths[iid])["regions"]:
            row = rows[rows["finding"] == region["finding"]]
            if len(row):
                assert json.loads(row["pred_box"].iloc[0]) == pytest.approx(region["box"], abs=0.01)
                compared += 1
    assert compared >= 2


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_dicom_gives_the_same_probabilities(predictor, test_images, tmp_path, photometric):
    iid, png, expected = test_images[1]
    pixels = np.asarray(Image.open(png)).astype(np.uint16)
    stored = pixels if photometric == "MONOCHROME2" else 255 - pixels  # MONOCHROME1: low values are white
    dcm = write_dicom(tmp_path / f"{iid}.dcm", stored, photometric=photometric, bits_stored=8)
    res = predictor.predict_one(dcm)
    for f, p in expected.items():
        assert res["probabilities"][f] == pytest.approx(p, abs=1e-5)
    assert res["image_size"] == [64, 64]


def test_top_only_and_jpeg(predictor, test_images, tmp_path):
    jpg = Image.open(test_images[0][1]).convert("L")
    jpg.save(tmp_path / "x.jpg", quality=95)
    only = Predictor(predictor.run_dir, device="cpu", top_only=True)
    res = only(tmp_path / "x.jpg")[0]
    assert len(res["regions"]) == 1 and 0.0 <= min(res["probabilities"].values()) <= 1.0


def test_bad_inputs_raise_clear_errors(predictor, tmp_path, tmp_path_factory):
    with pytest.raises(ImageReadError, match="file not found"):
        predictor.predict_one(tmp_path / "nope.png")
    bad = truncate(write_png(tmp_path / "bad.png", np.full((64, 64), 100, np.uint8)), keep=0.3)
    with pytest.raises(ImageReadError, match="bad.png"):
        predictor.predict_one(bad)
    vol = write_sitk(tmp_path / "vol.nii.gz", np.zeros((3, 16, 16), np.int16))
    with pytest.raises(DataError, match="2-D images"):
        predictor.predict_one(vol)
    with pytest.raises(RadclrError, match="at least one image"):
        predictor([])
    with pytest.raises(RadclrError, match="no classifier"):
        Predictor(simclr_run(tmp_path_factory), device="cpu")
    roi = tiny_run(tmp_path_factory, "seed004_cnn_scratch", "data.image_size=48", "evaluation.localization=false",
                   name="roi48")
    with pytest.raises(RadclrError, match="ROI crops"):
        Predictor(roi, device="cpu")


def test_cli_json_and_summary(run, test_images, tmp_path, capsys):
    png = test_images[0][1]
    assert main(["predict", str(run), png, "--out", str(tmp_path / "o"), "--json", "--device", "cpu"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res[0]["probabilities"] == pytest.approx({f: p for f, p in test_images[0][2].items()}, abs=1e-5)
    assert (tmp_path / "o" / "predictions.json").exists()
    assert main(["predict", str(run), png, "--out", str(tmp_path / "o2"), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "box x=" in text and "percentile of training boxes" in text
    assert main(["predict", str(run), str(tmp_path / "missing.png"), "--out", str(tmp_path / "o3")]) == 2
    assert "missing.png: file not found" in capsys.readouterr().err
