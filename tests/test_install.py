"""The Makefile's install stamp follows the torch flavour: ``make install-cuda`` on a CPU venv reinstalls (its torch
removed first), later plain targets keep the venv's flavour, and switching back reinstalls again. Run against a
fake venv whose ``bin/python`` only records its arguments."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


@pytest.fixture
def venv(tmp_path):
    v = tmp_path / "venv"
    (v / "bin").mkdir(parents=True)
    py = v / "bin" / "python"
    py.write_text('#!/bin/sh\necho "$@" >> "$(dirname "$0")/../calls.log"\n')
    py.chmod(0o755)
    return v


def _make(venv, *args) -> list[str]:
    log = venv / "calls.log"
    log.unlink(missing_ok=True)
    subprocess.run(["make", "--no-print-directory", f"VENV={venv}", *args], cwd=REPO, check=True,
                   capture_output=True, text=True)
    return log.read_text().splitlines() if log.exists() else []


def _stamps(venv) -> list[str]:
    return sorted(p.name for p in venv.glob(".radclr-installed*"))


def test_install_cuda_on_a_cpu_venv_reinstalls_torch(venv):
    calls = _make(venv, "install")
    assert "-m pip install -q -r requirements-torch-cpu.txt" in calls and not any("uninstall" in c for c in calls)
    assert _stamps(venv) == [".radclr-installed-requirements-torch-cpu"]
    assert _make(venv, "install") == []  # up to date

    calls = _make(venv, "install-cuda")
    assert calls.index("-m pip uninstall -y -q torch") < calls.index("-m pip install -q -r requirements-cuda.txt")
    assert _stamps(venv) == [".radclr-installed-requirements-cuda"]
    assert _make(venv, "install") == []  # the venv keeps its flavour: no silent return to the CPU torch
    assert _make(venv, "install-cuda") == []

    calls = _make(venv, "install", "TORCH_REQ=requirements-torch-cpu.txt")
    assert "-m pip uninstall -y -q torch" in calls and "-m pip install -q -r requirements-torch-cpu.txt" in calls
    assert _stamps(venv) == [".radclr-installed-requirements-torch-cpu"]


def test_flavourless_stamp_of_older_versions_counts_as_cpu(venv):
    (venv / ".radclr-installed").touch()
    calls = _make(venv, "install")
    assert not any("uninstall" in c for c in calls)  # same flavour: torch stays
    assert _stamps(venv) == [".radclr-installed-requirements-torch-cpu"]
    (venv / ".radclr-installed").touch()
    (venv / ".radclr-installed-requirements-torch-cpu").unlink()
    assert "-m pip uninstall -y -q torch" in _make(venv, "install-cuda")
