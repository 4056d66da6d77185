"""``load_dataset(path, format=None, **options)``: any supported layout -> :class:`CXRDataset`."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

from radclr.data.adapters import FORMATS, adapter
from radclr.data.adapters.common import refuse_outside_links
from radclr.data.dataset import CXRDataset
from radclr.errors import ConfigError, DataError

log = logging.getLogger(__name__)

# a file a user may point at instead of its folder -> the format it belongs to
_FILE_HINTS = {"labels.csv": "folder", "stage_2_train_labels.csv": "rsna", "train.csv": "chexpert",
               "valid.csv": "chexpert", "metadata.csv": "covid"}


def detect_format(path: str | Path) -> str:
    """The adapter that reads ``path`` (a dataset folder); :class:`DataError` listing what was looked for."""
    root = Path(path)
    if not root.exists():
        raise DataError(f"{root}: no such file or folder")
    if not root.is_dir():
        raise DataError(f"{root}: expected a dataset folder")
    for fmt in FORMATS:
        if adapter(fmt).detect(root):
            return fmt
    raise DataError(
        f"{root}: cannot tell the dataset format; looked for labels.csv + images/ (folder), Data_Entry_2017*.csv "
        "(nih), stage_2_train_labels.csv (rsna), train.csv/valid.csv with a Path column (chexpert), metadata.csv "
        "(covid), train|test|val/NORMAL|PNEUMONIA/ (kermany). Pass format=... to choose one.")


def _root_and_format(path: Path, fmt: str | None) -> tuple[Path, str | None]:
    if path.is_file():  # a label file inside the dataset: read its folder
        name = path.name
        hint = "nih" if name.startswith("Data_Entry_2017") else _FILE_HINTS.get(name)
        return path.parent, fmt or hint
    return path, fmt


def load_dataset(path: str | Path, format: str | None = None, *, follow_links: bool = False,  # noqa: A002
                 **options) -> CXRDataset:
    """Load a dataset of any supported layout (auto-detected unless ``format`` is given).

    ``follow_links``: read image files that symbolic links lead to outside the dataset root (by default they are
    refused like ``..`` paths: dropped, with an error problem; see :mod:`radclr.data.adapters.common`).

    ``options`` go to the adapter (e.g. ``findings=[...]`` for folder/nih/covid, ``uncertain="ones"`` for
    chexpert, ``box_space="original"`` for nih); an option the adapter does not have is a :class:`ConfigError`.
    Problems found while loading are in ``dataset.problems`` (and summarised in the log).
    """
    root, fmt = _root_and_format(Path(path), format)
    if not root.exists():
        raise DataError(f"{root}: no such dataset folder")
    fmt = fmt or detect_format(root)
    mod = adapter(fmt)
    params = inspect.signature(mod.load).parameters
    unknown = [k for k in options if k not in params]
    if unknown:
        allowed = [p for p in params if p != "root"]
        raise ConfigError(f"dataset format {fmt!r} has no option(s) {unknown}; its options: {allowed}")
    ds = refuse_outside_links(mod.load(root, **options), follow_links)
    if ds.problems:
        n_err = sum(p.severity == "error" for p in ds.problems)
        log.warning("%s: %d problem(s) while loading (%d error(s)); see dataset.problems or run "
                    "`radclr data validate %s`", root, len(ds.problems), n_err, root)
    return ds
