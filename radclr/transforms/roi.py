"""ROI crops for region-level image views (seed 004 §2.3).

Seed 004: "different sized tumor areas are resized to the average size and then normalized to [0, 1]. In
addition, we apply an augmentation which is random cropping followed by resize back to the original size."
:class:`ROICrop` does both in one resampling: the box (optionally enlarged by ``margin`` and clipped to the
image) is mapped to ``output_size`` (the mean ROI size of the training set, see :func:`mean_box_size`); with a
generator, a random sub-crop of area fraction ``crop_scale`` (same aspect) is taken from it and resized back to
``output_size``. Without a generator (evaluation) only the deterministic ROI crop is done.
"""

from __future__ import annotations

import math

import torch

from radclr.boxes import as_box_array, box_xywh, clip_box
from radclr.errors import DataError
from radclr.transforms.base import Transform, uniform
from radclr.transforms.geometric import crop_matrix, warp
from radclr.transforms.sample import Sample


def mean_box_size(boxes) -> tuple[int, int]:
    """Mean ``(h, w)`` (rounded, >= 1) of boxes given as ``[K, 4]`` xywh or a list of boxes."""
    b = as_box_array(boxes)
    if b.shape[0] == 0:
        raise DataError("mean_box_size: no boxes given")
    return max(1, round(float(b[:, 3].mean()))), max(1, round(float(b[:, 2].mean())))


class ROICrop(Transform):
    """``roi(image [C, H, W], box, generator=None) -> [C, out_h, out_w]``; ``box`` is x, y, w, h pixels.

    ``output_size``: int (square) or ``(h, w)`` -- the mean ROI size of the training split.
    """

    def __init__(self, output_size, crop_scale=(0.7, 1.0), margin: float = 0.0) -> None:
        size = output_size
        self.size = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
        if min(self.size) < 1:
            raise ValueError(f"ROICrop: output_size must be positive, got {output_size}")
        if not 0 < crop_scale[0] <= crop_scale[1] <= 1:
            raise ValueError(f"ROICrop: crop_scale must satisfy 0 < lo <= hi <= 1, got {crop_scale}")
        if margin < 0:
            raise ValueError(f"ROICrop: margin must be >= 0, got {margin}")
        self.crop_scale, self.margin = tuple(crop_scale), float(margin)

    def region(self, box, hw: tuple[int, int]) -> tuple[float, float, float, float]:
        """The clipped, margin-enlarged box ``(x0, y0, w, h)``; DataError if nothing of it is in the image."""
        x, y, w, h = box_xywh(box.detach().cpu().reshape(4) if torch.is_tensor(box) else box)
        x, y, w, h = x - self.margin * w, y - self.margin * h, w * (1 + 2 * self.margin), h * (1 + 2 * self.margin)
        H, W = hw
        clipped = clip_box(x, y, w, h, H, W)
        if clipped is None:
            raise DataError(f"ROI box {(x, y, w, h)} has no area inside the {W}x{H} image")
        return clipped

    def apply(self, sample: Sample, generator: torch.Generator | None = None, *, box=None) -> Sample:
        if box is None:
            raise ValueError("ROICrop.apply needs box=(x, y, w, h)")
        x0, y0, bw, bh = self.region(box, sample.size)
        if generator is not None:
            f = math.sqrt(uniform(generator, *self.crop_scale))
            cw, ch = bw * f, bh * f
            x0 += uniform(generator, 0.0, 1.0) * (bw - cw)
            y0 += uniform(generator, 0.0, 1.0) * (bh - ch)
            bw, bh = cw, ch
        return warp(sample, crop_matrix(x0, y0, bw, bh, self.size), self.size)

    def __call__(self, image: torch.Tensor, box, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.apply(Sample(image), generator, box=box).image
