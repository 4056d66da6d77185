"""Seed-level statistics (radclr.evaluation.seed_level) against hand-computed values."""

from __future__ import annotations

import math

import pytest

from radclr.evaluation.seed_level import paired_seed_diff, seed_interval


def test_seed_interval_hand_computed():
    # values 1..5: mean 3, s = sqrt(2.5) = 1.58114, se = 0.70711, t_{0.975,4} = 2.776445 -> half-width 1.963243
    r = seed_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert r.mean == pytest.approx(3.0)
    assert r.sd == pytest.approx(math.sqrt(2.5))
    assert (r.low, r.high) == pytest.approx((3.0 - 1.963243, 3.0 + 1.963243), abs=1e-6)
    d = r.to_dict()
    assert d["n_seeds"] == 5 and d["enough_seeds"] and d["t_ci"] == pytest.approx([1.036757, 4.963243], abs=1e-6)
    # 90 %: t_{0.95,4} = 2.131847
    r90 = seed_interval([1.0, 2.0, 3.0, 4.0, 5.0], ci=0.90)
    assert r90.high - 3.0 == pytest.approx(2.131847 * math.sqrt(2.5) / math.sqrt(5), abs=1e-6)


def test_seed_interval_drops_missing_and_handles_one_seed():
    r = seed_interval([0.5, None, float("nan"), 0.7])
    assert r.values == (0.5, 0.7) and r.n_dropped == 2 and not r.to_dict()["enough_seeds"]
    # n = 2: t_{0.975,1} = 12.706205, s = 0.141421, se = 0.1 -> half 1.2706205
    assert r.high - r.mean == pytest.approx(1.2706205, abs=1e-6)
    one = seed_interval([0.8])
    assert one.mean == 0.8 and math.isnan(one.sd) and math.isnan(one.low)
    with pytest.raises(ValueError, match="ci"):
        seed_interval([1, 2], ci=1.0)


def test_paired_seed_diff_hand_computed():
    a = {0: 0.80, 1: 0.85, 2: 0.90, 3: 0.82, 4: 0.88}
    b = {0: 0.79, 1: 0.80, 2: 0.91, 3: 0.78, 4: 0.83}
    # d = [0.01, 0.05, -0.01, 0.04, 0.05]: mean 0.028, s_d^2 = 0.00288/4 = 0.00072, se = sqrt(0.00072/5) = 0.012,
    # t = 2.3333, half-width 2.776445 * 0.012 = 0.0333173; sign 4:1 -> exact p = 2 * (1 + 5) / 32 = 0.375
    r = paired_seed_diff(a, b, names=("byop", "supervised"))
    assert r.diffs == pytest.approx((0.01, 0.05, -0.01, 0.04, 0.05))
    assert r.mean == pytest.approx(0.028)
    assert r.sd == pytest.approx(math.sqrt(0.00072))
    assert (r.low, r.high) == pytest.approx((0.028 - 0.0333173, 0.028 + 0.0333173), abs=1e-6)
    assert r.t == pytest.approx(0.028 / 0.012)
    assert 0.07 < r.p_value < 0.09  # two-sided p of t = 2.333 with 4 df (0.0801)
    assert (r.n_positive, r.n_negative, r.n_ties) == (4, 1, 0)
    assert r.sign_p_value == pytest.approx(0.375)
    d = r.to_dict()
    assert d["names"] == ["byop", "supervised"] and d["seeds"] == [0, 1, 2, 3, 4] and d["sign"]["a_better"] == 4


def test_paired_seed_diff_issue_example():
    # issue 21: per-seed IoU>0.3 differences -0.021, +0.146, +0.102 -> "a seed-level t of about 1.5"
    r = paired_seed_diff([0.0, 0.146, 0.102], [0.021, 0.0, 0.0])
    assert r.t == pytest.approx(1.5141, abs=1e-3)
    # t_{0.975,2} = 4.302653, s_d = 0.0865582 -> half-width 0.215026: the interval contains 0
    assert r.low == pytest.approx(0.0756667 - 0.215026, abs=1e-5) and r.low < 0 < r.high


def test_paired_seed_diff_pairs_by_seed_and_refuses_mismatch():
    r = paired_seed_diff({3: 1.0, 1: 0.5}, {1: 0.4, 3: 0.7})
    assert r.seeds == (1, 3) and r.diffs == pytest.approx((0.1, 0.3))
    with pytest.raises(ValueError, match="different seeds"):
        paired_seed_diff({0: 1.0, 1: 2.0}, {0: 1.0, 2: 2.0})
    with pytest.raises(ValueError, match="pair them"):
        paired_seed_diff([1.0, 2.0], [1.0])
    nan = paired_seed_diff([1.0, float("nan"), 3.0], [0.5, 0.5, 2.0])
    assert nan.n == 2 and nan.n_dropped == 1
    tie = paired_seed_diff([1.0, 1.0], [1.0, 1.0])
    assert tie.n_ties == 2 and math.isnan(tie.sign_p_value) and tie.p_value == 1.0
