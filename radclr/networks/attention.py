"""ResNet-18 with residual attention modules: seed 000's "ResNet-18Att" (seed 000 §3, §4.2).

Seed 000 uses the Residual Attention Network of Wang et al. (CVPR 2017, "Residual Attention Network for Image
Classification") on a ResNet-18-sized backbone. An attention module has a *trunk* branch T(x) and a soft *mask*
branch M(x) in (0, 1) computed from the same input x by a bottom-up (max-pool + residual units) / top-down
(interpolation + residual units, with skip connections) hourglass ending in BN-ReLU-1x1conv-BN-ReLU-1x1conv-
sigmoid; the module outputs the *attention residual* (1 + M(x)) * T(x) (Wang et al. eq. 3).

What radclr does (an adaptation; the seed gives no architecture details beyond the name):

* the trunk of the attention module at stage s is ResNet-18's own stage ``layer{s}`` (two basic blocks), so the
  backbone keeps torchvision's parameter names and ImageNet weights load into it unchanged;
* the mask branch of stage s takes the *stage input* (as in Wang et al., both branches see the same x) and
  is upsampled to the trunk's output size; its depth (number of max-pool levels) defaults to 3 / 2 / 1 for
  stages 1 / 2 / 3, i.e. 2 / 1 / 0 skip connections as in Wang et al.'s Attention-56 stages 1-3;
* modules sit on stages 1-3 by default (none on the last stage, as in Wang et al.); stage 4 is not allowed so
  that ``forward_features`` stays the output of ``backbone.layer4`` (the Grad-CAM target);
* the residual units are MONAI ``ResNetBlock`` (post-activation basic blocks) instead of pre-activation
  bottlenecks.

The masks of the last forward pass are kept (detached) for figures: :meth:`AttentionResNetEncoder.attention_maps`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.nets.resnet import ResNetBlock

from radclr.errors import ConfigError
from radclr.networks.encoders import ResNetEncoder


def _unit(in_ch: int, out_ch: int) -> ResNetBlock:
    down = None
    if in_ch != out_ch:
        down = nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel_size=1, bias=False), nn.BatchNorm2d(out_ch))
    return ResNetBlock(in_ch, out_ch, spatial_dims=2, downsample=down)


class SoftMaskBranch(nn.Module):
    """Bottom-up top-down soft mask M(x) in (0, 1) with ``depth`` max-pool levels (Wang et al. 2017 §3.2)."""

    def __init__(self, in_channels: int, out_channels: int, depth: int) -> None:
        super().__init__()
        if depth < 1:
            raise ConfigError(f"attention mask depth must be >= 1, got {depth}")
        self.down = nn.ModuleList([_unit(in_channels if i == 0 else out_channels, out_channels) for i in range(depth)])
        self.skips = nn.ModuleList([_unit(out_channels, out_channels) for _ in range(depth - 1)])
        self.up = nn.ModuleList([_unit(out_channels, out_channels) for _ in range(depth - 1)])
        self.head = nn.Sequential(
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True), nn.Conv2d(out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True), nn.Conv2d(out_channels, out_channels, 1),
            nn.Sigmoid(),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        h, skips = x, []
        for i, unit in enumerate(self.down):  # bottom-up
            h = unit(F.max_pool2d(h, kernel_size=3, stride=2, padding=1))
            if i < len(self.skips):
                skips.append(self.skips[i](h))
        for i in reversed(range(len(self.up))):  # top-down with skip connections
            h = F.interpolate(h, size=skips[i].shape[-2:], mode="bilinear", align_corners=False) + skips[i]
            h = self.up[i](h)
        h = F.interpolate(h, size=tuple(size), mode="bilinear", align_corners=False)
        return self.head(h)


_STAGE_CHANNELS = {1: (64, 64), 2: (64, 128), 3: (128, 256)}


class AttentionResNetEncoder(ResNetEncoder):
    """ResNet-18 whose stages ``attention_stages`` output (1 + M) * T (seed 000 "ResNet-18Att")."""

    feature_layer = "backbone.layer4"

    def __init__(self, *, in_channels: int = 1, attention_stages=(1, 2, 3), mask_depths=None,
                 conv1_t_size: int = 7, conv1_t_stride: int = 2, no_max_pool: bool = False) -> None:
        super().__init__("basic", [2, 2, 2, 2], in_channels=in_channels, spatial_dims=2, conv1_t_size=conv1_t_size,
                         conv1_t_stride=conv1_t_stride, no_max_pool=no_max_pool)
        stages = tuple(sorted({int(s) for s in attention_stages}))
        if not stages or any(s not in _STAGE_CHANNELS for s in stages):
            raise ConfigError(f"attention_stages must be a non-empty subset of (1, 2, 3), got {attention_stages!r}")
        default_depth = {1: 3, 2: 2, 3: 1}
        if mask_depths is None:
            depths = [default_depth[s] for s in stages]
        else:
            depths = [int(d) for d in mask_depths]
            if len(depths) != len(stages):
                raise ConfigError(f"mask_depths {mask_depths!r} must give one depth per attention stage {stages}")
        self.attention_stages = stages
        self.attention = nn.ModuleDict({
            f"layer{s}": SoftMaskBranch(*_STAGE_CHANNELS[s], depth=d) for s, d in zip(stages, depths)
        })
        self._masks: dict[str, torch.Tensor] = {}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.stem(x)
        masks = {}
        for s in (1, 2, 3, 4):
            name = f"layer{s}"
            trunk = getattr(self.backbone, name)(x)
            if name in self.attention:
                m = self.attention[name](x, trunk.shape[-2:])
                masks[name] = m.detach()
                trunk = (1.0 + m) * trunk  # attention residual learning, Wang et al. eq. (3)
            x = trunk
        self._masks = masks
        return x

    def attention_maps(self, channel_mean: bool = True) -> dict[str, torch.Tensor]:
        """Soft masks M of the last forward pass, ``{"layer1": [B, 1 or C, h, w], ...}`` (detached).

        ``channel_mean=True`` averages the per-channel masks into one spatial map per image (for overlays).
        Empty before the first forward.
        """
        if channel_mean:
            return {k: v.mean(dim=1, keepdim=True) for k, v in self._masks.items()}
        return dict(self._masks)
