"""Running sums of the scalars training and validation steps report, kept on the device until read.

Reading a CUDA scalar (``float(t)``) waits for every queued kernel; doing it for each scalar of each step keeps the
GPU idle between steps. :class:`EpochSums` adds each step's scalars on their device in float64 and is read once,
at a checkpoint or the epoch's end. The arithmetic is that of the host floats it replaces (each float32/bf16
value widened exactly to float64, added in the same order), so the epoch means are bit-identical.
"""

from __future__ import annotations

import torch

__all__ = ["EpochSums"]


class EpochSums:
    """``sums[k]`` (float64 tensors on ``device``) and ``sums["#" + k]`` (host counts of the steps reporting
    ``k``), started from ``initial`` (a checkpoint's running sums, or calibration values)."""

    def __init__(self, initial: dict[str, float], device: torch.device):
        self.device = torch.device(device)
        self._sums = {k: torch.tensor(float(v), dtype=torch.float64, device=self.device)
                      for k, v in initial.items() if not k.startswith("#")}
        self._counts = {k: float(v) for k, v in initial.items() if k.startswith("#")}

    def add(self, out: dict, weight: int | None = None) -> None:
        """Add every 0-d tensor of ``out`` whose key does not start with ``_`` (times ``weight`` when given)."""
        for k, v in out.items():
            if torch.is_tensor(v) and v.dim() == 0 and not k.startswith("_"):
                v = v.detach().to(device=self.device, dtype=torch.float64)
                if weight is not None:
                    v = v * weight
                self._sums[k] = self._sums[k] + v if k in self._sums else 0.0 + v
                self._counts["#" + k] = self._counts.get("#" + k, 0.0) + 1

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to the host count ``key`` (a ``#`` key: steps and images of the epoch)."""
        self._counts[key] = self._counts.get(key, 0.0) + n

    def values(self) -> dict[str, float]:
        """Host floats of every sum and count (one wait for the device)."""
        keys = list(self._sums)
        vals = torch.stack([self._sums[k] for k in keys]).tolist() if keys else []
        return {**dict(zip(keys, vals)), **self._counts}
