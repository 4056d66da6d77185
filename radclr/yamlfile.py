"""Reading a user's YAML file strictly: a duplicate key, a binary file or invalid YAML is one clear error.

PyYAML keeps the *last* of two equal keys silently: a second ``data:`` block replaced the first and a run trained
on built-in phantoms instead of the given data. :func:`read_yaml` refuses it, naming the key and both lines. A
file that is not text (a checkpoint passed where a config belongs) is said to be one, not a UnicodeDecodeError.
Used for run configurations, PyRadiomics parameter files and disease hierarchies.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from radclr.errors import ConfigError

__all__ = ["read_yaml"]


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            continue  # SafeLoader's own error follows
        if key in seen:
            raise ConfigError(f"{{path}}:{key_node.start_mark.line + 1}: key {key!r} appears twice in the same "
                              f"section (first on line {seen[key] + 1}); the second would silently replace the first")
        seen[key] = key_node.start_mark.line
    loader.flatten_mapping(node)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _binary_hint(path: Path, head: bytes) -> str:
    if head.startswith(b"PK\x03\x04") or path.suffix in (".pt", ".pth", ".ckpt"):
        return ("it is a binary file -- a checkpoint? (resume a run with `radclr train --resume RUN`, start from one "
                "with model.init_from=FILE)")
    return "it is a binary file, not YAML text"


def read_yaml(path: str | Path, what: str = "config file"):
    """The YAML document of ``path`` (None for an empty file); :class:`ConfigError` naming the file for a
    missing, binary or invalid file and for a key given twice in one section."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a {what}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a {what}: {_binary_hint(path, raw[:4])}") from None
    if "\x00" in text:
        raise ConfigError(f"{path}: not a {what}: {_binary_hint(path, raw[:4])}")
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 -- a SafeLoader subclass
    except ConfigError as e:
        raise ConfigError(str(e).replace("{path}", str(path))) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
