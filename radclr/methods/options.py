"""Method options: a small dataclass per method, with documented defaults, read from a config stage.

A stage of a config names its method and may set that method's options next to the trainer keys::

    stages:
      - name: train
        method: byop
        lambda: 0.5          # -> BYOPOptions.lam
        cam_threshold: auto

:meth:`MethodOptions.from_config` turns the stage's mapping into the method's dataclass: unknown keys, wrong types
and values outside a documented set raise :class:`~radclr.errors.ConfigError` naming the method and the key.
A field whose YAML name is not a Python name (``lambda``) carries it in ``metadata={"key": ...}``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from radclr.errors import ConfigError

__all__ = ["MethodOptions", "ClassificationOptions", "option_key"]


def option_key(f: dataclasses.Field) -> str:
    """The name a field has in a config (its ``metadata["key"]``, else the field name)."""
    return f.metadata.get("key", f.name)


@dataclass(frozen=True)
class MethodOptions:
    """Options every method takes."""

    #: what this stage does not train (it keeps its weights and BatchNorm statistics): whole parts (``encoder``),
    #: named sub-modules (``encoder.layer4``) or FC-layer slices (``radiomics_encoder.linear[-2:]``); see
    #: :mod:`radclr.methods.freeze`
    freeze: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, raw: dict | "MethodOptions" | None, method: str = "method") -> "MethodOptions":
        """The options of a stage mapping ``raw`` (see module docstring)."""
        if isinstance(raw, cls):
            return raw
        raw = dict(raw or {})
        fields = {option_key(f): f for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - set(fields))
        if unknown:
            raise ConfigError(f"method {method!r}: unknown option(s) {unknown}; accepted: {sorted(fields)}")
        hints = typing.get_type_hints(cls)
        values = {f.name: _coerce(raw[key], hints[f.name], method, key) for key, f in fields.items() if key in raw}
        return cls(**values)

    def to_config(self) -> dict:
        """The options as a stage mapping (config names)."""
        return {option_key(f): getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class ClassificationOptions(MethodOptions):
    """The classification loss of a method with a classifier."""

    #: ``bce`` (seed 000 eq. 4) or ``focal`` (seed 001 §3.3)
    loss: Literal["bce", "focal"] = "bce"
    #: focal loss weight of positives (seed 001 gives no value); null = no class weighting
    alpha: float | None = 0.25
    #: focal loss focusing parameter (gamma = 0 is weighted BCE)
    gamma: float = 2.0


def _coerce(value: Any, hint, method: str, key: str):
    """``value`` as type ``hint`` (bool, int, float, str, Literal, Optional/Union, tuple[X, ...]) or ConfigError."""
    def bad(expected: str):
        return ConfigError(f"method {method!r}: option {key!r} must be {expected}, got {value!r}")

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, a, method, key)
            except ConfigError:
                continue
        raise bad(" or ".join(_describe(a) for a in args))
    if origin is Literal:
        if value in args:
            return value
        raise bad(f"one of {list(args)}")
    if origin in (tuple, list):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            if value is None:
                return ()
            raise bad("a list")
        item = args[0] if args else Any
        return tuple(_coerce(v, item, method, key) for v in value)
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise bad("true or false")
    if hint is int:
        if isinstance(value, bool):
            raise bad("an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad("an integer")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad("a number")
    if hint is str:
        if isinstance(value, str):
            return value
        raise bad("a string")
    return value


def _describe(hint) -> str:
    if typing.get_origin(hint) is Literal:
        return " or ".join(repr(a) for a in typing.get_args(hint))
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))
