"""Geometric transforms applied identically to image, mask and boxes (one resampling each).

Every geometric transform is an affine map ``A`` (3x3) from *output* pixel coordinates to *input* pixel
coordinates (continuous coordinates: pixel (i, j) covers ``[j, j+1] x [i, i+1]``). The image is resampled
with ``grid_sample`` (bilinear; border padding for crops, zero fill for rotations), the mask with nearest
neighbour, and each box's four corners are mapped with ``A^-1``; the box becomes the axis-aligned box around
them, clipped to the output image. A box whose clipped width or height is below ``min_box_size`` pixels, or
which keeps no more than ``min_visibility`` of its transformed area, is dropped (``Sample.kept`` records which
boxes survive).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from radclr.transforms.base import RandomTransform, uniform
from radclr.transforms.sample import Sample


def _norm(h: int, w: int) -> torch.Tensor:
    """Pixel coordinates -> grid_sample's normalised coordinates (align_corners=False)."""
    return torch.tensor([[2.0 / w, 0.0, -1.0], [0.0, 2.0 / h, -1.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def transform_boxes(boxes: torch.Tensor, forward: torch.Tensor, out_hw: tuple[int, int], *,
                    min_visibility: float = 0.0, min_box_size: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Map ``[K, 4]`` xywh boxes with the 3x3 ``forward`` (input -> output) map; returns (boxes, keep mask)."""
    if boxes.numel() == 0:
        return boxes.reshape(0, 4), torch.zeros(0, dtype=torch.bool, device=boxes.device)
    b = boxes.double()
    forward = forward.to(device=b.device, dtype=torch.float64)
    x0, y0, x1, y1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    corners = torch.stack([torch.stack([x0, y0]), torch.stack([x1, y0]), torch.stack([x0, y1]),
                           torch.stack([x1, y1])], dim=0)  # [4, 2, K]
    ones = torch.ones_like(corners[:, :1])
    mapped = torch.einsum("ij,cjk->cik", forward, torch.cat([corners, ones], dim=1))[:, :2]  # [4, 2, K]
    lo, hi = mapped.min(dim=0).values, mapped.max(dim=0).values  # [2, K]
    area = (hi[0] - lo[0]) * (hi[1] - lo[1])
    h, w = out_hw
    cx0, cy0 = lo[0].clamp(0, w), lo[1].clamp(0, h)
    cx1, cy1 = hi[0].clamp(0, w), hi[1].clamp(0, h)
    cw, ch = cx1 - cx0, cy1 - cy0
    visible = (cw * ch) / area.clamp_min(1e-12)
    keep = (cw >= min_box_size) & (ch >= min_box_size) & (visible > min_visibility)
    out = torch.stack([cx0, cy0, cw, ch], dim=1).float()
    return out[keep], keep


def warp(sample: Sample, A: torch.Tensor, out_hw: tuple[int, int], *, min_visibility: float = 0.0,
         min_box_size: float = 1.0, image_mode: str = "bilinear", padding: str = "border") -> Sample:
    """Resample ``sample`` with the output->input pixel map ``A`` (3x3) to size ``out_hw``.

    ``padding``: ``"border"`` (default: crops inside the image; the outermost half pixel repeats the edge
    instead of fading to 0) or ``"zeros"`` (rotation: corners that come from outside the image are 0).
    """
    h_in, w_in = sample.size
    h, w = out_hw
    theta = (_norm(h_in, w_in) @ A.double() @ torch.linalg.inv(_norm(h, w)))[:2]
    img = sample.image
    grid = F.affine_grid(theta.to(img.dtype).unsqueeze(0), [1, img.shape[0], h, w], align_corners=False)
    image = F.grid_sample(img.unsqueeze(0), grid.to(img.device), mode=image_mode, padding_mode=padding,
                          align_corners=False)[0]
    mask = None
    if sample.mask is not None:
        m = sample.mask
        m3 = (m if m.dim() == 3 else m.unsqueeze(0)).unsqueeze(0).float()
        mg = grid.to(m.device)
        warped = F.grid_sample(m3, mg, mode="nearest", padding_mode=padding, align_corners=False)[0]
        warped = warped if m.dim() == 3 else warped[0]
        mask = warped.to(m.dtype)
    boxes, kept = sample.boxes, sample.kept
    if boxes is not None:
        boxes, keep = transform_boxes(boxes, torch.linalg.inv(A.double()), (h, w), min_visibility=min_visibility,
                                      min_box_size=min_box_size)
        kept = sample.kept[keep.to(sample.kept.device)]
    return Sample(image, mask, boxes, kept)


def crop_matrix(x0: float, y0: float, cw: float, ch: float, out_hw: tuple[int, int]) -> torch.Tensor:
    """Output pixel -> input pixel map for cropping ``[x0, x0+cw] x [y0, y0+ch]`` and resizing to ``out_hw``."""
    h, w = out_hw
    return torch.tensor([[cw / w, 0.0, x0], [0.0, ch / h, y0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def rotation_matrix(degrees: float, hw: tuple[int, int]) -> torch.Tensor:
    """Output -> input map of a rotation by ``degrees`` (counter-clockwise on screen) about the image centre."""
    h, w = hw
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    cx, cy = w / 2.0, h / 2.0
    # with y pointing down, output->input by R(+t) turns the content counter-clockwise on screen
    R = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    T = torch.tensor([[1.0, 0.0, cx], [0.0, 1.0, cy], [0.0, 0.0, 1.0]], dtype=torch.float64)
    Ti = torch.tensor([[1.0, 0.0, -cx], [0.0, 1.0, -cy], [0.0, 0.0, 1.0]], dtype=torch.float64)
    return T @ R @ Ti


def _size(size, hw) -> tuple[int, int]:
    if size is None:
        return hw
    if isinstance(size, int):
        return (size, size)
    return (int(size[0]), int(size[1]))


class RandomResizedCrop(RandomTransform):
    """Random crop with area fraction in ``scale`` and aspect ratio in ``ratio``, resized to ``size``.

    Seed 003's "resized crop" with a CXR-safe default ``scale=(0.6, 1.0)``: at least 60 % of the image stays
    (seed 001 §3.1: findings are small and local; a tight crop can cut the lesion away). ``contain_boxes``
    only accepts crops that contain every box (falls back to the whole image after ``attempts`` tries).
    ``size=None`` keeps the input size; an int means square.
    """

    def __init__(self, size=None, scale=(0.6, 1.0), ratio=(3 / 4, 4 / 3), *, contain_boxes: bool = False,
                 attempts: int = 10, min_visibility: float = 0.0) -> None:
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"RandomResizedCrop: scale must satisfy 0 < lo <= hi <= 1, got {scale}")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"RandomResizedCrop: ratio must satisfy 0 < lo <= hi, got {ratio}")
        self.size, self.scale, self.ratio = size, tuple(scale), tuple(ratio)
        self.contain_boxes, self.attempts, self.min_visibility = contain_boxes, int(attempts), min_visibility

    def params(self, sample: Sample, g: torch.Generator) -> tuple[float, float, float, float]:
        h, w = sample.size
        union = None
        if self.contain_boxes and sample.boxes is not None and sample.boxes.shape[0]:
            b = sample.boxes
            union = (float(b[:, 0].min()), float(b[:, 1].min()), float((b[:, 0] + b[:, 2]).max()),
                     float((b[:, 1] + b[:, 3]).max()))
        log_r = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(self.attempts):
            area = h * w * uniform(g, *self.scale)
            r = math.exp(uniform(g, *log_r))
            cw, ch = round(math.sqrt(area * r)), round(math.sqrt(area / r))
            if not (0 < cw <= w and 0 < ch <= h):
                continue
            xlo, xhi, ylo, yhi = 0.0, float(w - cw), 0.0, float(h - ch)
            if union is not None:
                xlo, xhi = max(xlo, math.ceil(union[2] - cw)), min(xhi, math.floor(union[0]))
                ylo, yhi = max(ylo, math.ceil(union[3] - ch)), min(yhi, math.floor(union[1]))
                if xlo > xhi or ylo > yhi:
                    continue
            x0 = xlo + math.floor(uniform(g, 0.0, 1.0) * (xhi - xlo + 1))
            y0 = ylo + math.floor(uniform(g, 0.0, 1.0) * (yhi - ylo + 1))
            return float(min(x0, xhi)), float(min(y0, yhi)), float(cw), float(ch)
        return 0.0, 0.0, float(w), float(h)  # fallback: the whole image

    def apply(self, sample: Sample, generator: torch.Generator) -> Sample:
        g = self.need(generator)
        x0, y0, cw, ch = self.params(sample, g)
        out = _size(self.size, sample.size)
        return warp(sample, crop_matrix(x0, y0, cw, ch, out), out, min_visibility=self.min_visibility)


class RandomRotation(RandomTransform):
    """Rotation by an angle uniform in ``[-degrees, degrees]`` about the centre (default +-10 degrees: small, CXR
    anatomy stays upright), applied with probability ``p``; corners are filled with 0."""

    def __init__(self, degrees: float = 10.0, p: float = 1.0, *, min_visibility: float = 0.0) -> None:
        if degrees < 0:
            raise ValueError(f"RandomRotation: degrees must be >= 0, got {degrees}")
        self.degrees, self.p, self.min_visibility = float(degrees), float(p), min_visibility

    def apply(self, sample: Sample, generator: torch.Generator) -> Sample:
        g = self.need(generator)
        if uniform(g, 0.0, 1.0) >= self.p:
            return sample
        angle = uniform(g, -self.degrees, self.degrees)
        return warp(sample, rotation_matrix(angle, sample.size), sample.size, min_visibility=self.min_visibility,
                    padding="zeros")


class RandomHorizontalFlip(RandomTransform):
    """Left-right flip with probability ``p``. Not in the default CXR pipeline: it swaps the anatomy (heart on
    the right), which is why seed 003's flip is off by default in radclr."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = float(p)

    def apply(self, sample: Sample, generator: torch.Generator) -> Sample:
        g = self.need(generator)
        if uniform(g, 0.0, 1.0) >= self.p:
            return sample
        h, w = sample.size
        A = torch.tensor([[-1.0, 0.0, float(w)], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
        return warp(sample, A, sample.size)
