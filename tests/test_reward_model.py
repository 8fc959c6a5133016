"""The writing reward model path (quality.source=reward_model): a key naming the RM, truncation to its
input limit, batching of concurrent calls, and one TRL training step scored by a tiny random RM."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from longwriter.data.schema import Sample
from longwriter.rewards.base import BuildContext, RolloutBatch
from longwriter.rewards.quality import QualityComponent

from conftest import compose, run_cli
from reward_model_support import build_tiny_rm


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory) -> Path:
    return build_tiny_rm(tmp_path_factory.mktemp("tiny_rm") / "rm")


def _batch(answers: list[str]) -> RolloutBatch:
    sample = Sample(id="s", prompt=[{"role": "user", "content": "Write a story."}])
    return RolloutBatch([sample] * len(answers), answers, np.zeros(len(answers), dtype=int))


def _direct_scores(rm_dir: Path, answers: list[str], limit: int) -> list[float]:
    """The RM applied to each chat-formatted text alone, cut to `limit` tokens: what batching must equal."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(rm_dir)
    model = AutoModelForSequenceClassification.from_pretrained(rm_dir).eval()
    out = []
    for answer in answers:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "Write a story."},
                                              {"role": "assistant", "content": answer}], tokenize=False)
        with torch.no_grad():
            enc = tokenizer(text, return_tensors="pt", truncation=True, max_length=limit)
            out.append(model(**enc).logits[0, 0].item())
    return out


def test_the_named_rm_scores_in_batches_truncated_to_its_input_limit(rm_dir: Path) -> None:
    component = QualityComponent.from_config({"source": "reward_model", "model": str(rm_dir), "batch_size": 3},
                                             BuildContext())
    answers = ["A cat sat on the mat.", "The dog ran far away. " * 30, "Short.", "Once upon a time."]
    result = asyncio.run(component.score(_batch(answers)))
    np.testing.assert_allclose(result.rewards, _direct_scores(rm_dir, answers, limit=64), atol=1e-4)
    assert result.metrics["quality/rm_truncated_rate"] == pytest.approx(0.25)  # the long answer: > 64 tokens
    model, _ = component.reward_model._model()
    assert str(next(model.parameters()).device) == "cpu" and model.config.pad_token_id is not None


def test_concurrent_calls_share_one_pass_of_the_rm(rm_dir: Path) -> None:
    """verl's reward loop scores one trajectory per call: calls waiting together form one batch."""
    component = QualityComponent.from_config({"model": str(rm_dir)}, BuildContext())
    scorer = component.reward_model
    passes = []
    original = scorer.score_with_truncation
    scorer.score_with_truncation = lambda p, a: (passes.append(len(a)), original(p, a))[1]

    async def many():
        return await asyncio.gather(*(component.score(_batch([f"Story number {i}."])) for i in range(6)))

    results = asyncio.run(many())
    assert passes == [6]
    alone = asyncio.run(component.score(_batch(["Story number 4."])))
    assert results[4].rewards[0] == pytest.approx(alone.rewards[0], abs=1e-4)


def test_rm_key_errors_are_clear(tmp_path: Path) -> None:
    from longwriter.models import ModelLoadError

    with pytest.raises(ValueError, match="reward.components.quality.model"):
        QualityComponent.from_config({"source": "reward_model"}, BuildContext())
    component = QualityComponent.from_config({"model": str(tmp_path / "missing")}, BuildContext())
    with pytest.raises(ModelLoadError, match="could not be loaded as a sequence classifier"):
        asyncio.run(component.score(_batch(["x"])))


def test_a_named_rm_needs_no_judge() -> None:
    from longwriter.training_setup import needs_judge

    assert needs_judge(compose(["reward=longwriter_zero"]).reward)
    assert not needs_judge(compose(["reward=longwriter_zero", "reward.components.quality.model=/some/rm"]).reward)
    assert not needs_judge(compose(["reward=longwriter_zero", "reward.components.quality.source=reward_model",
                                    "reward.components.quality.model=/some/rm"]).reward)


@pytest.mark.slow
def test_trl_trains_one_step_with_the_rm_as_quality(rm_dir: Path, output_root: Path) -> None:
    import mlflow

    run_cli("longwriter.train", [
        "model=tiny_random", "reward=longwriter_zero", "reward.components.quality.source=reward_model",
        f"reward.components.quality.model={rm_dir}", "engine.max_steps=1", "engine.prompts_per_step=2",
        "engine.num_generations=2", "engine.max_completion_length=16", "data.limit=2",
        f"paths.output_root={output_root}", "run_name=rm"])
    client = mlflow.MlflowClient(f"sqlite:///{output_root}/mlflow.db")
    run = client.search_runs([client.get_experiment_by_name("longwriter").experiment_id])[0]
    assert run.info.status == "FINISHED"
    for key in ("quality/rm_score/mean", "reward/quality/mean", "quality/rm_truncated_rate", "train/loss"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == [1] and np.isfinite(history[0].value), key
    assert "judge/requests" not in run.data.metrics or run.data.metrics["judge/requests"] == 0
