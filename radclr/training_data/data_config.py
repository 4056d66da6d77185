"""The ``data:`` section of a config as one typed, frozen value, made once where the data path starts.

    data = DataConfig.from_dict(cfg["data"])     # ConfigError naming data.<key> for a bad value or unknown key
    data.path, data.split.seed, data.phantom.n, data.cache

:func:`radclr.training_data.prepare.open_dataset` and :func:`~radclr.training_data.prepare.prepare_data` make it from
the config's dict (or take one) and read its fields; the defaults are those of ``radclr.engine.config.DEFAULTS``
(a test keeps the two equal). ``volume`` stays the mapping :func:`radclr.training_data.volumes.volume_settings`
validates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from radclr.errors import ConfigError
from radclr.training_data.store import default_cache_dir

__all__ = ["DataConfig", "SplitConfig", "PhantomConfig"]


def _number(kind, section: str, key: str, value):
    if isinstance(value, bool):
        raise ConfigError(f"{section}.{key} must be a number, got {value!r}")
    try:
        out = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{section}.{key} must be a number, got {value!r}") from None
    if kind is int and out != value:
        raise ConfigError(f"{section}.{key} must be a whole number, got {value!r}")
    return out


def _optional_text(section: str, key: str, value) -> str | None:
    if value is not None and not isinstance(value, (str, Path)):
        raise ConfigError(f"{section}.{key} must be text or null, got {value!r}")
    return None if value is None else str(value)


def _read(cls, values: Mapping | None, section: str, convert: dict) -> dict:
    """Keyword arguments of ``cls`` from ``values`` (missing keys keep the defaults; unknown ones are refused)."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{section} must be a mapping, got {type(values).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{section}: unknown key(s) {unknown}; known: {sorted(known)}")
    return {k: convert[k](section, k, v) if k in convert else v for k, v in values.items()}


@dataclass(frozen=True)
class SplitConfig:
    """``data.split``: validation and test fractions, the seed, a split file, the protocol."""

    val: float = 0.1
    test: float = 0.2
    seed: int = 0
    file: str | None = None
    protocol: str = "random"

    @classmethod
    def from_dict(cls, values: Mapping | None) -> SplitConfig:
        return cls(**_read(cls, values, "data.split", {
            "val": lambda s, k, v: _number(float, s, k, v), "test": lambda s, k, v: _number(float, s, k, v),
            "seed": lambda s, k, v: _number(int, s, k, v), "file": _optional_text,
            "protocol": lambda s, k, v: str(v)}))


@dataclass(frozen=True)
class PhantomConfig:
    """``data.phantom``: size of the synthetic dataset (``data.path: phantom`` / ``phantom_volumes``)."""

    n: int = 240
    size: int = 128
    seed: int = 0

    @classmethod
    def from_dict(cls, values: Mapping | None) -> PhantomConfig:
        return cls(**_read(cls, values, "data.phantom", {k: lambda s, k, v: _number(int, s, k, v)
                                                         for k in ("n", "size", "seed")}))


@dataclass(frozen=True)
class DataConfig:
    """The ``data:`` section (meaning of each key: ``radclr.engine.config.DEFAULTS`` and docs/data.md)."""

    path: str | tuple[str, ...] = "demo"
    format: str | None = None
    findings: tuple[str, ...] | None = None
    task: str = "multilabel"
    image_size: int = 224
    split: SplitConfig = field(default_factory=SplitConfig)
    label_fraction: float = 1.0
    box_fraction: float = 1.0
    pretext_fraction: float = 1.0
    intensity: str = "auto"
    cache_dir: str | None = None
    store_dir: str | None = None
    jobs: int = 1
    follow_links: bool = False
    phantom: PhantomConfig = field(default_factory=PhantomConfig)
    volume: Mapping[str, Any] | None = None

    @classmethod
    def from_dict(cls, values: Mapping | DataConfig) -> DataConfig:
        """The typed section of a config's ``data`` mapping (a DataConfig is returned as it is)."""
        if isinstance(values, DataConfig):
            return values

        def path(s, k, v):
            if isinstance(v, (list, tuple)):
                return tuple(str(p) for p in v)
            if not isinstance(v, (str, Path)):
                raise ConfigError(f"{s}.{k} must be a folder, a list of folders, demo or phantom; got {v!r}")
            return str(v)

        def findings(s, k, v):
            if v is None:
                return None
            if isinstance(v, str) or not isinstance(v, (list, tuple)):
                raise ConfigError(f"{s}.{k} must be a list of finding names or null, got {v!r}")
            return tuple(str(f) for f in v)

        def flag(s, k, v):
            if not isinstance(v, bool):
                raise ConfigError(f"{s}.{k} must be true or false, got {v!r}")
            return v

        def fraction(s, k, v):
            return _number(float, s, k, v)

        return cls(**_read(cls, values, "data", {
            "path": path, "format": _optional_text, "findings": findings, "task": lambda s, k, v: str(v),
            "image_size": lambda s, k, v: _number(int, s, k, v), "split": lambda s, k, v: SplitConfig.from_dict(v),
            "label_fraction": fraction, "box_fraction": fraction, "pretext_fraction": fraction,
            "intensity": lambda s, k, v: str(v), "cache_dir": _optional_text, "store_dir": _optional_text,
            "jobs": lambda s, k, v: _number(int, s, k, v), "follow_links": flag,
            "phantom": lambda s, k, v: PhantomConfig.from_dict(v)}))

    @property
    def cache(self) -> Path:
        """The cache folder: ``cache_dir``, else ``$RADCLR_CACHE``, else the user cache (docs/operation.md)."""
        return Path(self.cache_dir) if self.cache_dir else default_cache_dir()
