"""A run's data, prepared once: dataset + patient-wise split, the image store (decoded, resized, memory-mapped),
3-D tumour stacks, fixed-region radiomics, and the per-sample view every method trains on.

    data = prepare_data(cfg, run_dir)                     # PreparedData
    view = TrainingView(data, data.labels_for_training())  # view[i] -> {"image", "label", "box", ...}

The config's ``data:`` section is read as one typed, frozen :class:`DataConfig` (made once by ``prepare_data`` /
``open_dataset`` from the mapping).
"""

from radclr.training_data.data_config import DataConfig
from radclr.training_data.prepare import PreparedData, open_dataset, prepare_data
from radclr.training_data.store import ImageStore, build_store, default_cache_dir
from radclr.training_data.view import TrainingView, collate

__all__ = ["DataConfig", "ImageStore", "PreparedData", "TrainingView", "build_store", "collate", "default_cache_dir",
           "open_dataset", "prepare_data"]
