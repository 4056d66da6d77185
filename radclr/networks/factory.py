"""Image encoders by name: :data:`ENCODERS` and :func:`build_image_encoder` (the table of names is in
:mod:`radclr.networks.encoders`)."""

from __future__ import annotations

from typing import Callable

import torch

from radclr.errors import ConfigError
from radclr.networks.attention import AttentionResNetEncoder
from radclr.networks.encoders import DenseNetEncoder, ImageEncoder, ResNetEncoder
from radclr.networks.weights import load_encoder_weights
from radclr.networks.wide_resnet import WideResNetBottleneck

_RESNET_KW = {"spatial_dims", "conv1_t_size", "conv1_t_stride", "no_max_pool", "width"}


def _resnet(block, layers):
    def make(in_channels: int, **kw) -> ImageEncoder:
        return ResNetEncoder(block, layers, in_channels=in_channels, **kw)

    make.options = _RESNET_KW
    return make


def _wide_resnet50(in_channels: int, **kw) -> ImageEncoder:
    return ResNetEncoder(WideResNetBottleneck, [3, 4, 6, 3], in_channels=in_channels, **kw)


_wide_resnet50.options = _RESNET_KW


def _densenet121(in_channels: int, **kw) -> ImageEncoder:
    return DenseNetEncoder(in_channels=in_channels, **kw)


_densenet121.options = {"spatial_dims", "dropout_prob"}


def _resnet18_att(in_channels: int, **kw) -> ImageEncoder:
    return AttentionResNetEncoder(in_channels=in_channels, **kw)


_resnet18_att.options = {"conv1_t_size", "conv1_t_stride", "no_max_pool", "attention_stages", "mask_depths"}

#: encoder name -> factory(in_channels, **options); ``factory.options`` lists the accepted option names
ENCODERS: dict[str, Callable[..., ImageEncoder]] = {
    "resnet18": _resnet("basic", [2, 2, 2, 2]),
    "resnet34": _resnet("basic", [3, 4, 6, 3]),
    "resnet50": _resnet("bottleneck", [3, 4, 6, 3]),
    "wide_resnet50": _wide_resnet50,
    "densenet121": _densenet121,
    "resnet18_att": _resnet18_att,
}


def build_image_encoder(name: str, *, in_channels: int = 1, weights: str | None = None, seed: int | None = None,
                        **kw) -> ImageEncoder:
    """Build image encoder ``name`` (see :data:`ENCODERS`).

    Parameters
    ----------
    in_channels: input channels (1 for CXR; e.g. 10 for seed 004's stacks of CT slices fed as channels).
    weights: optional path to a user-supplied state dict (e.g. torchvision ImageNet weights; a 3-channel stem is
        summed to ``in_channels``): see :func:`radclr.networks.weights.load_encoder_weights`. Nothing downloads.
    seed: if given, initialise the weights from this seed without touching the global RNG state.
    kw: network options (``spatial_dims``, ``conv1_t_stride``, ``conv1_t_size``, ``no_max_pool`` for ResNets;
        ``dropout_prob`` for DenseNet; ``attention_stages``, ``mask_depths`` for ``resnet18_att``).

    Raises :class:`~radclr.errors.ConfigError` for an unknown name/option or an unusable weights file.
    """
    key = str(name).lower()
    if key not in ENCODERS:
        raise ConfigError(f"unknown image encoder {name!r}; choose one of {sorted(ENCODERS)}")
    factory = ENCODERS[key]
    unknown = set(kw) - set(factory.options)
    if unknown:
        raise ConfigError(f"image encoder {key!r}: unknown option(s) {sorted(unknown)}; "
                          f"accepted: {sorted(factory.options)}")
    if int(in_channels) < 1:
        raise ConfigError(f"image encoder {key!r}: in_channels must be >= 1, got {in_channels}")
    if seed is None:
        encoder = factory(int(in_channels), **kw)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            encoder = factory(int(in_channels), **kw)
    encoder.name = key
    if weights:
        load_encoder_weights(encoder, weights)
    return encoder


__all__ = ["ENCODERS", "build_image_encoder"]
