"""PyRadiomics parameter files (``setting`` / ``featureClass`` / ``imageType``) -> radclr settings.

A parameter file is read once into :class:`RadiomicsParams`. Every key is checked against PyRadiomics' own
parameter schema (a misspelt key fails with its name, as in PyRadiomics); :meth:`RadiomicsParams.check_torch`
then refuses, again naming the key, whatever the torch engine does not compute -- filtered image types (LoG,
Wavelet, Gradient, ...; seed 004's ~1000 features), resampling, normalisation, re-segmentation, voxel-based
extraction -- and points to ``engine="pyradiomics"``, which runs PyRadiomics itself with the same file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radclr.errors import ConfigError
from radclr.radiomics.base import Settings
from radclr.radiomics.registry import resolve_classes
from radclr.yamlfile import read_yaml

__all__ = ["RadiomicsParams", "load_params", "PYRADIOMICS_SETTINGS", "IMAGE_TYPES"]

# every key PyRadiomics 3.1 accepts under `setting` (radiomics/schemas/paramSchema.yaml)
PYRADIOMICS_SETTINGS = {
    "minimumROIDimensions", "minimumROISize", "geometryTolerance", "correctMask", "additionalInfo", "label",
    "label_channel", "binWidth", "binCount", "normalize", "normalizeScale", "removeOutliers",
    "resampledPixelSpacing", "interpolator", "padDistance", "distances", "force2D", "force2Ddimension",
    "resegmentRange", "resegmentMode", "resegmentShape", "preCrop", "sigma", "start_level", "level", "wavelet",
    "gradientUseSpacing", "lbp2DRadius", "lbp2DSamples", "lbp2DMethod", "lbp3DLevels", "lbp3DIcosphereRadius",
    "lbp3DIcosphereSubdivision", "voxelArrayShift", "symmetricalGLCM", "weightingNorm", "gldm_a", "kernelRadius",
    "maskedKernel", "initValue", "voxelBatch",
}
IMAGE_TYPES = {
    "Original", "Wavelet", "LoG", "Square", "SquareRoot", "Logarithm", "Exponential", "Gradient", "LBP2D", "LBP3D",
}
PYRADIOMICS_CLASSES = {"firstorder", "shape", "shape2D", "glcm", "glrlm", "glszm", "gldm", "ngtdm"}
TOP_LEVEL = {"setting", "featureClass", "imageType", "voxelSetting"}

# settings the torch engine reads (-> Settings field)
_TORCH_SETTINGS = {
    "binWidth": "bin_width",
    "binCount": "bin_count",
    "voxelArrayShift": "voxel_array_shift",
    "gldm_a": "gldm_a",
    "distances": "glcm_distances",
    "symmetricalGLCM": "symmetrical_glcm",
    "weightingNorm": "weighting_norm",
    "minimumROIDimensions": "minimum_roi_dimensions",
    "minimumROISize": "minimum_roi_size",
}
# settings that change nothing for 2-D Original-image features of a boolean mask (accepted, ignored)
_NO_EFFECT = {
    "additionalInfo", "geometryTolerance", "correctMask", "force2Ddimension", "interpolator", "padDistance",
    "preCrop", "resegmentMode", "resegmentShape", "normalizeScale", "label_channel",
    # filter parameters: they only matter when the filter's image type is enabled (refused separately)
    "sigma", "start_level", "level", "wavelet", "gradientUseSpacing", "lbp2DRadius", "lbp2DSamples",
    "lbp2DMethod", "lbp3DLevels", "lbp3DIcosphereRadius", "lbp3DIcosphereSubdivision",
}
# settings accepted only at the value that means "off"
_ONLY_DEFAULT = {
    "normalize": False,
    "removeOutliers": None,
    "resampledPixelSpacing": None,
    "resegmentRange": None,
    "force2D": False,
    "label": 1,
}
_PYRADIOMICS_HINT = "use engine='pyradiomics' (radclr radiomics extract --engine pyradiomics)"


def _number(key: str, value, *, integer: bool = False, positive: bool = False, minimum=None) -> Any:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"setting {key}: expected {kind}, got {value!r}")
    if positive and not value > 0:
        raise ConfigError(f"setting {key}: must be > 0, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"setting {key}: must be >= {minimum}, got {value!r}")
    return value


def _settings(raw: dict) -> Settings:
    kw: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "binWidth":
            kw["bin_width"] = float(_number(key, value, positive=True))
        elif key == "binCount":
            kw["bin_count"] = None if value is None else _number(key, value, integer=True, positive=True)
        elif key == "voxelArrayShift":  # an integer in PyRadiomics' schema
            kw["voxel_array_shift"] = float(_number(key, value, integer=True))
        elif key == "gldm_a":
            kw["gldm_a"] = _number(key, value, integer=True, minimum=0)
        elif key == "distances":
            if not isinstance(value, list) or not value:
                raise ConfigError(f"setting distances: expected a non-empty list of integers, got {value!r}")
            kw["glcm_distances"] = tuple(_number(key, d, integer=True, positive=True) for d in value)
        elif key == "symmetricalGLCM":
            if not isinstance(value, bool):
                raise ConfigError(f"setting symmetricalGLCM: expected true/false, got {value!r}")
            kw["symmetrical_glcm"] = value
        elif key == "weightingNorm":
            kw["weighting_norm"] = value
        elif key == "minimumROIDimensions":
            kw["minimum_roi_dimensions"] = _number(key, value, integer=True, minimum=1)
        elif key == "minimumROISize":
            kw["minimum_roi_size"] = None if value is None else _number(key, value, integer=True, positive=True)
    return Settings(**kw)


@dataclass
class RadiomicsParams:
    """A parsed PyRadiomics parameter file.

    settings: the radclr :class:`Settings` it describes. classes: ``{class: None | [features]}`` in file order
    (None = the class's default features). image_types: ``{type: {custom settings}}``. raw: the whole parsed
    file (what the pyradiomics engine hands to PyRadiomics). source: the file it came from.
    """

    settings: Settings
    classes: dict[str, list[str] | None] | None
    image_types: dict[str, dict]
    raw: dict
    source: str | None = None
    ignored: list[str] = field(default_factory=list)

    def check_torch(self) -> None:
        """Raise :class:`ConfigError` (naming the key) for anything the torch engine cannot compute exactly."""
        where = f" in {self.source}" if self.source else ""
        for name, custom in self.image_types.items():
            if name != "Original":
                raise ConfigError(
                    f"imageType {name}{where}: the torch engine computes the Original image only; {_PYRADIOMICS_HINT}"
                )
            if custom:
                raise ConfigError(f"imageType Original{where}: custom settings {sorted(custom)} are not supported")
        if "voxelSetting" in self.raw:
            raise ConfigError(f"voxelSetting{where}: voxel-based extraction is not supported")
        for key, value in (self.raw.get("setting") or {}).items():
            if key in _ONLY_DEFAULT and value != _ONLY_DEFAULT[key]:
                raise ConfigError(
                    f"setting {key}: {value!r}{where} is not supported by the torch engine "
                    f"(only {_ONLY_DEFAULT[key]!r}); {_PYRADIOMICS_HINT}"
                )
            if key in ("kernelRadius", "maskedKernel", "initValue", "voxelBatch"):
                raise ConfigError(f"setting {key}{where}: voxel-based settings are not supported")
        if self.settings.weighting_norm is not None:
            raise ConfigError(
                f"setting weightingNorm: {self.settings.weighting_norm!r}{where} is not supported by the torch "
                f"engine; {_PYRADIOMICS_HINT}"
            )
        if self.settings.minimum_roi_dimensions > 2:
            raise ConfigError(f"setting minimumROIDimensions: {self.settings.minimum_roi_dimensions}{where}: "
                              "2-D regions have at most 2 dimensions")
        resolve_classes(self.classes)  # unknown classes / features -> ConfigError naming them

    def pyradiomics_dict(self) -> dict:
        """The parameter dictionary for ``radiomics.featureextractor.RadiomicsFeatureExtractor``."""
        out = {k: v for k, v in self.raw.items() if k in TOP_LEVEL}
        out.setdefault("imageType", {"Original": {}})
        return out


def _mapping(value, key: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
    return value


def parse_params(raw: dict, source: str | None = None) -> RadiomicsParams:
    """Check a parameter dictionary (as loaded from YAML/JSON) and turn it into :class:`RadiomicsParams`."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source or 'params'}: expected a mapping with setting/featureClass/imageType")
    unknown = sorted(set(raw) - TOP_LEVEL)
    if unknown:
        raise ConfigError(f"{source or 'params'}: unknown top-level key(s) {unknown}; known: {sorted(TOP_LEVEL)}")
    setting = _mapping(raw.get("setting"), "setting")
    bad = sorted(set(setting) - PYRADIOMICS_SETTINGS)
    if bad:
        raise ConfigError(f"setting {bad[0]}: not a PyRadiomics setting (in {source or 'params'})")
    image_types = _mapping(raw.get("imageType"), "imageType")
    for name, custom in image_types.items():
        if name not in IMAGE_TYPES:
            raise ConfigError(f"imageType {name}: unknown; known: {sorted(IMAGE_TYPES)}")
        if custom is not None and not isinstance(custom, dict):
            raise ConfigError(f"imageType {name}: expected a mapping of custom settings, got {custom!r}")
    image_types = {k: dict(v or {}) for k, v in image_types.items()} or {"Original": {}}
    classes_raw = raw.get("featureClass")
    classes: dict[str, list[str] | None] | None = None
    if classes_raw:
        classes = {}
        for name, feats in _mapping(classes_raw, "featureClass").items():
            if name not in PYRADIOMICS_CLASSES:
                raise ConfigError(f"featureClass {name}: unknown; known: {sorted(PYRADIOMICS_CLASSES)}")
            if feats is not None and not (isinstance(feats, list) and all(isinstance(f, str) for f in feats)):
                raise ConfigError(f"featureClass {name}: expected a list of feature names, got {feats!r}")
            classes[name] = list(feats) if feats else None
    ignored = sorted(k for k in setting if k in _NO_EFFECT)
    return RadiomicsParams(
        settings=_settings(setting),
        classes=classes,
        image_types=image_types,
        raw=dict(raw),
        source=source,
        ignored=ignored,
    )


def load_params(path) -> RadiomicsParams:
    """Read a PyRadiomics parameter file (YAML or JSON) -> :class:`RadiomicsParams` (ConfigError on problems)."""
    if isinstance(path, RadiomicsParams):
        return path
    if isinstance(path, dict):
        return parse_params(path)
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"parameter file {p} does not exist")
    raw = read_yaml(p, "parameter file")  # invalid, binary, a key twice: ConfigError naming the file
    return parse_params(raw, source=str(p))
