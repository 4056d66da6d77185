"""Regions of training images -> radiomics: the one service training, evaluation and predict call.

A *region* is what the radiomics view of an image is computed on (SPEC §1): the union of the image's
ground-truth boxes (seed 000 §3), the whole image (seed 000's "FairRadi" control, and the region of images
without a box), or a box from the model's own Grad-CAM (seed 001 §3.2, BYOP). Every path turns boxes into pixels
with the one rule of :func:`radclr.boxes.boxes_to_masks`; a region that covers no pixel is the whole image.

Images are on the image store's 0..255 scale at the training resolution (``S x S``), so fixed regions and BYOP's
Grad-CAM boxes live in one feature space. :class:`RegionRadiomics` holds the run's settings (bin width/count,
classes, or a PyRadiomics parameter file: :func:`radiomics_settings`) and computes

* :meth:`~RegionRadiomics.of_boxes` -- one box per image (BYOP's Grad-CAM boxes every step, predict's boxes),
  on the images' device: masks are built there, no CPU round trip;
* :meth:`~RegionRadiomics.fixed` -- every image's fixed region (or a chosen subset of images), computed a batch
  at a time from the memory-mapped store; :mod:`radclr.training_data.fixed_radiomics` caches the result as one
  array per (store, regions, settings), so a re-run or another run over the same images maps it.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch

from radclr.boxes import boxes_to_masks
from radclr.progress import progress_bar
from radclr.radiomics.base import Settings
from radclr.radiomics.cache import config_digest
from radclr.radiomics.extract import extract
from radclr.radiomics.params import load_params
from radclr.radiomics.pyradiomics_engine import pyradiomics_params
from radclr.radiomics.registry import feature_names

__all__ = ["RegionRadiomics", "radiomics_settings", "region_masks"]

log = logging.getLogger(__name__)


def radiomics_settings(rad_cfg: dict) -> tuple[Settings, object]:
    """``(Settings, classes)`` of a config's ``radiomics`` section, or of the PyRadiomics parameter file it names."""
    if rad_cfg.get("params"):
        p = load_params(rad_cfg["params"])
        return p.settings, p.classes
    bc = rad_cfg.get("bin_count")
    return Settings(bin_width=float(rad_cfg.get("bin_width", 25.0)), bin_count=int(bc) if bc else None), rad_cfg.get("classes")


def region_masks(regions: Sequence, size: int, *, device=None) -> torch.Tensor:
    """``bool [N, S, S]`` region masks: ``regions[i]`` is a list of boxes (their union), one box (a box object or
    an ``x, y, w, h`` array/tensor row), or None (the whole image). A region that covers no pixel of the image is
    the whole image."""
    S = int(size)
    out = torch.zeros((len(regions), S, S), dtype=torch.bool, device=device)
    for i, region in enumerate(regions):
        if region is None:
            out[i] = True
            continue
        several = isinstance(region, (list, tuple)) and not (len(region) == 4 and all(np.isscalar(v) for v in region))
        boxes = list(region) if several else [region]
        if boxes:
            out[i] = boxes_to_masks(boxes, (S, S), device=device).any(dim=0)
        if not bool(out[i].any()):
            out[i] = True
    return out


class RegionRadiomics:
    """Radiomics of regions of store-scale images with one run's settings (see module docstring).

    ``rad_cfg``: a config's ``radiomics`` section (``bin_width``/``bin_count``/``classes`` or ``params``).
    """

    def __init__(self, rad_cfg: dict | None = None, *, settings: Settings | None = None, classes=None):
        if rad_cfg is not None:
            settings, classes = radiomics_settings(rad_cfg)
        self.settings = settings or Settings()
        self.classes = classes
        self.names = feature_names(classes)
        # what a cached row depends on besides the pixels and the region
        self.config_key = config_digest("torch", pyradiomics_params(self.settings, self.classes))

    def __len__(self) -> int:
        return len(self.names)

    # --- regions given by boxes -----------------------------------------------------------------------------
    def of_masks(self, images: torch.Tensor, masks: torch.Tensor, region_names=None) -> torch.Tensor:
        """float64 ``[B, R]`` of ``masks`` (bool ``[B, S, S]``) on ``images`` (``[B, S, S]``, 0..255);
        ``region_names`` name the regions in logged reasons for NaN rows."""
        names, values = extract(images, masks, settings=self.settings, classes=self.classes,
                                region_names=region_names)
        if list(names) != self.names:  # pragma: no cover - extract names by the same rule
            raise RuntimeError("radiomics: extract returned other feature names than the run's")
        return values

    def of_boxes(self, images: torch.Tensor, boxes) -> torch.Tensor:
        """float64 ``[B, R]``: the radiomics of box ``boxes[b]`` (``[B, 4]`` x, y, w, h in store pixels) on image
        ``images[b]`` (``[B, S, S]`` on the 0..255 store scale, float64 -- round network inputs back with
        ``round(x * 255)``). Masks are built on the images' device; a box covering no pixel means the whole
        image."""
        S = int(images.shape[-1])
        masks = boxes_to_masks(boxes, (S, S), device=images.device)
        empty = ~masks.flatten(1).any(dim=1)
        if bool(empty.any()):
            masks[empty] = True
        return self.of_masks(images, masks)

    # --- every image's fixed region ---------------------------------------------------------------------------
    def fixed(self, images, regions: Sequence | None, *, rows: Sequence[int] | None = None, batch_size: int = 64,
              progress: bool = True, image_ids: Sequence[str] | None = None) -> np.ndarray:
        """float64 ``[N, R]`` radiomics of each image's fixed region (rows not in ``rows`` are NaN).

        images: uint8/float ``[N, S, S]`` store images (a memory map is read ``batch_size`` images at a time);
        regions: per image a list of boxes (their union; an empty list or None = the whole image), or None for
        the whole image of every image; rows: the images to compute (None: all); image_ids: names of the images
        for the logged reasons of NaN rows. One array per store is cached by
        :mod:`radclr.training_data.fixed_radiomics`, not here.
        """
        n = len(images)
        if regions is not None and len(regions) != n:
            raise ValueError(f"{len(regions)} regions for {n} images")
        todo = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
        out = np.full((n, len(self.names)), np.nan if rows is not None else 0.0, dtype=np.float64)
        S = int(images.shape[-1]) if n else 0
        for s in progress_bar(range(0, len(todo), batch_size), desc="radiomics", unit="batch", enabled=progress):
            idx = todo[s:s + batch_size]
            contiguous = len(idx) and idx[-1] - idx[0] == len(idx) - 1
            chunk = np.asarray(images[idx[0]:idx[-1] + 1] if contiguous else images[idx])
            regs = [None] * len(idx) if regions is None else [regions[int(i)] or None for i in idx]
            masks = region_masks(regs, S)
            named = None
            if image_ids is not None:
                named = [f"{image_ids[int(i)]} ({'whole image' if r is None else 'its boxes'}, store pixels)"
                         for i, r in zip(idx, regs)]
            out[idx] = self.of_masks(torch.from_numpy(np.array(chunk, dtype=np.float64)), masks,
                                     region_names=named).cpu().numpy()
        return out
