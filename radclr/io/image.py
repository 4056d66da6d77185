"""The in-memory image every reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class LoadedImage:
    """A decoded image.

    array: ``float32``, ``[H, W]`` for 2-D images or ``[D, H, W]`` for volumes, in the file's own intensity
        scale after modality transforms (8-bit PNG -> 0..255, 16-bit PNG -> 0..65535, DICOM -> rescaled and
        windowed, MONOCHROME1 inverted so that bright = dense).
    spacing: pixel spacing in mm in array-axis order (``(row, col)`` or ``(slice, row, col)``), or None.
    source: the file it came from.
    meta: reader-specific facts worth keeping (bit depth, photometric interpretation, original mode ...).
    """

    array: np.ndarray
    spacing: tuple[float, ...] | None
    source: str
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)
