"""Wide bottleneck block for MONAI's :class:`~monai.networks.nets.ResNet` (seed 003 §III-B: "ResNet50 Wide").

MONAI's ``ResNet(widen_factor=...)`` multiplies *every* stage width, including the block outputs, which gives a
network with 4096 output channels -- not the wide ResNet-50-2 of Zagoruyko & Komodakis (2016) as used by SimCLR
and torchvision's ``wide_resnet50_2``. There, only the *inner* 1x1 -> 3x3 -> 1x1 bottleneck width is doubled;
stage outputs stay 256/512/1024/2048. :class:`WideResNetBottleneck` does exactly that and plugs into MONAI's
``ResNet`` as its ``block`` (same constructor signature and ``expansion = 4``), so the resulting module has the
torchvision parameter names and count (66,827,968 parameters with a 1-channel stem and no FC).
"""

from __future__ import annotations

from functools import partial

import torch.nn as nn
from monai.networks.layers.factories import Conv
from monai.networks.layers.utils import get_act_layer, get_norm_layer
from monai.networks.nets.resnet import ResNetBottleneck


class WideResNetBottleneck(ResNetBottleneck):
    """ResNet bottleneck whose inner width is ``planes * width_factor`` (output ``planes * 4`` as usual).

    ``forward`` is inherited from MONAI's ``ResNetBottleneck`` (conv1x1-BN-ReLU, conv3x3(stride)-BN-ReLU,
    conv1x1-BN, + shortcut, ReLU); only the layer widths differ.
    """

    expansion = 4
    width_factor = 2

    def __init__(self, in_planes: int, planes: int, spatial_dims: int = 2, stride: int = 1,
                 downsample: nn.Module | partial | None = None, act: str | tuple = ("relu", {"inplace": True}),
                 norm: str | tuple = "batch") -> None:
        nn.Module.__init__(self)
        conv = Conv[Conv.CONV, spatial_dims]
        norm_layer = partial(get_norm_layer, name=norm, spatial_dims=spatial_dims)
        width = planes * self.width_factor
        self.conv1 = conv(in_planes, width, kernel_size=1, bias=False)
        self.bn1 = norm_layer(channels=width)
        self.conv2 = conv(width, width, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = norm_layer(channels=width)
        self.conv3 = conv(width, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = norm_layer(channels=planes * self.expansion)
        self.act = get_act_layer(name=act)
        self.downsample = downsample
        self.stride = stride
