"""Cropping, padding and PyRadiomics' gray-level discretisation (radclr.radiomics.discretize)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radclr.errors import DataError
from radclr.radiomics import Settings, extract
from radclr.radiomics.discretize import BinEdges, bounding_boxes, prepare
from optional_deps import require_module

imageoperations = require_module("radiomics.imageoperations")


def pyradiomics_bins(values: np.ndarray, **settings) -> np.ndarray:
    binned, _ = imageoperations.binImage(values.astype(np.float64), np.ones(values.shape, bool), **settings)
    return binned


VALUE_SETS = {
    "uint8": lambda rng: rng.integers(0, 256, 500).astype(float),
    "edges": lambda rng: np.array([0.0, 25, 50, 75, 99.9999, 100, 124.99999999, 125]),  # maximum on an edge
    "negative": lambda rng: np.round(rng.normal(-1000, 300, 400)),
    "float": lambda rng: rng.normal(3.3, 1.7, 400),
    "tiny_range": lambda rng: 1e6 + rng.random(300) * 1e-3,
    "flat_on_edge": lambda rng: np.full(10, 50.0),
    "flat": lambda rng: np.full(10, 17.25),
    "two_values": lambda rng: np.array([3.0, 3.0, 7.0, 3.0]),
}


@pytest.mark.parametrize("values", sorted(VALUE_SETS))
@pytest.mark.parametrize(
    "settings", [{"binWidth": 25}, {"binWidth": 0.7}, {"binWidth": 10}, {"binCount": 1}, {"binCount": 7},
                 {"binCount": 32}], ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()))
def test_bins_equal_pyradiomics_binimage(values, settings):
    x = VALUE_SETS[values](np.random.default_rng(0))
    s = Settings(bin_width=float(settings.get("binWidth", 25)), bin_count=settings.get("binCount"))
    t = torch.from_numpy(x)[None]
    got = BinEdges(t.min(1).values, t.max(1).values, s).bin(t)[0].numpy()
    np.testing.assert_array_equal(got, pyradiomics_bins(x, **settings))


def test_prepare_crops_pads_and_bins_each_region():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 20, 30)).astype(np.float32)
    masks = np.zeros((3, 20, 30), bool)
    masks[0, 2:7, 3:12] = True  # 5 x 9
    masks[1, 10:20, 25:30] = True  # touches the bottom-right corner, 10 x 5
    masks[2, 0:3, 0:2] = True
    masks[2, 1, 1] = False  # a hole
    b = prepare(torch.from_numpy(images), torch.from_numpy(masks), Settings())
    assert b.image.shape == (3, 10, 9) and b.image.dtype == torch.float64
    assert b.binned.dtype == torch.int64 and b.mask.dtype == torch.bool
    np.testing.assert_array_equal(b.image[0, :5, :9].numpy(), images[0, 2:7, 3:12])
    np.testing.assert_array_equal(b.image[1, :10, :5].numpy(), images[1, 10:20, 25:30])
    np.testing.assert_array_equal(b.mask[2, :3, :2].numpy(), masks[2, 0:3, 0:2])
    assert int(b.mask.sum()) == masks.sum()  # padding is outside every region
    assert bool((b.image[~b.mask] == 0).all()) and bool((b.binned[~b.mask] == 0).all())
    for i in range(3):
        ref = pyradiomics_bins(images[i][masks[i]], binWidth=25)
        np.testing.assert_array_equal(b.binned[i][b.mask[i]].numpy(), ref)
        assert int(b.n_gray[i]) == ref.max()
    np.testing.assert_array_equal(b.n_pixels.numpy(), masks.reshape(3, -1).sum(1))


def test_prepare_regions_subset_and_order_without_boxes():
    rng = np.random.default_rng(2)
    images = torch.from_numpy(rng.integers(0, 256, (3, 12, 12)).astype(np.float32))
    masks = torch.zeros(3, 12, 12, dtype=torch.bool)
    masks[0, 0:2, 0:3] = True
    masks[1, 4:9, 4:6] = True
    masks[2, 10:12, 1:12] = True
    full = prepare(images, masks)
    for order in ([2, 0, 1], [2], [1, 1]):
        b = prepare(images, masks, regions=torch.tensor(order))
        np.testing.assert_array_equal(b.n_pixels.numpy(), full.n_pixels[order].numpy())
        for j, i in enumerate(order):
            np.testing.assert_array_equal(b.binned[j][b.mask[j]].numpy(), full.binned[i][full.mask[i]].numpy())


def test_integer_and_general_routes_bin_identically():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 4000, (2, 16, 16)).astype(np.float64)
    masks = rng.random((2, 16, 16)) > 0.3
    fast = prepare(torch.from_numpy(img), torch.from_numpy(masks), Settings(bin_count=32))
    assert "value_histogram" in fast.cache  # integer intensities -> lookup-table route
    nudged = img.copy()
    nudged[0, ~masks[0]] += 0.5  # a non-integer outside every region forces the general route
    general = prepare(torch.from_numpy(nudged), torch.from_numpy(masks), Settings(bin_count=32))
    assert "value_histogram" not in general.cache
    assert torch.equal(fast.binned, general.binned) and torch.equal(fast.n_gray, general.n_gray)


def test_bounding_boxes():
    m = torch.zeros(3, 8, 9, dtype=torch.bool)
    m[0, 2:5, 3:4] = True
    m[1] = True
    top, left, h, w = bounding_boxes(m)
    assert top.tolist() == [2, 0, 0] and left.tolist() == [3, 0, 0]
    assert h.tolist() == [3, 8, 0] and w.tolist() == [1, 9, 0]


def test_empty_mask_is_an_error_naming_the_region():
    masks = torch.zeros(3, 8, 8, dtype=torch.bool)
    masks[0, 1:4, 1:4] = True
    masks[2, 2:6, 2:6] = True
    with pytest.raises(DataError, match=r"region\(s\) \[1\]"):
        prepare(torch.rand(3, 8, 8), masks)
    with pytest.raises(DataError, match=r"\[1\]"):
        extract(torch.rand(3, 8, 8), masks)


def test_shape_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"\(2, 8, 8\).*\(2, 8, 9\)"):
        prepare(torch.rand(2, 8, 8), torch.ones(2, 8, 9, dtype=torch.bool))
    with pytest.raises(ValueError, match="binCount"):
        prepare(torch.rand(1, 4, 4), torch.ones(1, 4, 4, dtype=torch.bool), Settings(bin_count=0))
    with pytest.raises(ValueError, match="binWidth"):
        prepare(torch.rand(1, 4, 4), torch.ones(1, 4, 4, dtype=torch.bool), Settings(bin_width=-1.0))


def test_mixed_region_sizes_in_one_batch_equal_one_by_one():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (6, 70, 70)).astype(np.float32)
    masks = np.zeros((6, 70, 70), bool)
    for i, (h, w) in enumerate([(8, 8), (64, 64), (9, 40), (40, 9), (23, 31), (70, 70)]):
        masks[i, :h, 70 - w :] = True
    names, batch = extract(images, masks, batch_size=6)
    _, grouped = extract(images, masks)  # automatic grouping by size
    torch.testing.assert_close(batch, grouped, rtol=1e-12, atol=0)
    for i in range(6):
        _, single = extract(images[i : i + 1], masks[i : i + 1])
        torch.testing.assert_close(batch[i : i + 1], single, rtol=1e-12, atol=0)
