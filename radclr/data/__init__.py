"""Datasets: one interface (:class:`CXRDataset`) for every layout, splits, phantoms, validation, demo data.

No torch here: ``radclr data ...`` must stay fast.
"""

from radclr.data.dataset import NO_FINDING, Box, CXRDataset, Problem
from radclr.data.demo import demo_dataset_path
from radclr.data.loading import detect_format, load_dataset

__all__ = ["CXRDataset", "Box", "Problem", "NO_FINDING", "load_dataset", "detect_format", "demo_dataset_path"]
