"""Shared base of the batched radiomics feature classes.

Layout follows PyRadiomics: one feature family per file (``firstorder.py``, ``shape2d.py``, ``glcm.py``,
``glrlm.py``, ``glszm.py``, ``gldm.py``, ``ngtdm.py``), each a :class:`FeatureClass` whose features are methods
marked with :func:`feature` and named exactly as PyRadiomics names them. The list of features is derived from the
class, never maintained by hand.

Every class works on a whole :class:`RegionBatch` at once: tensors ``[B, H, W]`` holding B regions, each cropped to
its mask's bounding box and padded (top-left aligned) to the largest crop in the batch. A feature method returns a
``float64 [B]`` tensor -- one value per region -- and never loops over regions in Python.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import torch


@dataclass(frozen=True)
class Settings:
    """Extraction settings, PyRadiomics names in comments. Validated by ``radclr.radiomics.params``."""

    bin_width: float = 25.0  # binWidth
    bin_count: int | None = None  # binCount (overrides bin_width when set)
    voxel_array_shift: float = 0.0  # voxelArrayShift (firstorder Energy/TotalEnergy/RMS)
    gldm_a: float = 0.0  # gldm_a (alpha: dependence cut-off)
    glcm_distances: tuple[int, ...] = (1,)  # distances
    symmetrical_glcm: bool = True  # symmetricalGLCM
    weighting_norm: str | None = None  # weightingNorm (None only; others are refused by params)
    minimum_roi_dimensions: int = 2  # minimumROIDimensions (1 or 2 in 2-D; regions below it give a NaN row)
    minimum_roi_size: int | None = None  # minimumROISize (regions with <= this many pixels give a NaN row)


@dataclass
class RegionBatch:
    """B regions prepared for feature computation (built by ``radclr.radiomics.discretize.prepare``).

    image:   ``float64 [B, H, W]`` original intensities, region crop padded; values outside ``mask`` are 0.
    mask:    ``bool [B, H, W]`` region pixels.
    binned:  ``int64 [B, H, W]`` PyRadiomics gray-level discretisation: 1..Ng inside the mask, 0 outside.
    n_gray:  ``int64 [B]`` Ng per region (the largest binned level inside that region's mask).
    spacing: ``float64 [B, 2]`` pixel spacing (row, col); 1.0 when unknown.
    settings: the :class:`Settings` used.
    undefined: ``{region index: reason}`` for regions PyRadiomics would refuse (their rows become NaN).
    cache: intermediates shared by the classes (``radclr.radiomics.levels.gray_levels`` keeps its level codes
        here; ``discretize`` leaves a value histogram for integer images).
    """

    image: torch.Tensor
    mask: torch.Tensor
    binned: torch.Tensor
    n_gray: torch.Tensor
    spacing: torch.Tensor
    settings: Settings
    # regions whose features are undefined (index -> reason); their rows become NaN (see discretize's policy)
    undefined: dict[int, str] = field(default_factory=dict)
    # intermediates shared between feature classes (e.g. gray-level maps); keyed by the helper that made them
    cache: dict = field(default_factory=dict, repr=False)

    @property
    def batch_size(self) -> int:
        return int(self.mask.shape[0])

    @property
    def device(self) -> torch.device:
        return self.mask.device

    @property
    def n_pixels(self) -> torch.Tensor:
        """``int64 [B]`` number of pixels in each region."""
        return self.mask.flatten(1).sum(1)


def feature(fn: Callable | None = None, *, deprecated: bool = False) -> Callable:
    """Mark a method of a :class:`FeatureClass` as a feature (its name is the PyRadiomics feature name).

    ``@feature(deprecated=True)`` marks a feature PyRadiomics still computes but does not enable by default
    (e.g. ``firstorder StandardDeviation``): it is left out of :meth:`FeatureClass.feature_names` unless
    ``include_deprecated=True``, and computed only when asked for by name.
    """

    def mark(f: Callable) -> Callable:
        f._radclr_feature = True
        f._radclr_deprecated = deprecated
        return f

    return mark if fn is None else mark(fn)


class FeatureClass:
    """A family of features computed on a :class:`RegionBatch`.

    Subclasses set ``name`` to the PyRadiomics class name (``"firstorder"``, ``"shape2D"``, ``"glcm"``, ...),
    do their shared work (matrices, coefficients) in ``__init__`` and define one ``@feature`` method per
    feature. Column names are ``original_<name>_<Feature>``.
    """

    name: ClassVar[str]

    def __init__(self, batch: RegionBatch):
        self.batch = batch

    @classmethod
    def feature_names(cls, include_deprecated: bool = False) -> list[str]:
        """Feature names in PyRadiomics' output order.

        PyRadiomics lists its ``get<Name>FeatureValue`` methods alphabetically, so the order is that of the full
        method names (``MeanAbsoluteDeviation`` comes before ``Mean``). Deprecated features (see :func:`feature`)
        are listed only with ``include_deprecated=True``.
        """
        return sorted(
            (
                n
                for n, fn in inspect.getmembers(cls, predicate=inspect.isfunction)
                if getattr(fn, "_radclr_feature", False)
                and (include_deprecated or not getattr(fn, "_radclr_deprecated", False))
            ),
            key=lambda n: f"get{n}FeatureValue",
        )

    def execute(self, names: list[str] | None = None) -> dict[str, torch.Tensor]:
        """Compute the requested features (all by default) -> ``{feature name: float64 [B]}``."""
        wanted = self.feature_names() if names is None else names
        unknown = sorted(set(wanted) - set(self.feature_names(include_deprecated=True)))
        if unknown:
            raise ValueError(f"{self.name}: unknown feature(s) {unknown}; known: {self.feature_names()}")
        return {n: getattr(self, n)().to(torch.float64) for n in wanted}
