"""Ranges of numbers given by users -- one check for config values and command-line options.

A number out of its range (``trainer.optimizer.lr=-0.1``, ``--bin-width 0``, ``--folds 1``, ``nan``) used to
reach torch, numpy or PyRadiomics and end in their traceback, or to be silently ignored. :class:`Range` says
what a key accepts; :func:`check_range` raises :class:`~radclr.errors.ConfigError` naming the key (a dotted
config key or a ``--flag``), the value and the range, before any work starts. :data:`CONFIG_RANGES` holds the
ranges of the configuration keys (checked by :func:`radclr.engine.config.validate_config`; a stage key such as
``stages.1.batch_size`` is checked with its ``trainer`` range); :func:`arg_type` makes an argparse ``type=``
from a range, so a command-line option is checked while the arguments are parsed.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from radclr.errors import ConfigError

__all__ = ["Range", "check_range", "arg_type", "CONFIG_RANGES"]


@dataclass(frozen=True)
class Range:
    """``lo <= value <= hi`` (``lo_open``/``hi_open``: strict); ``whole``: an integer; ``none_ok``: ``None``
    allowed (e.g. ``radiomics.bin_count: null``); ``also``: other values allowed (``linear_eval_folds: 0`` = off)."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    whole: bool = False
    none_ok: bool = False
    also: tuple = ()
    why: str = ""

    def words(self) -> str:
        parts = []
        if self.lo is not None and self.hi is not None:
            parts.append(f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}")
        elif self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {self.lo:g}")
        elif self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {self.hi:g}")
        text = ("a whole number " if self.whole else "a number ") + " ".join(parts)
        if self.also:
            text += ", or " + ", ".join(map(str, self.also))
        return text.strip() + (f" ({self.why})" if self.why else "")

    def ok(self, v) -> bool:
        if v is None:
            return self.none_ok
        if v in self.also:
            return True
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        if self.whole and not float(v).is_integer():
            return False
        if self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo)):
            return False
        if self.hi is not None and (v > self.hi or (self.hi_open and v == self.hi)):
            return False
        return True


def check_range(key: str, value, rng: Range):
    """``value`` if it is in ``rng``; else :class:`ConfigError` ``"<key> must be <range>, got <value>"``."""
    if not rng.ok(value):
        raise ConfigError(f"{key} must be {rng.words()}, got {value!r}")
    return value


def arg_type(rng: Range, flag: str):
    """An argparse ``type=`` that parses a number and checks ``rng``; a bad value is argparse's one-line error
    naming ``flag`` (exit status 2)."""
    def parse(text: str):
        try:
            value = int(text) if rng.whole else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be {rng.words()}, got {text!r}") from None
        if not rng.ok(value):
            raise argparse.ArgumentTypeError(f"{flag} must be {rng.words()}, got {text!r}")
        return value

    parse.__name__ = "whole number" if rng.whole else "number"
    return parse


POSITIVE = Range(0, lo_open=True)
POSITIVE_INT = Range(1, whole=True)
NON_NEGATIVE = Range(0)
NON_NEGATIVE_INT = Range(0, whole=True)
FRACTION_OPEN = Range(0, 1, hi_open=True)  # [0, 1)
FRACTION = Range(0, 1)  # [0, 1]
FRACTION_POS = Range(0, 1, lo_open=True)  # (0, 1]

# ranges of config keys; "trainer.*" keys are also those of each stage (stages.<i>.<key>)
CONFIG_RANGES: dict[str, Range] = {
    "seed": NON_NEGATIVE_INT,
    "data.image_size": Range(32, 4096, whole=True, why="the encoders downsample 32x; smaller inputs leave no "
                                                      "feature map to learn or localize from"),
    "data.split.val": FRACTION_OPEN,
    "data.split.test": FRACTION_OPEN,
    "data.split.seed": NON_NEGATIVE_INT,
    "data.label_fraction": FRACTION_POS,
    "data.box_fraction": FRACTION,
    "data.pretext_fraction": FRACTION_POS,
    "data.phantom.n": Range(4, whole=True),
    "data.phantom.size": Range(32, 4096, whole=True),
    "data.phantom.seed": NON_NEGATIVE_INT,
    "radiomics.bin_width": POSITIVE,
    "radiomics.bin_count": Range(1, whole=True, none_ok=True),
    "radiomics.refresh_every": POSITIVE_INT,
    "model.proj_dim": POSITIVE_INT,
    "model.proj_hidden": POSITIVE_INT,
    "model.radiomics_dim": POSITIVE_INT,
    "trainer.epochs": NON_NEGATIVE_INT,
    "trainer.batch_size": Range(1, 65536, whole=True),
    "trainer.eval_batch_size": Range(1, 65536, whole=True),
    "trainer.num_workers": Range(0, 256, whole=True, also=("auto",), why="auto = 0 on the CPU, cores - 2 on CUDA"),
    "trainer.sync_every_steps": Range(1, 100000, whole=True, also=("auto",), why="auto = 1 on the CPU, 25 on CUDA"),
    "trainer.dist_timeout_minutes": Range(0, 100000, lo_open=True),
    "data.jobs": Range(1, 4096, whole=True),
    "trainer.precise_bn_batches": NON_NEGATIVE_INT,
    "trainer.checkpoint_every_steps": NON_NEGATIVE_INT,
    "trainer.optimizer.lr": POSITIVE,
    "trainer.optimizer.weight_decay": NON_NEGATIVE,
    "trainer.optimizer.momentum": Range(0, 1, hi_open=True),
    "trainer.schedule.step_size": POSITIVE_INT,
    "trainer.schedule.gamma": POSITIVE,
    "trainer.schedule.warmup_epochs": NON_NEGATIVE_INT,
    "trainer.early_stopping.patience": NON_NEGATIVE_INT,
    "trainer.early_stopping.min_delta": NON_NEGATIVE,
    "evaluation.n_boot": NON_NEGATIVE_INT,
    "evaluation.linear_eval_folds": Range(2, whole=True, also=(0,), why="0 = off"),
}
# numbers that may also be text (evaluation.cam_threshold: auto | method | a number)
CONFIG_RANGES_IF_NUMBER: dict[str, Range] = {"evaluation.cam_threshold": FRACTION}
