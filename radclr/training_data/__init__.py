"""A run's data, prepared once: dataset + patient-wise split, the image store (decoded, resized, memory-mapped),
3-D tumour stacks, fixed-region radiomics, and the per-sample view every method trains on.

    data = prepare_data(cfg, run_dir)                     # PreparedData
    view = TrainingView(data, data.labels_for_training())  # view[i] -> {"image", "label", "box", ...}
"""

from radclr.training_data.prepare import PreparedData, open_dataset, prepare_data
from radclr.training_data.store import ImageStore, build_store, default_cache_dir
from radclr.training_data.view import TrainingView, collate

__all__ = ["ImageStore", "PreparedData", "TrainingView", "build_store", "collate", "default_cache_dir",
           "open_dataset", "prepare_data"]
