"""The fixed-region radiomics of a store, cached as ONE array per (store, regions, settings).

Every run, rank, evaluation and prediction over the same images needs the raw radiomics ``[N, R]`` of each
image's fixed region (the union of its ground-truth boxes, else the whole image; or the whole image for every
image: :mod:`radclr.training_data.prepare`). They are computed once by :meth:`RegionRadiomics.fixed` and kept in
the cache folder as

* ``radiomics-fixed/<key>.npy`` -- float64 ``[N, R]`` (rows that were not asked for are NaN, see ``rows``);
* ``radiomics-fixed/<key>.json`` -- feature names, image ids, which rows were computed, what the key covers.

The key hashes the image store's key (itself a hash of the file list, size and intensity rule -- no pixel is
re-read or re-hashed), every image's region in store pixels, the extraction settings with the radclr version,
and the rows kept. A run opens the array with one read; building it takes the lock ``.<key>.lock``
(:func:`radclr.safe_write.build_once`): one process computes it, processes that want it at the same time wait
and then read it.

``rows="boxed"``: only images with a ground-truth box are computed (the rest NaN). BYOP with its loop on
(``byop: true``) takes the radiomics of unannotated images from their Grad-CAM boxes, so their whole-image rows
would be computed and never used (:func:`radclr.engine.config.fixed_radiomics_rows` decides). A ``"boxed"``
request is served by a complete (``"all"``) array when one exists, and an ``"all"`` build reuses the rows of a
``"boxed"`` array.

Earlier versions cached one ``radiomics/<2 hex>/<key>.rad`` file per image (112 k files at NIH scale, each
repeating the feature names, re-read and re-hashed by every run); those are no longer read for fixed regions
(``radclr radiomics extract`` still keeps its rows there). Deleting ``radiomics/`` reclaims their space.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from radclr.boxes import Box
from radclr.radiomics.regions import RegionRadiomics
from radclr.safe_write import build_once, publish, remove_leftovers, temporary_name, writable_dir

__all__ = ["FIXED_FOLDER", "cached_fixed_radiomics", "fixed_key", "regions_digest"]

log = logging.getLogger(__name__)
FIXED_FOLDER = "radiomics-fixed"
FIXED_VERSION = 1
ROWS = ("all", "boxed")


def regions_digest(regions: list[list[Box]] | None) -> str:
    """SHA-1 of every image's region (its boxes in store pixels, in order; None: the whole image of every one)."""
    h = hashlib.sha1()
    if regions is None:
        h.update(b"whole-image")
        return h.hexdigest()
    for boxes in regions:
        h.update(";".join(f"{b.x!r},{b.y!r},{b.w!r},{b.h!r}" for b in boxes).encode())
        h.update(b"\n")
    return h.hexdigest()


def fixed_key(store_key: str, regions_hash: str, config_key: str, rows: str) -> str:
    """16-hex key of one fixed-radiomics array."""
    blob = f"v{FIXED_VERSION}|{store_key}|{regions_hash}|{config_key}|{rows}"
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def cached_fixed_radiomics(service: RegionRadiomics, images, store_key: str, regions: list[list[Box]] | None,
                           image_ids: list[str], cache_dir: str | Path, *, rows: str = "all",
                           progress: bool = True) -> np.ndarray:
    """float64 ``[N, R]`` fixed-region radiomics of ``images`` (a store's array), read from or built into the
    cache folder (see module docstring). ``regions``: per image its boxes (store pixels; empty = whole image),
    or None for the whole image of every image."""
    if rows not in ROWS:
        raise ValueError(f"rows must be one of {ROWS}, got {rows!r}")
    folder = writable_dir(Path(cache_dir) / FIXED_FOLDER, "cache folder (data.cache_dir or RADCLR_CACHE)")
    n = len(images)
    reg = regions_digest(regions)
    keys = {r: fixed_key(store_key, reg, service.config_key, r) for r in ROWS}
    wanted = ["all", "boxed"] if rows == "boxed" else ["all"]

    def ready():
        for r in wanted:
            hit = _read(folder / f"{keys[r]}.npy", service.names, n)
            if hit is not None:
                return hit
        return None

    def build():
        path = folder / f"{keys[rows]}.npy"
        remove_leftovers(path)
        remove_leftovers(path.with_suffix(".json"))
        boxed = np.asarray([bool(regions[i]) for i in range(n)] if regions is not None else [False] * n)
        todo = np.arange(n) if rows == "all" else np.flatnonzero(boxed)
        out = None
        if rows == "all":  # rows a "boxed" array already holds are not computed again
            part = _read(folder / f"{keys['boxed']}.npy", service.names, n)
            if part is not None:
                done = ~np.isnan(part).all(axis=1) & boxed
                out, todo = part, np.flatnonzero(~done)
        log.info("fixed-region radiomics: %d of %d image(s) to compute (%s rows) -> %s", len(todo), n, rows, path)
        values = service.fixed(images, regions, rows=todo, progress=progress, image_ids=image_ids)
        if out is not None:
            kept = np.ones(n, dtype=bool)
            kept[todo] = False
            values[kept] = out[kept]
        _write(path, values, service.names, image_ids, rows=rows, computed=int(len(todo) if out is None else n),
               store_key=store_key)
        return values

    return build_once(ready, build, folder / f".{keys[rows]}.lock", f"fixed-region radiomics {keys[rows]}")


def _read(path: Path, names: list[str], n: int) -> np.ndarray | None:
    meta_path = path.with_suffix(".json")
    if not (path.exists() and meta_path.exists()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        values = np.load(path)
        if meta.get("names") == list(names) and values.shape == (n, len(names)) and values.dtype == np.float64:
            return values
    except (ValueError, OSError, json.JSONDecodeError):
        pass
    log.warning("fixed-region radiomics %s is unreadable or stale; recomputing it", path)
    return None


def _write(path: Path, values: np.ndarray, names: list[str], image_ids: list[str], **info) -> None:
    """Array first, then its JSON (the JSON's presence marks a complete pair), each through a temporary name."""
    tmp = temporary_name(path)
    meta_path = path.with_suffix(".json")
    tmp_meta = temporary_name(meta_path)
    try:
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(values, dtype=np.float64))
        tmp_meta.write_text(json.dumps({"names": list(names), "image_ids": [str(i) for i in image_ids],
                                        "n": len(values), **info}))
        meta_path.unlink(missing_ok=True)
        publish(tmp, path)
        publish(tmp_meta, meta_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        tmp_meta.unlink(missing_ok=True)
        raise
