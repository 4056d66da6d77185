"""GLSZM (radclr.radiomics.glszm) against PyRadiomics 3.1.4 and a hand-computed zone matrix."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from radclr.radiomics.base import RegionBatch, Settings
from radclr.radiomics.discretize import prepare
from radclr.radiomics.glszm import GLSZM
from optional_deps import require_module

sitk = require_module("SimpleITK")
radiomics = require_module("radiomics")
from radiomics import featureextractor, glszm  # noqa: E402

logging.getLogger("radiomics").setLevel(logging.ERROR)

FEATURES = sorted([
    "SmallAreaEmphasis", "LargeAreaEmphasis", "GrayLevelNonUniformity", "GrayLevelNonUniformityNormalized",
    "SizeZoneNonUniformity", "SizeZoneNonUniformityNormalized", "ZonePercentage", "GrayLevelVariance",
    "ZoneVariance", "ZoneEntropy", "LowGrayLevelZoneEmphasis", "HighGrayLevelZoneEmphasis",
    "SmallAreaLowGrayLevelEmphasis", "SmallAreaHighGrayLevelEmphasis", "LargeAreaLowGrayLevelEmphasis",
    "LargeAreaHighGrayLevelEmphasis",
])
RTOL = 1e-4
BINNINGS = {"binWidth25": ({"binWidth": 25}, Settings(bin_width=25.0)),
            "binCount32": ({"binCount": 32}, Settings(bin_count=32)),
            "binWidth1": ({"binWidth": 1}, Settings(bin_width=1.0))}


def sitk_pair(image: np.ndarray, mask: np.ndarray):
    """The reference 2-D configuration: a 2-D float SimpleITK image (force2D=False), label 1."""
    return (sitk.GetImageFromArray(np.asarray(image, dtype=np.float64)),
            sitk.GetImageFromArray(np.asarray(mask, dtype=np.uint8)))


def around(image: np.ndarray, mask: np.ndarray, margin: int = 2):
    """The region's box plus a margin (PyRadiomics crops to the box itself; this only saves it work)."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    r0, r1 = max(rows[0] - margin, 0), rows[-1] + margin + 1
    c0, c1 = max(cols[0] - margin, 0), cols[-1] + margin + 1
    return image[r0:r1, c0:c1], mask[r0:r1, c0:c1]


_EXTRACTORS: dict[str, object] = {}


def pyradiomics_glszm(image, mask, binning: str) -> dict[str, float]:
    """PyRadiomics' extractor with only glszm enabled."""
    if binning not in _EXTRACTORS:
        extractor = featureextractor.RadiomicsFeatureExtractor(force2D=False, label=1, **BINNINGS[binning][0])
        extractor.disableAllFeatures()
        extractor.enableFeatureClassByName("glszm")
        _EXTRACTORS[binning] = extractor
    out = _EXTRACTORS[binning].execute(*sitk_pair(*around(image, mask)))
    return {k.split("_", 2)[2]: float(v) for k, v in out.items() if k.startswith("original_glszm_")}


def pyradiomics_class(image, mask, **settings) -> dict[str, float]:
    """PyRadiomics' glszm class called directly (also on regions its extractor refuses, e.g. one pixel)."""
    fc = glszm.RadiomicsGLSZM(*sitk_pair(image, mask), force2D=False, **settings)
    fc.enableAllFeatures()
    with np.errstate(all="ignore"):
        return {k: float(v) for k, v in fc.execute().items()}


def radclr_glszm(images, masks, settings: Settings) -> dict[str, np.ndarray]:
    batch = prepare(torch.as_tensor(np.asarray(images, dtype=np.float64)), torch.as_tensor(np.asarray(masks)),
                    settings)
    return {k: v.numpy() for k, v in GLSZM(batch).execute().items()}


def assert_close(got: float, want: float, name: str, rtol: float = RTOL):
    if math.isnan(want):
        assert math.isnan(got), f"{name}: got {got}, PyRadiomics NaN"
        return
    rel = abs(got - want) / max(abs(want), 1e-12)
    assert rel <= rtol, f"{name}: got {got!r}, PyRadiomics {want!r} (relative error {rel:.2e})"


def textured(h: int, w: int, rng, sigma: float, scale: float) -> np.ndarray:
    return ndimage.gaussian_filter(rng.random((h, w)), sigma) * scale + rng.normal(0, 3, (h, w))


def region_masks(h: int, w: int, rng) -> list[np.ndarray]:
    yy, xx = np.mgrid[:h, :w]
    disk = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 <= (min(h, w) / 2.3) ** 2
    ring = disk & ((yy - h / 2) ** 2 + (xx - w / 2) ** 2 >= (min(h, w) / 5) ** 2)
    box = np.zeros((h, w), bool)
    box[: h - 1, : w - 1] = True  # touches the image border on two sides
    blob = ndimage.gaussian_filter(rng.random((h, w)), 2) > 0.5
    noise = rng.random((h, w)) < 0.6
    return [m for m in (disk, ring, box, blob, noise) if m.sum() > 2]


