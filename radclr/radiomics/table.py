"""Radiomics feature tables of a whole dataset: one row per region (image id, region id, label, features).

The library function behind ``radclr radiomics extract``: regions are the dataset's boxes, the whole image
(seed 000's "FairRadi" control and the region of normal images), or masks from a folder. Images are read one
chunk at a time, rows already in the :class:`~radclr.radiomics.cache.FeatureCache` are taken from it, the rest
go to the chosen engine in one batch per chunk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from radclr.boxes import boxes_to_masks
from radclr.errors import ConfigError, DataError
from radclr.io import read_mask
from radclr.io.readers import SUPPORTED_SUFFIXES
from radclr.radiomics.base import Settings
from radclr.radiomics.cache import FeatureCache, array_digest, config_digest, mask_digest
from radclr.radiomics.extract import extract
from radclr.radiomics.params import load_params
from radclr.radiomics.pyradiomics_engine import PyRadiomicsEngine, pyradiomics_params

__all__ = ["Region", "dataset_regions", "extract_table", "ID_COLUMNS"]

log = logging.getLogger(__name__)

ID_COLUMNS = ["image_id", "region_id", "label"]
REGION_MODES = ("boxes", "whole-image", "masks")


@dataclass(frozen=True)
class Region:
    """One region of one image: a box ``(x, y, w, h)``, the whole image, or a mask file."""

    index: int  # row of the image in the dataset
    image_id: str
    region_id: int
    label: str
    box: tuple[float, float, float, float] | None = None
    mask_path: str | None = None


def _mask_files(folder: Path) -> dict[str, Path]:
    """Mask files under ``folder`` by relative path without suffix, and by bare stem."""
    suffixes = sorted((s.lower() for s in SUPPORTED_SUFFIXES), key=len, reverse=True)
    out: dict[str, Path] = {}
    for p in sorted(folder.rglob("*")):
        name = p.name.lower()
        suffix = next((s for s in suffixes if name.endswith(s)), None)
        if not p.is_file() or suffix is None:
            continue
        rel = p.relative_to(folder).as_posix()[: -len(suffix)]
        out.setdefault(rel, p)
        out.setdefault(rel.rsplit("/", 1)[-1], p)
    return out


def dataset_regions(ds, mode: str = "boxes", masks_dir: str | Path | None = None) -> list[Region]:
    """The regions of ``ds`` for ``mode`` (``boxes``: every box; ``whole-image``; ``masks``: ``masks_dir``)."""
    if mode not in REGION_MODES:
        raise ConfigError(f"unknown region mode {mode!r}; choose one of {list(REGION_MODES)}")
    regions: list[Region] = []
    if mode == "boxes":
        if len(ds.boxes) == 0:
            raise DataError(f"{ds.name}: the dataset has no boxes; use --whole-image or --masks DIR")
        for i, image_id in enumerate(ds.image_ids):
            for k, b in enumerate(ds.boxes_for(image_id)):
                regions.append(Region(i, image_id, k, b.label, box=(b.x, b.y, b.w, b.h)))
    elif mode == "whole-image":
        regions = [Region(i, image_id, 0, "") for i, image_id in enumerate(ds.image_ids)]
    else:
        if masks_dir is None:
            raise ConfigError("--masks needs a folder of mask images")
        folder = Path(masks_dir)
        if not folder.is_dir():
            raise DataError(f"mask folder {folder} does not exist")
        files = _mask_files(folder)
        missing = []
        for i, image_id in enumerate(ds.image_ids):
            key = Path(image_id).with_suffix("").as_posix()
            p = files.get(key) or files.get(Path(image_id).stem)
            if p is None:
                missing.append(image_id)
                continue
            regions.append(Region(i, image_id, 0, "mask", mask_path=str(p)))
        if missing:
            log.warning("%d image(s) have no mask in %s and are skipped (first: %s)", len(missing), folder, missing[0])
    if not regions:
        raise DataError(f"{ds.name}: no regions to extract")
    return regions


def describe_region(region: Region) -> str:
    """``"a.png box 1 (Mass at x=10, y=12, w=20, h=15)"``, ``"a.png (whole image)"``, ``"a.png (mask m.png)"``."""
    if region.box is not None:
        x, y, w, h = region.box
        return (f"{region.image_id} box {region.region_id} ({region.label or 'unlabelled'} at x={x:g}, y={y:g}, "
                f"w={w:g}, h={h:g})")
    if region.mask_path is not None:
        return f"{region.image_id} (mask {region.mask_path})"
    return f"{region.image_id} (whole image)"


def _region_mask(region: Region, shape: tuple[int, int]) -> np.ndarray:
    if region.box is not None:
        return boxes_to_masks([region.box], shape)[0].numpy()
    if region.mask_path is not None:
        m = read_mask(region.mask_path)  # no rescale/VOI/MONOCHROME1 handling: a mask is labels, not intensities
        if m.shape != shape:
            raise DataError(f"mask {region.mask_path} is {m.shape[::-1]} (w, h) but its image is {shape[::-1]}")
        return m != 0
    return np.ones(shape, dtype=bool)


def _config(settings: Settings, classes, params) -> dict:
    """The PyRadiomics-style parameters of an extraction (also what the cache key is made of)."""
    return pyradiomics_params(settings, classes, params)


def extract_table(
    ds,
    *,
    mode: str = "boxes",
    masks_dir=None,
    settings: Settings | None = None,
    classes=None,
    params=None,
    engine: str = "torch",
    device=None,
    batch_size: int | None = None,
    jobs: int = 1,
    cache=None,
    chunk: int = 64,
    progress: Callable[[int], None] | None = None,
    backend: str | None = None,
) -> pd.DataFrame:
    """Features of every region of ``ds`` -> DataFrame ``image_id, region_id, label, <PyRadiomics names>``.

    ``cache``: a :class:`~radclr.radiomics.cache.FeatureCache` (or a folder) -- rows found there are not
    recomputed. Other arguments as :func:`radclr.radiomics.extract`.
    """
    settings = settings or Settings()
    if params is not None:
        params = load_params(params)
        if engine == "torch":
            params.check_torch()
    if cache is not None and not isinstance(cache, FeatureCache):
        cache = FeatureCache(cache)
    regions = dataset_regions(ds, mode, masks_dir)
    rows = _Rows(regions, cache, config_digest(engine, _config(settings, classes, params)), progress)
    pyrad = PyRadiomicsEngine(_config(settings, classes, params), jobs=jobs) if engine == "pyradiomics" else None
    try:
        for start in range(0, len(regions), chunk):
            images, todo = _read_chunk(ds, regions, range(start, min(len(regions), start + chunk)), rows)
            # PyRadiomics sees the whole (padded) canvas when its settings are not crop-safe (filters,
            # normalisation, resampling): give it only regions of images of one shape, so no zero border
            # enters the filter responses and a region's features do not depend on its chunk-mates
            groups = [todo] if pyrad is None or pyrad.crop else _group_by_shape(todo, images, regions)
            for group in filter(None, groups):  # a chunk the cache held entirely leaves nothing to compute
                batch = _padded_batch(group, images, regions)
                named = [describe_region(regions[r]) for r, _ in group]
                if pyrad is not None:
                    names, values = pyrad.extract(*batch, progress=progress, region_names=named)
                else:
                    names, values = _torch_features(batch, named, settings=settings, classes=classes, params=params,
                                                    device=device, batch_size=batch_size, backend=backend)
                    if progress:
                        progress(len(group))
                rows.put([r for r, _ in group], names, values)
    finally:
        if pyrad is not None:
            pyrad.close()
    return rows.table()


class _Rows:
    """The feature rows of ``regions`` as they arrive, from the cache or computed (one list of names for all)."""

    def __init__(self, regions: list[Region], cache: FeatureCache | None, config: str, progress):
        self.regions, self.cache, self.config, self.progress = regions, cache, config, progress
        self.values: list[np.ndarray | None] = [None] * len(regions)
        self.names: list[str] | None = None
        self.keys: dict[int, str] = {}

    def take_cached(self, r: int, image_digest: str, mask: np.ndarray) -> bool:
        """Fill row ``r`` from the cache when it holds it (with the same feature names); whether it did."""
        if self.cache is None:
            return False
        self.keys[r] = self.cache.key(image_digest, mask_digest(mask), self.config)
        hit = self.cache.get(self.keys[r])
        if hit is None or (self.names is not None and hit[0] != self.names):
            return False
        self.names, self.values[r] = hit
        if self.progress:
            self.progress(1)
        return True

    def put(self, rows: list[int], names: list[str], values: np.ndarray) -> None:
        """Computed ``values [len(rows), R]`` of ``rows`` (kept in the cache too)."""
        if self.names is None:
            self.names = names
        elif names != self.names:
            raise DataError("feature names changed between chunks (mixed cache entries?); clear the cache")
        for k, r in enumerate(rows):
            self.values[r] = values[k]
            if self.cache is not None:
                self.cache.put(self.keys[r], names, values[k])

    def table(self) -> pd.DataFrame:
        ids = pd.DataFrame({"image_id": [r.image_id for r in self.regions],
                            "region_id": [r.region_id for r in self.regions],
                            "label": [r.label for r in self.regions]})
        return pd.concat([ids, pd.DataFrame(np.stack(self.values), columns=self.names)], axis=1)


def _read_chunk(ds, regions: list[Region], part, rows: _Rows) -> tuple[dict, list]:
    """Read the images of the regions ``part`` (each image once) and make their masks; rows the cache holds are
    filled. Returns ``({dataset index: (array, spacing, digest)}, [(row, mask) still to compute])``."""
    images: dict[int, tuple[np.ndarray, tuple | None, str]] = {}
    todo = []
    for r in part:
        reg = regions[r]
        if reg.index not in images:
            img = ds.read(reg.index)
            if img.array.ndim != 2:
                raise DataError(f"{ds.path(reg.index)}: radiomics needs a 2-D image, got shape {img.shape}")
            images[reg.index] = (img.array, img.spacing, array_digest(img.array, img.spacing))
        array, _, digest = images[reg.index]
        mask = _region_mask(reg, array.shape)
        if not mask.any():
            raise DataError(f"{describe_region(reg)} covers no pixel of the image")
        if not rows.take_cached(r, digest, mask):
            todo.append((r, mask))
    return images, todo


def _padded_batch(group: list, images: dict, regions: list[Region]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(images [K, H, W] float32, masks [K, H, W], spacing [K, 2])`` of ``group``'s regions, zero-padded to the
    largest image of the group (pixel spacing 1 where the file gives none)."""
    H = max(images[regions[r].index][0].shape[0] for r, _ in group)
    W = max(images[regions[r].index][0].shape[1] for r, _ in group)
    batch_img = np.zeros((len(group), H, W), dtype=np.float32)
    batch_mask = np.zeros((len(group), H, W), dtype=bool)
    spacing = np.ones((len(group), 2))
    for k, (r, mask) in enumerate(group):
        array, sp, _ = images[regions[r].index]
        batch_img[k, : array.shape[0], : array.shape[1]] = array
        batch_mask[k, : mask.shape[0], : mask.shape[1]] = mask
        if sp is not None and len(sp) == 2:
            spacing[k] = sp
    return batch_img, batch_mask, spacing


def _torch_features(batch, named: list[str], *, settings, classes, params, device, batch_size, backend):
    """``(names, values [K, R])`` of a padded batch with the torch engine."""
    batch_img, batch_mask, spacing = batch
    names, values = extract(
        torch.from_numpy(batch_img), torch.from_numpy(batch_mask),
        settings=None if params is not None else settings,
        classes=None if params is not None else classes,
        spacing=torch.from_numpy(spacing), engine="torch", device=device,
        batch_size=batch_size, params=params, region_names=named, backend=backend,
    )
    return names, values.cpu().numpy()


def _group_by_shape(todo: list, images: dict, regions: list) -> list[list]:
    """``todo`` entries ``(row, mask)`` grouped by the shape of their image (first-seen order kept)."""
    groups: dict[tuple, list] = {}
    for item in todo:
        groups.setdefault(images[regions[item[0]].index][0].shape, []).append(item)
    return list(groups.values())
