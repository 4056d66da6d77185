"""Seed-level statistics: how much a number moves with another *training run*, and a comparison paired by seed.

The patient bootstrap of :mod:`radclr.evaluation.bootstrap` resamples the test patients with the trained models
held fixed; it says how much a number would move with other test patients, not with another training run
(initialisation, sample order, augmentation). With ``n`` training seeds the run-to-run spread is estimated from the
``n`` values themselves:

* :func:`seed_interval` -- one metric over seeds: mean, sample standard deviation ``s`` (``ddof=1``) and the
  Student-t interval ``mean +- t_{1-alpha/2, n-1} * s / sqrt(n)`` (``ci = 1 - alpha``, default 0.95).
* :func:`paired_seed_diff` -- two methods trained with the same seeds (seed ``k`` of A is paired with seed ``k``
  of B: same data, split and, where the methods share it, the same initialisation stream). Per-seed differences
  ``d_k = A_k - B_k``; their mean, ``s_d``, the paired t interval ``mean(d) +- t_{1-alpha/2, n-1} s_d / sqrt(n)``,
  the t statistic ``mean(d) / (s_d / sqrt(n))`` with its two-sided p-value, and the sign count (how many seeds A
  beat B, lost, tied) with the exact two-sided sign-test p-value (ties dropped).

The t interval assumes the per-seed values (differences) are roughly normal; with few seeds it is wide by
construction (``t_{0.975, 2} = 4.30``, ``t_{0.975, 4} = 2.78``), which is the honest answer -- the sign count is
the distribution-free companion (with 5 seeds a 5-0 split has p = 0.0625). A seed whose value is missing or NaN
(for either method) is dropped and counted in ``n_dropped``. Fewer than two usable seeds give NaN intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats

__all__ = ["SeedInterval", "PairedSeedDiff", "seed_interval", "paired_seed_diff", "MIN_SEEDS"]

#: the number of training seeds below which a seed-level result is flagged as thin (``enough_seeds``)
MIN_SEEDS = 5


def _check_ci(ci: float) -> None:
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be in (0, 1), got {ci!r}")


def _t_interval(values: np.ndarray, ci: float) -> tuple[float, float, float, float, float]:
    """``(mean, sd, low, high, t critical)`` of the one-sample Student-t interval; NaN where undefined."""
    n = values.size
    if n == 0:
        return (math.nan,) * 5
    mean = float(values.mean())
    if n < 2:
        return mean, math.nan, math.nan, math.nan, math.nan
    sd = float(values.std(ddof=1))
    tcrit = float(stats.t.ppf(0.5 + ci / 2.0, df=n - 1))
    half = tcrit * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half, tcrit


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(float(v))


@dataclass(frozen=True)
class SeedInterval:
    """A metric over training seeds: values, mean, sd (ddof=1) and the t interval of the mean."""

    values: tuple[float, ...]
    mean: float
    sd: float
    low: float
    high: float
    ci: float
    n_dropped: int = 0

    @property
    def n(self) -> int:
        return len(self.values)

    def to_dict(self) -> dict[str, Any]:
        return {"values": list(self.values), "n_seeds": self.n, "mean": self.mean, "sd": self.sd,
                "t_ci": [self.low, self.high], "ci": self.ci, "n_dropped": self.n_dropped,
                "enough_seeds": self.n >= MIN_SEEDS}


def seed_interval(values: Sequence[float | None], ci: float = 0.95) -> SeedInterval:
    """Mean, sd and Student-t ``ci`` interval of a metric's values over training seeds (module docstring).
    Missing/NaN values are dropped (``n_dropped``)."""
    _check_ci(ci)
    vals = [float(v) for v in values if _finite(v)]
    mean, sd, lo, hi, _ = _t_interval(np.asarray(vals, dtype=float), ci)
    return SeedInterval(tuple(vals), mean, sd, lo, hi, float(ci), len(list(values)) - len(vals))


@dataclass(frozen=True)
class PairedSeedDiff:
    """A - B paired by training seed: per-seed differences, their mean, sd, t interval, t test and sign count."""

    seeds: tuple[Any, ...]
    a: tuple[float, ...]
    b: tuple[float, ...]
    diffs: tuple[float, ...]
    mean: float
    sd: float
    low: float
    high: float
    t: float
    p_value: float
    n_positive: int
    n_negative: int
    n_ties: int
    sign_p_value: float
    ci: float
    n_dropped: int = 0
    names: tuple[str, str] = field(default=("A", "B"))

    @property
    def n(self) -> int:
        return len(self.diffs)

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "seeds": list(self.seeds), "a": list(self.a), "b": list(self.b),
                "diffs": list(self.diffs), "n_seeds": self.n, "mean_diff": self.mean, "sd_diff": self.sd,
                "t_ci": [self.low, self.high], "ci": self.ci, "t": self.t, "p_value": self.p_value,
                "sign": {"a_better": self.n_positive, "b_better": self.n_negative, "ties": self.n_ties,
                         "p_value": self.sign_p_value},
                "n_dropped": self.n_dropped, "enough_seeds": self.n >= MIN_SEEDS,
                "method": "paired Student-t over training seeds (d_k = A_k - B_k)"}


def _pairs(a, b, seeds) -> tuple[list, list, list]:
    if isinstance(a, Mapping) != isinstance(b, Mapping):
        raise ValueError("paired_seed_diff: give both methods as {seed: value} mappings or both as sequences")
    if isinstance(a, Mapping):
        if set(a) != set(b):
            raise ValueError(f"paired_seed_diff: the methods were run with different seeds: A {sorted(a)}, "
                             f"B {sorted(b)}; a seed-level comparison pairs the same seeds")
        keys = list(seeds) if seeds is not None else sorted(a)
        return keys, [a[k] for k in keys], [b[k] for k in keys]
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise ValueError(f"paired_seed_diff: {len(a)} values for A and {len(b)} for B; pair them by seed")
    keys = list(seeds) if seeds is not None else list(range(len(a)))
    if len(keys) != len(a):
        raise ValueError(f"paired_seed_diff: {len(keys)} seeds for {len(a)} values")
    return keys, a, b


def paired_seed_diff(a, b, *, seeds: Sequence | None = None, ci: float = 0.95,
                     names: tuple[str, str] = ("A", "B")) -> PairedSeedDiff:
    """Seed-level paired comparison of metric values ``a`` and ``b`` (module docstring).

    ``a``/``b``: ``{seed: value}`` mappings with the same seeds, or equal-length sequences in seed order
    (``seeds`` names them). Pairs where either value is missing/NaN are dropped (``n_dropped``)."""
    _check_ci(ci)
    keys, va, vb = _pairs(a, b, seeds)
    kept = [(k, float(x), float(y)) for k, x, y in zip(keys, va, vb) if _finite(x) and _finite(y)]
    ks = tuple(k for k, _, _ in kept)
    xa = tuple(x for _, x, _ in kept)
    xb = tuple(y for _, _, y in kept)
    d = np.asarray(xa, dtype=float) - np.asarray(xb, dtype=float)
    mean, sd, lo, hi, _ = _t_interval(d, ci)
    n = d.size
    if n >= 2 and sd > 0:
        t = mean / (sd / math.sqrt(n))
        p = float(2.0 * stats.t.sf(abs(t), df=n - 1))
    elif n >= 2:  # every seed gave the same difference
        t, p = (math.copysign(math.inf, mean) if mean != 0 else math.nan), (0.0 if mean != 0 else 1.0)
    else:
        t, p = math.nan, math.nan
    pos, neg = int(np.sum(d > 0)), int(np.sum(d < 0))
    sign_p = float(stats.binomtest(pos, pos + neg, 0.5).pvalue) if pos + neg else math.nan
    return PairedSeedDiff(ks, xa, xb, tuple(float(x) for x in d), mean, sd, lo, hi, float(t), p, pos, neg,
                          n - pos - neg, sign_p, float(ci), len(keys) - n, tuple(names))
