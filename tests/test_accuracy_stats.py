"""The interval, flip and McNemar arithmetic against cases worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ssc_deploy.accuracy_stats import (Z95, flips, format_p, gate_fails, mcnemar_p, paired_interval, top1_interval,
                                       wilson_interval)
from ssc_deploy.errors import SscDeployError


def test_wilson_at_0_and_100_percent_has_the_closed_form_ends():
    z2 = Z95 ** 2
    # k = 0: [0, z^2 / (n + z^2)]; k = n: [n / (n + z^2), 1] (the Wald interval would be [0, 0] and [1, 1])
    assert wilson_interval(0, 10) == (0.0, pytest.approx(z2 / (10 + z2), abs=1e-15))
    assert wilson_interval(10, 10) == (pytest.approx(10 / (10 + z2), abs=1e-15), 1.0)
    assert wilson_interval(0, 10)[1] == pytest.approx(0.27753, abs=1e-5)
    assert wilson_interval(360, 360)[0] == pytest.approx(360 / (360 + z2), abs=1e-15)


def test_wilson_of_half_and_of_the_issue_figure():
    # 5 of 10: centre 0.5, half-width z / (1 + z^2/10) * sqrt(0.025 + z^2/400) = 0.26341 (the textbook 0.2366-0.7634)
    lo, hi = wilson_interval(5, 10)
    assert (lo, hi) == (pytest.approx(0.236593, abs=1e-6), pytest.approx(0.763407, abs=1e-6))
    # 349 of 360 (96.9 %): the issue's "about +-1.8 points" (Wilson: -2.3 / +1.3, it leans towards 50 %)
    lo, hi = wilson_interval(349, 360)
    assert (lo * 100, hi * 100) == (pytest.approx(94.612, abs=1e-3), pytest.approx(98.285, abs=1e-3))
    assert top1_interval(349 / 360, 360) == (lo, hi)
    assert top1_interval(None, 360) == (None, None) and top1_interval(0.5, 0) == (None, None)


@pytest.mark.parametrize("bad", [(-1, 10), (11, 10), (0, 0)])
def test_wilson_refuses_impossible_counts(bad):
    with pytest.raises(SscDeployError, match="top-1 interval"):
        wilson_interval(*bad)


@pytest.mark.parametrize("b, c, p", [
    (0, 0, 1.0),  # no flips: nothing to test
    (1, 0, 1.0),  # 2 * 1/2
    (3, 3, 1.0),  # balanced: capped at 1
    (4, 0, 0.125),  # the issue's gate: 4 of 360 lost, none gained: 2 / 2^4
    (0, 5, 0.0625),  # 2 / 2^5
    (6, 0, 0.03125),  # the fewest one-way flips that are significant
    (2, 8, 0.109375),  # 2 * (1 + 10 + 45) / 1024
    (10, 0, 2 / 1024),  # all ten discordant images one way
])
def test_mcnemar_exact(b, c, p):
    assert mcnemar_p(b, c) == p
    assert mcnemar_p(c, b) == p


def test_mcnemar_many_trials_stays_exact():
    assert mcnemar_p(100, 0) == 2 / 2**100
    assert mcnemar_p(2000, 2000) == 1.0
    assert 0.0 < mcnemar_p(2100, 1900) < 0.01


def test_mcnemar_agrees_with_scipy_where_installed():
    stats = pytest.importorskip("scipy.stats")
    for b, c in ((2, 8), (7, 19), (30, 12), (0, 9)):
        assert mcnemar_p(b, c) == pytest.approx(stats.binomtest(min(b, c), b + c, 0.5).pvalue, rel=1e-12)


def test_flips_counts_each_kind():
    labels = [0, 1, 2, 3, 4]
    ref = [0, 1, 2, 0, 1]  # right, right, right, wrong, wrong
    new = [0, 2, 2, 3, 2]  # right, wrong, right, right, wrong (another wrong class)
    f = flips(labels, ref, new)
    assert (f.both_right, f.right_to_wrong, f.wrong_to_right, f.both_wrong, f.changed) == (2, 1, 1, 1, 3)
    assert f.p == 1.0 and f.delta == 0.0
    assert f.to_dict("vs_") == {"vs_right_to_wrong": 1, "vs_wrong_to_right": 1, "vs_changed": 3, "vs_p": 1.0}


def test_zero_flips_and_all_flips():
    labels = np.arange(10) % 3
    same = flips(labels, labels, labels)
    assert (same.right_to_wrong, same.wrong_to_right, same.changed, same.p) == (0, 0, 0, 1.0)
    wrong = (labels + 1) % 3
    allf = flips(labels, labels, wrong)  # every image right -> wrong
    assert (allf.right_to_wrong, allf.wrong_to_right, allf.changed, allf.both_right) == (10, 0, 10, 0)
    assert allf.p == 2 / 1024 and allf.delta == -1.0
    back = flips(labels, wrong, labels)
    assert (back.right_to_wrong, back.wrong_to_right, back.p) == (0, 10, 2 / 1024)


def test_flips_refuse_different_image_counts():
    with pytest.raises(SscDeployError, match="same images"):
        flips([0, 1], [0, 1], [0])


def test_paired_interval():
    # the issue's gate: fp32 353/360, int8 349/360, the 4 lost images the only discordant ones
    lo, hi = paired_interval(349, 0, 4, 7)
    assert lo < -4 / 360 < hi and hi > 0  # the drop's interval holds 0: consistent with p = 0.125
    assert (lo * 100, hi * 100) == (pytest.approx(-2.7666, abs=1e-3), pytest.approx(0.1420, abs=1e-3))
    # swapping A and B mirrors it
    lo2, hi2 = paired_interval(349, 4, 0, 7)
    assert (lo2, hi2) == (pytest.approx(-hi, abs=1e-12), pytest.approx(-lo, abs=1e-12))
    # no flips: centred on 0; all flips one way: far from 0, inside [-1, 1]
    lo, hi = paired_interval(100, 0, 0, 0)
    assert lo == pytest.approx(-hi) and hi > 0
    lo, hi = paired_interval(0, 10, 0, 0)
    assert 0 < lo < 1 and hi == 1.0
    assert flips([1] * 10, [0] * 10, [1] * 10).delta_interval() == (lo, hi)


def test_gate_rule_needs_a_real_drop_beyond_max_drop():
    assert not gate_fails(1.11, 1.0, mcnemar_p(4, 0))  # the issue's 4 images: not significant, passes
    assert gate_fails(1.67, 1.0, mcnemar_p(6, 0))  # 6 of 360 one way: significant and beyond
    assert not gate_fails(0.8, 1.0, 1e-6)  # significant but within --max-drop
    assert gate_fails(1.11, 1.0, mcnemar_p(4, 0), alpha=1.0)  # alpha 1: the drop alone decides
    assert gate_fails(2.0, 1.0, None)  # no flips known: the drop alone decides


def test_format_p():
    assert format_p(0.125) == "0.125" and format_p(1.0) == "1" and format_p(2 / 2**100) == "1.6e-30"
    assert format_p(None) == "-" and not math.isnan(mcnemar_p(0, 0))
