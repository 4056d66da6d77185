"""Intensity transforms (image only; masks and boxes pass through unchanged). Seed 003 §III-B's Gaussian blur
and colour jitter, the latter reduced to brightness/contrast for grey-scale CXR."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from radclr.transforms.base import RandomTransform, uniform
from radclr.transforms.sample import Sample


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[C, H, W]`` with std ``sigma`` pixels (kernel radius ceil(3 sigma),
    reflect padding, radius limited by the image size)."""
    c, h, w = image.shape
    radius = max(1, min(int(math.ceil(3.0 * sigma)), h - 1, w - 1))
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    img = image.unsqueeze(1)  # [C, 1, H, W]: channels blurred independently
    img = F.pad(img, (radius, radius, radius, radius), mode="reflect")
    img = F.conv2d(img, k.view(1, 1, 1, -1))
    img = F.conv2d(img, k.view(1, 1, -1, 1))
    return img[:, 0]


class GaussianBlur(RandomTransform):
    """With probability ``p``, blur with sigma uniform in ``sigma`` (pixels)."""

    def __init__(self, sigma=(0.1, 2.0), p: float = 0.5) -> None:
        if not 0 < sigma[0] <= sigma[1]:
            raise ValueError(f"GaussianBlur: sigma must satisfy 0 < lo <= hi, got {sigma}")
        self.sigma, self.p = tuple(sigma), float(p)

    def apply(self, sample: Sample, generator: torch.Generator) -> Sample:
        g = self.need(generator)
        if uniform(g, 0.0, 1.0) >= self.p:
            return sample
        return sample.replace(image=gaussian_blur(sample.image, uniform(g, *self.sigma)))


class BrightnessContrast(RandomTransform):
    """With probability ``p``: ``x <- x * b`` with b uniform in ``[1-brightness, 1+brightness]``, then
    ``x <- (x - mean) * c + mean`` with c uniform in ``[1-contrast, 1+contrast]``; clipped to [0, 1]."""

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2, p: float = 0.8, clip: bool = True) -> None:
        if not (0 <= brightness < 1 and 0 <= contrast < 1):
            raise ValueError(f"BrightnessContrast: brightness and contrast must be in [0, 1), got "
                             f"{brightness}, {contrast}")
        self.brightness, self.contrast, self.p, self.clip = float(brightness), float(contrast), float(p), clip

    def apply(self, sample: Sample, generator: torch.Generator) -> Sample:
        g = self.need(generator)
        if uniform(g, 0.0, 1.0) >= self.p:
            return sample
        b = uniform(g, 1 - self.brightness, 1 + self.brightness)
        c = uniform(g, 1 - self.contrast, 1 + self.contrast)
        x = sample.image * b
        mean = x.mean(dim=(-2, -1), keepdim=True)
        x = (x - mean) * c + mean
        return sample.replace(image=x.clamp(0.0, 1.0) if self.clip else x)
