"""What a stage's ``freeze`` list names: whole parts, named sub-modules, or a slice of a part's FC layers.

Seed 004 §3.4 ("Transfer Learning Using All Labeled Data"): the best fine-tuning of the hybrid network left "the
last group of convolutions layers in ResNet-50 and the last two layers in fully connected network for processing
radiomics handcrafted features" untrained. A stage says so with::

    freeze: [encoder.layer4, "radiomics_encoder.linear[-2:]"]

Entries (``part`` is one of the run's parts: ``encoder``, ``image_proj``, ``radiomics_encoder``, ``classifier`` ...):

* ``part`` -- the whole part;
* ``part.path`` -- the sub-module at the dotted ``path`` inside the part (:meth:`torch.nn.Module.get_submodule`);
  for image encoders, whose network is their ``backbone``, ``encoder.layer4`` is short for
  ``encoder.backbone.layer4`` (ResNet stages ``layer1`` .. ``layer4``, the stem ``conv1``/``bn1``; DenseNet
  ``features.denseblock4`` ...);
* ``part.linear[i]`` / ``part.linear[a:b]`` (also ``part.path.linear[...]``) -- the part's fully connected
  (``nn.Linear``) layers in forward order, indexed or sliced like a Python list: ``radiomics_encoder.linear[-2:]``
  is the last two of the radiomics MLP's three FC layers.

A frozen module keeps its weights (no gradient, not in the optimiser) **and** its BatchNorm statistics (eval mode
while the rest trains; precise BN leaves it alone). A name that matches nothing raises
:class:`~radclr.errors.ConfigError` listing what the part offers. A part the run does not have (yet) is ignored,
as whole-part entries always were.
"""

from __future__ import annotations

import re

from torch import nn

from radclr.errors import ConfigError

__all__ = ["resolve_freeze", "part_of"]

_LINEAR = re.compile(r"^(?:(?P<path>[\w.]+)\.)?linear\[(?P<index>-?\d*(?::-?\d*)?)\]$")


def part_of(spec: str) -> str:
    """The part an entry refers to (``encoder.layer4`` -> ``encoder``)."""
    return str(spec).split(".", 1)[0]


def _children(module: nn.Module) -> str:
    names = [n for n, _ in module.named_children()]
    backbone = getattr(module, "backbone", None)
    if isinstance(backbone, nn.Module):
        names += [n for n, _ in backbone.named_children() if n not in names]
    return ", ".join(names[:20]) or "(none)"


def _submodule(part: nn.Module, pname: str, path: str, spec: str) -> nn.Module:
    candidates = [path]
    if isinstance(getattr(part, "backbone", None), nn.Module) and not path.startswith("backbone."):
        candidates.append(f"backbone.{path}")
    for cand in candidates:
        try:
            return part.get_submodule(cand)
        except AttributeError:
            continue
    raise ConfigError(f"freeze: {spec!r}: part {pname!r} has no sub-module {path!r} (its children: "
                      f"{_children(part)})")


def _slice(text: str, n: int, spec: str) -> slice | int:
    try:
        if ":" in text:
            a, b = text.split(":")
            return slice(int(a) if a else None, int(b) if b else None)
        i = int(text)
    except ValueError:
        raise ConfigError(f"freeze: {spec!r}: bad index [{text}]") from None
    if not -n <= i < n:
        raise ConfigError(f"freeze: {spec!r}: index {i} is out of range for {n} FC layer(s)")
    return i


def resolve_freeze(parts: nn.ModuleDict, specs) -> tuple[set[str], list[tuple[str, nn.Module]]]:
    """``(whole parts, [(entry, module), ...])`` of a ``freeze`` list (module docstring); entries of parts the run
    does not have are skipped."""
    whole: set[str] = set()
    modules: list[tuple[str, nn.Module]] = []
    for spec in specs:
        spec = str(spec).strip()
        pname, _, rest = spec.partition(".")
        if not rest:
            whole.add(pname)
            continue
        if pname not in parts:
            continue
        part = parts[pname]
        m = _LINEAR.match(rest)
        if m:
            base = _submodule(part, pname, m.group("path"), spec) if m.group("path") else part
            linears = [mod for mod in base.modules() if isinstance(mod, nn.Linear)]
            if not linears:
                raise ConfigError(f"freeze: {spec!r}: {pname!r} has no FC (Linear) layer")
            sel = _slice(m.group("index"), len(linears), spec)
            chosen = linears[sel] if isinstance(sel, slice) else [linears[sel]]
            if not chosen:
                raise ConfigError(f"freeze: {spec!r} selects none of the {len(linears)} FC layer(s) of {pname!r}")
            modules += [(spec, mod) for mod in chosen]
        else:
            modules.append((spec, _submodule(part, pname, rest, spec)))
    return whole, modules
