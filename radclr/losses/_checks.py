"""Input checks shared by the losses: each raises ValueError naming the shapes it got."""

from __future__ import annotations

import functools

import torch


def check_pair(name: str, a: torch.Tensor, b: torch.Tensor, a_name: str = "u", b_name: str = "v") -> None:
    """``a`` and ``b`` are ``[N, D]`` with the same shape and N >= 1."""
    if a.dim() != 2 or b.dim() != 2 or a.shape != b.shape or a.shape[0] < 1:
        raise ValueError(f"{name} expects {a_name} and {b_name} of the same shape [N, D] with N >= 1, "
                         f"got {a_name} {tuple(a.shape)} and {b_name} {tuple(b.shape)}")


def check_positive(name: str, key: str, value: float) -> float:
    value = float(value)
    if not value > 0:
        raise ValueError(f"{name}: {key} must be > 0, got {value}")
    return value


def zero_loss(*tensors: torch.Tensor) -> torch.Tensor:
    """A scalar 0 connected to the graph of ``tensors`` (so ``backward`` works and gives zero gradients)."""
    total = tensors[0].sum() * 0.0
    for t in tensors[1:]:
        total = total + t.sum() * 0.0
    return total


def full_precision(fn):
    """Run a loss in float32 with autocast off: similarities divided by a small temperature (0.07-0.1) amplify
    bf16/fp16 rounding (~4e-3 on a cosine) into logit noise of 0.05-0.1, so the engine's CUDA autocast must
    stop at the embeddings."""

    def cast(a):
        return a.float() if torch.is_tensor(a) and a.dtype in (torch.float16, torch.bfloat16) else a

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        dev = next((a.device.type for a in args if torch.is_tensor(a)), "cpu")
        with torch.autocast(device_type=dev, enabled=False):
            return fn(self, *[cast(a) for a in args], **{k: cast(v) for k, v in kwargs.items()})

    return wrapper
