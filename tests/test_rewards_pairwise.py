"""Pairwise reward (Writing-RL): positions, swap, unknown verdicts, references and the curriculum.

The judge here is a scripted test double of the `PairwiseJudge` protocol: texts carry a hidden
"strength" and the double answers from it (or from a fixed position bias), recording every call.
"""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from longwriter.advantages import grpo_advantages
from longwriter.curriculum import CurriculumState
from longwriter.data.schema import Sample
from longwriter.judges.base import PairwiseJudgement
from longwriter.rewards.base import RolloutBatch
from longwriter.rewards.pairwise import PairwiseComponent, PairwiseConfig, combine_orders

REFS = ["ref-weak", "ref-mid", "ref-strong"]
STRENGTH = {"ref-weak": 1, "ref-mid": 2, "ref-strong": 3, "good": 2.5, "great": 4, "bad": 0, "ok": 2}


class ScriptedJudge:
    """Verdict from the texts' strengths; `bias` makes it always pick one position; texts in `unknown` get None."""

    def __init__(self, bias: str | None = None, unknown: set[tuple[str, str]] | frozenset = frozenset(),
                 delay: float = 0.0):
        self.bias, self.unknown, self.delay = bias, unknown, delay
        self.calls: list[tuple[str, tuple[str, ...], str, str]] = []
        self.in_flight = self.max_in_flight = 0

    async def compare(self, prompt, criteria, first, second) -> PairwiseJudgement:
        self.calls.append((prompt, tuple(criteria), first, second))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(self.delay)
        self.in_flight -= 1
        if (first, second) in self.unknown or "???" in (first, second):
            return PairwiseJudgement(None, raw="no marker", error="unparsable")
        if self.bias:
            return PairwiseJudgement(self.bias)
        a, b = STRENGTH[first], STRENGTH[second]
        return PairwiseJudgement("first" if a > b else "second" if b > a else "tie")


def sample(sid="s", refs=REFS, start_level=0, criteria=()) -> Sample:
    return Sample(id=sid, prompt=[{"role": "system", "content": "sys"}, {"role": "user", "content": f"prompt {sid}"}],
                  references=list(refs), criteria=list(criteria), start_level=start_level)


def batch(groups: dict[str, list[str]], samples: dict[str, Sample] | None = None, training=True) -> RolloutBatch:
    samples = samples or {}
    ss = [samples.get(sid) or sample(sid) for sid in groups]
    return RolloutBatch.from_groups(ss, list(groups.values()), training=training)


def component(judge, curriculum=None, template="plain", **cfg) -> PairwiseComponent:
    return PairwiseComponent(judge, PairwiseConfig(**cfg), curriculum=curriculum, prompt_template=template)


def run(comp, b):
    return asyncio.run(comp.score(b))


def test_disadvantage_shows_the_reference_first():
    judge = ScriptedJudge()
    result = run(component(judge, position="disadvantage"),
                 batch({"s": ["good", "bad"]}, {"s": sample(criteria=["vivid"])}))
    assert [c[2:] for c in judge.calls] == [("ref-weak", "good"), ("ref-weak", "bad")]
    assert judge.calls[0][:2] == ("prompt s", ("vivid",))  # last user message and the sample's criteria
    np.testing.assert_array_equal(result.rewards, [1.0, 0.0])
    assert result.metrics["judge/win_rate"] == 0.5 and result.metrics["judge/loss_rate"] == 0.5


def test_advantage_shows_the_response_first():
    judge = ScriptedJudge()
    result = run(component(judge, position="advantage"), batch({"s": ["good", "ref-weak"]}))
    assert [c[2:] for c in judge.calls] == [("good", "ref-weak"), ("ref-weak", "ref-weak")]
    np.testing.assert_array_equal(result.rewards, [1.0, 0.5])
    assert result.metrics["judge/tie_rate"] == 0.5


