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
* :meth:`~RegionRadiomics.fixed` -- every image's fixed region once per run, cached row by row in the one
  on-disk :class:`~radclr.radiomics.cache.FeatureCache` (key: the image's pixels, the region's mask, the
  settings and the radclr version), so a re-run or another run over the same images is instant.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from radclr.boxes import boxes_to_masks
from radclr.progress import progress_bar
from radclr.radiomics.base import Settings
from radclr.radiomics.cache import FeatureCache, array_digest, config_digest, mask_digest
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

    # --- every image's fixed region, cached ------------------------------------------------------------------
    def fixed(self, images, regions: Sequence | None, *, cache: FeatureCache | str | Path | None = None,
              batch_size: int = 64, progress: bool = True, image_ids: Sequence[str] | None = None) -> np.ndarray:
        """float64 ``[N, R]`` radiomics of each image's fixed region.

        images: uint8/float ``[N, S, S]`` store images (a memory map is read ``batch_size`` at a time);
        regions: per image a list of boxes (their union; an empty list or None = the whole image), or None for
        the whole image of every image; cache: rows found there are not recomputed, new rows are written;
        image_ids: names of the images for the logged reasons of NaN rows.
        """
        n = len(images)
        if regions is not None and len(regions) != n:
            raise ValueError(f"{len(regions)} regions for {n} images")
        if cache is not None and not isinstance(cache, FeatureCache):
            cache = FeatureCache(cache)
        out = np.zeros((n, len(self.names)), dtype=np.float64)
        S = int(images.shape[-1]) if n else 0
        for s in progress_bar(range(0, n, batch_size), desc="radiomics", unit="batch", enabled=progress):
            chunk = np.asarray(images[s:s + batch_size])
            regs = [None] * len(chunk) if regions is None else [r or None for r in regions[s:s + batch_size]]
            masks = region_masks(regs, S)
            todo, keys = [], {}
            for k in range(len(chunk)):
                if cache is not None:
                    keys[k] = cache.key(array_digest(chunk[k]), mask_digest(masks[k].numpy()), self.config_key)
                    hit = cache.get(keys[k])
                    if hit is not None and hit[0] == self.names:
                        out[s + k] = hit[1]
                        continue
                todo.append(k)
            if not todo:
                continue
            sel = torch.as_tensor(todo)
            named = None
            if image_ids is not None:
                named = [f"{image_ids[s + k]} ({'whole image' if regs[k] is None else 'its boxes'}, store pixels)"
                         for k in todo]
            values = self.of_masks(torch.as_tensor(chunk[todo], dtype=torch.float64), masks[sel],
                                   region_names=named).cpu().numpy()
            for j, k in enumerate(todo):
                out[s + k] = values[j]
                if cache is not None:
                    cache.put(keys[k], self.names, values[j])
        return out
