"""What a transform works on: an image with the mask and boxes that travel with it."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from radclr.boxes import as_box_array


@dataclass
class Sample:
    """An image ``[C, H, W]`` (float, normally in [0, 1]) with optional aligned annotations.

    mask: ``[Cm, H, W]`` or ``[H, W]`` (any dtype; resampled with nearest neighbour), or None.
    boxes: ``[K, 4]`` float ``x, y, w, h`` in pixels of ``image`` (continuous coordinates: the image spans
        ``[0, W] x [0, H]``), or a list of :class:`~radclr.boxes.Box`, or None.
    kept: ``[K']`` long, for each box in ``boxes`` the index of the box it came from in the *original* input
        (transforms drop boxes that leave the image; ``kept`` says which survived).
    """

    image: torch.Tensor
    mask: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    kept: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if not torch.is_tensor(self.image) or self.image.dim() != 3 or not self.image.is_floating_point():
            shape = tuple(self.image.shape) if torch.is_tensor(self.image) else type(self.image).__name__
            raise ValueError(f"Sample.image must be a float tensor [C, H, W], got {shape}")
        h, w = self.image.shape[-2:]
        if self.mask is not None and (self.mask.dim() not in (2, 3) or tuple(self.mask.shape[-2:]) != (h, w)):
            raise ValueError(f"Sample.mask must be [H, W] or [Cm, H, W] with H, W = {h}, {w}, "
                             f"got {tuple(self.mask.shape)}")
        if self.boxes is not None:
            b = self.boxes
            if isinstance(b, (list, tuple)) and b and hasattr(b[0], "x"):
                b = as_box_array(b)
            b = torch.as_tensor(b, dtype=torch.float32)
            if b.numel() == 0:
                b = b.reshape(0, 4)
            if b.dim() != 2 or b.shape[1] != 4:
                raise ValueError(f"Sample.boxes must be [K, 4] (x, y, w, h), got {tuple(b.shape)}")
            self.boxes = b
            if self.kept is None:
                self.kept = torch.arange(b.shape[0], device=b.device)

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)``."""
        return int(self.image.shape[-2]), int(self.image.shape[-1])

    def replace(self, **kw) -> "Sample":
        return replace(self, **kw)
