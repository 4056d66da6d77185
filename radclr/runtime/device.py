"""Where and how a run computes: the device (chosen automatically), mixed precision, determinism.

``trainer.device: auto`` takes this process's GPU when CUDA is available (under torchrun: ``LOCAL_RANK``'s),
else the CPU -- with a warning (once per process) when the machine shows GPUs (``nvidia-smi``, ``/dev/nvidia*``)
that this torch cannot use (a CPU build: ``make install-cuda``); ``trainer.amp: auto`` is bf16 autocast on GPUs
that support it (fp16 with a gradient scaler on older ones) and off on the CPU. ``trainer.deterministic: auto``:
deterministic kernels on the CPU, cuDNN autotuning on CUDA (:func:`resolve_determinism`).
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil

import numpy as np
import torch

from radclr.errors import ConfigError

__all__ = ["resolve_device", "autocast_context", "resolve_determinism", "set_determinism", "to_device",
           "unused_gpu_note"]

log = logging.getLogger(__name__)
_WARNED: set[str] = set()  # notes already logged by this process


def unused_gpu_note() -> str | None:
    """A one-line note when NVIDIA GPUs are visible on this machine (``nvidia-smi`` on the PATH or a
    ``/dev/nvidia<k>`` device) but this torch cannot use them; None otherwise."""
    if torch.cuda.is_available():
        return None
    seen = [f"/dev/{os.path.basename(p)}" for p in sorted(glob.glob("/dev/nvidia[0-9]*"))]
    if shutil.which("nvidia-smi"):
        seen.insert(0, "nvidia-smi")
    if not seen:
        return None
    build = f"CUDA {torch.version.cuda} build, no usable device" if torch.version.cuda else "a CPU-only build"
    return (f"this machine shows NVIDIA GPUs ({', '.join(seen[:3])}) but torch {torch.__version__} is {build}: "
            "training runs on the CPU (install the CUDA torch: make install-cuda; check: radclr doctor)")


def resolve_device(name: str | None = "auto", local_rank: int = 0, key: str = "trainer.device") -> torch.device:
    """The torch device a setting names; ``auto`` (or None) = this process's GPU if any, else the CPU. A device
    that does not exist here (``cuda`` on a CPU-only torch, ``cuda:3`` on a one-GPU machine, a misspelt name) is
    a :class:`ConfigError` naming ``key`` (the config key, or the command's ``--device``)."""
    if name in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        note = unused_gpu_note()
        if note and note not in _WARNED:
            _WARNED.add(note)
            log.warning("trainer.device auto -> cpu: %s", note)
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"{key}: unknown device {name!r} (auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key} is {name!r} but no CUDA device is available (this torch: "
                          f"{'CPU-only build' if torch.version.cuda is None else 'CUDA ' + torch.version.cuda}); "
                          f"use cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"{key} is {name!r} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"{key}: device {name!r} is not supported (auto, cpu, cuda or cuda:N)")
    if dev.type == "cuda" and dev.index is None:  # plain "cuda": this process's own GPU under torchrun
        dev = torch.device("cuda", local_rank % torch.cuda.device_count())
    return dev


def autocast_context(device: torch.device, amp):
    """``(context manager, GradScaler or None)``: bf16 autocast on CUDA when ``amp`` is auto/bf16 (fp16 with a
    GradScaler when asked, or when bf16 is unsupported under auto); no autocast on the CPU."""
    if device.type != "cuda" or amp in ("off", False, None):
        return contextlib.nullcontext(), None
    if amp == "fp16":
        return torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")
    if amp in ("auto", "bf16") and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16), None
    if amp == "auto":
        return torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")
    raise ConfigError(f"trainer.amp must be auto | bf16 | fp16 | off, got {amp!r}")


def resolve_determinism(setting, device: torch.device) -> bool:
    """Whether a run asks torch for deterministic kernels: ``trainer.deterministic`` true / false as set;
    ``auto`` (the default) = true on the CPU (bit-exact resume, the golden runs) and false on CUDA, where the
    deterministic kernels are slow (and fill every ``torch.empty`` with NaN) -- cuDNN autotuning runs instead."""
    if setting in ("auto", None):
        return torch.device(device).type != "cuda"
    if isinstance(setting, bool):
        return setting
    raise ConfigError(f"trainer.deterministic must be auto, true or false, got {setting!r}")


def set_determinism(seed: int, deterministic, device: torch.device | str = "cpu") -> bool:
    """Seed torch and numpy, and choose the kernels (:func:`resolve_determinism`): deterministic ones (torch warns
    where none exists), or on CUDA the fastest (``cudnn.benchmark``). Returns the resolved choice."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    chosen = resolve_determinism(deterministic, torch.device(device))
    if chosen:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = torch.device(device).type == "cuda"
    return chosen


def to_device(batch: dict, device: torch.device) -> dict:
    """Every tensor of a batch dict on ``device`` (other values as they are)."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
