"""The torch engine against PyRadiomics 3.1.4, feature by feature, on synthetic regions (SPEC §5).

Regions are random textures (uniform noise, random walks, smooth ramps, float and negative intensities, a
12-bit range) in random shapes (rectangles, blobs with holes, thin L-shapes) of 8x8 to 64x64 pixels, some
touching the image border; all of them go through ``extract`` in one batch and are compared with PyRadiomics run
region by region in the reference 2-D configuration (2-D float SimpleITK image, force2D=False).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from radclr.radiomics import Settings, extract, feature_names
from optional_deps import require_module

sitk = require_module("SimpleITK")
radiomics = require_module("radiomics")
from radiomics import featureextractor  # noqa: E402

logging.getLogger("radiomics").setLevel(logging.ERROR)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RTOL = 1e-4
CANVAS = 72


def reference(image: np.ndarray, mask: np.ndarray, spacing=(1.0, 1.0), **settings) -> dict[str, float]:
    """PyRadiomics with every class enabled, on a 2-D float64 image (spacing given as (row, col))."""
    extractor = featureextractor.RadiomicsFeatureExtractor(force2D=False, additionalInfo=False, **settings)
    extractor.enableAllFeatures()
    img = sitk.GetImageFromArray(np.asarray(image, dtype=np.float64))
    msk = sitk.GetImageFromArray(np.asarray(mask, dtype=np.uint8))
    img.SetSpacing((spacing[1], spacing[0]))
    msk.SetSpacing((spacing[1], spacing[0]))
    return {k: float(v) for k, v in extractor.execute(img, msk).items()}


def texture(kind: str, h: int, w: int, rng) -> np.ndarray:
    if kind == "noise":
        return rng.integers(0, 256, (h, w)).astype(np.float64)
    if kind == "walk":
        return np.round(np.cumsum(rng.normal(0, 12, (h, w)), 1) + 128)
    if kind == "ramp":
        yy, xx = np.mgrid[0:h, 0:w]
        return np.round(yy * 3.1 + xx * 1.7 + rng.normal(0, 4, (h, w)))
    if kind == "float":
        return rng.normal(80, 35, (h, w))
    if kind == "negative":
        return np.round(rng.normal(-300, 120, (h, w)))
    if kind == "wide":  # 12-bit range: more than 64 gray levels at binWidth 25 (ranked level slots)
        return rng.integers(0, 4096, (h, w)).astype(np.float64)
    raise ValueError(kind)


def shape(kind: str, h: int, w: int, rng) -> np.ndarray:
    m = np.zeros((h, w), bool)
    if kind == "rect":
        m[:] = True
    elif kind == "blob":
        yy, xx = np.mgrid[0:h, 0:w]
        m = ((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2 <= 1.0
        m &= rng.random((h, w)) > 0.15  # holes and ragged edges
    elif kind == "ell":
        m[:, : max(2, w // 3)] = True
        m[-max(2, h // 3) :, :] = True
    m[0, 0] = m[-1, -1] = True  # the bounding box is the whole h x w
    return m


def synthetic_regions(seed: int, n: int):
    rng = np.random.default_rng(seed)
    kinds = ["noise", "walk", "ramp", "float", "negative", "wide"]
    shapes = ["rect", "blob", "ell"]
    images = np.zeros((n, CANVAS, CANVAS))
    masks = np.zeros((n, CANVAS, CANVAS), bool)
    for i in range(n):
        h, w = (int(v) for v in rng.integers(8, 65, 2))
        img = texture(kinds[i % len(kinds)], CANVAS, CANVAS, rng)
        m = shape(shapes[i % len(shapes)], h, w, rng)
        if i % 4 == 0:  # touching the border (a corner or an edge)
            y, x = (0 if rng.random() < 0.5 else CANVAS - h), (0 if rng.random() < 0.5 else CANVAS - w)
        else:
            y, x = int(rng.integers(0, CANVAS - h + 1)), int(rng.integers(0, CANVAS - w + 1))
        images[i] = img
        masks[i, y : y + h, x : x + w] = m
    return images, masks


def assert_parity(names, values, images, masks, spacing=None, **settings):
    values = values.cpu().numpy()
    worst = {}
    for i in range(len(images)):
        sp = (1.0, 1.0) if spacing is None else tuple(spacing[i])
        ref = reference(images[i], masks[i], sp, **settings)
        assert list(ref) == names, "feature names/order differ from PyRadiomics"
        for j, name in enumerate(names):
            a, b = values[i, j], ref[name]
            if np.isnan(b) or np.isnan(a):
                assert np.isnan(a) and np.isnan(b), f"region {i} {name}: radclr {a}, PyRadiomics {b}"
                continue
            rel = abs(a - b) / max(abs(b), 1e-12)
            worst[name] = max(worst.get(name, 0.0), rel)
            assert rel <= RTOL, f"region {i} {name}: radclr {a!r}, PyRadiomics {b!r} (rel {rel:.2e})"
    return worst


@pytest.mark.parametrize("binning", [{"binWidth": 25}, {"binCount": 32}], ids=["binWidth25", "binCount32"])
def test_all_102_features_match_pyradiomics(binning):
    images, masks = synthetic_regions(seed=1 if "binWidth" in binning else 2, n=24)
    settings = Settings(bin_width=float(binning.get("binWidth", 25)), bin_count=binning.get("binCount"))
    names, values = extract(torch.from_numpy(images), torch.from_numpy(masks), settings=settings)
    assert len(names) == 102 and names == feature_names()
    assert values.dtype == torch.float64 and values.shape == (24, 102)
    worst = assert_parity(names, values, images, masks, **binning)
    assert len(worst) == 102  # every feature was compared with a finite reference somewhere


@pytest.mark.parametrize(
    "settings, pyr",
    [
        (Settings(gldm_a=2), {"gldm_a": 2}),
        (Settings(glcm_distances=(1, 2)), {"distances": [1, 2]}),
        (Settings(symmetrical_glcm=False, bin_width=10.0), {"symmetricalGLCM": False, "binWidth": 10}),
        (Settings(voxel_array_shift=300.0), {"voxelArrayShift": 300}),
        (Settings(bin_width=2.5), {"binWidth": 2.5}),
    ],
    ids=["gldm_a2", "distances12", "asymmetric", "shift", "narrow_bins"],
)
def test_settings_match_pyradiomics(settings, pyr):
    images, masks = synthetic_regions(seed=3, n=6)
    names, values = extract(images, masks, settings=settings)
    assert_parity(names, values, images, masks, **pyr)


def test_pixel_spacing_matches_pyradiomics():
    images, masks = synthetic_regions(seed=4, n=4)
    spacing = np.array([[0.5, 0.8], [1.0, 1.0], [0.143, 0.143], [2.0, 0.7]])
    names, values = extract(images, masks, spacing=spacing)
    assert_parity(names, values, images, masks, spacing=spacing)


def test_class_and_feature_subsets_follow_pyradiomics_order():
    images, masks = synthetic_regions(seed=5, n=2)
    classes = {"ngtdm": None, "firstorder": ["Mean", "10Percentile", "StandardDeviation"], "shape2D": ["Perimeter"]}
    names, values = extract(images, masks, classes=classes)
    extractor = featureextractor.RadiomicsFeatureExtractor(
        {"featureClass": classes, "setting": {"additionalInfo": False, "binWidth": 25}}
    )
    ref = extractor.execute(sitk.GetImageFromArray(images[0]), sitk.GetImageFromArray(masks[0].astype(np.uint8)))
    assert names == list(ref)  # shape first, then the classes and features in the order asked for
    assert names[:2] == ["original_shape2D_Perimeter", "original_ngtdm_Busyness"]
    np.testing.assert_allclose(values[0].numpy(), [float(ref[n]) for n in names], rtol=RTOL)
