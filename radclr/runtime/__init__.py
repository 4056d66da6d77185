"""Runtime plumbing under everything that computes: device choice, mixed precision, determinism, and the
torchrun/DDP collectives (gathering embeddings across ranks) that methods and the training loop share, and the
optional TensorBoard event log of a run (:mod:`radclr.runtime.events`)."""

from radclr.runtime.device import autocast_context, resolve_device, set_determinism, to_device

__all__ = ["autocast_context", "resolve_device", "set_determinism", "to_device"]
