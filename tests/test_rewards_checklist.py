"""Tier 1: the checklist / rubric reward (RLCF, Rubrics as Rewards): the weighted normalised mean by hand,
unknown criteria, all-equal groups, weights, samples without criteria (refused before training), one judge
request per criterion (the criterion in the cache key), and the real HTTP path against the TEST-ENVIRONMENT
judge (a deterministic rule, not a writing-quality judge), through the recipe and verl's reward manager."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
from omegaconf import OmegaConf

from longwriter.advantages import grpo_advantages
from longwriter.data.schema import Sample
from longwriter.errors import ConfigError
from longwriter.judges import CachedBackend, ChatResult, ChecklistTask, ChoiceResult, JudgeCache, Usage, \
    build_judge_backend
from longwriter.judges.base import PointwiseJudgement
from longwriter.rewards import build_recipe
from longwriter.rewards.base import RolloutBatch
from longwriter.rewards.checklist import ChecklistComponent, ChecklistConfig, criteria_weights, \
    weighted_checklist_reward
from longwriter.testing.length_criteria_judge import LengthCriteriaRule, serve
from longwriter.training_guards import UNKNOWN_RATE_METRICS, require_criteria

CRITERIA = ["Mentions the harbour", "Describes the lights", "Stays between 8 and 12 words"]


@pytest.mark.parametrize("units, weights, expected", [
    ([1.0, 0.0, 0.5], [1, 1, 1], 0.5),                    # plain mean (WritingBench's sample score)
    ([1.0, 0.0], [3, 1], 0.75),                            # (3*1 + 1*0) / 4
    ([1.0, math.nan, 0.0], [1, 5, 1], 0.5),                # unknown left out of both sums: (1 + 0) / 2
    ([0.2, 0.8], [0, 2], 0.8),                             # a zero weight does not count
    ([math.nan, math.nan], [1, 1], math.nan),              # nothing known -> unknown
    ([0.9, math.nan], [0, 1], math.nan),                   # only a zero weight known -> unknown
])
def test_weighted_normalised_mean_by_hand(units, weights, expected) -> None:
    value = weighted_checklist_reward(units, weights)
    assert (math.isnan(value) and math.isnan(expected)) or value == pytest.approx(expected)


class ScriptedCriterionJudge:
    """Score per criterion from a table: {criterion: {response: score}}; None = unreadable reply."""

    def __init__(self, table: dict[str, dict[str, float | None]]):
        self.table = table
        self.calls: list[tuple[str, str, str]] = []

    async def score_item(self, prompt, item, response) -> PointwiseJudgement:
        self.calls.append((prompt, item, response))
        score = self.table[item][response]
        return PointwiseJudgement(score, error=None if score is not None else "no score")


def _sample(criteria=CRITERIA, sid="s", **meta) -> Sample:
    return Sample(id=sid, prompt=[{"role": "user", "content": "Write about the harbour in about 10 words."}],
                  criteria=list(criteria), meta=meta)


def _score(component, samples, groups):
    return asyncio.run(component.score(RolloutBatch.from_groups(samples, groups)))


def test_rewards_metrics_and_labels_by_hand() -> None:
    judge = ScriptedCriterionJudge({
        CRITERIA[0]: {"a": 10, "b": 1, "c": 4},
        CRITERIA[1]: {"a": 7, "b": None, "c": 4},
        CRITERIA[2]: {"a": 1, "b": 10, "c": 4},
    })
    out = _score(ChecklistComponent(judge), [_sample()], [["a", "b", "c"]])
    # a: (1 + 6/9 + 0) / 3; b: criterion 2 unknown -> (0 + 1) / 2; c: 3/9 everywhere
    np.testing.assert_allclose(out.rewards, [(1 + 6 / 9) / 3, 0.5, 1 / 3])
    assert len(judge.calls) == 9  # one request per (completion, criterion)
    assert {item for _, item, _ in judge.calls} == set(CRITERIA)
    assert out.metrics["checklist/unknown_rate"] == pytest.approx(1 / 9)
    assert out.metrics["checklist/all_unknown_rate"] == 0.0
    assert out.metrics["checklist/criterion_score/mean"] == pytest.approx((10 + 1 + 4 + 7 + 4 + 1 + 10 + 4) / 8)
    assert out.metrics["checklist/criteria/mean"] == 3.0
    assert out.labels["criteria_scores"] == ["10 7 1", "1 ? 10", "4 4 4"]


def test_sample_weights_from_meta_and_a_custom_scale() -> None:
    judge = ScriptedCriterionJudge({"x": {"r": 5}, "y": {"r": 0}})
    out = _score(ChecklistComponent(judge, ChecklistConfig(score_min=0, score_max=5)),
                 [_sample(["x", "y"], criteria_weights=[3, 1])], [["r"]])
    assert out.rewards.tolist() == [0.75]  # (3 * 1 + 1 * 0) / 4


def test_all_equal_group_gives_zero_advantage() -> None:
    judge = ScriptedCriterionJudge({c: {"a": 6, "b": 6, "c": 6} for c in CRITERIA})
    out = _score(ChecklistComponent(judge), [_sample()], [["a", "b", "c"]])
    np.testing.assert_allclose(out.rewards, [5 / 9] * 3)
    assert grpo_advantages(out.rewards, np.zeros(3, dtype=int)).tolist() == [0.0, 0.0, 0.0]


def test_all_criteria_unknown_is_an_unknown_reward_neutral_in_its_group() -> None:
    judge = ScriptedCriterionJudge({c: {"a": 9, "b": None} for c in CRITERIA})
    out = _score(ChecklistComponent(judge), [_sample()], [["a", "b"]])
    assert out.rewards[0] == pytest.approx(8 / 9) and math.isnan(out.rewards[1])
    assert out.metrics["checklist/all_unknown_rate"] == 0.5
    assert out.metrics["checklist/unknown_rate"] == 0.5
    assert out.labels["criteria_scores"][1] == "? ? ?"
    assert grpo_advantages(out.rewards, np.zeros(2, dtype=int)).tolist() == [0.0, 0.0]
    assert "checklist/unknown_rate" in UNKNOWN_RATE_METRICS  # a step of nothing but unknowns counts toward the stop


def test_a_sample_without_criteria_is_refused_by_the_component() -> None:
    judge = ScriptedCriterionJudge({})
    with pytest.raises(ValueError, match=r"sample\(s\) \['bare'\] have no criteria"):
        _score(ChecklistComponent(judge), [_sample(criteria=[], sid="bare")], [["a"]])
    assert judge.calls == []


@pytest.mark.parametrize("weights, message", [
    ([1, 2], "has 2 weights for 3 criteria"),
    ([1, -1, 1], "must be finite, >= 0"),
    ([0, 0, 0], "sum to more than 0"),
    ([1, float("nan"), 1], "must be finite"),
    ("heavy", "must be a list of numbers"),
    ([1, True, 1], "must be a list of numbers"),
])
def test_bad_criteria_weights_are_clear_errors(weights, message) -> None:
    with pytest.raises(ValueError, match=message):
        criteria_weights(CRITERIA, {"criteria_weights": weights}, "sample 's'")
    assert criteria_weights(CRITERIA, {}).tolist() == [1.0, 1.0, 1.0]


def test_training_refuses_data_without_criteria_before_the_first_step() -> None:
    samples = [_sample(sid="ok"), _sample(criteria=[], sid="bare-1"), _sample(criteria=[], sid="bare-2")]
    with pytest.raises(ConfigError, match=r"2 of 3 samples of data=mine have none \(e.g. bare-1, bare-2\)"):
        require_criteria(_needs("length", "checklist"), samples, "mine")
    require_criteria(_needs("length", "pairwise"), samples, "mine")  # other recipes do not need criteria
    with pytest.raises(ConfigError, match="has 1 weights for 3 criteria"):
        require_criteria(_needs("checklist"), [_sample(criteria_weights=[1])], "mine")


def _needs(*kinds: str):
    """The declared needs of a recipe of these components (default options)."""
    from longwriter.rewards import recipe_needs

    return recipe_needs({"components": {kind: {} for kind in kinds}})


def test_the_trl_dry_run_refuses_data_without_criteria(tmp_path: Path) -> None:
    """The CLI path: `reward=checklist data=length_prompts` (no criteria) stops before any model loads."""
    from conftest import compose
    from longwriter.engines.trl_engine.run import dry_run

    cfg = compose(["reward=checklist", "data=length_prompts", "engine.dry_run=true",
                   f"paths.output_root={tmp_path}"])
    with pytest.raises(ConfigError, match="scores each sample's own criteria"):
        dry_run(cfg, tmp_path / "run")
    dry_run(compose(["reward=checklist", "engine.dry_run=true", f"paths.output_root={tmp_path}"]), tmp_path / "ok")


def test_recipe_config_judge_wiring_and_errors() -> None:
    from longwriter.training_setup import judged_recipe, needs_judge

    reward_cfg = OmegaConf.create({"name": "c", "components": {"rubric": {"type": "checklist", "weight": 2.0}}})
    assert needs_judge(reward_cfg)
    recipe = judged_recipe(reward_cfg, backend=_CountingBackend(), curriculum=None)
    assert isinstance(recipe.components[0].component.judge, ChecklistTask)
    with pytest.raises(ValueError, match="needs a per-criterion judge"):
        build_recipe({"name": "c", "components": {"checklist": {}}})
    with pytest.raises(ValueError, match="unknown option"):
        build_recipe({"name": "c", "components": {"checklist": {"scale": 5}}}, checklist_judge=object())
    with pytest.raises(ValueError, match="score_max .* must be greater"):
        build_recipe({"name": "c", "components": {"checklist": {"score_max": 1}}}, checklist_judge=object())


class _CountingBackend:
    """A chat backend answering {"score": 7} and counting real calls (for the cache test)."""

    provides_probs = False
    identity = "stub:checklist"

    def __init__(self) -> None:
        self.calls = 0

    async def chat(self, messages: Sequence[dict], max_tokens: int) -> ChatResult:
        self.calls += 1
        return ChatResult('{"score": 7, "reason": "fine"}')

    async def choose(self, messages, options) -> ChoiceResult:
        raise AssertionError("the chat path is used")

    def usage(self) -> Usage:
        return Usage(requests=self.calls)


def test_each_criterion_is_its_own_cached_judgement(tmp_path: Path) -> None:
    inner = _CountingBackend()
    component = ChecklistComponent(ChecklistTask(CachedBackend(inner, JudgeCache(tmp_path / "c.sqlite"))))
    batch = [_sample(["Mentions the harbour", "Describes the lights"])], [["one answer"]]
    first = _score(component, *batch)
    assert inner.calls == 2 and first.rewards.tolist() == [pytest.approx(6 / 9)]
    _score(component, *batch)
    assert inner.calls == 2  # both criteria read back from the cache
    _score(component, [_sample(["Mentions the harbour", "Names the keeper"])], [["one answer"]])
    assert inner.calls == 3  # same prompt and response, a new criterion: a new key


def test_over_http_against_the_test_environment_judge() -> None:
    """The real path: ChecklistTask -> OpenAI-compatible HTTP -> the test-environment rule, scores by hand."""
    rule = LengthCriteriaRule()
    ten = "The harbour lights shine softly over the dark water tonight"  # 10 words: harbour, lights
    assert [rule.criterion_score(c, ten) for c in CRITERIA] == [1 + round(9 * 0.5), 1 + round(9 * 0.5), 10]
    assert rule.criterion_score(CRITERIA[2], "word " * 20) == 1 + round(9 * (1 - 8 / 10))  # 8 over, middle 10
    server = serve(rule)
    try:
        backend = build_judge_backend({"backend": "openai", "base_url": server.base_url, "model": "test-env",
                                       "api_key_required": False, "concurrency": 4, "cache": False})
        recipe = build_recipe({"name": "c", "components": {"checklist": {}}}, checklist_judge=ChecklistTask(backend))

        async def score():
            try:
                return await recipe.score(RolloutBatch.from_groups([_sample()], [[ten, "word " * 20]]))
            finally:
                await backend.aclose()

        scores = asyncio.run(score())
        prompts = [r.body["messages"][-1]["content"] for r in server.chat_requests]
    finally:
        server.stop()
    # ten: scores 5, 5, 10 -> (4 + 4 + 9) / 27; twenty words of "word": 1, 1, 3 -> (0 + 0 + 2) / 27
    np.testing.assert_allclose(scores.rewards["checklist"], [17 / 27, 2 / 27])
    assert scores.metrics["checklist/unknown_rate"] == 0.0
    assert scores.metrics["reward/checklist/mean"] == pytest.approx(19 / 54)
    assert len(prompts) == 6 and all(sum(c in p for c in CRITERIA) == 1 for p in prompts)  # one criterion each


def test_unreadable_replies_are_asked_again_then_unknown_and_counted() -> None:
    from longwriter.judges.tasks import CHECKLIST_TRIES
    from longwriter.testing.fake_openai_server import FakeOpenAIServer

    def reply(body: dict) -> str:  # the harbour criterion never gets a readable score
        return "I would rather not say." if "Mentions the harbour" in body["messages"][-1]["content"] else \
            '{"score": 10}'

    with FakeOpenAIServer(default_reply=reply) as server:
        backend = build_judge_backend({"backend": "openai", "base_url": server.base_url, "model": "fake",
                                       "api_key_required": False, "cache": False})
        component = ChecklistComponent(ChecklistTask(backend))

        async def score():
            try:
                return await component.score(RolloutBatch.from_groups([_sample(CRITERIA[:2])], [["text"]]))
            finally:
                await backend.aclose()

        out = asyncio.run(score())
        requests = len(server.chat_requests)
    assert out.rewards.tolist() == [1.0]  # the readable criterion alone
    assert out.metrics["checklist/unknown_rate"] == 0.5
    assert requests == CHECKLIST_TRIES + 1


def test_verl_reward_manager_scores_a_trajectory_with_the_checklist() -> None:
    """verl's reward loop calls score_text once per trajectory: the checklist needs nothing from the group."""
    pytest.importorskip("verl", reason="the verl extra is not installed")
    from longwriter.engines.verl.reward import LongWriterRewardManager

    judge = ScriptedCriterionJudge({c: {"a": s} for c, s in zip(CRITERIA, (10, None, 4))})
    manager = object.__new__(LongWriterRewardManager)  # only score_text is exercised
    manager.recipe = build_recipe({"name": "c", "components": {"checklist": {}}}, checklist_judge=judge)
    out = asyncio.run(manager.score_text(_sample(), "a", "uid-1", True))
    assert out["reward_score"] == pytest.approx((1 + 3 / 9) / 2)
    info = out["reward_extra_info"]
    assert info["checklist"] == pytest.approx(out["reward_score"])
    assert info["checklist/unknown_rate"] == pytest.approx(1 / 3)


