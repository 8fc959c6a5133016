"""Writing-RL end to end: TRL training with the pairwise reward against a real local judge server.

The server is scripted, so verdicts (and therefore curriculum moves) are known in advance.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from longwriter.data.loaders import load_samples
from longwriter.testing.fake_openai_server import FakeOpenAIServer

from conftest import TINY_RUN, run_cli

TINY = [*TINY_RUN, "data.limit=2", "data.shuffle_seed=null"]


def _run(server: FakeOpenAIServer, output_root: Path, extra: list[str]) -> None:
    run_cli("longwriter.train", [
        *TINY, "reward=pairwise", "judge=vllm_server", f"judge.base_url={server.base_url}", "judge.cache=false",
        f"paths.output_root={output_root}", "run_name=pw", *extra,
    ])


def _metrics(output_root: Path) -> tuple[dict[str, list[float]], str]:
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{output_root}/mlflow.db")
    run = client.search_runs([client.get_experiment_by_name("longwriter").experiment_id])[0]
    keys = ["judge/win_rate", "judge/unknown_rate", "curriculum/level/mean", "reward/pairwise/mean",
            "judge/requests", "curriculum/level_hist/0", "curriculum/level/mean_all", "judge/swap_disagreement"]
    return {k: [m.value for m in sorted(client.get_metric_history(run.info.run_id, k), key=lambda m: m.step)]
            for k in keys}, run.info.run_id


def test_policy_wins_move_every_sample_up_one_level_per_step(output_root: Path) -> None:
    # Position "disadvantage": the reference is Response A, the policy Response B; [[B]] = policy wins.
    with FakeOpenAIServer(default_reply="The second response is better. [[B]]") as server:
        _run(server, output_root, ["engine.max_steps=2", "engine.save_steps=1"])
        seen = ["\n".join(m["content"] for m in r.body["messages"]) for r in server.chat_requests]
    metrics, run_id = _metrics(output_root)
    assert metrics["judge/win_rate"] == [1.0, 1.0]
    assert metrics["reward/pairwise/mean"] == [1.0, 1.0]
    # 2 prompts x 2 completions, one order each, + the position-bias check of 1 in 4 in the other order
    assert metrics["judge/requests"] == [5.0, 5.0]
    # A judge that always answers [[B]] picks the reference when the policy is shown first.
    assert metrics["judge/swap_disagreement"] == [1.0, 1.0]
    # Levels are read when a batch is scored: 0 at step 1; after the rule "any" moved both, 1 at step 2.
    assert metrics["curriculum/level/mean"] == [0.0, 1.0]
    assert metrics["curriculum/level/mean_all"] == [1.0, 2.0]  # every training sample, after the step's moves
    run_dir = output_root / "train" / "pw"
    assert json.loads((run_dir / "checkpoints" / "checkpoint-1" / "curriculum.json").read_text())
    final = json.loads((run_dir / "final_model" / "curriculum.json").read_text())
    assert {k: v["level"] for k, v in final["samples"].items()} == {"builtin-001": 2, "builtin-002": 2}
    # What the judge saw: step 1 against each sample's weakest reference, step 2 against the next one.
    samples = load_samples({"name": "builtin", "limit": 2, "shuffle_seed": None})
    assert len(seen) == 10
    for text in seen[:5]:
        assert any(s.references[0] in text for s in samples) and not any(s.references[1] in text for s in samples)
    for text in seen[5:]:
        assert any(s.references[1] in text for s in samples)
    import mlflow

    # the end-of-run pictures of a pairwise run
    client = mlflow.MlflowClient(f"sqlite:///{output_root}/mlflow.db")
    plots = {a.path for a in client.list_artifacts(run_id, "plots")}
    assert {"plots/curriculum.png", "plots/verdicts.png", "plots/rewards.png", "plots/monitors.png"} <= plots


def test_unparsable_verdicts_are_unknown_neutral_and_never_move_levels(output_root: Path) -> None:
    with FakeOpenAIServer(default_reply="Both are fine, I think A is nice.") as server:  # no marker
        _run(server, output_root, ["engine.max_steps=1"])
    metrics, _ = _metrics(output_root)
    assert metrics["judge/unknown_rate"] == [1.0]
    assert metrics["judge/win_rate"] == [0.0]
    assert metrics["curriculum/level/mean"] == [0.0]
    final = json.loads((output_root / "train" / "pw" / "final_model" / "curriculum.json").read_text())
    assert {v["level"] for v in final["samples"].values()} <= {0}
