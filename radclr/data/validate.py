"""``validate_dataset``: read every image, check every record, list every problem (``radclr data validate``).

Besides the problems the adapter recorded while loading (bad labels, boxes, paths ...), each image is read
and checked:

* unreadable (missing, truncated, corrupt, unsupported DICOM transfer syntax) -> error;
* NaN/inf values or a constant image -> error; a 3-D volume in a 2-D dataset -> warning;
* converted on reading (RGB/palette/alpha -> grayscale) -> warning (policy: ITU-R 601 luma);
* 16-bit (or wider) image -> warning (kept in its own scale; training maps it per image to 0..255);
* DICOM MONOCHROME1 -> warning (inverted on reading so that bright = dense);
* ``width``/``height`` in the label table disagreeing with the file -> error; a box outside the image as
  read -> error (boxes were checked against the declared size);
* masks: unreadable -> error; shape unlike its image -> error; empty -> warning.

A dataset that cannot be loaded at all (e.g. a label table without its required columns, duplicate ids, a row
with more fields than the header) gives one error problem with the loader's message; a dataset without any
usable image (an empty label table, every record dropped) is an error. An image whose header claims enormous
dimensions (a decompression bomb) is an unreadable image: one error among the others, and validation goes on.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from radclr.data.adapters.common import BOX_TOLERANCE
from radclr.data.dataset import CXRDataset, Problem
from radclr.data.loading import load_dataset
from radclr.errors import DataError, ImageReadError
from radclr.io import read_image, read_mask
from radclr.io.readers import ImageConversionWarning
from radclr.progress import progress_bar

SMALL_IMAGE_SIDE = 32  # px: an image with a shorter side carries too little detail to classify or localize


def _declared_sizes(records: pd.DataFrame) -> np.ndarray | None:
    if "width" not in records.columns or "height" not in records.columns:
        return None
    h = pd.to_numeric(records["height"], errors="coerce").to_numpy(dtype=float)
    w = pd.to_numeric(records["width"], errors="coerce").to_numpy(dtype=float)
    return np.stack([h, w], axis=1)


def check_image(img, path: str) -> list[Problem]:
    """Problems of one decoded image (module docstring)."""
    out = []
    a = img.array
    if a.ndim == 3:
        out.append(Problem(path, f"3-D volume {a.shape} in a 2-D image dataset", "warning"))
    if a.size == 0:
        return out + [Problem(path, f"empty image, shape {a.shape}")]
    finite = np.isfinite(a)
    if not finite.all():
        out.append(Problem(path, f"{int((~finite).sum())} NaN/infinite pixel value(s)"))
    elif float(a.min()) == float(a.max()):
        out.append(Problem(path, f"constant image (every pixel = {float(a.min()):g})"))
    if min(a.shape[-2:]) < SMALL_IMAGE_SIDE:
        out.append(Problem(path, f"very small image {a.shape[-2:]}", "warning"))
    bits = int(img.meta.get("bit_depth", 0) or 0)
    if img.meta.get("format") in ("png", "jpeg", "tiff", "bmp", "raster") and bits > 8:
        out.append(Problem(path, f"{bits}-bit image (values {float(a.min()):g}..{float(a.max()):g}); kept in its "
                                 "own scale, mapped per image to 0..255 for training", "warning"))
    if img.meta.get("inverted"):
        out.append(Problem(path, "DICOM MONOCHROME1: inverted on reading so that bright = dense", "warning"))
    return out


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for p in problems:
        key = (p.file, p.message, p.severity)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def validate_dataset(source: str | Path | CXRDataset, format: str | None = None, progress: bool = True,  # noqa: A002
                     **options) -> list[Problem]:
    """Every problem of a dataset (a path, loaded with :func:`radclr.data.load_dataset`, or a dataset)."""
    if isinstance(source, CXRDataset):
        ds = source
    else:
        try:
            ds = load_dataset(source, format, **options)
        except DataError as e:
            return [Problem(str(source), f"cannot load the dataset: {e}")]
    problems = list(ds.problems)
    if len(ds) == 0 and not any("lists no images" in p.message for p in problems):
        problems.append(Problem(str(ds.root), "no usable image: every record was dropped (see the problems above)"))
    declared = _declared_sizes(ds.records)
    for i in progress_bar(range(len(ds)), desc="validating", unit="img", enabled=progress,
                  leave=False):
        path = str(ds.path(i))
        iid = ds.records.at[i, "image_id"]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ImageConversionWarning)
            try:
                img = read_image(path)
            except ImageReadError as e:
                problems.append(Problem(e.path, e.reason))
                continue
        for w in caught:
            if issubclass(w.category, ImageConversionWarning):
                msg = str(w.message)
                problems.append(Problem(path, msg[len(path) + 2:] if msg.startswith(path + ": ") else msg, "warning"))
        problems += check_image(img, path)
        H, W = img.array.shape[-2:]
        if declared is not None and np.all(np.isfinite(declared[i])) and tuple(declared[i]) != (H, W):
            problems.append(Problem(path, f"label table says {int(declared[i][1])}x{int(declared[i][0])} "
                                          f"(width x height) but the file is {W}x{H}"))
        for b in ds.boxes_for(iid):
            if b.x < -BOX_TOLERANCE or b.y < -BOX_TOLERANCE or b.x2 > W + BOX_TOLERANCE or b.y2 > H + BOX_TOLERANCE:
                problems.append(Problem(path, f"box {b.label!r} ({b.x:g}, {b.y:g}, {b.w:g}, {b.h:g}) exceeds the "
                                              f"{W}x{H} image as read"))
        mpath = ds.masks.get(iid)
        if mpath:
            try:
                m = read_mask(mpath)
            except ImageReadError as e:
                problems.append(Problem(e.path, f"mask: {e.reason}"))
                continue
            if m.shape != img.array.shape:
                problems.append(Problem(mpath, f"mask shape {m.shape} differs from its image {img.array.shape} "
                                               f"({path})"))
            elif not m.any():
                problems.append(Problem(mpath, f"empty mask (no nonzero pixel) for {path}", "warning"))
    return _dedupe(problems)


def has_errors(problems: list[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)
