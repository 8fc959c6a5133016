"""Tier 1: the advantage formulas against hand-computed tables and a second, plain-loop implementation."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from longwriter.advantages import (
    COMBINERS,
    combine_advantages,
    grpo_advantages,
    register_combiner,
    weighted_reward_sum,
)

NAN = math.nan
SQRT3 = math.sqrt(3.0)


def test_one_group_hand_computed_with_sample_std():
    # mean 0.5, deviations [.5, -.5, 0, 0], var (ddof=1) = 0.5 / 3, std = 0.408248...
    a = grpo_advantages(np.array([1.0, 0.0, 0.5, 0.5]), np.zeros(4, dtype=int), eps=0.0)
    np.testing.assert_allclose(a, [1.224744871391589, -1.224744871391589, 0.0, 0.0], rtol=1e-12)


def test_eps_is_added_to_the_std():
    a = grpo_advantages(np.array([1.0, 0.0, 0.5, 0.5]), np.zeros(4, dtype=int), eps=0.1)
    assert a[0] == pytest.approx(0.5 / (math.sqrt(0.5 / 3) + 0.1), rel=1e-12)


def test_two_interleaved_groups():
    # group 0: [1, 2, 3] -> mean 2, std 1; group 1: [5, 5, 7] -> mean 17/3, std 2/sqrt(3)
    rewards = np.array([1.0, 5.0, 2.0, 5.0, 3.0, 7.0])
    groups = np.array([0, 1, 0, 1, 0, 1])
    a = grpo_advantages(rewards, groups, eps=0.0)
    np.testing.assert_allclose(a, [-1.0, -1 / SQRT3, 0.0, -1 / SQRT3, 1.0, 2 / SQRT3], rtol=1e-12)


def test_all_equal_group_gets_zero_and_other_groups_are_unaffected():
    a = grpo_advantages(np.array([0.7, 0.7, 0.7, 0.0, 1.0]), np.array([3, 3, 3, 9, 9]))
    np.testing.assert_array_equal(a[:3], 0.0)
    assert a[3] == pytest.approx(-0.5 / (math.sqrt(0.5) + 1e-6))


def test_nan_entries_get_zero_and_are_excluded_from_the_stats():
    # known [1, 0, 0.5]: mean 0.5, std 0.5
    a = grpo_advantages(np.array([1.0, NAN, 0.0, 0.5]), np.zeros(4, dtype=int), eps=0.0)
    np.testing.assert_allclose(a, [1.0, 0.0, -1.0, 0.0], rtol=1e-12)
    assert not np.isnan(a).any()


@pytest.mark.parametrize("rewards", [[0.3], [NAN], [NAN, NAN], [0.2, NAN]])
def test_groups_with_fewer_than_two_known_rewards_get_zero(rewards):
    a = grpo_advantages(np.array(rewards), np.zeros(len(rewards), dtype=int))
    np.testing.assert_array_equal(a, 0.0)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        grpo_advantages(np.zeros(3), np.zeros(4, dtype=int))


# Three components, one group of three responses.
LEN = np.array([1.0, 0.0, 0.0])  # A = [2, -1, -1] / sqrt(3)
QUAL = np.array([0.0, 0.5, 1.0])  # A = [-1, 0, 1]
FMT = np.array([1.0, 1.0, 1.0])  # A = 0
ONE_GROUP = np.zeros(3, dtype=int)
EQUAL = {"length": 1.0, "quality": 1.0, "format": 1.0}
COMPONENTS = {"length": LEN, "quality": QUAL, "format": FMT}


def test_mean_advantage_hand_computed():
    a = combine_advantages(COMPONENTS, EQUAL, ONE_GROUP, mode="mean_advantage", eps=0.0)
    expected = [(2 / SQRT3 - 1) / 3, (-1 / SQRT3) / 3, (-1 / SQRT3 + 1) / 3]
    np.testing.assert_allclose(a, expected, rtol=1e-12)


def test_sum_reward_hand_computed_and_differs_from_mean_advantage():
    # r = [2, 1.5, 2]: mean 11/6, deviations [1/6, -1/3, 1/6], std = sqrt(1/12)
    a = combine_advantages(COMPONENTS, EQUAL, ONE_GROUP, mode="sum_reward", eps=0.0)
    np.testing.assert_allclose(a, [1 / SQRT3, -2 / SQRT3, 1 / SQRT3], rtol=1e-12)
    b = combine_advantages(COMPONENTS, EQUAL, ONE_GROUP, mode="mean_advantage", eps=0.0)
    assert np.abs(a - b).max() > 0.5
    # ...and the ranking differs too: sum_reward ties responses 0 and 2, mean_advantage prefers 2.
    assert a[0] == pytest.approx(a[2]) and b[2] > b[0]


def test_mean_advantage_weights():
    weights = {"length": 2.0, "quality": 1.0, "format": 1.0}
    a = combine_advantages(COMPONENTS, weights, ONE_GROUP, mode="mean_advantage", eps=0.0)
    expected = (2 * np.array([2, -1, -1]) / SQRT3 + np.array([-1, 0, 1])) / 4
    np.testing.assert_allclose(a, expected, rtol=1e-12)


def test_sum_reward_weights():
    weights = {"length": 0.0, "quality": 2.0, "format": 1.0}
    a = combine_advantages(COMPONENTS, weights, ONE_GROUP, mode="sum_reward", eps=0.0)
    np.testing.assert_allclose(a, [-1.0, 0.0, 1.0], rtol=1e-12)  # only quality varies


def test_sum_reward_single_component_equals_grpo_and_nan_row_is_neutral():
    r = np.array([1.0, NAN, 0.0, 0.5, 0.5, 1.0])
    g = np.array([0, 0, 0, 1, 1, 1])
    a = combine_advantages({"pairwise": r}, {"pairwise": 1.0}, g, mode="sum_reward")
    np.testing.assert_allclose(a, grpo_advantages(r, g))
    assert a[1] == 0.0


def test_sum_reward_unknown_component_is_neutral_not_a_loss():
    """Hybrid pairwise + length: an unknown verdict must score between a win and a loss."""
    length = np.array([1.0, 1.0, 1.0, 0.5])
    unknown = combine_advantages({"pairwise": np.array([1.0, NAN, 0.0, 1.0]), "length": length},
                                 {"pairwise": 1.0, "length": 1.0}, np.zeros(4, dtype=int), mode="sum_reward")
    as_loss = combine_advantages({"pairwise": np.array([1.0, 0.0, 0.0, 1.0]), "length": length},
                                 {"pairwise": 1.0, "length": 1.0}, np.zeros(4, dtype=int), mode="sum_reward")
    # pairwise imputed with the group mean of known values (2/3): totals [2, 5/3, 1, 1.5]
    np.testing.assert_allclose(unknown, grpo_advantages(np.array([2.0, 5 / 3, 1.0, 1.5]), np.zeros(4, dtype=int)))
    assert unknown[1] > as_loss[1]


def test_rows_with_every_component_unknown_get_zero():
    comps = {"a": np.array([NAN, 1.0, 0.0]), "b": np.array([NAN, 0.0, 1.0])}
    for mode in ("sum_reward", "mean_advantage"):
        a = combine_advantages(comps, {"a": 1.0, "b": 1.0}, ONE_GROUP, mode=mode)
        assert a[0] == 0.0


def test_weighted_reward_sum_skips_nan_components():
    total = weighted_reward_sum({"a": np.array([1.0, NAN, NAN]), "b": np.array([0.5, 0.5, NAN])},
                                {"a": 2.0, "b": 1.0})
    np.testing.assert_allclose(total[:2], [2.5, 0.5])
    assert math.isnan(total[2])


def test_unknown_mode_and_mismatched_weights_are_errors():
    with pytest.raises(KeyError, match="available"):
        combine_advantages(COMPONENTS, EQUAL, ONE_GROUP, mode="normalize_then_sum")
    with pytest.raises(KeyError, match="without rewards"):
        combine_advantages({"length": LEN}, EQUAL, ONE_GROUP)
    with pytest.raises(ValueError, match="non-zero"):
        combine_advantages({"x": LEN}, {"x": 0.0}, ONE_GROUP, mode="mean_advantage")


def test_registry_refuses_a_duplicate_name():
    assert {"sum_reward", "mean_advantage"} <= set(COMBINERS)
    with pytest.raises(ValueError, match="already registered"):
        register_combiner("sum_reward")(lambda *args: None)


# A deliberately plain second implementation: Python lists and the statistics module.
def loop_grpo(rewards, groups, eps):
    out = [0.0] * len(rewards)
    for g in set(groups):
        known = [i for i in range(len(rewards)) if groups[i] == g and not math.isnan(rewards[i])]
        values = [rewards[i] for i in known]
        if len(values) < 2 or len(set(values)) == 1:
            continue
        mean, std = statistics.fmean(values), statistics.stdev(values)
        for i in known:
            out[i] = (rewards[i] - mean) / (std + eps)
    return out


def loop_mean_advantage(components, weights, groups, eps):
    per = {k: loop_grpo(list(v), list(groups), eps) for k, v in components.items()}
    total = sum(weights.values())
    return [sum(weights[k] * per[k][i] for k in components) / total for i in range(len(groups))]


@pytest.mark.parametrize("seed", range(5))
def test_matches_the_loop_implementation_on_random_data(seed):
    rng = np.random.default_rng(seed)
    n = 64
    groups = rng.integers(0, 12, size=n)
    comps = {}
    for name in ("length", "quality", "format"):
        r = rng.choice([0.0, 0.25, 0.5, 1.0], size=n) if name == "format" else rng.normal(size=n)
        r[rng.random(n) < 0.15] = NAN
        comps[name] = r
    weights = {"length": 1.0, "quality": 0.5, "format": 2.0}
    np.testing.assert_allclose(grpo_advantages(comps["quality"], groups),
                               loop_grpo(list(comps["quality"]), list(groups), 1e-6), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(combine_advantages(comps, weights, groups, "mean_advantage"),
                               loop_mean_advantage(comps, weights, groups, 1e-6), rtol=1e-10, atol=1e-12)
