"""Learning happens: a short fixed-seed GRPO run raises a trivially learnable reward.

The tiny random model answers with 12 tokens; the prompts ask for 10-14 words, so every answer is
below its range and the length reward is words / 10: the policy only has to prefer tokens that
start a new word. The run goes through the real CLI (data, recipe, both advantage paths, TRL,
optimizer, MLflow), so a sign error or a broken advantage anywhere between the reward and the
optimizer turns the rise into a fall or a flat line and fails this test. Two length components
(absolute and relative cap) make `sum_reward` and `mean_advantage` take different code paths.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli

STEPS = 16
SECOND_COMPONENT = "+reward.components.length_relative={type:length,weight:1.0,l_max_ratio:2.0}"


def _prompts(path: Path) -> Path:
    topics = ["rain", "a cat", "the sea", "a train", "bread", "winter", "a clock", "the moon"]
    with path.open("w") as fh:
        for i, topic in enumerate(topics):
            row = {"id": f"learn-{i}", "prompt": [{"role": "user", "content": f"Write about {topic} in 12 words."}],
                   "length_range": [10, 14], "source": "test"}
            fh.write(json.dumps(row) + "\n")
    return path


def _rewards(output_root: Path) -> list[float]:
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{output_root}/mlflow.db")
    run_dir = output_root / "train" / "learn"
    run_id = json.loads((run_dir / "mlflow_run.json").read_text())["run_id"]
    history = sorted(client.get_metric_history(run_id, "reward/total/mean"), key=lambda m: m.step)
    return [m.value for m in history]


@pytest.mark.slow
@pytest.mark.parametrize("combine", ["sum_reward", "mean_advantage"])
def test_reward_rises_over_a_short_fixed_seed_run(combine: str, output_root: Path, tmp_path: Path) -> None:
    data = _prompts(tmp_path / "prompts.jsonl")
    proc = run_cli("longwriter.train", [
        "model=tiny_random", "data=jsonl", f"data.path={data}", f"reward.combine={combine}",
        SECOND_COMPONENT, f"engine.max_steps={STEPS}", "engine.prompts_per_step=2",
        "engine.num_generations=8", "engine.max_completion_length=12", "engine.learning_rate=3e-3",
        "engine.beta=0.0", "engine.lora.enabled=false", "engine.save_steps=1000", "engine.sample_every=1000", "seed=0",
        f"paths.output_root={output_root}", "run_name=learn",
    ])
    rewards = _rewards(output_root)
    assert len(rewards) == STEPS
    quarter = STEPS // 4
    first, last = sum(rewards[:quarter]) / quarter, sum(rewards[-quarter:]) / quarter
    assert last - first > 0.15, f"{combine}: reward did not rise (first quarter {first:.3f}, last {last:.3f}): {rewards}"
    assert "first quarter" in proc.stdout and "MLflow run:" in proc.stdout  # the end-of-run summary
