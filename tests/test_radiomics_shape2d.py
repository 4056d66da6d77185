"""shape2D (radclr.radiomics.shape2d) against PyRadiomics 3.1.4 and hand-computed values."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from radclr.radiomics.base import RegionBatch, Settings
from radclr.radiomics.discretize import prepare
from radclr.radiomics.shape2d import Shape2D
from optional_deps import require_module

sitk = require_module("SimpleITK")
radiomics = require_module("radiomics")
from radiomics import featureextractor, shape2D  # noqa: E402

logging.getLogger("radiomics").setLevel(logging.ERROR)

PYRADIOMICS_DEFAULT = [
    "Elongation", "MajorAxisLength", "MaximumDiameter", "MeshSurface", "MinorAxisLength", "Perimeter",
    "PerimeterSurfaceRatio", "PixelSurface", "Sphericity",
]
RTOL = 1e-4


def sitk_pair(image: np.ndarray, mask: np.ndarray, spacing=(1.0, 1.0)):
    """The reference 2-D configuration: a 2-D float SimpleITK image (force2D=False), label 1."""
    im = sitk.GetImageFromArray(np.asarray(image, dtype=np.float64))
    mk = sitk.GetImageFromArray(np.asarray(mask, dtype=np.uint8))
    for x in (im, mk):
        x.SetSpacing((float(spacing[1]), float(spacing[0])))
    return im, mk


def around(image: np.ndarray, mask: np.ndarray, margin: int = 2):
    """The region's box plus a margin (PyRadiomics crops to the box itself; this only saves it work)."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    r0, r1 = max(rows[0] - margin, 0), rows[-1] + margin + 1
    c0, c1 = max(cols[0] - margin, 0), cols[-1] + margin + 1
    return image[r0:r1, c0:c1], mask[r0:r1, c0:c1]


_EXTRACTOR = None


def pyradiomics_shape(image, mask, spacing=(1.0, 1.0)) -> dict[str, float]:
    """PyRadiomics' extractor (crop to the mask's box, shape2D) on one region."""
    global _EXTRACTOR
    if _EXTRACTOR is None:
        _EXTRACTOR = featureextractor.RadiomicsFeatureExtractor(force2D=False, label=1, binWidth=25)
        _EXTRACTOR.disableAllFeatures()
        _EXTRACTOR.enableFeatureClassByName("shape2D")
    out = _EXTRACTOR.execute(*sitk_pair(*around(image, mask), spacing))
    return {k.split("_", 2)[2]: float(v) for k, v in out.items() if k.startswith("original_shape2D_")}


def pyradiomics_class(mask, spacing=(1.0, 1.0), names=None) -> dict[str, float]:
    """PyRadiomics' shape2D class called directly (also on regions its extractor refuses, e.g. one pixel)."""
    fc = shape2D.RadiomicsShape2D(*sitk_pair(mask.astype(float), mask, spacing), force2D=False)
    if names:
        for n in names:
            fc.enableFeatureByName(n)
    else:
        fc.enableAllFeatures()
    with np.errstate(all="ignore"):
        return {k: float(v) for k, v in fc.execute().items()}


def radclr_shape(images, masks, spacing=None, names=None) -> dict[str, np.ndarray]:
    batch = prepare(torch.as_tensor(np.asarray(images, dtype=np.float64)), torch.as_tensor(np.asarray(masks)),
                    Settings(minimum_roi_dimensions=1), spacing=spacing)
    return {k: v.numpy() for k, v in Shape2D(batch).execute(names).items()}


def assert_close(got: float, want: float, name: str, rtol: float = RTOL):
    if math.isnan(want):
        assert math.isnan(got), f"{name}: got {got}, PyRadiomics NaN"
        return
    rel = abs(got - want) / max(abs(want), 1e-12)
    assert rel <= rtol, f"{name}: got {got!r}, PyRadiomics {want!r} (relative error {rel:.2e})"


# --- synthetic shapes (placed in an image with background, sometimes touching its border) ---------------------------

def disk(h, w, rng):
    yy, xx = np.mgrid[:h, :w]
    cy, cx, r = h / 2 + rng.normal(0, 1), w / 2 + rng.normal(0, 1), min(h, w) / 2.2
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def ring(h, w, rng):
    yy, xx = np.mgrid[:h, :w]
    d = np.hypot(yy - h / 2, xx - w / 2)
    return (d <= min(h, w) / 2.1) & (d >= min(h, w) / 5)


