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

__all__ = ["CamOptions", "THRESHOLD_MODES", "SELECTIONS", "FALLBACKS"]

THRESHOLD_MODES = ("relative", "absolute", "percentile")
SELECTIONS = ("largest", "max_mean", "all")
FALLBACKS = ("whole", "center", "none")


@dataclass(frozen=True)
class CamOptions:
    """CAM -> box options (see module docstring); invalid values raise ``ValueError`` naming the option."""

    threshold: float = 0.5
    mode: str = "relative"
    select: str = "largest"
    fallback: str = "whole"

    def __post_init__(self):
        if self.mode not in THRESHOLD_MODES:
            raise ValueError(f"CAM mode must be one of {THRESHOLD_MODES}, got {self.mode!r}")
        if self.select not in SELECTIONS:
            raise ValueError(f"CAM select must be one of {SELECTIONS}, got {self.select!r}")
        if self.fallback not in FALLBACKS:
            raise ValueError(f"CAM fallback must be one of {FALLBACKS}, got {self.fallback!r}")
        t = float(self.threshold)
        if not np.isfinite(t):
            raise ValueError(f"CAM threshold must be finite, got {self.threshold!r}")
        if self.mode == "relative" and not 0.0 <= t <= 1.0:
            raise ValueError(f"relative CAM threshold is a fraction of the map's maximum in [0, 1], got {t}")
        if self.mode == "percentile" and not 0.0 <= t < 1.0:
            raise ValueError(f"percentile CAM threshold is a quantile in [0, 1) (0.9 keeps the top 10 %), got {t}")
        object.__setattr__(self, "threshold", t)

    @classmethod
    def from_dict(cls, d: dict | None) -> "CamOptions":
        """From a mapping with any of the option names (others, e.g. saved extras, are ignored)."""
        d = dict(d or {})
        return cls(**{k: d[k] for k in ("threshold", "mode", "select", "fallback") if k in d})

    def with_threshold(self, threshold: float) -> "CamOptions":
        return replace(self, threshold=float(threshold))

    def to_dict(self) -> dict:
        return asdict(self)