@pytest.mark.parametrize("position, expected", [("disadvantage", 0.0), ("advantage", 1.0), ("swap", 0.5)])
def test_a_first_position_biased_judge(position, expected):
    result = run(component(ScriptedJudge(bias="first"), position=position), batch({"s": ["good", "great"]}))
    np.testing.assert_array_equal(result.rewards, [expected, expected])
    if position == "swap":
        assert result.metrics["judge/position_disagreement"] == 1.0
        assert result.metrics["judge/tie_rate"] == 1.0
    else:
        assert "judge/position_disagreement" not in result.metrics


def test_swap_asks_both_orders_and_agreement_keeps_the_verdict():
    judge = ScriptedJudge()
    result = run(component(judge, position="swap"), batch({"s": ["good", "bad"]}))
    assert sorted(c[2:] for c in judge.calls) == sorted(
        [("ref-weak", "good"), ("good", "ref-weak"), ("ref-weak", "bad"), ("bad", "ref-weak")])
    np.testing.assert_array_equal(result.rewards, [1.0, 0.0])
    assert result.metrics["judge/position_disagreement"] == 0.0


def test_swap_with_one_order_unknown():
    unknown = {("good", "ref-weak")}  # the response-first order of "good" is unparsable
    default = run(component(ScriptedJudge(unknown=unknown), position="swap"), batch({"s": ["good", "bad"]}))
    assert math.isnan(default.rewards[0]) and default.rewards[1] == 0.0
    assert default.metrics["judge/unknown_rate"] == 0.5
    assert default.metrics["judge/position_disagreement"] == 0.0  # measured on "bad" only
    use_known = run(component(ScriptedJudge(unknown=unknown), position="swap", swap_partial="use_known"),
                    batch({"s": ["good", "bad"]}))
    np.testing.assert_array_equal(use_known.rewards, [1.0, 0.0])
    assert combine_orders([None, None]) == (None, False)
    assert combine_orders(["win", "loss"]) == ("tie", True)


def test_unknown_is_neutral_by_default_and_counted():
    result = run(component(ScriptedJudge()), batch({"s": ["great", "???", "bad"]}))
    assert result.rewards[0] == 1.0 and math.isnan(result.rewards[1]) and result.rewards[2] == 0.0
    assert result.metrics["judge/unknown_rate"] == pytest.approx(1 / 3)
    advantages = grpo_advantages(result.rewards, np.zeros(3, dtype=int))
    assert advantages[1] == 0.0 and advantages[0] == pytest.approx(-advantages[2]) and advantages[0] > 0
    as_loss = run(component(ScriptedJudge(), unknown="loss"), batch({"s": ["great", "???", "bad"]}))
    np.testing.assert_array_equal(as_loss.rewards, [1.0, 0.0, 0.0])
    as_tie = run(component(ScriptedJudge(), unknown="tie", tie=0.25), batch({"s": ["great", "???", "bad"]}))
    np.testing.assert_array_equal(as_tie.rewards, [1.0, 0.25, 0.0])


def test_reward_values_are_configurable():
    result = run(component(ScriptedJudge(), win=2.0, tie=0.0, loss=-1.0), batch({"s": ["great", "ref-weak", "bad"]}))
    np.testing.assert_array_equal(result.rewards, [2.0, 0.0, -1.0])


def test_reference_list_of_one_and_level_past_the_end():
    judge = ScriptedJudge()
    run(component(judge), batch({"s": ["good"]}, {"s": sample(refs=["ref-mid"], start_level=3)}))
    assert judge.calls[0][2] == "ref-mid"
    judge = ScriptedJudge()
    run(component(judge), batch({"s": ["good"]}, {"s": sample(start_level=7)}))
    assert judge.calls[0][2] == "ref-strong"


def test_samples_without_references_are_nan_and_counted():
    judge = ScriptedJudge()
    groups = {"s": ["good", "bad"], "none": ["good", "bad"]}
    result = run(component(judge), batch(groups, {"none": sample("none", refs=[])}))
    assert len(judge.calls) == 2
    np.testing.assert_array_equal(result.rewards[:2], [1.0, 0.0])
    assert np.isnan(result.rewards[2:]).all()
    assert result.metrics["judge/no_reference_rate"] == 0.5
    assert result.metrics["judge/win_rate"] == 0.5  # rates are over the judged completions


