"""The feature classes radclr's torch engine knows, in PyRadiomics' output order.

PyRadiomics writes shape features first (``computeShape``), then the other classes in the order they are enabled;
with every class enabled that is ``shape2D, firstorder, glcm, gldm, glrlm, glszm, ngtdm`` (alphabetical module
order) -- 9 + 18 + 24 + 14 + 16 + 16 + 5 = 102 features for a 2-D image.
"""

from __future__ import annotations

from radclr.errors import ConfigError
from radclr.radiomics.base import FeatureClass
from radclr.radiomics.firstorder import FirstOrder
from radclr.radiomics.glcm import GLCM
from radclr.radiomics.gldm import GLDM
from radclr.radiomics.glrlm import GLRLM
from radclr.radiomics.glszm import GLSZM
from radclr.radiomics.ngtdm import NGTDM
from radclr.radiomics.shape2d import Shape2D

__all__ = ["CLASS_ORDER", "feature_class", "feature_names", "available_classes", "order_classes", "resolve_classes"]

CLASS_ORDER = ["shape2D", "firstorder", "glcm", "gldm", "glrlm", "glszm", "ngtdm"]
SHAPE_CLASSES = {"shape2D"}
_CLASSES: dict[str, type[FeatureClass]] = {cls.name: cls for cls in (Shape2D, FirstOrder, GLCM, GLDM, GLRLM, GLSZM, NGTDM)}


def available_classes() -> list[str]:
    """Names of the classes the torch engine computes, in PyRadiomics' order."""
    return list(CLASS_ORDER)


def feature_class(name: str) -> type[FeatureClass]:
    """The :class:`FeatureClass` named ``name`` (PyRadiomics spelling, e.g. ``"glcm"``, ``"shape2D"``)."""
    try:
        return _CLASSES[name]
    except KeyError:
        hint = " (3-D shape; 2-D images use shape2D)" if name == "shape" else ""
        raise ConfigError(f"unknown radiomics feature class {name!r}{hint}; known: {CLASS_ORDER}") from None


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


def feature_names(classes=None, settings=None) -> list[str]:
    """Column names ``original_<class>_<Feature>`` the torch engine outputs for ``classes`` (names of the Original
    image type do not depend on the settings)."""
    del settings
    return [f"original_{c}_{f}" for c, feats in resolve_classes(classes) for f in feats]
