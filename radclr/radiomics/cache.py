"""On-disk cache of radiomics feature rows: re-runs of ``radclr radiomics extract`` are instant.

A row is keyed by everything that determines it: the image *content* (hash of its pixels and spacing -- a renamed
or re-encoded but identical image hits, an edited one misses), the region (hash of its mask), the extraction
configuration (engine, settings/parameter file, feature classes) and the radclr version. One file per key
under ``ROOT/<2 hex>/<key>.rad``, written atomically; each holds a small JSON header (feature names, SHA-256
checksum of names and values) and the float64 values. A file that cannot be read or whose checksum does not match is reported with a warning,
deleted and recomputed -- a corrupted cache never yields a silent wrong value.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from radclr import __version__

__all__ = ["FeatureCache", "CacheCorruptionWarning", "array_digest", "config_digest"]

log = logging.getLogger(__name__)

_MAGIC = b"RADCLR-RADIOMICS-1"


class CacheCorruptionWarning(UserWarning):
    """A cache entry was unreadable or failed its checksum; it is recomputed."""


def array_digest(array: np.ndarray, *extra) -> str:
    """SHA-256 of an array's dtype, shape and bytes (plus any ``extra`` JSON-able values)."""
    a = np.ascontiguousarray(array)
    h = hashlib.sha256()
    h.update(str(a.dtype).encode())
    h.update(str(a.shape).encode())
    h.update(a.tobytes())
    if extra:
        h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


def mask_digest(mask: np.ndarray) -> str:
    """SHA-256 of a boolean mask (bit-packed)."""
    m = np.ascontiguousarray(mask, dtype=bool)
    return array_digest(np.packbits(m), m.shape)


def config_digest(engine: str, config: dict) -> str:
    """SHA-256 of the extraction configuration (engine, PyRadiomics-style parameters) and the radclr version."""
    blob = json.dumps({"engine": engine, "config": config, "radclr": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _checksum(names: list[str], values: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update("\n".join(names).encode())
    h.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return h.hexdigest()


class FeatureCache:
    """Feature rows on disk under ``root`` (created on first write)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
        self.rebuilt = 0

    @staticmethod
    def key(image_digest: str, region_digest: str, config: str) -> str:
        return hashlib.sha256(f"{image_digest}:{region_digest}:{config}".encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.rad"

    def get(self, key: str) -> tuple[list[str], np.ndarray] | None:
        """``(names, values)`` or None (a miss; a corrupted entry is warned about, removed and counted)."""
        p = self.path(key)
        try:
            blob = p.read_bytes()
        except FileNotFoundError:
            self.misses += 1
            return None
        try:
            magic, header, data = blob.split(b"\n", 2)
            if magic != _MAGIC:
                raise ValueError("not a radclr cache entry")
            meta = json.loads(header)
            names = list(meta["names"])
            values = np.frombuffer(data, dtype="<f8").astype(np.float64)
            if values.shape != (len(names),) or meta["checksum"] != _checksum(names, values):
                raise ValueError("checksum mismatch")
        except Exception as e:  # truncated file, garbage, wrong checksum ...
            warnings.warn(f"radiomics cache entry {p} is corrupted ({e}); recomputing it", CacheCorruptionWarning,
                          stacklevel=2)
            try:
                p.unlink()
            except OSError:
                pass
            self.rebuilt += 1
            self.misses += 1
            return None
        self.hits += 1
        return names, values

    def put(self, key: str, names: list[str], values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.shape != (len(names),):
            raise ValueError(f"values {values.shape} do not match {len(names)} names")
        header = json.dumps({"names": list(names), "checksum": _checksum(list(names), values)}).encode()
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_MAGIC + b"\n" + header + b"\n" + values.astype("<f8").tobytes())
            os.replace(tmp, p)  # atomic: readers see the old entry or the new one, never half a file
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
