"""Adapters: one module per on-disk layout, each ``detect(root) -> bool`` and ``load(root, **options)``.

==========  ==========================================================================================
folder      radclr folder format: ``images/``, ``labels.csv``, optional ``boxes.csv``, ``masks/``
nih         NIH ChestX-ray14: ``Data_Entry_2017*.csv``, ``BBox_List_2017.csv``, ``images*/``
rsna        RSNA Pneumonia: ``stage_2_train_labels.csv``, ``stage_2_train_images/*.dcm``
chexpert    CheXpert: ``train.csv`` / ``valid.csv``, ``train/patientNNNNN/...``
kermany     Kermany pediatric: ``train|test|val/NORMAL|PNEUMONIA/*.jpeg``
covid       COVID-19 image data collection: ``metadata.csv``, ``images/``
==========  ==========================================================================================

Auto-detection tries them in this order (the folder format first: a folder with ``labels.csv`` is always
read as the radclr format).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from radclr.errors import DataError

FORMATS = ("folder", "nih", "rsna", "chexpert", "covid", "kermany")


def adapter(fmt: str) -> ModuleType:
    """The adapter module of a format name."""
    if fmt not in FORMATS:
        raise DataError(f"unknown dataset format {fmt!r}; known formats: {', '.join(FORMATS)}")
    return importlib.import_module(f"radclr.data.adapters.{fmt}")
