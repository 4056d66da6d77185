"""PyRadiomics parameter files: parsed into Settings, refused with the key named, same results as PyRadiomics."""

from __future__ import annotations

import logging
import textwrap

import numpy as np
import pytest

from radclr.errors import ConfigError
from radclr.radiomics import Settings, extract
from radclr.radiomics.params import load_params
from optional_deps import require_module

require_module("radiomics")
logging.getLogger("radiomics").setLevel(logging.ERROR)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def write(tmp_path, text: str):
    p = tmp_path / "params.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_full_parameter_file_is_parsed(tmp_path):
    p = write(tmp_path, """
        imageType:
          Original: {}
        featureClass:
          glcm: [Contrast, MCC]
          firstorder:
        setting:
          binCount: 16
          voxelArrayShift: 10
          gldm_a: 1
          distances: [1, 2]
          symmetricalGLCM: false
          minimumROIDimensions: 2
          minimumROISize: 20
          label: 1
          additionalInfo: true
          normalize: false
    """)
    params = load_params(p)
    assert params.settings == Settings(bin_count=16, voxel_array_shift=10.0, gldm_a=1, glcm_distances=(1, 2),
                                       symmetrical_glcm=False, minimum_roi_size=20)
    assert params.classes == {"glcm": ["Contrast", "MCC"], "firstorder": None}
    assert params.image_types == {"Original": {}}
    params.check_torch()
    assert "additionalInfo" in params.ignored


def test_empty_file_means_pyradiomics_defaults(tmp_path):
    params = load_params(write(tmp_path, "setting:\n  binWidth: 25\n"))
    assert params.settings == Settings() and params.classes is None


@pytest.mark.parametrize(
    "text, key",
    [
        ("imageType:\n  LoG: {sigma: [1.0]}\n", "imageType LoG"),
        ("imageType:\n  Wavelet: {}\n  Original: {}\n", "imageType Wavelet"),
        ("imageType:\n  Gradient: {}\n", "imageType Gradient"),
        ("setting:\n  normalize: true\n", "setting normalize"),
        ("setting:\n  resampledPixelSpacing: [1, 1]\n", "setting resampledPixelSpacing"),
        ("setting:\n  resegmentRange: [-100, 100]\n", "setting resegmentRange"),
        ("setting:\n  weightingNorm: euclidean\n", "setting weightingNorm"),
        ("setting:\n  force2D: true\n", "setting force2D"),
        ("setting:\n  label: 2\n", "setting label"),
        ("voxelSetting:\n  kernelRadius: 2\n", "voxelSetting"),
    ],
)
def test_torch_engine_refuses_what_it_does_not_compute(tmp_path, text, key):
    params = load_params(write(tmp_path, text))
    with pytest.raises(ConfigError, match=key):
        params.check_torch()


def test_filtered_image_types_point_to_the_pyradiomics_engine(tmp_path):
    params = load_params(write(tmp_path, "imageType:\n  LoG: {sigma: [1.0]}\n"))
    with pytest.raises(ConfigError, match="engine='pyradiomics'"):
        extract(np.ones((1, 4, 4)), np.ones((1, 4, 4), bool), params=params)


@pytest.mark.parametrize(
    "text, key",
    [
        ("setting:\n  binWdith: 25\n", "setting binWdith"),
        ("setting:\n  binWidth: -3\n", "setting binWidth"),
        ("setting:\n  binCount: 2.5\n", "setting binCount"),
        ("setting:\n  gldm_a: -1\n", "setting gldm_a"),
        ("setting:\n  distances: 1\n", "setting distances"),
        ("setting:\n  voxelArrayShift: 0.5\n", "setting voxelArrayShift"),
        ("featureClass:\n  glcmm: []\n", "featureClass glcmm"),
        ("imageType:\n  Sharpen: {}\n", "imageType Sharpen"),
        ("settings:\n  binWidth: 25\n", "settings"),
        ("setting: [1, 2]\n", "setting"),
    ],
)
def test_invalid_files_fail_naming_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError, match=key):
        load_params(write(tmp_path, text))


@pytest.mark.parametrize(
    "text, message",
    [
        ("featureClass:\n  glcm: [Contrastt]\n", "unknown feature 'Contrastt'"),
        ("featureClass:\n  glcm: [SumVariance]\n", "SumVariance is removed"),
        ("featureClass:\n  gldm: [DependencePercentage]\n", "DependencePercentage is removed"),
        ("featureClass:\n  shape: []\n", "3-D shape"),
    ],
)
def test_unknown_or_removed_features_are_refused(tmp_path, text, message):
    params = load_params(write(tmp_path, text))
    with pytest.raises(ConfigError, match=message):
        params.check_torch()


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_params(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(write(tmp_path, "setting: [binWidth: 2\n"))


def test_params_give_pyradiomics_results(tmp_path):
    p = write(tmp_path, """
        featureClass:
          glrlm: [RunEntropy, ShortRunEmphasis]
          firstorder: [TotalEnergy, StandardDeviation]
          shape2D:
        setting:
          binCount: 12
          voxelArrayShift: 50
    """)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 24, 24)).astype(np.float32)
    masks = rng.random((3, 24, 24)) > 0.2
    names, values = extract(images, masks, params=p, spacing=(0.5, 0.25))
    ref_names, ref = extract(images, masks, params=p, spacing=(0.5, 0.25), engine="pyradiomics")
    assert names == ref_names
    assert names[:9] == [f"original_shape2D_{n}" for n in (
        "Elongation", "MajorAxisLength", "MaximumDiameter", "MeshSurface", "MinorAxisLength", "Perimeter",
        "PerimeterSurfaceRatio", "PixelSurface", "Sphericity")]
    assert names[9:] == ["original_glrlm_RunEntropy", "original_glrlm_ShortRunEmphasis",
                         "original_firstorder_TotalEnergy", "original_firstorder_StandardDeviation"]
    np.testing.assert_allclose(values.numpy(), ref.numpy(), rtol=1e-6)


def test_params_and_explicit_settings_are_exclusive(tmp_path):
    p = write(tmp_path, "setting:\n  binWidth: 10\n")
    with pytest.raises(ConfigError, match="not both"):
        extract(np.ones((1, 4, 4)), np.ones((1, 4, 4), bool), params=p, bin_count=8)
