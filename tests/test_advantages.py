"""Tier 1: the advantage formulas against hand-computed tables and a second, plain-loop implementation."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from longwriter.advantages import (
    COMBINERS,
    combine_advantages,
    gdpo_advantages,
    grpo_advantages,
    group_signal_metrics,
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
    assert {"sum_reward", "mean_advantage", "gdpo"} <= set(COMBINERS)
    with pytest.raises(ValueError, match="already registered"):
        register_combiner("sum_reward")(lambda *args: None)


def test_gdpo_one_group_hand_computed():
    # A_length = [2, -1, -1] / sqrt3, A_quality = [-1, 0, 1], A_format = 0: s = [2/sqrt3 - 1, -1/sqrt3, 1 - 1/sqrt3],
    # mean 0, sum of squares 4 - 2 sqrt3, std (ddof=1) = sqrt(2 - sqrt3).
    a = combine_advantages(COMPONENTS, EQUAL, ONE_GROUP, mode="gdpo", eps=0.0)
    s = np.array([2 / SQRT3 - 1, -1 / SQRT3, 1 - 1 / SQRT3])
    np.testing.assert_allclose(a, s / math.sqrt(2 - SQRT3), rtol=1e-12)
    # ...the same ranking as mean_advantage (one group: the batch step only rescales), another scale.
    b = combine_advantages(COMPONENTS, EQUAL, ONE_GROUP, mode="mean_advantage", eps=0.0)
    np.testing.assert_allclose(a, b * 3 / math.sqrt(2 - SQRT3), rtol=1e-12)


C = 1 / math.sqrt(2.0)
# Four groups: (1, 0) vs (0, 1); a single completion; an all-equal component beside an unknown; all unknown.
EDGE = {"a": np.array([1.0, 0.0, 0.3, 0.5, 0.5, 0.5, NAN, NAN]),
        "b": np.array([0.0, 1.0, 0.9, 1.0, NAN, 0.0, NAN, NAN])}
EDGE_GROUPS = np.array([0, 0, 1, 2, 2, 2, 3, 3])


def test_gdpo_edge_cases_hand_computed():
    # A_a = [c, -c, 0, 0, 0, 0, 0, 0]; A_b = [-c, c, 0, c, 0, -c, 0, 0] (b's unknown row 4 is left out, and
    # neutral); s = 2 A_a + A_b = [c, -c, 0, c, 0, -c, ., .] over the six scorable rows: mean 0,
    # std = sqrt(4 c^2 / 5) = sqrt(0.4); the two rows with every component unknown get 0.
    a = gdpo_advantages(EDGE, {"a": 2.0, "b": 1.0}, EDGE_GROUPS, eps=0.0)
    h = C / math.sqrt(0.4)
    np.testing.assert_allclose(a, [h, -h, 0, h, 0, -h, 0, 0], rtol=1e-12, atol=1e-15)
    # Equal weights: (1, 0) and (0, 1) tie in every component sum: GDPO gives that group nothing either.
    even = gdpo_advantages(EDGE, {"a": 1.0, "b": 1.0}, EDGE_GROUPS, eps=0.0)
    assert even[0] == even[1] == 0.0
    assert even[3] > 0 > even[5]


@pytest.mark.parametrize("rewards, groups", [
    ({"a": np.array([0.4, 0.4, 0.4, 0.4])}, np.array([0, 0, 1, 1])),      # all-equal groups
    ({"a": np.array([0.1, 0.9, 0.5])}, np.array([0, 1, 2])),              # single-completion groups
    ({"a": np.array([NAN, NAN, NAN]), "b": np.array([NAN, NAN, NAN])}, np.zeros(3, dtype=int)),  # all unknown
])
def test_gdpo_batches_without_signal_get_zero(rewards, groups):
    a = gdpo_advantages(rewards, {k: 1.0 for k in rewards}, groups, eps=1e-6)
    np.testing.assert_array_equal(a, 0.0)


def test_gdpo_rows_without_a_known_reward_stay_out_of_the_batch_stats():
    # A = [c, -c, 0, 0]; the batch std is over the two scorable rows only: std([c, -c]) = 1.
    a = gdpo_advantages({"a": np.array([1.0, 0.0, NAN, NAN])}, {"a": 1.0}, np.array([0, 0, 1, 1]), eps=0.0)
    np.testing.assert_allclose(a, [C, -C, 0.0, 0.0], rtol=1e-12)


def test_gdpo_single_component_is_grpo_then_batch_whitened():
    r = np.array([1.0, 0.0, 0.5, 0.2, 0.9, NAN])
    g = np.array([0, 0, 0, 1, 1, 1])
    a = gdpo_advantages({"x": r}, {"x": 3.0}, g, eps=0.0)
    s = grpo_advantages(r, g, eps=0.0)
    np.testing.assert_allclose(a[:5], (s[:5] - s[:5].mean()) / s[:5].std(ddof=1), rtol=1e-12, atol=1e-12)
    assert a[5] == 0.0  # unknown: neutral; its row has no known component, so it is out of the batch stats


def test_group_signal_metrics_hand_computed():
    m = group_signal_metrics(EDGE, {"a": 2.0, "b": 1.0}, EDGE_GROUPS)
    # a: groups 1 (single), 2 (all 0.5), 3 (unknown) flat; b: groups 1 and 3 flat
    assert m["advantage/a/zero_std_group_frac"] == 0.75
    assert m["advantage/b/zero_std_group_frac"] == 0.5
    assert m["advantage/total/tie_component_spread_frac"] == 0.0  # totals [2, 1] and [2, 1.5, 1]: no tie
    even = group_signal_metrics(EDGE, {"a": 1.0, "b": 1.0}, EDGE_GROUPS)
    assert even["advantage/total/tie_component_spread_frac"] == 0.25  # group 0: 1 + 0 = 0 + 1
    # A tie up to rounding (0.1 + 0.2 vs 0.3) still counts; identical rows are no hidden tie.
    close = group_signal_metrics({"a": np.array([0.1, 0.3, 0.4, 0.4]), "b": np.array([0.2, 0.0, 0.0, 0.0])},
                                 {"a": 1.0, "b": 1.0}, np.array([0, 0, 1, 1]))
    assert close["advantage/total/tie_component_spread_frac"] == 0.5
    assert close["advantage/a/zero_std_group_frac"] == 0.5


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
