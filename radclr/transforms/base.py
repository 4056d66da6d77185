"""Transform protocol: ``apply(sample, generator) -> Sample``; ``t(image, generator=g) -> image``.

All randomness comes from the explicit ``torch.Generator`` argument -- never from the global RNG -- so the
training engine can derive one generator per (seed, epoch, sample, view) and make data loading reproducible
and resumable regardless of worker count.
"""

from __future__ import annotations

import torch

from radclr.transforms.sample import Sample


def uniform(g: torch.Generator, lo: float, hi: float) -> float:
    """A float uniform in ``[lo, hi)`` drawn from ``g``."""
    return float(lo) + (float(hi) - float(lo)) * float(torch.rand((), generator=g, dtype=torch.float64))


class Transform:
    """Deterministic transform base."""

    def apply(self, sample: Sample, generator: torch.Generator | None = None) -> Sample:
        raise NotImplementedError

    def __call__(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Transform an image alone (``[C, H, W]`` float); use :meth:`apply` for image + mask + boxes."""
        return self.apply(Sample(image), generator).image

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class RandomTransform(Transform):
    """A transform that needs a generator."""

    def need(self, generator: torch.Generator | None) -> torch.Generator:
        if not isinstance(generator, torch.Generator):
            raise ValueError(f"{type(self).__name__} is random and needs an explicit torch.Generator "
                             f"(generator=...), got {type(generator).__name__}")
        return generator


class Compose(Transform):
    """Apply transforms in order, passing the same generator along."""

    def __init__(self, transforms) -> None:
        self.transforms = list(transforms)

    def apply(self, sample: Sample, generator: torch.Generator | None = None) -> Sample:
        for t in self.transforms:
            sample = t.apply(sample, generator)
        return sample

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(t) for t in self.transforms)
        return f"Compose([\n  {inner}\n])"
