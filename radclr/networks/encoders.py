"""Image encoders f_i built from MONAI networks (seed 000 §3, seed 001 §3, seed 003 §III-B, seed 004 §2.3).

Every encoder is an :class:`ImageEncoder`: ``forward_features`` returns the output of the **last convolutional
block** (the Grad-CAM target: seed 001 §3.2 uses ResNet-18 ``layer4``), ``pool`` is global average pooling
(seed 003 Table I, seed 004 §2.3) and ``forward = pool(forward_features(x))`` is the representation y_i.
The classifier / FC layer of the MONAI network is never built: heads live in :mod:`radclr.networks.heads`.

Names (:data:`radclr.networks.factory.ENCODERS`, built by :func:`radclr.networks.build_image_encoder`):

=================  =========================================================================  ==========
name               network                                                                    ``out_dim``
=================  =========================================================================  ==========
``resnet18``       MONAI ``ResNet`` basic blocks [2,2,2,2]                                    512
``resnet34``       MONAI ``ResNet`` basic blocks [3,4,6,3]                                    512
``resnet50``       MONAI ``ResNet`` bottlenecks [3,4,6,3]                                     2048
``wide_resnet50``  MONAI ``ResNet`` with :class:`WideResNetBottleneck` (wide ResNet-50-2)      2048
``densenet121``    MONAI ``DenseNet121`` features + final ReLU                                1024
``resnet18_att``   ResNet-18 + residual attention modules (:mod:`radclr.networks.attention`)  512
=================  =========================================================================  ==========

ResNets use a 7x7 stride-2 stem (``conv1_t_stride=2``) + max-pool like the ImageNet ResNet, and 1x1-conv
shortcuts without bias, so their parameter names and shapes are those of torchvision's models and converted
ImageNet weights load (see :mod:`radclr.networks.weights`). Nothing is ever downloaded.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.nets import DenseNet121, ResNet

from radclr.errors import ConfigError


class ImageEncoder(nn.Module):
    """Base class of radclr's image encoders.

    Attributes
    ----------
    out_dim: size of the pooled representation.
    in_channels, spatial_dims: what ``forward_features`` accepts (``[B, in_channels, *spatial]``).
    feature_layer: dotted name of the sub-module whose output is ``forward_features(x)`` (for forward hooks).
    backbone: the wrapped MONAI network (the part that ImageNet weights map onto).
    """

    out_dim: int
    feature_layer: str

    def __init__(self, in_channels: int, spatial_dims: int = 2) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.spatial_dims = int(spatial_dims)

    def check_input(self, x: torch.Tensor) -> None:
        want = 2 + self.spatial_dims
        if x.dim() != want or x.shape[1] != self.in_channels:
            axes = "B,C," + ",".join("DHW"[3 - self.spatial_dims:])
            raise ValueError(f"{type(self).__name__} expects input [{axes}] with C={self.in_channels}, "
                             f"got shape {tuple(x.shape)}")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map of the last convolutional block, ``[B, out_dim, h, w]``."""
        raise NotImplementedError

    #: stages whose output :meth:`feature_maps` can return besides the last block ("last")
    stages: tuple[str, ...] = ()

    def feature_maps(self, x: torch.Tensor, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(map of stage layer, last block's map)`` from one forward -- e.g. a finer Grad-CAM layer than the
        last block (``layer3`` of a ResNet: twice the resolution). ``layer="last"`` returns the last map twice."""
        if layer == "last":
            fmap = self.forward_features(x)
            return fmap, fmap
        raise ConfigError(f"{type(self).__name__} has no stage {layer!r} for Grad-CAM (stages: "
                          f"{['last', *self.stages]})")

    def forward_from(self, layer: str, a: torch.Tensor) -> torch.Tensor:
        """The last block's map computed from stage ``layer``'s output ``a`` (the rest of the forward)."""
        if layer == "last":
            return a
        raise ConfigError(f"{type(self).__name__} has no stage {layer!r} for Grad-CAM")

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        """Global average pooling ``[B, C, *spatial] -> [B, C]``."""
        if fmap.dim() < 3:
            raise ValueError(f"pool expects a feature map [B, C, *spatial], got shape {tuple(fmap.shape)}")
        return fmap.flatten(2).mean(dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.forward_features(x))

    def attention_maps(self, channel_mean: bool = True) -> dict[str, torch.Tensor]:
        """Soft attention masks of the last forward pass (only attention encoders have any: ``{}`` here)."""
        return {}


class ResNetEncoder(ImageEncoder):
    """A MONAI ``ResNet`` without its FC layer; ``forward_features`` = output of ``layer4``."""

    feature_layer = "backbone.layer4"

    def __init__(self, block, layers: list[int], *, in_channels: int = 1, spatial_dims: int = 2,
                 conv1_t_size: int = 7, conv1_t_stride: int = 2, no_max_pool: bool = False,
                 width: float = 1.0) -> None:
        super().__init__(in_channels, spatial_dims)
        if not 0 < float(width) <= 4:
            raise ConfigError(f"ResNet width must be in (0, 4], got {width}")
        # width scales every stage's channels (0.25 -> 16/32/64/128): thin networks for small data / CPU checks
        planes = [max(int(round(c * float(width))), 4) for c in (64, 128, 256, 512)]
        self.backbone = ResNet(block=block, layers=layers, block_inplanes=planes,
                               spatial_dims=spatial_dims, n_input_channels=in_channels, conv1_t_size=conv1_t_size,
                               conv1_t_stride=conv1_t_stride, no_max_pool=no_max_pool, feed_forward=False,
                               bias_downsample=False)
        self.out_dim = planes[-1] * self.backbone.layer4[-1].expansion

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        x = b.act(b.bn1(b.conv1(x)))
        return x if b.no_max_pool else b.maxpool(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        b = self.backbone
        x = self.stem(x)
        return b.layer4(b.layer3(b.layer2(b.layer1(x))))

    stages = ("layer3",)

    def feature_maps(self, x: torch.Tensor, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        if layer != "layer3":
            return super().feature_maps(x, layer)
        self.check_input(x)
        b = self.backbone
        a3 = b.layer3(b.layer2(b.layer1(self.stem(x))))
        return a3, b.layer4(a3)

    def forward_from(self, layer: str, a: torch.Tensor) -> torch.Tensor:
        return self.backbone.layer4(a) if layer == "layer3" else super().forward_from(layer, a)


class DenseNetEncoder(ImageEncoder):
    """MONAI ``DenseNet121`` features (ending in ``norm5``) + ReLU; ``forward_features`` = after that ReLU.

    torchvision's DenseNet applies the same ReLU before pooling; Grad-CAM on DenseNet conventionally targets it.
    """

    feature_layer = "final_act"

    def __init__(self, *, in_channels: int = 1, spatial_dims: int = 2, dropout_prob: float = 0.0) -> None:
        super().__init__(in_channels, spatial_dims)
        net = DenseNet121(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=1,
                          dropout_prob=dropout_prob)
        del net.class_layers  # the classifier is built separately (radclr.networks.heads)
        self.backbone = net
        self.final_act = nn.ReLU()
        self.out_dim = net.features.norm5.num_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.final_act(self.backbone.features(x))


__all__ = ["ImageEncoder", "ResNetEncoder", "DenseNetEncoder"]
