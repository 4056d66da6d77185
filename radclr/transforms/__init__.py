"""CXR-safe augmentations and deterministic preprocessing on torch tensors ``[C, H, W]``.

Random transforms take an explicit ``torch.Generator`` (never the global RNG). ``t(image, generator=g)``
transforms an image; ``t.apply(Sample(image, mask, boxes), g)`` moves mask and boxes identically.
"""

from radclr.transforms.base import Compose, RandomTransform, Transform, uniform
from radclr.transforms.geometric import (
                                         RandomHorizontalFlip,
                                         RandomResizedCrop,
                                         RandomRotation,
                                         crop_matrix,
                                         rotation_matrix,
                                         transform_boxes,
                                         warp,
)
from radclr.transforms.intensity import BrightnessContrast, GaussianBlur, gaussian_blur
from radclr.transforms.preprocess import Preprocess, normalise_intensity
from radclr.transforms.presets import CXRAugment
from radclr.transforms.roi import ROICrop, mean_box_size
from radclr.transforms.sample import Sample

__all__ = [
    "Transform", "RandomTransform", "Compose", "uniform", "Sample",
    "RandomResizedCrop", "RandomRotation", "RandomHorizontalFlip", "warp", "transform_boxes", "crop_matrix",
    "rotation_matrix", "GaussianBlur", "BrightnessContrast", "gaussian_blur", "Preprocess", "normalise_intensity",
    "CXRAugment", "ROICrop", "mean_box_size",
]