def test_trl_trains_a_step_with_the_checklist_reward_over_http(output_root: Path) -> None:
    """The TRL engine end to end (tiny model, real CLI, MLflow): every criterion of every completion goes to
    the test-environment judge once, and the component's metrics reach the run."""
    import mlflow

    from conftest import TINY_RUN, run_cli

    server = serve()
    try:
        run_cli("longwriter.train", [*TINY_RUN, "reward=checklist", "data.limit=2", "judge=vllm_server",
                                     f"judge.base_url={server.base_url}", "judge.cache=false", "engine.max_steps=1",
                                     f"paths.output_root={output_root}", "run_name=cl"])
        criterion_requests = sum("[Criterion]" in r.body["messages"][-1]["content"] for r in server.chat_requests)
    finally:
        server.stop()
    assert criterion_requests == 2 * 2 * 5  # 2 prompts x 2 completions x 5 criteria each
    client = mlflow.MlflowClient(f"sqlite:///{output_root}/mlflow.db")
    run = client.search_runs([client.get_experiment_by_name("longwriter").experiment_id])[0]
    metrics = run.data.metrics
    assert metrics["checklist/unknown_rate"] == 0.0 and metrics["checklist/criteria/mean"] == 5.0
    assert 0.0 <= metrics["reward/checklist/mean"] <= 1.0
    assert 1.0 <= metrics["checklist/criterion_score/mean"] <= 10.0
