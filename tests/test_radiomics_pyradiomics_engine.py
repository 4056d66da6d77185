"""The PyRadiomics backend (engine="pyradiomics"): its 2-D configuration, cropping/padding, processes."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from radclr.errors import ConfigError
from radclr.radiomics import Settings, extract
from radclr.radiomics.pyradiomics_engine import PyRadiomicsEngine, pyradiomics_params
from optional_deps import require_module

sitk = require_module("SimpleITK")
require_module("radiomics")
from radiomics import featureextractor  # noqa: E402

logging.getLogger("radiomics").setLevel(logging.ERROR)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def raw_pyradiomics(image, mask, spacing=(1.0, 1.0), **settings):
    ex = featureextractor.RadiomicsFeatureExtractor(force2D=False, additionalInfo=False, **settings)
    ex.enableAllFeatures()
    img, msk = sitk.GetImageFromArray(image.astype(np.float64)), sitk.GetImageFromArray(mask.astype(np.uint8))
    img.SetSpacing(spacing[::-1])
    msk.SetSpacing(spacing[::-1])
    r = ex.execute(img, msk)
    return list(r), np.array([float(v) for v in r.values()])


def test_crops_and_whole_image_padding_leave_every_feature_unchanged():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 30, 26)).astype(np.float64)
    masks = np.zeros((3, 30, 26), bool)
    masks[0, 4:20, 5:21] = True
    masks[1, 0:12, 14:26] = True  # touching the border
    masks[2] = True  # the whole image: no background pixel at all
    spacing = np.array([[0.7, 0.4], [1.0, 1.0], [0.5, 0.5]])
    names, values = extract(images, masks, engine="pyradiomics", spacing=spacing)
    assert len(names) == 102
    for i in range(3):
        ref_names, ref = raw_pyradiomics(images[i], masks[i], tuple(spacing[i]))  # full image, unpadded
        assert ref_names == names
        np.testing.assert_array_equal(values[i].numpy(), ref)  # bit-identical, shape2D and NGTDM included


def test_uint8_input_is_computed_as_float():
    rng = np.random.default_rng(1)
    img8 = rng.integers(0, 256, (2, 20, 20)).astype(np.uint8)
    masks = np.zeros((2, 20, 20), bool)
    masks[:, 2:18, 3:17] = True
    _, from_uint8 = extract(img8, masks, engine="pyradiomics")
    _, from_float = extract(img8.astype(np.float64), masks, engine="pyradiomics")
    torch.testing.assert_close(from_uint8, from_float, rtol=0, atol=0)
    _, torch_values = extract(torch.from_numpy(img8), torch.from_numpy(masks))
    torch.testing.assert_close(torch_values, from_float, rtol=1e-6, atol=0)


def test_worker_processes_give_the_same_values():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (5, 16, 16)).astype(np.float32)
    masks = rng.random((5, 16, 16)) > 0.3
    _, one = extract(images, masks, engine="pyradiomics", jobs=1)
    _, two = extract(images, masks, engine="pyradiomics", jobs=2)
    torch.testing.assert_close(one, two, rtol=0, atol=0)


def test_force2d_on_2d_images_is_refused():
    with pytest.raises(ConfigError, match="force2D"):
        pyradiomics_params(params={"setting": {"force2D": True}})


def test_parameters_follow_settings():
    d = pyradiomics_params(Settings(bin_count=16, gldm_a=1, glcm_distances=(1, 3)), classes=["glcm"])
    assert d["setting"]["binCount"] == 16 and "binWidth" not in d["setting"]
    assert d["setting"]["distances"] == [1, 3] and d["setting"]["gldm_a"] == 1
    assert d["setting"]["force2D"] is False and d["setting"]["additionalInfo"] is False
    assert list(d["featureClass"]) == ["glcm"] and d["imageType"] == {"Original": {}}


def test_filtered_image_types_run_through_pyradiomics():
    rng = np.random.default_rng(3)
    images = rng.normal(100, 20, (1, 40, 40))
    masks = np.zeros((1, 40, 40), bool)
    masks[0, 8:32, 8:32] = True
    params = {"imageType": {"LoG": {"sigma": [1.0, 2.0]}, "Original": {}},
              "featureClass": {"firstorder": ["Mean", "Entropy"]}, "setting": {"binWidth": 5}}
    with PyRadiomicsEngine(pyradiomics_params(params=params)) as engine:
        names, values = engine.extract(images, masks)
    assert names == ["log-sigma-1-0-mm-3D_firstorder_Mean", "log-sigma-1-0-mm-3D_firstorder_Entropy",
                     "log-sigma-2-0-mm-3D_firstorder_Mean", "log-sigma-2-0-mm-3D_firstorder_Entropy",
                     "original_firstorder_Mean", "original_firstorder_Entropy"]  # image types in file order
    assert np.isfinite(values).all()
    assert values[0, names.index("original_firstorder_Mean")] == pytest.approx(images[0][masks[0]].mean())
