"""Eq. 1 and the Θ rule on hand-computed cases, including the boundary Match(query, cloud) == Θ."""

from __future__ import annotations

import math

import pytest

from endcloud.evaluate.combine import combine


@pytest.mark.parametrize("sim, match, match_ref, final, rule", [
    (0.5, 1.0, 0.3, 0.8 * 0.5 + 0.2 * 1.0, "eq1"),       # 0.6
    (0.9, 0.4, 0.9, 0.8 * 0.9 + 0.2 * 0.4, "eq1"),       # 0.8
    (0.0, 0.0, 1.0, 0.0, "eq1"),
    (1.0, 1.0, 1.0, 1.0, "eq1"),
    (0.7, 0.95, 0.19, 0.7, "sim_only"),                  # cloud reply matched badly: Sim alone
    (0.3, 0.9, 0.0, 0.3, "sim_only"),
    (0.5, 1.0, 0.2, 0.6, "eq1"),                         # boundary: exactly Θ is not below Θ
])
def test_eq1_and_theta_rule(sim, match, match_ref, final, rule):
    c = combine(sim, match, match_ref)
    assert c.rule == rule
    assert math.isclose(c.final, final, abs_tol=1e-12)
    assert (c.sim, c.match, c.match_reference) == (sim, match, match_ref)  # every component kept


def test_hand_computed_values():
    assert math.isclose(combine(0.5, 1.0, 0.3).final, 0.6)
    assert math.isclose(combine(0.9, 0.4, 0.9).final, 0.8)
    just_below = math.nextafter(0.2, 0.0)
    assert combine(0.5, 1.0, just_below).rule == "sim_only"
    assert combine(0.5, 1.0, just_below).final == 0.5


def test_alpha_and_theta_are_parameters():
    assert math.isclose(combine(0.5, 1.0, 0.3, alpha=0.5).final, 0.75)
    assert combine(0.5, 1.0, 0.3, theta=0.5).rule == "sim_only"
    assert combine(0.5, 1.0, 0.0, theta=0.0).rule == "eq1"  # Θ = 0 never triggers the rule


def test_without_cloud_reply_final_is_match():
    c = combine(None, 0.42, None)
    assert (c.final, c.rule, c.sim, c.match_reference) == (0.42, "match_only", None, None)


@pytest.mark.parametrize("args", [(1.2, 0.5, 0.5), (0.5, -0.1, 0.5), (0.5, 0.5, float("nan")),
                                  (0.5, 0.5, None)])
def test_out_of_range_or_half_missing_is_an_error(args):
    with pytest.raises(ValueError):
        combine(*args)
