"""How a Grad-CAM map becomes a box: one set of options for training (BYOP), evaluation and predict.

Seed 001 §3.2 turns the attention map into a box with "an ad-hoc threshold". radclr's reading and defaults:
the map is thresholded at ``threshold`` x its maximum (``mode="relative"``), the largest connected component
(``select="largest"``) gives the box, and a map with no component falls back to the whole image
(``fallback="whole"``). The threshold may be fit on annotated training images (:mod:`radclr.cam.calibrate`);
the fitted value travels with the run (BYOP's checkpoint, ``metrics.json``), so predict draws the boxes whose
localization accuracy the run reports. :func:`radclr.cam.boxes.cam_to_boxes` documents every mode.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

__all__ = ["CamOptions", "THRESHOLD_MODES", "SELECTIONS", "FALLBACKS", "LAYERS"]

THRESHOLD_MODES = ("relative", "absolute", "percentile")
SELECTIONS = ("largest", "max_mean", "all")
FALLBACKS = ("whole", "center", "none")
LAYERS = ("last", "layer3")


@dataclass(frozen=True)
class CamOptions:
    """CAM -> box options (see module docstring); invalid values raise ``ValueError`` naming the option.

    ``finding_thresholds``: ``((finding, threshold), ...)`` overriding ``threshold`` for those findings (a
    threshold fit per finding: small nodules and large effusions need different cuts of their maps);
    :meth:`for_finding` gives the options of one finding.
    """

    threshold: float = 0.5
    mode: str = "relative"
    select: str = "largest"
    fallback: str = "whole"
    finding_thresholds: tuple = ()
    #: the Grad-CAM layer: ``last`` (the last block; seed 001 §3.2: ResNet-18 layer4) or ``layer3`` (ResNets: the
    #: block before it, twice the resolution -- small lesions get boxes of their own size)
    layer: str = "last"

    def __post_init__(self):
        if self.mode not in THRESHOLD_MODES:
            raise ValueError(f"CAM mode must be one of {THRESHOLD_MODES}, got {self.mode!r}")
        if self.select not in SELECTIONS:
            raise ValueError(f"CAM select must be one of {SELECTIONS}, got {self.select!r}")
        if self.fallback not in FALLBACKS:
            raise ValueError(f"CAM fallback must be one of {FALLBACKS}, got {self.fallback!r}")
        if self.layer not in LAYERS:
            raise ValueError(f"CAM layer must be one of {LAYERS}, got {self.layer!r}")
        t = float(self.threshold)
        if not np.isfinite(t):
            raise ValueError(f"CAM threshold must be finite, got {self.threshold!r}")
        if self.mode == "relative" and not 0.0 <= t <= 1.0:
            raise ValueError(f"relative CAM threshold is a fraction of the map's maximum in [0, 1], got {t}")
        if self.mode == "percentile" and not 0.0 <= t < 1.0:
            raise ValueError(f"percentile CAM threshold is a quantile in [0, 1) (0.9 keeps the top 10 %), got {t}")
        object.__setattr__(self, "threshold", t)
        pairs = self.finding_thresholds.items() if isinstance(self.finding_thresholds, dict) else self.finding_thresholds
        per = tuple(sorted((str(f), float(v)) for f, v in pairs))
        for f, v in per:  # each must be a valid threshold for the mode
            replace(self, threshold=v, finding_thresholds=())
        object.__setattr__(self, "finding_thresholds", per)

    @classmethod
    def from_dict(cls, d: dict | None) -> "CamOptions":
        """From a mapping with any of the option names (others, e.g. saved extras, are ignored)."""
        d = dict(d or {})
        keys = ("threshold", "mode", "select", "fallback", "finding_thresholds", "layer")
        return cls(**{k: d[k] for k in keys if k in d})

    def with_threshold(self, threshold: float, finding_thresholds=()) -> "CamOptions":
        """The same options with another threshold (and per-finding thresholds; none by default)."""
        return replace(self, threshold=float(threshold), finding_thresholds=finding_thresholds)

    def for_finding(self, finding: str) -> "CamOptions":
        """The options for boxes of ``finding``: its own threshold when there is one."""
        t = dict(self.finding_thresholds).get(finding)
        return self if t is None and not self.finding_thresholds else replace(
            self, threshold=self.threshold if t is None else t, finding_thresholds=())

    def to_dict(self) -> dict:
        d = asdict(self)
        d["finding_thresholds"] = dict(self.finding_thresholds)
        return d
