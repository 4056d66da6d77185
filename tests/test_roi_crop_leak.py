"""``radiomics.region: roi_crop`` refuses data where only some labelled images have a ROI (issue 21, item 7).

Seed 004 §2.3 crops each image to its ROI (every kidney CT has one). On chest X-rays only positive images carry
boxes: the others would be seen whole, and crop geometry and shape features would give the label away at test
time (the hybrid network and the classical baseline alike)."""

from __future__ import annotations

import numpy as np
import pytest

from radclr.boxes import Box
from radclr.errors import DataError
from radclr.runs.train import train
from radclr.training_data.prepare import check_roi_coverage
from data_factories import make_folder


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RADCLR_CACHE", str(tmp_path / "cache"))


def test_training_on_boxes_of_positive_images_only_is_refused_before_training(tmp_path):
    rows = [(f"i{k}.png", f"p{k}", "Mass" if k % 2 else "No Finding") for k in range(12)]
    boxes = [(f"i{k}.png", "Mass", 10, 10, 20, 20) for k in range(12) if k % 2]  # only the positives have a ROI
    root = make_folder(tmp_path / "cxr", rows, boxes)
    cfg = {"data": {"path": str(root), "image_size": 64, "split": {"val": 0.2, "test": 0.2, "seed": 0}},
           "radiomics": {"region": "roi_crop"}, "trainer": {"epochs": 1, "batch_size": 4, "progress": False},
           "stages": [{"name": "train", "method": "supervised"}]}
    with pytest.raises(DataError, match=r"roi_crop needs a ROI .* 6 of 12 labelled images have none .* 100 % of the "
                                        r"images with a ROI are positive .* 0 % of those without"):
        train(cfg, tmp_path / "run", evaluate=False)
    assert not (tmp_path / "run" / "metrics.csv").exists()  # nothing trained


def test_a_roi_for_every_labelled_image_passes():
    labels = np.array([[1.0, 0.0], [0.0, 1.0], [np.nan, np.nan]])
    roi = [Box(1, 1, 4, 4, "Mass")]
    check_roi_coverage([roi, roi, []], labels, "kidney")  # the unlabelled image may lack one
    with pytest.raises(DataError, match="kidney: .* 1 of 3 labelled images have none"):
        check_roi_coverage([roi, roi, []], np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), "kidney")
