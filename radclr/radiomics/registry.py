"""The feature classes radclr's torch engine knows, in PyRadiomics' output order.

PyRadiomics writes shape features first (``computeShape``), then the other classes in the order they are enabled;
with every class enabled that is ``shape2D, firstorder, glcm, gldm, glrlm, glszm, ngtdm`` (alphabetical module
order) -- 9 + 18 + 24 + 14 + 16 + 16 + 5 = 102 features for a 2-D image.
"""

from __future__ import annotations

import importlib
import logging

from radclr.errors import ConfigError
from radclr.radiomics.base import FeatureClass

__all__ = ["CLASS_ORDER", "feature_class", "available_classes", "order_classes"]

log = logging.getLogger(__name__)

CLASS_ORDER = ["shape2D", "firstorder", "glcm", "gldm", "glrlm", "glszm", "ngtdm"]
SHAPE_CLASSES = {"shape2D"}

_LOCATIONS = {
    "shape2D": ("radclr.radiomics.shape2d", "Shape2D"),
    "firstorder": ("radclr.radiomics.firstorder", "FirstOrder"),
    "glcm": ("radclr.radiomics.glcm", "GLCM"),
    "gldm": ("radclr.radiomics.gldm", "GLDM"),
    "glrlm": ("radclr.radiomics.glrlm", "GLRLM"),
    "glszm": ("radclr.radiomics.glszm", "GLSZM"),
    "ngtdm": ("radclr.radiomics.ngtdm", "NGTDM"),
}
_MISSING: set[str] = set()


def _load(name: str) -> type[FeatureClass] | None:
    module_name, attr = _LOCATIONS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise
        if name not in _MISSING:  # only while a class is still being written: say so once
            log.warning("radiomics class %s is not available (%s missing)", name, module_name)
            _MISSING.add(name)
        return None
    cls = getattr(module, attr)
    if getattr(cls, "name", None) != name:
        raise RuntimeError(f"{module_name}.{attr}.name is {getattr(cls, 'name', None)!r}, expected {name!r}")
    return cls


def available_classes() -> list[str]:
    """Names of the classes the torch engine can compute, in PyRadiomics' order."""
    return [n for n in CLASS_ORDER if _load(n) is not None]


def feature_class(name: str) -> type[FeatureClass]:
    """The :class:`FeatureClass` named ``name`` (PyRadiomics spelling, e.g. ``"glcm"``, ``"shape2D"``)."""
    if name not in _LOCATIONS:
        hint = " (3-D shape; 2-D images use shape2D)" if name == "shape" else ""
        raise ConfigError(f"unknown radiomics feature class {name!r}{hint}; known: {CLASS_ORDER}")
    cls = _load(name)
    if cls is None:
        raise ConfigError(f"radiomics feature class {name!r} is not available in this build of radclr")
    return cls


def order_classes(names) -> list[str]:
    """PyRadiomics' output order for the enabled classes ``names``: shape classes first, the rest as given."""
    names = list(names)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"feature class(es) {dup} listed more than once")
    return [n for n in names if n in SHAPE_CLASSES] + [n for n in names if n not in SHAPE_CLASSES]


# features PyRadiomics lists but never outputs (their methods raise DeprecationWarning): asking for one is an error
REMOVED_FEATURES = {
    "glcm": {"Dissimilarity": "DifferenceAverage", "Homogeneity1": "Id", "Homogeneity2": "Idm",
             "SumVariance": "ClusterTendency"},
    "gldm": {"GrayLevelNonUniformityNormalized": "firstorder Uniformity", "DependencePercentage": "always 1"},
}


def resolve_classes(classes=None) -> list[tuple[str, list[str]]]:
    """``[(class name, [feature names])]`` in output order for a class selection.

    ``classes``: None (all available classes, all default features); a list of class names; or a mapping
    ``{class: None | [] | [feature, ...]}`` as in a PyRadiomics parameter file's ``featureClass`` (None or an
    empty list = the class's default features, a list = those features in that order).
    """
    if classes is None:
        spec: dict = {n: None for n in available_classes()}
    elif isinstance(classes, str):
        spec = {classes: None}
    elif isinstance(classes, dict):
        spec = dict(classes)
    else:
        spec = {}
        for n in classes:
            if not isinstance(n, str):
                raise ConfigError(f"feature class names must be strings, got {n!r}")
            if n in spec:
                raise ConfigError(f"feature class {n!r} listed more than once")
            spec[n] = None
    out = []
    for name in order_classes(spec):
        cls = feature_class(name)
        wanted = spec[name]
        if wanted is None or (isinstance(wanted, (list, tuple)) and len(wanted) == 0):
            out.append((name, cls.feature_names()))
            continue
        if isinstance(wanted, str) or not isinstance(wanted, (list, tuple)):
            raise ConfigError(f"featureClass {name}: expected a list of feature names, got {wanted!r}")
        known = set(cls.feature_names(include_deprecated=True))
        names: list[str] = []
        for f in wanted:
            if f in REMOVED_FEATURES.get(name, {}):
                raise ConfigError(
                    f"featureClass {name}: {f} is removed in PyRadiomics (no value is output; "
                    f"it equals {REMOVED_FEATURES[name][f]})"
                )
            if f not in known:
                raise ConfigError(f"featureClass {name}: unknown feature {f!r}; known: {sorted(known)}")
            if f not in names:
                names.append(f)
        out.append((name, names))
    return out
