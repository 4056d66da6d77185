"""Batched, PyRadiomics-exact radiomics in torch, plus a PyRadiomics backend behind the same interface.

    names, values = radclr.radiomics.extract(images, masks, bin_width=25.0)   # [B, H, W] float, [B, H, W] bool

The 102 default 2-D PyRadiomics features (firstorder, shape2D, glcm, glrlm, glszm, gldm, ngtdm) named as
PyRadiomics names them. See ``docs/radiomics.md`` for settings, engines, the degenerate-region policy and the cache.
Regions of training images (fixed boxes, the whole image, BYOP's Grad-CAM boxes) go through one service,
:class:`radclr.radiomics.regions.RegionRadiomics`; boxes become masks by :func:`radclr.boxes.boxes_to_masks`.
"""

from radclr.radiomics.base import FeatureClass, RegionBatch, Settings, feature
from radclr.radiomics.extract import extract
from radclr.radiomics.registry import feature_names

__all__ = ["extract", "feature_names", "Settings", "RegionBatch", "FeatureClass", "feature"]
