"""python -m longwriter.arena end to end on tiny models: ratings with CIs in MLflow, and a second
arena with one more contestant pays only that contestant's battles (judge cache)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from longwriter.arena.battles import play
from longwriter.data.schema import Sample
from longwriter.judges.base import PairwiseJudgement
from conftest import ROOT, compose

TINY = "{name: %s, model: tiny_random, max_new_tokens: %d, temperature: %s}"


class LengthJudge:
    """A judge preferring the longer text, always picking the first shown on equal length (position bias)."""

    def __init__(self):
        self.calls = 0

    async def compare(self, prompt, criteria, first, second) -> PairwiseJudgement:
        self.calls += 1
        if "???" in (first, second):
            return PairwiseJudgement(None, error="unparsable")
        return PairwiseJudgement("second" if len(second) > len(first) else "first")


def test_battles_are_swap_debiased_and_unknowns_left_out():
    samples = [Sample(id=f"s{i}", prompt=[{"role": "user", "content": "Write."}]) for i in range(2)]
    answers = {"long": ["a long answer", "a long answer"], "short": ["short", "???"], "same": ["same!", "same!"]}
    judge = LengthJudge()
    records = asyncio.run(play(judge, samples, answers))
    assert judge.calls == 2 * 3 * 2  # prompts x pairs x orders
    by = {(r.sample_id, r.model_a, r.model_b): r for r in records}
    assert by[("s0", "long", "short")].outcome == "win" and not by[("s0", "long", "short")].disagreed
    # equal lengths: the judge picks whichever is shown first -> the orders disagree -> a tie
    assert by[("s0", "short", "same")].outcome == "tie" and by[("s0", "short", "same")].disagreed
    assert by[("s1", "long", "short")].outcome is None and by[("s1", "long", "short")].battle() is None


def _arena(output_root: Path, contestants: dict[str, str], run_name: str):
    from longwriter.arena.runner import run_arena

    spec = ", ".join(contestants.values())
    cfg = compose([f"paths.output_root={output_root}", f"run_name={run_name}", "data=builtin", "arena.limit=3",
                   f"arena.contestants=[{spec}]", "model@judge.model=tiny_random", "arena.bootstrap=30",
                   f"arena.generation_cache={output_root}/generations.sqlite",
                   f"paths.cache_dir={output_root}/cache"], config_name="arena")
    return run_arena(cfg)


@pytest.mark.slow
def test_arena_logs_ratings_and_reuses_judgements(output_root: Path) -> None:
    import mlflow

    from longwriter.models import resolve_model_path

    # A fresh judge cache for this test, the model folders from the shared model cache.
    resolve_model_path(compose(["model=tiny_random"]).model, ROOT / ".cache")
    (output_root / "cache").mkdir(parents=True)
    (output_root / "cache" / "models").symlink_to((ROOT / ".cache" / "models").resolve())
    three = {name: TINY % (name, n, t) for name, n, t in (("greedy8", 8, 0.0), ("greedy2", 2, 0.0), ("sampled8", 8, 1.0))}
    ratings = _arena(output_root, three, "three")
    assert {r.name for r in ratings} == set(three)
    assert all(r.ci_low <= r.rating <= r.ci_high for r in ratings)

    client = mlflow.tracking.MlflowClient(f"sqlite:///{output_root}/mlflow.db")
    experiment = client.get_experiment_by_name("longwriter")
    (run,) = client.search_runs([experiment.experiment_id])
    metrics = run.data.metrics
    assert metrics["arena/battles"] == 9 and metrics["arena/judge/cache_misses"] == 18
    for r in ratings:
        assert metrics[f"arena/{r.name}/rating"] == pytest.approx(r.rating)
        assert metrics[f"arena/{r.name}/ci_low"] <= metrics[f"arena/{r.name}/ci_high"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "arena")}
    assert {"arena/ratings.csv", "arena/ratings.txt", "arena/battles.jsonl", "arena/plots"} <= artifacts
    battles = client.download_artifacts(run.info.run_id, "arena/battles.jsonl", str(output_root))
    assert len(Path(battles).read_text().splitlines()) == 9

    # One more contestant: the 3 old pairs come from the judge cache, only the 3 new pairs are judged.
    four = {**three, "greedy4": TINY % ("greedy4", 4, 0.0)}
    _arena(output_root, four, "four")
    (second,) = [r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == "four"]
    assert second.data.metrics["arena/battles"] == 18
    assert second.data.metrics["arena/judge/cache_hits"] == 18  # 3 prompts x 3 old pairs x 2 orders
    assert second.data.metrics["arena/judge/cache_misses"] == 18  # 3 prompts x 3 new pairs x 2 orders
    assert second.data.metrics["arena/generation/cache_hits"] == 9  # the three old contestants' responses


def test_contestants_are_checked(output_root: Path) -> None:
    from longwriter.arena.runner import contestants
    from longwriter.errors import ConfigError

    def check(spec: str, add: str = "[]"):
        return contestants(compose([f"arena.contestants={spec}", f"arena.add={add}"], config_name="arena"))

    with pytest.raises(ConfigError, match="at least two"):
        check("[{name: solo, model: tiny_random}]")
    with pytest.raises(ConfigError, match="unique names"):
        check("[{name: a, model: tiny_random}]", "[{name: a, model: smollm2_135m}]")
    with pytest.raises(ConfigError, match="exactly one of model / checkpoint"):
        check("[{name: a, model: tiny_random, checkpoint: x}, {name: b, model: tiny_random}]")
    with pytest.raises(ConfigError, match="no such conf/model preset"):
        check("[{name: a, model: nope}, {name: b, model: tiny_random}]")


def test_battles_with_an_openai_compatible_judge() -> None:
    """The arena's judging step against an OpenAI-compatible endpoint (the fake server): a judge
    preferring the longer response ranks long > medium > short, every order asked once."""
    from longwriter.arena.ratings import rate
    from longwriter.arena.runner import _battles
    from longwriter.judges.lifecycle import open_judge
    from longwriter.testing.fake_openai_server import FakeOpenAIServer

    def longer(body):
        user = body["messages"][-1]["content"]
        a = user.split("[Response A]", 1)[1].split("[End of Response A]", 1)[0]
        b = user.split("[Response B]", 1)[1].split("[End of Response B]", 1)[0]
        return "Verdict: [[A]]" if len(a) > len(b) else "Verdict: [[B]]"

    samples = [Sample(id=f"s{i}", prompt=[{"role": "user", "content": f"Write {i}."}]) for i in range(3)]
    answers = {"short": ["a"] * 3, "medium": ["a b c"] * 3, "long": ["a b c d e f"] * 3}
    with FakeOpenAIServer(longer) as server:
        backend = open_judge({"backend": "openai", "base_url": server.base_url, "model": "fake-judge",
                              "api_key_required": False, "concurrency": 4, "cache": False}, cache_dir=None)
        records = _battles(backend, samples, answers)
        judged = [r for r in server.chat_requests if "Compare two responses" in r.body["messages"][-1]["content"]]
    assert len(judged) == 3 * 3 * 2 and all(r.outcome is not None and not r.disagreed for r in records)
    table = rate([r.battle() for r in records], list(answers), bootstrap=20)
    assert [r.name for r in table] == ["long", "medium", "short"]
