"""Optional dependencies of the test suite: a skip here, a failure under CI.

The parity tests (the torch radiomics engine against PyRadiomics, the numba fast path against the default one) are
the evidence that radclr's features are PyRadiomics'. Skipped in a CI run they would pass silently with the evidence
gone, so under CI (``CI`` set, as CI services do) a missing PyRadiomics, SimpleITK or numba fails the module instead
(as ``tests/test_report_browser.py`` does for the headless browser)."""

from __future__ import annotations

import importlib
import os

import pytest


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_module(name: str):
    """The imported module ``name``; when it cannot be imported, skip the calling module -- or fail it under CI."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        unavailable(f"{name} is not importable ({e})")


def require(available: bool, why: str) -> None:
    """Skip the calling module when ``available`` is false -- or fail it under CI."""
    if not available:
        unavailable(why)


def unavailable(why: str):
    if under_ci():
        pytest.fail(f"{why}; under CI the parity tests must run, not be skipped", pytrace=False)
    pytest.skip(why, allow_module_level=True)
