"""TensorBoard event files next to ``metrics.csv``, when TensorBoard is installed (the optional extra
``pip install radclr[tensorboard]``); without it nothing is written and nothing changes.

What a run writes (``RUN/events.out.tfevents.*``, read with ``tensorboard --logdir RUN`` or a folder of runs):

* ``<stage>/<key>`` once per epoch for every number of the epoch's ``metrics.csv`` row (``train_loss``,
  ``val_loss``, ``val_auc_<finding>``, ``val_auc_mean``, ``lr``, times ...), at the run's epoch count (epochs of
  all stages so far), so the stages of a run follow one another on the x axis;
* ``<stage>/step_loss`` after every training step, at the stage's step count.

``metrics.csv`` stays the record of a run; the events are a view of it for the tool people already use. A
resumed run appends a new event file (TensorBoard merges them).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["EventLog", "summary_writer_class"]


def summary_writer_class():
    """``torch.utils.tensorboard.SummaryWriter``, or None when the ``tensorboard`` package is not installed."""
    try:  # optional dependency (the `tensorboard` extra): imported only when a run starts
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter


class EventLog:
    """Scalars of one run as TensorBoard events; every method is a no-op without a writer."""

    def __init__(self, writer=None):
        self.writer = writer

    @classmethod
    def open(cls, run_dir: str | Path) -> "EventLog":
        writer_cls = summary_writer_class()
        if writer_cls is None:
            log.debug("tensorboard is not installed: no event files (pip install 'radclr[tensorboard]')")
            return cls(None)
        return cls(writer_cls(log_dir=str(run_dir)))

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def epoch(self, row: dict, global_epoch: int) -> None:
        """Every finite number of a ``metrics.csv`` row as ``<stage>/<key>`` at ``global_epoch``."""
        if self.writer is None:
            return
        stage = str(row.get("stage", "train"))
        for key, value in row.items():
            if key in ("stage", "epoch") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(float(value)):
                self.writer.add_scalar(f"{stage}/{key}", float(value), global_epoch)
        self.writer.flush()

    def step(self, stage: str, step: int, loss: float) -> None:
        if self.writer is not None and math.isfinite(loss):
            self.writer.add_scalar(f"{stage}/step_loss", loss, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
