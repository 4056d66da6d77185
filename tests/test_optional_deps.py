"""The parity tests' optional dependencies (PyRadiomics, SimpleITK, numba): a skip here, a failure under CI
(issue 21, item 8) -- a CI run without them must not pass with the parity evidence silently skipped."""

from __future__ import annotations

import pytest

from optional_deps import require, require_module


@pytest.mark.parametrize("ci", ["", "false", "0"])
def test_missing_dependency_skips_outside_ci(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="numba not available"):
        require(False, "numba not available")
    with pytest.raises(pytest.skip.Exception, match="radclr_no_such_module is not importable"):
        require_module("radclr_no_such_module")


@pytest.mark.parametrize("ci", ["true", "1", "yes"])
def test_missing_dependency_fails_under_ci(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="numba not available; under CI the parity tests must run"):
        require(False, "numba not available")
    with pytest.raises(pytest.fail.Exception, match="radclr_no_such_module is not importable"):
        require_module("radclr_no_such_module")


def test_present_dependency_is_returned(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert require_module("json").dumps([1]) == "[1]"
    require(True, "never said")