def test_think_template_judges_the_answer_only():
    judge = ScriptedJudge()
    result = run(component(judge, template="think"), batch({"s": ["<think>plan it</think><answer>great</answer>"]}))
    assert judge.calls[0][2:] == ("ref-weak", "great")
    assert result.rewards[0] == 1.0


def test_all_judge_calls_of_a_batch_run_concurrently():
    judge = ScriptedJudge(delay=0.05)
    groups = {f"s{i}": ["good", "bad", "great", "ok"] for i in range(5)}
    run(component(judge, position="swap"), batch(groups))
    assert len(judge.calls) == 40 and judge.max_in_flight == 40


def test_curriculum_moves_on_training_batches_only(tmp_path):
    state = CurriculumState(tmp_path / "c.sqlite")
    comp = component(ScriptedJudge(), curriculum=state)
    validation = run(comp, batch({"s": ["great", "bad"]}, training=False))
    assert state.snapshot() == {} and "curriculum/moved" not in validation.metrics
    trained = run(comp, batch({"s": ["great", "bad"]}))
    assert state.snapshot() == {"s": 1} and trained.metrics["curriculum/moved"] == 1.0
    # The next batch is judged against the next reference: "good" (2.5) beats ref-mid (2) -> level 2.
    judge = ScriptedJudge()
    result = run(component(judge, curriculum=state), batch({"s": ["good"]}))
    assert judge.calls[0][2] == "ref-mid" and result.rewards[0] == 1.0
    assert state.snapshot() == {"s": 2}
    # At the last level, wins keep it there.
    run(component(ScriptedJudge(), curriculum=state), batch({"s": ["great", "great"]}))
    assert state.snapshot() == {"s": 2}


@pytest.mark.parametrize(
    "rule, completions, expected",
    [
        ("any", ["great", "bad", "bad", "bad"], 1),
        ("any", ["bad", "bad", "bad", "bad"], 0),
        ("majority", ["great", "bad", "bad", "bad"], 0),
        ("majority", ["great", "great", "bad", "bad"], 1),
        ("majority", ["great", "???", "???", "bad"], 1),  # unknown verdicts are left out of the count
        ("per_response", ["great", "great", "bad", "bad"], 2),
        ("per_response", ["great", "great", "great", "great"], 2),  # capped at the last reference
        ("per_response", ["ref-weak", "ref-weak", "bad", "bad"], 0),  # ties do not move
    ],
)
def test_curriculum_rules(tmp_path, rule, completions, expected):
    state = CurriculumState(tmp_path / "c.sqlite")
    run(component(ScriptedJudge(), curriculum=state, curriculum_rule=rule), batch({"s": completions}))
    assert state.levels([sample()]) == [expected]


def test_level_metrics_and_start_levels(tmp_path):
    state = CurriculumState(tmp_path / "c.sqlite")
    samples = {"a": sample("a"), "b": sample("b", start_level=2), "c": sample("c", start_level=2)}
    result = run(component(ScriptedJudge(), curriculum=state),
                 batch({"a": ["bad"], "b": ["great"], "c": ["bad"]}, samples, training=True))
    m = result.metrics
    assert m["curriculum/level/mean"] == pytest.approx(4 / 3)  # levels used for this batch: 0, 2, 2
    assert (m["curriculum/level_hist/0"], m["curriculum/level_hist/1"], m["curriculum/level_hist/2"]) == \
        pytest.approx((1 / 3, 0.0, 2 / 3))
    assert state.snapshot() == {"a": 0, "b": 2, "c": 2}  # recorded from their start levels, b capped


def test_bad_config_values_are_errors():
    with pytest.raises(ValueError, match="position"):
        PairwiseConfig(position="middle")
    with pytest.raises(ValueError, match="unknown"):
        PairwiseConfig(unknown="win")
    with pytest.raises(ValueError, match="curriculum_rule"):
        PairwiseConfig(curriculum_rule="sometimes")
