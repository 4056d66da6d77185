"""Deterministic test-time preprocessing: image in its file's intensity scale -> ``[C, S, S]`` in [0, 1].

Intensity normalisation (``intensity=``):

* ``"fixed"`` (default): ``x / max_value`` clipped to [0, 1] -- e.g. ``max_value=255`` for 8-bit PNG/JPEG
  (radclr's shared data), 65535 for 16-bit PNG. Keeps the absolute grey levels of the file.
* ``"minmax"``: per-image ``(x - min) / (max - min)``; a constant image becomes all zeros.
* ``"percentile"``: per-image window ``[p_lo, p_hi]`` percentiles (default 0.5 / 99.5) mapped to [0, 1] and
  clipped -- robust to burnt-in text and outliers in DICOM/16-bit images; constant -> zeros.

Resizing: to ``size`` (int -> square, or ``(H, W)``), bilinear with antialiasing when shrinking (a 1024 px CXR to
224 px would alias otherwise); the aspect ratio is not kept (as the seeds' fixed-size inputs). Masks are resized
with nearest neighbour and boxes are scaled with the image (see :meth:`Preprocess.apply`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from radclr.errors import DataError
from radclr.transforms.base import Transform
from radclr.transforms.sample import Sample


def normalise_intensity(image: torch.Tensor, intensity: str = "fixed", max_value: float = 255.0,
                        percentiles=(0.5, 99.5)) -> torch.Tensor:
    """Map a float image to [0, 1] with one of the module's policies."""
    if not torch.isfinite(image).all():
        raise DataError("image contains NaN or infinite values; cannot normalise its intensity")
    if intensity == "fixed":
        return (image / float(max_value)).clamp(0.0, 1.0)
    if intensity == "minmax":
        lo, hi = image.min(), image.max()
    elif intensity == "percentile":
        q = torch.tensor([percentiles[0] / 100.0, percentiles[1] / 100.0], dtype=image.dtype, device=image.device)
        if image.numel() < 2 ** 24:
            lo, hi = torch.quantile(image.flatten().to(q.dtype), q)
        else:  # torch.quantile refuses > 2^24 elements (large DR/DICOM images); numpy's linear rule is the same
            lo, hi = (torch.tensor(v, dtype=image.dtype, device=image.device)
                      for v in np.quantile(image.detach().flatten().cpu().numpy(), q.cpu().numpy()))
    else:
        raise ValueError(f"intensity must be 'fixed', 'minmax' or 'percentile', got {intensity!r}")
    if hi <= lo:
        return torch.zeros_like(image)
    return ((image - lo) / (hi - lo)).clamp(0.0, 1.0)


class Preprocess(Transform):
    """``apply(Sample)`` / ``__call__(image)``: normalise intensity, then resize to ``size``.

    Accepts ``[H, W]`` or ``[C, H, W]`` arrays or tensors (NumPy is converted; integer dtypes become float32).
    """

    def __init__(self, size=224, intensity: str = "fixed", max_value: float = 255.0, percentiles=(0.5, 99.5)):
        if intensity not in ("fixed", "minmax", "percentile"):
            raise ValueError(f"Preprocess: intensity must be 'fixed', 'minmax' or 'percentile', got {intensity!r}")
        if intensity == "fixed" and not max_value > 0:
            raise ValueError(f"Preprocess: max_value must be > 0, got {max_value}")
        self.size = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.intensity, self.max_value, self.percentiles = intensity, float(max_value), tuple(percentiles)

    @staticmethod
    def as_chw(image) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(image)) if isinstance(image, np.ndarray) else torch.as_tensor(image)
        if x.dim() == 2:
            x = x.unsqueeze(0)
        if x.dim() != 3:
            raise ValueError(f"Preprocess expects an image [H, W] or [C, H, W], got shape {tuple(x.shape)}")
        return x.float() if not x.is_floating_point() else x

    def apply(self, sample: Sample, generator=None) -> Sample:
        h, w = sample.size
        image = normalise_intensity(sample.image, self.intensity, self.max_value, self.percentiles)
        S_h, S_w = self.size
        if (h, w) != (S_h, S_w):
            image = F.interpolate(image.unsqueeze(0), size=(S_h, S_w), mode="bilinear", align_corners=False,
                                  antialias=S_h < h or S_w < w)[0]
        mask = sample.mask
        if mask is not None and (h, w) != (S_h, S_w):
            m = (mask if mask.dim() == 3 else mask.unsqueeze(0)).unsqueeze(0).float()
            m = F.interpolate(m, size=(S_h, S_w), mode="nearest")[0]
            mask = (m if mask.dim() == 3 else m[0]).to(mask.dtype)
        boxes = sample.boxes
        if boxes is not None:
            scale = torch.tensor([S_w / w, S_h / h, S_w / w, S_h / h], dtype=boxes.dtype, device=boxes.device)
            boxes = boxes * scale
        return Sample(image.contiguous(), mask, boxes, sample.kept)

    def __call__(self, image, generator=None) -> torch.Tensor:
        return self.apply(Sample(self.as_chw(image)), generator).image
