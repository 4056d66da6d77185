"""The default CXR-safe augmentation pipeline (seed 003 §III-B minus flips; seed 001 §3.1 caution)."""

from __future__ import annotations

from radclr.errors import ConfigError
from radclr.transforms.base import Compose
from radclr.transforms.geometric import RandomHorizontalFlip, RandomResizedCrop, RandomRotation
from radclr.transforms.intensity import BrightnessContrast, GaussianBlur


class CXRAugment(Compose):
    """Random resized crop (area >= ``min_area``) -> rotation (+-``rotation`` deg) -> [flip, off by default]
    -> Gaussian blur (p ``blur_p``) -> brightness/contrast (p ``jitter_p``).

    Seed 003 §III-B lists resized crop, horizontal flip, rotation, Gaussian blur and colour jitter. radclr keeps
    the crop large (findings are small and local, seed 001 §3.1), the rotation small, the jitter to
    brightness/contrast (grey images) and the flip off (it puts the heart on the right). Geometric steps move
    masks and boxes with the image (``apply(Sample, generator)``). ``size=None`` keeps the input size.

    ``crop=False`` leaves the random resized crop out: seed 004's ROI view (``radiomics.region: roi_crop``) takes
    its one random crop inside the ROI crop itself (:class:`radclr.transforms.roi.ROICrop`), and
    ``augment: {crop: false, rotation: 0, blur_p: 0, jitter_p: 0}`` is then exactly the paper's pipeline.

    Unknown or invalid options (e.g. from a config's ``augment:`` section) raise
    :class:`~radclr.errors.ConfigError` naming them.
    """

    def __init__(self, size=None, *, crop: bool = True, min_area: float = 0.6, ratio=(3 / 4, 4 / 3),
                 rotation: float = 10.0, blur_p: float = 0.5, blur_sigma=(0.1, 2.0), brightness: float = 0.2,
                 contrast: float = 0.2, jitter_p: float = 0.8, hflip: bool = False, contain_boxes: bool = False,
                 min_visibility: float = 0.0, **unknown) -> None:
        if unknown:
            raise ConfigError(f"augment: unknown option(s) {sorted(unknown)}; accepted: size, crop, min_area, ratio, "
                              "rotation, blur_p, blur_sigma, brightness, contrast, jitter_p, hflip, contain_boxes, "
                              "min_visibility")
        try:
            steps = [RandomResizedCrop(size, scale=(float(min_area), 1.0), ratio=tuple(ratio),
                                       contain_boxes=bool(contain_boxes), min_visibility=float(min_visibility))] \
                if bool(crop) else []
            if rotation > 0:
                steps.append(RandomRotation(float(rotation), min_visibility=float(min_visibility)))
            if hflip:
                steps.append(RandomHorizontalFlip(0.5))
            if blur_p > 0:
                steps.append(GaussianBlur(tuple(blur_sigma), p=float(blur_p)))
            if jitter_p > 0 and (brightness > 0 or contrast > 0):
                steps.append(BrightnessContrast(float(brightness), float(contrast), p=float(jitter_p)))
        except (ValueError, TypeError) as e:
            raise ConfigError(f"augment: {e}") from None
        super().__init__(steps)
