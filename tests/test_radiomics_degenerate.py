"""Degenerate regions: the documented policy, the same in both engines, never a silent wrong value.

* empty mask -> DataError naming the region;
* single pixel / 1-pixel-wide line / NaN intensity inside the region -> NaN row + a logged reason;
* constant intensity, one gray level, NaN outside the region -> values, equal to PyRadiomics'.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from radclr.errors import DataError
from radclr.radiomics import Settings, extract
from optional_deps import require_module

require_module("radiomics")
logging.getLogger("radiomics").setLevel(logging.ERROR)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def regions():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 16, 16)).astype(np.float64)
    masks = np.zeros((7, 16, 16), bool)
    masks[0, 3, 4] = True  # single pixel
    masks[1, 5, 2:12] = True  # horizontal line, 1 pixel wide
    masks[2, 2:9, 2:9] = True
    images[2, 2:9, 2:9] = 77.0  # constant intensity
    masks[3, 4:10, 1:15] = True
    images[3, 4:10, 1:15] = rng.integers(100, 125, (6, 14))  # one gray level at binWidth 25 (100..124)
    masks[4, 1:8, 1:8] = True
    images[4, 3, 3] = np.nan  # NaN inside the region
    masks[5, 8:16, 8:16] = True
    images[5, 0, 0] = np.nan  # NaN outside the region: irrelevant
    masks[6] = True  # the whole image
    return images, masks


@pytest.fixture(scope="module")
def both_engines():
    images, masks = regions()
    names, torch_values = extract(images, masks)
    ref_names, pyr_values = extract(images, masks, engine="pyradiomics")
    assert names == ref_names
    return names, torch_values.numpy(), pyr_values.numpy()


def test_refused_regions_are_nan_rows_in_both_engines(both_engines):
    _, t, p = both_engines
    for i in (0, 1, 4):
        assert np.isnan(t[i]).all() and np.isnan(p[i]).all(), f"region {i}"


def test_refused_regions_log_their_reason(caplog):
    images, masks = regions()
    with caplog.at_level(logging.WARNING, logger="radclr.radiomics"):
        extract(images, masks)
    text = caplog.text
    assert "region 0: single-pixel region" in text
    assert "region 1: region is 1x10 pixels" in text and "minimumROIDimensions" in text
    assert "region 4: NaN or infinite intensity" in text


def test_constant_and_single_level_regions_match_pyradiomics(both_engines):
    names, t, p = both_engines
    for i in (2, 3, 5, 6):
        assert np.isfinite(t[i]).all(), f"region {i}: {[n for n, v in zip(names, t[i]) if not np.isfinite(v)]}"
        rel = np.abs(t[i] - p[i]) / np.maximum(np.abs(p[i]), 1e-12)
        assert rel.max() <= 1e-4, f"region {i}: {names[int(rel.argmax())]}"
    f = dict(zip(names, t[2]))
    assert f["original_firstorder_Variance"] == 0 and f["original_firstorder_Skewness"] == 0
    assert f["original_glcm_Correlation"] == 1 and f["original_glcm_MCC"] == 1  # PyRadiomics' flat-region values
    assert f["original_ngtdm_Coarseness"] == 1e6


def test_one_pixel_lines_are_computed_when_allowed():
    images, masks = regions()
    s = Settings(minimum_roi_dimensions=1)
    names, t = extract(images[1:2], masks[1:2], settings=s)
    _, p = extract(images[1:2], masks[1:2], settings=s, engine="pyradiomics")
    finite = np.isfinite(p.numpy())
    assert finite.sum() > 90
    np.testing.assert_array_equal(np.isfinite(t.numpy()), finite)
    np.testing.assert_allclose(t.numpy()[finite], p.numpy()[finite], rtol=1e-4)


def test_minimum_roi_size_gives_nan_rows():
    images, masks = regions()
    _, t = extract(images[2:4], masks[2:4], settings=Settings(minimum_roi_size=60))  # 49 and 84 pixels
    assert np.isnan(t[0].numpy()).all() and np.isfinite(t[1].numpy()).all()


def test_empty_mask_raises_in_both_engines():
    images, masks = regions()
    masks[3] = False
    for engine in ("torch", "pyradiomics"):
        with pytest.raises(DataError, match=r"region\(s\) \[3\]"):
            extract(images, masks, engine=engine)


def test_infinite_values_inside_the_region_are_nan_rows():
    images = torch.full((1, 6, 6), 5.0)
    images[0, 2, 2] = float("inf")
    _, v = extract(images, torch.ones(1, 6, 6, dtype=torch.bool))
    assert torch.isnan(v).all()