def ellipse(h, w, rng):
    yy, xx = np.mgrid[:h, :w] - np.array([h / 2, w / 2])[:, None, None]
    t = rng.uniform(0, np.pi)
    u, v = yy * np.cos(t) + xx * np.sin(t), -yy * np.sin(t) + xx * np.cos(t)
    return (u / (h / 2.2)) ** 2 + (v / (w / 5)) ** 2 <= 1


def blob(h, w, rng):
    field = ndimage.gaussian_filter(rng.random((h, w)), 2.5)
    return field > np.quantile(field, rng.uniform(0.3, 0.7))


def noise(h, w, rng):
    return rng.random((h, w)) < rng.uniform(0.2, 0.8)


def thick_line(h, w, rng):
    m = np.zeros((h, w), bool)
    m[h // 3 : h // 3 + 2, 1 : w - 1] = True
    return m


def l_shape(h, w, rng):
    m = np.zeros((h, w), bool)
    m[:, : max(2, w // 4)] = True
    m[-max(2, h // 4) :, :] = True
    return m


def rectangle(h, w, rng):
    return np.ones((h, w), bool)


SHAPES = [disk, ring, ellipse, blob, noise, thick_line, l_shape, rectangle]


def place(shape: np.ndarray, rng, touch_border: bool) -> tuple[np.ndarray, np.ndarray]:
    h, w = shape.shape
    H, W = h + 6, w + 6
    top, left = (0, 0) if touch_border else (rng.integers(1, 6), rng.integers(1, 6))
    mask = np.zeros((H, W), bool)
    mask[top : top + h, left : left + w] = shape
    mask[-1, -1] = False  # PyRadiomics needs background
    image = rng.random((H, W)) * 255
    return image, mask


@pytest.mark.parametrize("make", SHAPES, ids=lambda f: f.__name__)
def test_parity_with_pyradiomics(make):
    """Every default feature within 1e-4 of PyRadiomics' extractor, sizes 8..64, isotropic and anisotropic."""
    rng = np.random.default_rng(abs(hash(make.__name__)) % 2**32)
    cases = []
    for k, (h, w) in enumerate([(8, 8), (13, 21), (40, 17), (64, 64)]):
        shape = make(h, w, rng)
        cases.append(place(shape, rng, touch_border=k % 2 == 0))
    for spacing in [(1.0, 1.0), (0.7, 1.3)]:
        size = max(m.shape[0] for _, m in cases), max(m.shape[1] for _, m in cases)
        images = np.zeros((len(cases), *size))
        masks = np.zeros((len(cases), *size), bool)
        for i, (im, m) in enumerate(cases):  # different region sizes in one batch
            images[i, : im.shape[0], : im.shape[1]], masks[i, : m.shape[0], : m.shape[1]] = im, m
        got = radclr_shape(images, masks, spacing)
        for i, (im, m) in enumerate(cases):
            want = pyradiomics_shape(im, m, spacing)
            assert sorted(want) == PYRADIOMICS_DEFAULT
            for name in PYRADIOMICS_DEFAULT:
                assert_close(float(got[name][i]), want[name], f"{make.__name__}[{i}] {spacing} {name}")


@pytest.mark.parametrize("thin", [False, True], ids=["all-candidates", "hull-scan"])
@pytest.mark.parametrize("square_pixels", [False, True], ids=["anisotropic", "isotropic"])
def test_mesh_coefficients_match_cshape_on_many_random_masks(thin, square_pixels, monkeypatch):
    """Perimeter, MeshSurface and MaximumDiameter against PyRadiomics' C routine on 300 random masks (one batch);
    also with the diameter candidates thinned by the parallel hull scan, and on round shapes where it matters."""
    from radiomics import cShape

    import radclr.radiomics.shape2d as shape2d_module

    monkeypatch.setattr(shape2d_module, "_THIN_ABOVE", 0 if thin else 1 << 40)
    rng = np.random.default_rng(12)
    n, H, W = 300, 41, 37
    masks = np.zeros((n, H, W), bool)
    for k in range(n):
        h, w = rng.integers(1, H + 1), rng.integers(1, W + 1)
        if k % 3 == 0:  # round and elliptic shapes: long convex chains of candidates
            yy, xx = np.mgrid[:h, :w]
            masks[k, :h, :w] = ((yy - h / 2) / (h / 2 + 0.3)) ** 2 + ((xx - w / 2) / (w / 2 + 0.3)) ** 2 <= 1
        else:
            field = ndimage.gaussian_filter(rng.random((h, w)), rng.uniform(0, 3))
            masks[k, :h, :w] = field > np.quantile(field, rng.uniform(0.1, 0.9))
        masks[k, 0, 0] |= not masks[k].any()
    if square_pixels:
        spacing = np.repeat(rng.uniform(0.5, 2, (n, 1)), 2, 1)
    else:
        spacing = np.column_stack([rng.uniform(0.5, 2, n), rng.uniform(0.5, 2, n)])
    got = radclr_shape(rng.random((n, H, W)), masks, spacing=spacing)
    for k in range(n):
        rows, cols = np.flatnonzero(masks[k].any(1)), np.flatnonzero(masks[k].any(0))
        crop = np.pad(masks[k][rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], 1)
        perimeter, surface, diameter = cShape.calculate_coefficients2D(crop, spacing[k])
        assert_close(float(got["Perimeter"][k]), perimeter, f"mask {k} Perimeter", 1e-12)
        assert_close(float(got["MeshSurface"][k]), surface, f"mask {k} MeshSurface", 1e-12)
        assert_close(float(got["MaximumDiameter"][k]), diameter, f"mask {k} MaximumDiameter", 1e-12)


def test_feature_names_are_pyradiomics_defaults():
    assert Shape2D.feature_names() == PYRADIOMICS_DEFAULT
    assert Shape2D.feature_names(include_deprecated=True) == sorted(PYRADIOMICS_DEFAULT + ["SphericalDisproportion"])


def test_spherical_disproportion_on_request():
    rng = np.random.default_rng(5)
    mask = blob(30, 30, rng)
    got = radclr_shape(mask[None].astype(float), mask[None], names=["SphericalDisproportion", "Sphericity"])
    want = pyradiomics_class(mask, names=["SphericalDisproportion"])
    assert_close(float(got["SphericalDisproportion"][0]), want["SphericalDisproportion"], "SphericalDisproportion")
    assert got["SphericalDisproportion"][0] * got["Sphericity"][0] == pytest.approx(1.0)


def test_rectangle_hand_computed():
    """h x w rectangle: the contour cuts 1/8 off each corner pixel; PCA of a uniform grid; spacing (sy, sx)."""
    h, w, sy, sx = 5, 9, 0.5, 2.0
    mask = np.ones((1, h, w), bool)
    got = radclr_shape(mask.astype(float), mask, spacing=(sy, sx))
    assert got["PixelSurface"][0] == pytest.approx(h * w * sy * sx)
    assert got["MeshSurface"][0] == pytest.approx((h * w - 0.5) * sy * sx)
    assert got["Perimeter"][0] == pytest.approx(2 * (h - 1) * sy + 2 * (w - 1) * sx + 2 * math.hypot(sy, sx))
    corner_to_corner = max(math.hypot(h * sy, (w - 1) * sx), math.hypot((h - 1) * sy, w * sx))
    assert got["MaximumDiameter"][0] == pytest.approx(corner_to_corner)
    var_y, var_x = (h * h - 1) / 12 * sy * sy, (w * w - 1) / 12 * sx * sx
    assert got["MajorAxisLength"][0] == pytest.approx(4 * math.sqrt(max(var_y, var_x)))
    assert got["MinorAxisLength"][0] == pytest.approx(4 * math.sqrt(min(var_y, var_x)))
    assert got["Elongation"][0] == pytest.approx(math.sqrt(min(var_y, var_x) / max(var_y, var_x)))


def test_degenerate_regions_match_pyradiomics_class():
    """Single pixel (Elongation NaN, as PyRadiomics) and 1-pixel-wide straight lines (Minor axis 0)."""
    cases = {}
    m = np.zeros((5, 5), bool)
    m[2, 2] = True
    cases["pixel"] = m
    m = np.zeros((5, 12), bool)
    m[2, 1:11] = True
    cases["row"] = m
    cases["column"] = cases["row"].T.copy()
    for name, mask in cases.items():
        got = radclr_shape(mask[None].astype(float), mask[None])
        want = pyradiomics_class(mask)
        for feature in PYRADIOMICS_DEFAULT:
            assert_close(float(got[feature][0]), want[feature], f"{name} {feature}")
    single = radclr_shape(cases["pixel"][None].astype(float), cases["pixel"][None])
    assert single["MeshSurface"][0] == 0.5 and single["MaximumDiameter"][0] == 1.0
    assert math.isnan(single["Elongation"][0])


def test_diagonal_line_minor_axis_is_exactly_zero():
    """A diagonal line's minor eigenvalue is exactly 0: radclr returns 0, PyRadiomics LAPACK noise (<1e-6)."""
    mask = np.eye(20, dtype=bool)
    got = radclr_shape(mask[None].astype(float), mask[None])
    want = pyradiomics_class(mask)
    assert got["MinorAxisLength"][0] == 0.0 and got["Elongation"][0] == 0.0
    assert abs(want["MinorAxisLength"]) < 1e-6 and abs(want["Elongation"]) < 1e-6
    for feature in set(PYRADIOMICS_DEFAULT) - {"MinorAxisLength", "Elongation"}:
        assert_close(float(got[feature][0]), want[feature], f"diagonal {feature}")


def test_empty_mask_gives_nan():
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[1, 1:3, 1:3] = True
    batch = RegionBatch(
        image=torch.zeros(2, 4, 4, dtype=torch.float64), mask=mask, binned=mask.long(),
        n_gray=torch.tensor([0, 1]), spacing=torch.ones(2, 2, dtype=torch.float64), settings=Settings(),
    )
    out = Shape2D(batch).execute()
    for name, values in out.items():
        assert math.isnan(float(values[0])), name
        assert not math.isnan(float(values[1])) or name == "Elongation", name


def test_batch_equals_single_regions():
    rng = np.random.default_rng(7)
    shapes = [blob(30, 22, rng), ring(17, 40, rng), noise(9, 9, rng), disk(50, 50, rng)]
    H, W = 50, 50
    images, masks = np.zeros((4, H, W)), np.zeros((4, H, W), bool)
    for i, s in enumerate(shapes):
        masks[i, : s.shape[0], : s.shape[1]] = s
        images[i] = rng.random((H, W))
    batched = radclr_shape(images, masks)
    for i in range(4):
        alone = radclr_shape(images[i : i + 1], masks[i : i + 1])
        for name in PYRADIOMICS_DEFAULT:
            np.testing.assert_allclose(batched[name][i], alone[name][0], rtol=1e-12, err_msg=name)


def test_bad_input_raises():
    mask = torch.ones(1, 3, 3, dtype=torch.bool)
    good = dict(image=torch.zeros(1, 3, 3, dtype=torch.float64), binned=mask.long(), n_gray=torch.tensor([1]),
                settings=Settings())
    with pytest.raises(ValueError, match="bool"):
        Shape2D(RegionBatch(mask=mask.long(), spacing=torch.ones(1, 2, dtype=torch.float64), **good))
    with pytest.raises(ValueError, match="spacing"):
        Shape2D(RegionBatch(mask=mask, spacing=torch.ones(2, dtype=torch.float64), **good))


@pytest.mark.realdata
def test_realdata_nih_boxes_and_irregular_masks():
    """NIH community boxes (rectangles) and thresholded irregular masks on the same images."""
    from PIL import Image

    from conftest import shared_dataset
    from radclr.boxes import boxes_to_masks

    root = shared_dataset("nih_community_boxes")
    import pandas as pd

    boxes = pd.read_csv(root / "boxes.csv")
    for name, rows in list(boxes.groupby("image"))[:12]:
        image = np.asarray(Image.open(root / "images" / name).convert("L"), dtype=np.float64)
        masks = boxes_to_masks(rows[["x", "y", "w", "h"]].to_numpy(), image.shape).numpy()
        smooth = ndimage.gaussian_filter(image, 2)
        irregular = [m & (smooth > np.median(smooth[m])) for m in masks]
        irregular = [m for m in irregular if m.sum() > 4]
        all_masks = np.concatenate([masks, np.stack(irregular)]) if irregular else masks
        got = radclr_shape(np.repeat(image[None], len(all_masks), 0), all_masks)
        for i, mask in enumerate(all_masks):
            want = pyradiomics_shape(image, mask)
            for feature in PYRADIOMICS_DEFAULT:
                assert_close(float(got[feature][i]), want[feature], f"{name} region {i} {feature}")
