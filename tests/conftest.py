"""Shared test fixtures. Tests are deterministic, CPU-only and need no external data;
tests on the real data in ../shared/data are marked `realdata` and skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")  # two xdist workers share two cores
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_dataset(name: str) -> Path:
    """Path of a real dataset under ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA / name
    if not (path / "labels.csv").exists():
        pytest.skip(f"real data {path} not available")
    return path


@pytest.fixture(autouse=True)
def _torch_single_thread():
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    torch.set_num_threads(1)
    yield
