"""Loading user-supplied encoder weights (optional ImageNet initialisation; seed 001 §4, seed 000 §3).

radclr never downloads weights. A user who wants ImageNet initialisation converts/saves a state dict once
(e.g. ``torch.save(torchvision.models.resnet18(weights=...).state_dict(), "r18.pt")``) and passes the path as
``build_image_encoder(..., weights="r18.pt")`` (config key ``model.weights``).

Accepted files (read with ``torch.load(weights_only=True)``):

* a state dict of the **encoder itself** (keys start with ``backbone.``; ``resnet18_att`` also ``attention.``):
  loaded strictly;
* a state dict of the **backbone in torchvision naming** (``conv1.weight``, ``layer1.0.conv1.weight`` ...,
  DenseNet ``features.denseblock1.denselayer1.norm1.weight`` ...): the classifier (``fc.*`` / ``classifier.*``)
  is dropped, DenseNet layer names are mapped to MONAI's (``denselayerN.norm1`` -> ``denselayerN.layers.norm1``),
  a stem with 3 input channels is converted to ``C`` channels by summing over RGB and dividing by ``C``
  (``C = 1``: the sum, the usual grey-scale conversion), and every backbone parameter must then be present
  with the right shape. The attention branches of ``resnet18_att`` have no ImageNet counterpart and keep
  their initialisation;
* either of the above wrapped as ``{"state_dict": ...}`` or ``{"model": ...}``; a DDP ``module.`` prefix is
  stripped.

Anything else raises :class:`~radclr.errors.ConfigError` naming the file and the offending keys.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn as nn

from radclr.errors import ConfigError

_DENSE_RE = re.compile(r"^(.*denselayer\d+)\.((?:norm|relu|conv)[12]\.(?:weight|bias|running_mean|running_var|"
                       r"num_batches_tracked))$")
_STEMS = ("conv1.weight", "features.conv0.weight")


def _read(path) -> dict[str, torch.Tensor]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"encoder weights file {p} does not exist")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad user file
        raise ConfigError(f"encoder weights file {p} cannot be read as a torch state dict: {e}") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and torch.is_tensor(v)
                                                        for k, v in obj.items()):
        raise ConfigError(f"encoder weights file {p} is not a state dict (a mapping of parameter names to tensors)")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


def _adapt_stem(w: torch.Tensor, channels: int) -> torch.Tensor:
    return (w.sum(dim=1, keepdim=True) / channels).repeat(1, channels, *([1] * (w.dim() - 2)))


def _from_backbone_naming(sd: dict[str, torch.Tensor], encoder: nn.Module) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        if k.startswith(("fc.", "classifier.")):
            continue
        m = _DENSE_RE.match(k)
        if m:
            k = f"{m.group(1)}.layers.{m.group(2)}"
        if k in _STEMS and v.dim() >= 3 and v.shape[1] == 3 and encoder.in_channels != 3:
            v = _adapt_stem(v, encoder.in_channels)
        out["backbone." + k] = v
    return out


def load_encoder_weights(encoder: nn.Module, path) -> dict[str, list[str]]:
    """Load the state dict at ``path`` into ``encoder`` (an :class:`~radclr.networks.ImageEncoder`).

    Returns ``{"loaded": [...], "kept_initialisation": [...]}`` (parameter names). Raises ConfigError for a
    missing/unreadable file, missing or unexpected keys, or shape mismatches (each listed by name).
    """
    sd = _read(path)
    own = encoder.state_dict()
    full = all(k.startswith(("backbone.", "attention.", "final_act.")) for k in sd)
    if not full:
        sd = _from_backbone_naming(sd, encoder)
    unexpected = sorted(set(sd) - set(own))
    if full:
        missing = sorted(set(own) - set(sd))
    else:  # only the backbone must be complete
        missing = sorted(k for k in own if k.startswith("backbone.") and k not in sd)
    wrong = sorted(f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
                   for k in set(sd) & set(own) if sd[k].shape != own[k].shape)
    if unexpected or missing or wrong:
        parts = []
        for what, items in (("unexpected keys", unexpected), ("missing keys", missing), ("shape mismatches", wrong)):
            if items:
                more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
                parts.append(f"{what}: {items[:5]}{more}")
        name = getattr(encoder, "name", type(encoder).__name__)
        raise ConfigError(f"encoder weights file {path} does not fit encoder {name!r}: " + "; ".join(parts))
    own.update({k: v.to(own[k].dtype) for k, v in sd.items()})
    encoder.load_state_dict(own, strict=True)
    return {"loaded": sorted(sd), "kept_initialisation": sorted(set(own) - set(sd))}
