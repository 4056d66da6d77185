"""Device choice, the note about GPUs a CPU torch cannot use, and the determinism rule (auto: exact on the CPU,
fast on CUDA) -- all decided without a GPU."""

import logging

import pytest
import torch

from radclr.engine.config import resolve_config
from radclr.errors import ConfigError
from radclr.runtime import device as rd


@pytest.fixture
def restore_torch_flags():
    det, bench = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    yield
    torch.use_deterministic_algorithms(det, warn_only=True)
    torch.backends.cudnn.benchmark = bench


@pytest.mark.parametrize("setting, device, expected", [
    ("auto", "cpu", True), (None, "cpu", True), ("auto", "cuda", False), ("auto", "cuda:1", False),
    (True, "cuda", True), (False, "cpu", False), (True, "cpu", True), (False, "cuda", False)])
def test_resolve_determinism(setting, device, expected):
    assert rd.resolve_determinism(setting, torch.device(device)) is expected


def test_resolve_determinism_refuses_other_words():
    with pytest.raises(ConfigError, match="trainer.deterministic must be auto, true or false, got 'yes'"):
        rd.resolve_determinism("yes", torch.device("cpu"))


def test_set_determinism_cuda_default_is_benchmark_cpu_is_exact(restore_torch_flags):
    # the CUDA branch only sets flags: it runs (and is checked) without a GPU
    assert rd.set_determinism(0, "auto", torch.device("cuda")) is False
    assert not torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.benchmark
    assert rd.set_determinism(0, True, torch.device("cuda")) is True  # opt-in stays
    assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
    assert rd.set_determinism(0, "auto", "cpu") is True
    assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
    a = torch.rand(3)
    rd.set_determinism(0, "auto", "cpu")
    assert torch.equal(a, torch.rand(3))  # seeded


def test_config_default_is_auto_and_takes_booleans():
    assert resolve_config(base={})["trainer"]["deterministic"] == "auto"
    assert resolve_config(base={}, overrides=["trainer.deterministic=true"])["trainer"]["deterministic"] is True
    assert resolve_config(base={}, overrides=["trainer.deterministic=false"])["trainer"]["deterministic"] is False


def _fake_machine(monkeypatch, *, which=None, devs=(), cuda=False):
    monkeypatch.setattr(rd.torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(rd.shutil, "which", lambda name: which if name == "nvidia-smi" else None)
    monkeypatch.setattr(rd.glob, "glob", lambda pattern: list(devs) if pattern.startswith("/dev/nvidia") else [])


def test_unused_gpu_note(monkeypatch):
    _fake_machine(monkeypatch)
    assert rd.unused_gpu_note() is None  # no GPU anywhere: nothing to say
    _fake_machine(monkeypatch, which="/usr/bin/nvidia-smi", devs=["/dev/nvidia0", "/dev/nvidia1"])
    note = rd.unused_gpu_note()
    assert "nvidia-smi, /dev/nvidia0, /dev/nvidia1" in note and "make install-cuda" in note
    assert "\n" not in note
    _fake_machine(monkeypatch, devs=["/dev/nvidia0"])
    assert "/dev/nvidia0" in rd.unused_gpu_note()


def test_auto_device_warns_when_gpus_are_visible_but_torch_has_no_cuda(monkeypatch, caplog):
    _fake_machine(monkeypatch, which="/usr/bin/nvidia-smi", devs=["/dev/nvidia0"])
    monkeypatch.setattr(rd, "_WARNED", set())
    with caplog.at_level(logging.WARNING, logger="radclr.runtime.device"):
        assert rd.resolve_device("auto") == torch.device("cpu")
        assert rd.resolve_device("auto") == torch.device("cpu")  # said once per process
    warned = [r for r in caplog.records if "trainer.device auto -> cpu" in r.message]
    assert len(warned) == 1 and "nvidia-smi" in warned[0].message
    caplog.clear()
    _fake_machine(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="radclr.runtime.device"):
        assert rd.resolve_device("auto") == torch.device("cpu")
    assert not caplog.records  # a plain CPU machine: silent


def test_config_refuses_other_words_before_any_run():
    with pytest.raises(ConfigError, match="trainer.deterministic must be auto, true or false, got 'maybe'"):
        resolve_config(base={}, overrides=["trainer.deterministic=maybe"])
