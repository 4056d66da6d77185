"""A :class:`FeatureClass` whose per-region matrices are built for groups of regions at a time.

Texture matrices are ``[B, angles, G, G]`` (GLCM) or ``[B, angles, G, runs]`` (GLRLM): tiny for 8-bit images at
binWidth 25 (G <= 11) but large when a region has hundreds of gray levels. Such a class builds its matrices and
coefficients for as many regions at once as fit ``max_elements`` (a Python loop over *groups*, one group for the
usual batch), computes the requested features of that group and frees them before the next.
"""

from __future__ import annotations

from typing import Any

import torch

from radclr.radiomics.base import FeatureClass, RegionBatch
from radclr.radiomics.levels import GrayLevels, gray_levels

__all__ = ["ChunkedFeatureClass", "Group", "precomputed"]


class Group:
    """Regions ``start:stop`` of a batch: their gray-level codes and values, and the batch they come from."""

    def __init__(self, batch: RegionBatch, levels: GrayLevels, start: int, stop: int):
        self.batch = batch
        self.slice = slice(start, stop)
        self.code = levels.code[start:stop]
        self.values = levels.values[start:stop]
        self.counts = levels.counts[start:stop]
        self.size = levels.size
        self.direct = levels.direct
        self.n_gray = batch.n_gray[start:stop]
        self.settings = batch.settings

    def __len__(self) -> int:
        return self.code.shape[0]


def precomputed(batch: RegionBatch, name: str, part: slice = slice(None)):
    """The matrix ``name`` (``"glcm"``, ``"glrlm"``, ``"gldm"``, ``"ngtdm"``, ``"glszm"``, ``"shape2D"``; or the
    values ``"glrlm_features"``) of regions ``part`` when the CPU fast path built it with its compiled kernel
    (``radclr.radiomics.kernel_backend.KernelCounts`` in ``batch.cache["counts"]``), else None -- the class then
    builds it in torch. Tensors are sliced to ``part`` along the region axis; a tuple is sliced item by item."""
    counts = batch.cache.get("counts")
    if counts is None:
        return None
    value = counts.get(name)
    if part == slice(None):
        return value
    return tuple(v[part] for v in value) if isinstance(value, tuple) else value[part]


class ChunkedFeatureClass(FeatureClass):
    """Subclasses implement ``_coefficients(group) -> object`` and ``_elements_per_region(levels) -> int``;
    feature methods read the current group's coefficients from ``self.c``."""

    max_elements: int = 1 << 24  # float64 matrix elements per group (128 MiB)
    # name under which the CPU fast path may provide this class's feature values directly (``{name: [B]}``)
    kernel_features: str | None = None

    def __init__(self, batch: RegionBatch):
        super().__init__(batch)
        self.levels = gray_levels(batch)
        self.c: Any = None
        self.ready = precomputed(batch, self.kernel_features) if self.kernel_features else None
        if self.ready is not None:
            return
        per_region = max(1, int(self._elements_per_region(self.levels)))
        self.group_size = max(1, self.max_elements // per_region)
        if batch.batch_size <= self.group_size:
            self.c = self._coefficients(Group(batch, self.levels, 0, batch.batch_size))

    def _elements_per_region(self, levels: GrayLevels) -> int:
        raise NotImplementedError

    def _coefficients(self, group: Group) -> Any:
        raise NotImplementedError

    def execute(self, names: list[str] | None = None) -> dict[str, torch.Tensor]:
        if self.ready is not None:  # computed by the fast path's kernel (same formulas, tested against these)
            wanted = self.feature_names() if names is None else names
            unknown = sorted(set(wanted) - set(self.ready))
            if unknown:
                raise ValueError(f"{self.name}: unknown feature(s) {unknown}; known: {self.feature_names()}")
            return {n: self.ready[n] for n in wanted}
        B = self.batch.batch_size
        if B <= self.group_size:
            return super().execute(names)
        parts: dict[str, list[torch.Tensor]] = {}
        for start in range(0, B, self.group_size):
            self.c = self._coefficients(Group(self.batch, self.levels, start, min(B, start + self.group_size)))
            for name, value in super().execute(names).items():
                parts.setdefault(name, []).append(value)
        self.c = None
        return {name: torch.cat(values) for name, values in parts.items()}
