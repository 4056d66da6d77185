"""Progress that suits where the output goes: a tqdm bar on a terminal, a few log lines otherwise.

A tqdm bar redraws itself with carriage returns; written to a file or a pipe (``radclr train ... > log``, CI, a
job scheduler) every frame becomes text and floods the log. :func:`progress_bar` therefore returns

* a tqdm bar when the stream is a terminal (or inside Jupyter, which renders the redraws);
* otherwise a :class:`LogProgress`: no bar, one ``INFO`` line on the ``radclr.progress`` logger at most every
  :data:`LOG_INTERVAL_S` seconds (``desc: 340/1000 step (34%), 12.3 step/s, 27 s; loss=0.61``) and a closing
  line for a task that took longer than that -- short tasks stay silent, and the training loop adds its own one
  line per epoch (``stage train epoch 3/10 train_loss=... val_auc_mean=...``);
* a disabled tqdm when ``enabled`` is false (``--no-progress``).

Every progress display of radclr goes through here (data validation, image store, radiomics, training steps,
inference, localization, phantoms).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Callable, Iterable

from tqdm import tqdm

__all__ = ["progress_bar", "LogProgress", "is_terminal", "LOG_INTERVAL_S"]

#: seconds between two progress lines when the output is not a terminal (``RADCLR_PROGRESS_SECONDS`` overrides)
LOG_INTERVAL_S = float(os.environ.get("RADCLR_PROGRESS_SECONDS", "30"))

log = logging.getLogger("radclr.progress")


def is_terminal(stream=None) -> bool:
    """Whether progress written to ``stream`` (default stderr) is shown by a terminal or a notebook."""
    stream = sys.stderr if stream is None else stream
    if "ipykernel" in sys.modules:  # Jupyter renders tqdm's redraws
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class LogProgress:
    """The tqdm subset radclr uses (iterate, ``update``, ``set_postfix``, ``close``, context manager), reporting
    through the log instead of redrawing a bar (see module docstring)."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", initial: int = 0, interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self._start_n = int(initial)
        self.interval = LOG_INTERVAL_S if interval is None else float(interval)
        self._clock = clock
        self._t0 = self._last = clock()
        self._postfix = ""
        self._lines = 0
        self._closed = False

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()
        self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self._postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_description(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc

    def refresh(self) -> None:
        pass

    def update(self, n: int = 1) -> None:
        self.n += int(n)
        now = self._clock()
        if now - self._last >= self.interval and (self.total is None or self.n < self.total):
            self._emit(now)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        now = self._clock()
        if now - self._t0 >= self.interval:  # a long task ends with a line; a short one stays silent
            self._emit(now, done=True)

    def _emit(self, now: float, done: bool = False) -> None:
        self._last = now
        self._lines += 1
        elapsed = now - self._t0
        rate = (self.n - self._start_n) / elapsed if elapsed > 0 else 0.0
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        pct = f" ({100.0 * self.n / self.total:.0f}%)" if self.total else ""
        head = f"{self.desc}: " if self.desc else ""
        line = f"{head}{'done ' if done else ''}{count} {self.unit}{pct}, {rate:.3g} {self.unit}/s, {elapsed:.0f} s"
        log.info("%s%s", line, f"; {self._postfix}" if self._postfix else "")


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
                 enabled: bool = True, initial: int = 0, file=None, leave: bool = False, **tqdm_kwargs):
    """A tqdm bar on a terminal, :class:`LogProgress` otherwise, a disabled tqdm when not ``enabled``."""
    stream = sys.stderr if file is None else file
    if not enabled:
        return tqdm(iterable, total=total, disable=True)
    if is_terminal(stream):
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, file=stream, leave=leave,
                    **tqdm_kwargs)
    return LogProgress(iterable, total=total, desc=desc, unit=unit, initial=initial)
