"""Tier 1: the LongWriter-Zero length reward, branch by branch, and the word count it relies on."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from longwriter.data.schema import Sample
from longwriter.rewards.base import RolloutBatch
from longwriter.rewards.length import LengthComponent, LengthConfig, length_reward
from longwriter.text import count_words


def words(n: int) -> str:
    """n letter-only words (LongBench-Write's counter skips digits: "w1" is no word)."""
    return " ".join(["word"] * n)


def sample(length_range=None, sid="s") -> Sample:
    return Sample(id=sid, prompt=[{"role": "user", "content": "Write."}], length_range=length_range)


def score(completions, ranges, l_max=100.0, template="plain"):
    batch = RolloutBatch([sample(r, f"s{i}") for i, r in enumerate(ranges)], completions,
                         np.arange(len(completions)))
    return asyncio.run(LengthComponent(LengthConfig(l_max=l_max), template).score(batch))


@pytest.mark.parametrize(
    "n_words, lower, upper, l_max, expected",
    [
        (50, 40, 60, 100, 1.0),  # inside
        (40, 40, 60, 100, 1.0),  # lower edge
        (60, 40, 60, 100, 1.0),  # upper edge
        (30, 40, 60, 100, 0.75),  # below: 30 / 40
        (0, 40, 60, 100, 0.0),  # empty
        (80, 40, 60, 100, 0.5),  # above: (100 - 80) / (100 - 60)
        (70, 40, 60, 100, 0.75),  # above: 30 / 40
        (100, 40, 60, 100, 0.0),  # at the cap
        (150, 40, 60, 100, 0.0),  # past the cap: clipped, not negative
        (0, 0, 10, 100, 1.0),  # L_lower = 0: nothing is "below"
        (7, 0, 10, 100, 1.0),
        (61, 40, 60, 50, 0.0),  # L_max <= L_upper: hard cap
        (60, 40, 60, 60, 1.0),
    ],
)
def test_length_reward_branches(n_words, lower, upper, l_max, expected):
    assert length_reward(n_words, lower, upper, l_max) == pytest.approx(expected, abs=1e-12)


def test_component_scores_each_branch_and_not_applicable():
    completions = [words(50), words(30), words(80), "", words(5), words(5)]
    ranges = [(40, 60), (40, 60), (40, 60), (10, 20), None, (0, 0)]
    result = score(completions, ranges)
    np.testing.assert_allclose(result.rewards[:4], [1.0, 0.75, 0.5, 0.0])
    assert math.isnan(result.rewards[4]) and math.isnan(result.rewards[5])  # no range; infeasible [0, 0]
    m = result.metrics
    assert m["length/applicable_rate"] == pytest.approx(4 / 6)
    assert m["length/in_range_rate"] == pytest.approx(1 / 4)
    assert m["length/below_rate"] == pytest.approx(2 / 4)
    assert m["length/above_rate"] == pytest.approx(1 / 4)
    assert m["length/words/mean"] == pytest.approx((50 + 30 + 80 + 0 + 5 + 5) / 6)


def test_cjk_characters_count_as_words():
    assert count_words("你好世界" * 10) == 40
    assert count_words("hello 世界, world!") == 4
    assert count_words("日本語のテキスト") == 3  # LongBench-Write counts ideographs, not kana
    assert count_words("-- ... !!") == 0
    result = score(["你好世界" * 10, "你好" * 10], [(30, 50), (30, 50)])
    np.testing.assert_allclose(result.rewards, [1.0, 20 / 30])


def test_think_template_measures_the_answer_only():
    completion = f"<think>{words(300)}</think>\n<answer>{words(50)}</answer>"
    np.testing.assert_allclose(score([completion], [(40, 60)], template="think").rewards, [1.0])
    # The same text under the plain template counts the reasoning too: 350 words, above the cap.
    np.testing.assert_allclose(score([completion], [(40, 60)], template="plain").rewards, [0.0])


def test_broken_tags_fall_back_to_the_best_effort_answer():
    # No closing </answer>: the text after <answer> is the answer (format is penalised elsewhere).
    completion = f"<think>{words(10)}</think><answer>{words(45)}"
    np.testing.assert_allclose(score([completion], [(40, 60)], template="think").rewards, [1.0])
    np.testing.assert_allclose(score([words(50)], [(40, 60)], template="no_think").rewards, [1.0])


def test_invalid_l_max_and_unknown_option():
    with pytest.raises(ValueError, match="l_max"):
        LengthComponent(LengthConfig(l_max=0))
    from longwriter.rewards.base import BuildContext

    with pytest.raises(ValueError, match="unknown option"):
        LengthComponent.from_config({"lmax": 5}, BuildContext())


def test_relative_cap_scales_with_each_samples_upper_bound():
    # l_max_ratio=2: the reward reaches 0 at twice L_upper, whatever the request's size.
    config = LengthConfig(l_max=12000.0, l_max_ratio=2.0)
    batch = RolloutBatch([sample((40, 60), "a"), sample((400, 600), "b"), sample((40, 60), "c")],
                         [words(90), words(900), words(120)], np.arange(3))
    result = asyncio.run(LengthComponent(config).score(batch))
    np.testing.assert_allclose(result.rewards, [0.5, 0.5, 0.0])  # (120-90)/(120-60), (1200-900)/(1200-600)
    # The absolute cap alone barely notices the same over-length answer.
    absolute = asyncio.run(LengthComponent(LengthConfig(l_max=12000.0)).score(batch))
    assert absolute.rewards[0] > 0.99


@pytest.mark.parametrize("ratio", [1.0, 0.5, -2, True, "2"])
def test_relative_cap_must_leave_room_above_the_range(ratio):
    with pytest.raises(ValueError, match="l_max_ratio"):
        LengthComponent(LengthConfig(l_max_ratio=ratio))
