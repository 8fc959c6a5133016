"""Quality reward: pointwise judge mapping, and a real (tiny, random) sequence-classification RM."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from longwriter.data.schema import Sample
from longwriter.judges.base import PointwiseJudgement
from longwriter.rewards.base import BuildContext, RolloutBatch
from longwriter.rewards.quality import QualityComponent, QualityConfig, RewardModelScorer

SCORES = {"great": 10.0, "ok": 5.5, "bad": 1.0, "over": 12.0}


class ScriptedPointwiseJudge:
    """Test double of the PointwiseJudge protocol: a fixed score per response text (None = unknown)."""

    def __init__(self):
        self.calls = []

    async def score(self, prompt, criteria, response) -> PointwiseJudgement:
        self.calls.append((prompt, tuple(criteria), response))
        return PointwiseJudgement(SCORES.get(response))


def make_batch(completions, criteria=()):
    s = Sample(id="s", prompt=[{"role": "user", "content": "Write a story."}], criteria=list(criteria))
    return RolloutBatch([s] * len(completions), completions, np.zeros(len(completions), dtype=int))


def test_judge_scores_map_to_unit_interval_and_unknown_is_nan():
    judge = ScriptedPointwiseJudge()
    comp = QualityComponent.from_config({"source": "judge"}, BuildContext(pointwise_judge=judge))
    result = asyncio.run(comp.score(make_batch(["great", "ok", "bad", "???", "over"], criteria=["tone"])))
    np.testing.assert_allclose(result.rewards[[0, 1, 2, 4]], [1.0, 0.5, 0.0, 1.0])
    assert math.isnan(result.rewards[3])
    assert result.metrics["quality/unknown_rate"] == pytest.approx(0.2)
    assert result.metrics["quality/judge_score/mean"] == pytest.approx((10 + 5.5 + 1 + 12) / 4)
    assert judge.calls[0][:2] == ("Write a story.", ("tone",))


def test_judge_sees_the_answer_part_only():
    judge = ScriptedPointwiseJudge()
    comp = QualityComponent.from_config({}, BuildContext(prompt_template="think", pointwise_judge=judge))
    result = asyncio.run(comp.score(make_batch(["<think>long plan</think><answer>ok</answer>"])))
    assert judge.calls[0][2] == "ok" and result.rewards[0] == pytest.approx(0.5)


def test_source_selection_errors():
    with pytest.raises(ValueError, match="pointwise_judge"):
        QualityComponent.from_config({}, BuildContext())
    with pytest.raises(ValueError, match="reward_model"):
        QualityComponent.from_config({"source": "reward_model"}, BuildContext(pointwise_judge=ScriptedPointwiseJudge()))
    with pytest.raises(ValueError, match="source"):
        QualityComponent.from_config({"source": "vibes"}, BuildContext(pointwise_judge=ScriptedPointwiseJudge()))


@pytest.fixture(scope="module")
def tiny_rm():
    """A 1-layer random Llama sequence classifier with a word-level tokenizer, built offline."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

    words = "write a story the cat sat on mat dog ran far away user assistant".split()
    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(words)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, num_labels=2, pad_token_id=0)
    return LlamaForSequenceClassification(config).eval(), tokenizer


def test_reward_model_scores_are_logit_zero_of_prompt_plus_answer(tiny_rm):
    import torch

    model, tokenizer = tiny_rm
    loads = []

    def loader():
        loads.append(1)
        return model, tokenizer

    comp = QualityComponent.from_config({"batch_size": 3}, BuildContext(reward_model=loader))
    answers = ["the cat sat on the mat", "a dog ran far away", "the dog", "cat"]
    result = asyncio.run(comp.score(make_batch(answers)))
    with torch.no_grad():  # one by one, without padding: batching must not change a score
        expected = [model(**tokenizer(f"Write a story.\n\n{a}", return_tensors="pt")).logits[0, 0].item()
                    for a in answers]
    np.testing.assert_allclose(result.rewards, expected, atol=1e-5)
    assert len(set(np.round(result.rewards, 6))) == 4
    asyncio.run(comp.score(make_batch(answers[:1])))
    assert len(loads) == 1  # loaded lazily, once
    assert result.metrics["quality/rm_score/mean"] == pytest.approx(np.mean(expected), abs=1e-5)


def test_reward_model_uses_the_chat_template_when_there_is_one(tiny_rm):
    _, tokenizer = tiny_rm
    templated = tokenizer.__class__(tokenizer_object=tokenizer.backend_tokenizer, pad_token="[PAD]", unk_token="[UNK]")
    templated.chat_template = "{% for m in messages %}{{ m['role'] }} {{ m['content'] }} {% endfor %}"
    text = RewardModelScorer.format_text(templated, [{"role": "user", "content": "write"}], "a story")
    assert text == "user write assistant a story "
    assert RewardModelScorer.format_text(tokenizer, [{"role": "user", "content": "write"}], "a story") == \
        "write\n\na story"
    with pytest.raises(TypeError):
        RewardModelScorer("not a model")