@pytest.mark.parametrize("binning", ["binWidth25", "binCount32"])
@pytest.mark.parametrize("size", [(8, 8), (21, 13), (64, 64)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_parity_with_pyradiomics(size, binning):
    """All 16 features within 1e-4 of PyRadiomics' extractor on blobs, rings, boxes and noise masks."""
    rng = np.random.default_rng(size[0] * 100 + size[1])
    h, w = size
    images, masks = [], []
    for sigma, scale in [(0.0, 255.0), (1.5, 900.0), (3.0, 4000.0)]:  # fine to coarse; up to ~160 bins of 25
        image = textured(h, w, rng, sigma, scale)
        for m in region_masks(h, w, rng):
            images.append(image)
            masks.append(m)
    got = radclr_glszm(np.stack(images), np.stack(masks), BINNINGS[binning][1])
    for i, (image, mask) in enumerate(zip(images, masks)):
        want = pyradiomics_glszm(image, mask, binning)
        assert sorted(want) == FEATURES
        for name in FEATURES:
            assert_close(float(got[name][i]), want[name], f"region {i} {name}")


def test_many_gray_levels():
    """Hundreds of levels (binWidth 1 on 0..600): zones are found on the batch's ranked level codes."""
    rng = np.random.default_rng(21)
    images = rng.integers(0, 600, (3, 30, 30)).astype(float)
    images[1] = ndimage.gaussian_filter(images[1], 1.0)
    masks = np.stack([rng.random((30, 30)) < 0.7 for _ in range(3)])
    got = radclr_glszm(images, masks, BINNINGS["binWidth1"][1])
    for k in range(3):
        want = pyradiomics_glszm(images[k], masks[k], "binWidth1")
        for name in FEATURES:
            assert_close(float(got[name][k]), want[name], f"region {k} {name}")


def test_feature_names():
    assert GLSZM.feature_names() == FEATURES


def test_documented_example_matrix():
    """PyRadiomics' docstring example: this 5x5 image has the GLSZM below (8-connected zones); every feature
    computed from that matrix by the plain formulas equals radclr's."""
    image = np.array([[5, 2, 5, 4, 4], [3, 3, 3, 1, 3], [2, 1, 1, 1, 3], [4, 2, 2, 2, 3], [3, 5, 3, 3, 2]])
    P = np.array([[0, 0, 0, 1, 0], [1, 0, 0, 0, 1], [1, 0, 1, 0, 1], [1, 1, 0, 0, 0], [3, 0, 0, 0, 0]], float)
    batch = RegionBatch(
        image=torch.from_numpy(image.astype(float))[None], mask=torch.ones(1, 5, 5, dtype=torch.bool),
        binned=torch.from_numpy(image)[None], n_gray=torch.tensor([5]), spacing=torch.ones(1, 2, dtype=torch.float64),
        settings=Settings(),
    )
    got = {k: float(v[0]) for k, v in GLSZM(batch).execute().items()}
    i = np.arange(1, 6, dtype=float)[:, None]
    j = np.arange(1, 6, dtype=float)[None, :]
    nz, p = P.sum(), P / P.sum()
    pg, ps = P.sum(1), P.sum(0)
    mu_i, mu_j = (p * i).sum(), (p * j).sum()
    want = {
        "SmallAreaEmphasis": (P / j**2).sum() / nz, "LargeAreaEmphasis": (P * j**2).sum() / nz,
        "GrayLevelNonUniformity": (pg**2).sum() / nz, "GrayLevelNonUniformityNormalized": (pg**2).sum() / nz**2,
        "SizeZoneNonUniformity": (ps**2).sum() / nz, "SizeZoneNonUniformityNormalized": (ps**2).sum() / nz**2,
        "ZonePercentage": nz / 25, "GrayLevelVariance": (p * (i - mu_i) ** 2).sum(),
        "ZoneVariance": (p * (j - mu_j) ** 2).sum(), "ZoneEntropy": -(p * np.log2(p + np.spacing(1))).sum(),
        "LowGrayLevelZoneEmphasis": (P / i**2).sum() / nz, "HighGrayLevelZoneEmphasis": (P * i**2).sum() / nz,
        "SmallAreaLowGrayLevelEmphasis": (P / (i**2 * j**2)).sum() / nz,
        "SmallAreaHighGrayLevelEmphasis": (P * i**2 / j**2).sum() / nz,
        "LargeAreaLowGrayLevelEmphasis": (P * j**2 / i**2).sum() / nz,
        "LargeAreaHighGrayLevelEmphasis": (P * i**2 * j**2).sum() / nz,
    }
    for name in FEATURES:
        assert got[name] == pytest.approx(want[name], rel=1e-12), name


def test_diagonal_neighbours_form_one_zone():
    """8-connectivity: a checkerboard of two levels is two zones of 8 pixels each (4x4 region)."""
    board = (np.indices((4, 4)).sum(0) % 2 + 1).astype(float) * 100
    got = radclr_glszm(board[None], np.ones((1, 4, 4), bool), Settings(bin_width=25.0))
    assert got["ZonePercentage"][0] == pytest.approx(2 / 16)
    assert got["LargeAreaEmphasis"][0] == pytest.approx(64.0)


def test_degenerate_regions_match_pyradiomics_class():
    """One gray level, a single pixel and a 1-pixel-wide line: PyRadiomics' values."""
    rng = np.random.default_rng(3)
    cases = []
    flat_mask = np.zeros((9, 9), bool)
    flat_mask[1:8, 2:7] = True
    cases.append(("one level", np.full((9, 9), 77.0), flat_mask))
    pixel = np.zeros((9, 9), bool)
    pixel[4, 4] = True
    cases.append(("single pixel", rng.random((9, 9)) * 255, pixel))
    line = np.zeros((9, 9), bool)
    line[3, 1:8] = True
    cases.append(("line", rng.random((9, 9)) * 255, line))
    for label, image, mask in cases:
        batch = prepare(torch.from_numpy(image)[None], torch.from_numpy(mask)[None], Settings(bin_width=25.0))
        got = {k: float(v[0]) for k, v in GLSZM(batch).execute().items()}
        want = pyradiomics_class(image, mask, binWidth=25)
        for name in FEATURES:
            assert_close(got[name], want[name], f"{label} {name}")
    single = radclr_glszm(cases[1][1][None], cases[1][2][None], Settings(bin_width=25.0))
    assert single["GrayLevelVariance"][0] == 0 and single["ZonePercentage"][0] == 1


def test_empty_mask_gives_nan():
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[1, 1:3, 1:3] = True
    batch = RegionBatch(
        image=torch.zeros(2, 4, 4, dtype=torch.float64), mask=mask, binned=mask.long(), n_gray=torch.tensor([0, 1]),
        spacing=torch.ones(2, 2, dtype=torch.float64), settings=Settings(),
    )
    out = GLSZM(batch).execute()
    for name, values in out.items():
        assert math.isnan(float(values[0])), name
        assert not math.isnan(float(values[1])), name


def test_batch_equals_single_regions():
    rng = np.random.default_rng(11)
    sizes = [(40, 25), (9, 50), (13, 13), (50, 50)]
    images, masks = np.zeros((4, 50, 50)), np.zeros((4, 50, 50), bool)
    for k, (h, w) in enumerate(sizes):
        images[k, :h, :w] = textured(h, w, rng, 1.0, 500.0)
        masks[k, :h, :w] = rng.random((h, w)) < 0.8
    batched = radclr_glszm(images, masks, Settings(bin_count=32))
    for k in range(4):
        alone = radclr_glszm(images[k : k + 1], masks[k : k + 1], Settings(bin_count=32))
        for name in FEATURES:
            np.testing.assert_allclose(batched[name][k], alone[name][0], rtol=1e-12, err_msg=name)


def test_bad_input_raises():
    mask = torch.ones(1, 3, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="integer binned"):
        GLSZM(RegionBatch(image=torch.zeros(1, 3, 3, dtype=torch.float64), mask=mask, binned=mask.double(),
                          n_gray=torch.tensor([1]), spacing=torch.ones(1, 2, dtype=torch.float64), settings=Settings()))


@pytest.mark.realdata
def test_realdata_nih_boxes_and_irregular_masks():
    """NIH community boxes and thresholded irregular masks on the same images, binWidth 25 and binCount 32."""
    import pandas as pd
    from PIL import Image

    from conftest import shared_dataset
    from radclr.boxes import boxes_to_masks

    root = shared_dataset("nih_community_boxes")
    boxes = pd.read_csv(root / "boxes.csv")
    for k, (name, rows) in enumerate(list(boxes.groupby("image"))[:10]):
        image = np.asarray(Image.open(root / "images" / name).convert("L"), dtype=np.float64)
        masks = boxes_to_masks(rows[["x", "y", "w", "h"]].to_numpy(), image.shape).numpy()
        smooth = ndimage.gaussian_filter(image, 2)
        irregular = [m & (smooth > np.median(smooth[m])) for m in masks]
        all_masks = np.concatenate([masks, np.stack([m for m in irregular if m.sum() > 4])])
        binning = sorted(BINNINGS)[k % 2]
        got = radclr_glszm(np.repeat(image[None], len(all_masks), 0), all_masks, BINNINGS[binning][1])
        for i, mask in enumerate(all_masks):
            want = pyradiomics_glszm(image, mask, binning)
            for feature in FEATURES:
                assert_close(float(got[feature][i]), want[feature], f"{name} region {i} {binning} {feature}")
