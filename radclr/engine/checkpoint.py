"""Checkpoints: atomic writes, ``weights_only=True`` loads, everything needed for an exact resume.

A checkpoint is a dict of tensors and plain Python values only (so ``torch.load(..., weights_only=True)``
accepts it): the method's state dict (all parts + method buffers such as memory banks), optimiser, scheduler
and AMP scaler states, the global RNG states, the position in the run (stage, epoch, step), the running
sums of the current epoch, the metrics history and the best monitored value.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from radclr.errors import RadclrError
from radclr.outputs import atomic_path

FORMAT = "radclr-checkpoint-1"


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically: through ``path.tmp``, fsynced, then renamed. A failed write (disk
    full, read-only folder) removes the ``.tmp``, keeps the previous checkpoint and raises
    :class:`~radclr.errors.OutputError` naming the file."""
    with atomic_path(path, "checkpoint") as tmp:
        with open(tmp, "wb") as f:  # a Python file: a full disk is an OSError of its write ...
            try:
                torch.save({"format": FORMAT, **state}, f)
            except RuntimeError as e:  # ... which torch's zip writer masks with its own RuntimeError on the way out
                cause = _os_error_in(e)
                if cause is None:
                    raise
                raise cause from None
            f.flush()
            os.fsync(f.fileno())


def _os_error_in(e: BaseException) -> OSError | None:
    """The OSError an exception was raised while handling (its ``__context__``/``__cause__`` chain), if any."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.exists():
        raise RadclrError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt / truncated / not a torch file
        raise RadclrError(f"cannot read checkpoint {path}: {e}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RadclrError(f"{path} is not a radclr checkpoint")
    return state


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
