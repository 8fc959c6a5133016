"""Learning happens: a short fixed-seed GRPO run on the real SmolLM2 raises a trivially learnable reward.

The prompts ask for one short sentence (4-6 words); with 24 new tokens the base model writes about
15-20 words, and the length reward decays linearly above the range (to 0 at 5 x the upper bound),
so every word less is worth more: the policy only has to learn to stop sooner. The run goes through
the real CLI (data, recipe, the project's advantage combination, TRL, the optimizer, MLflow), so a
sign error or a broken advantage path anywhere between the reward and the optimizer turns the rise
into a fall or a flat line and fails this test (checked by hand by negating the advantages in
`longwriter.advantages.combine_advantages`: both cases then fail). Two length components with
different caps make `sum_reward` (one advantage of the summed reward) and `mean_advantage` (the mean
of per-component advantages, LongWriter-Zero's rule) take different code paths.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli

STEPS = 8
TOPICS = ["rain", "a cat", "the sea", "a train", "bread", "winter", "a clock", "the moon"]


def _prompts(path: Path) -> Path:
    with path.open("w") as fh:
        for i, topic in enumerate(TOPICS):
            row = {"id": f"learn-{i}", "prompt": [{"role": "user", "content": f"Write one short sentence about {topic}."}],
                   "length_range": [4, 6], "source": "test"}
            fh.write(json.dumps(row) + "\n")
    return path


def _metric(output_root: Path, run_name: str, key: str) -> list[float]:
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{output_root}/mlflow.db")
    run_id = json.loads((output_root / "train" / run_name / "mlflow_run.json").read_text())["run_id"]
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


@pytest.mark.slow
@pytest.mark.parametrize("combine", ["sum_reward", "mean_advantage"])
def test_length_reward_rises_and_answers_shorten_over_a_short_fixed_seed_run(
        combine: str, output_root: Path, tmp_path: Path) -> None:
    data = _prompts(tmp_path / "prompts.jsonl")
    proc = run_cli("longwriter.train", [
        "data=jsonl", f"data.path={data}", f"reward.combine={combine}",
        "reward.components.length.l_max_ratio=5",
        "+reward.components.length_tight={type:length,weight:1.0,l_max_ratio:3}",
        f"engine.max_steps={STEPS}", "engine.prompts_per_step=2", "engine.num_generations=4",
        "engine.max_completion_length=24", "engine.learning_rate=5e-5", "engine.beta=0.0",
        "engine.save_steps=1000", "engine.sample_every=1000", "eval.at_start=false", "eval.at_end=false", "seed=0",
        f"paths.output_root={output_root}", "run_name=learn",
    ])
    rewards = _metric(output_root, "learn", "reward/total/mean")
    words = _metric(output_root, "learn", "length/words/mean")
    print(f"{combine}: reward/total/mean per step {[round(r, 3) for r in rewards]}; words {[round(w) for w in words]}")
    assert len(rewards) == STEPS
    first, last = sum(rewards[:2]) / 2, sum(rewards[-2:]) / 2
    assert last - first > 0.3, f"{combine}: reward did not rise (first 2 steps {first:.3f}, last 2 {last:.3f}): {rewards}"
    assert sum(words[-2:]) < sum(words[:2]), f"{combine}: answers did not shorten: {words}"
    assert "first quarter" in proc.stdout and "MLflow run:" in proc.stdout  # the end-of-run summary


# Two prompt kinds whose rewards sit at opposite ends of the scale: one short sentence (3-5 words;
# the base model writes about 15, which the length reward with its cap at 30 x the upper bound scores
# about 0.93, a little more for every word less) and a long essay (400-480 words; the 40-token budget
# cuts every answer at about 30 words, so all score about 0.07). Within each prompt's group the
# advantages are normalised by that group's own spread, so the short kind is pulled shorter at full
# strength and the gap between the kinds widens. With batch-level advantages (one group for the
# whole batch, or groups mixed across prompts) the spread between the kinds swamps the spread inside
# a group: every short answer gets about +1 and every long one -1 whatever their length, and the
# within-group signal is a few percent of the gradient. (The plumbing itself, one prompt per group
# and the project's advantages in TRL's loss, is checked exactly by tests/test_trl_engine.py.)
KIND_STEPS = 10
KINDS = {"short": ("Write one short sentence about {t}.", [3, 5]),
         "long": ("Write a detailed essay about {t}.", [400, 480])}


def _two_kind_prompts(path: Path) -> Path:
    with path.open("w") as fh:
        for kind, (template, length_range) in KINDS.items():
            for i, topic in enumerate(TOPICS):
                row = {"id": f"{kind}-{i}", "prompt": [{"role": "user", "content": template.format(t=topic)}],
                       "length_range": length_range, "source": "test"}
                fh.write(json.dumps(row) + "\n")
    return path


def _kind_gap_per_step(lengths_file: Path) -> list[float]:
    """Per step (with both kinds present): mean words of long answers minus mean words of short ones."""
    gaps = []
    for line in lengths_file.read_text().splitlines():
        record = json.loads(line)
        by_kind: dict[str, list[int]] = {"short": [], "long": []}
        for sample_id, words in zip(record["sample_ids"], record["words"]):
            by_kind[sample_id.split("-")[0]].append(words)
        if by_kind["short"] and by_kind["long"]:
            gaps.append(sum(by_kind["long"]) / len(by_kind["long"]) - sum(by_kind["short"]) / len(by_kind["short"]))
    return gaps


@pytest.mark.slow
def test_group_relative_advantages_widen_the_length_gap_between_prompt_kinds(
        output_root: Path, tmp_path: Path) -> None:
    data = _two_kind_prompts(tmp_path / "two_kinds.jsonl")
    run_cli("longwriter.train", [
        "data=jsonl", f"data.path={data}", "reward=length", "reward.components.length.l_max_ratio=30",
        "engine.precision=fp32",
        f"engine.max_steps={KIND_STEPS}", "engine.prompts_per_step=4", "engine.num_generations=4",
        "engine.max_completion_length=40", "engine.learning_rate=5e-5", "engine.beta=0.0",
        "engine.save_steps=1000", "engine.sample_every=1000", "eval.at_start=false", "eval.at_end=false", "seed=0",
        f"paths.output_root={output_root}", "run_name=kinds",
    ])
    gaps = _kind_gap_per_step(output_root / "train" / "kinds" / "rollout_lengths.jsonl")
    print(f"long - short words per step: {[round(g, 1) for g in gaps]}")
    assert len(gaps) >= 6, f"too few steps with both kinds: {gaps}"
    first, last = sum(gaps[:3]) / 3, sum(gaps[-3:]) / 3
    assert last - first > 4, f"the gap between long and short requests did not widen: {first:.1f} -> {last:.1f}: {gaps}"
