"""The folder adapter on the real development data in ../shared/data (skipped when absent), with every count
checked independently against the CSVs with pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import shared_dataset

from radclr.data import NO_FINDING, load_dataset

pytestmark = pytest.mark.realdata


@pytest.mark.parametrize("name", ["nih_cxr14", "kermany_pediatric", "nih_community_boxes"])
def test_folder_adapter_loads_real_data(name):
    root = shared_dataset(name)
    ds = load_dataset(root)
    ref = pd.read_csv(root / "labels.csv", dtype=str)
    assert ds.format == "folder" and len(ds) == len(ref)
    assert ds.image_ids == ref["image"].tolist()
    assert ds.records["patient_id"].nunique() == ref["patient_id"].nunique()
    names = ref["labels"].str.split("|").explode()
    assert ds.findings == sorted(set(names) - {NO_FINDING})
    want = {f: 0 for f in ds.findings} | {NO_FINDING: 0} | names.value_counts().to_dict()
    assert ds.label_counts() == want
    assert not [p for p in ds.problems if p.severity == "error"]
    # spot-check one image: read size equals the declared size
    i = len(ds) // 2
    img = ds.read(i)
    assert img.shape == (int(ref.loc[i, "height"]), int(ref.loc[i, "width"])) and img.meta["bit_depth"] == 8


def test_community_boxes_loaded_as_written():
    root = shared_dataset("nih_community_boxes")
    ds = load_dataset(root)
    ref = pd.read_csv(root / "boxes.csv")
    assert len(ds.boxes) == len(ref) == 273
    got = ds.boxes.sort_values(["image_id", "x", "y"]).reset_index(drop=True)
    want = ref.rename(columns={"image": "image_id"}).sort_values(["image_id", "x", "y"]).reset_index(drop=True)
    np.testing.assert_allclose(got[["x", "y", "w", "h"]].to_numpy(), want[["x", "y", "w", "h"]].to_numpy())
    assert got["label"].tolist() == want["label"].tolist()
    # 70 of the community boxes sit on images whose NIH labels lack that finding: warned, not dropped
    assert all(p.severity == "warning" and "labels do not include" in p.message for p in ds.problems)
