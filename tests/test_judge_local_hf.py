"""The in-process judge on a tiny random Llama with a tokenizer built here (nothing downloaded)."""

from __future__ import annotations

import asyncio
import math

import pytest
import torch

from longwriter.judges import (
    CachedBackend,
    JudgeCache,
    LocalHFBackend,
    PairwiseTask,
    PointwiseTask,
    QualityDimensionsTask,
    build_judge_backend,
)
from longwriter.judges.prompts import PAIRWISE_V1, POINTWISE_V1

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_tokenizer():
    """Byte-level BPE trained on the judge templates, digits split one by one (as SmolLM2 does)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, show_progress=False,
                                  special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [PAIRWISE_V1.user, PAIRWISE_V1.api_ending, PAIRWISE_V1.probs_ending, POINTWISE_V1.user,
              "Verdict: [[A]] Verdict: [[B]] Verdict: [[C]] Score: 10 Score: 7", "system user assistant"] * 3
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHATML
    return fast


@pytest.fixture(scope="module")
def model_and_tokenizer():
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         initializer_range=0.5)  # wide init: clearly non-uniform next-token distributions
    model = LlamaForCausalLM(config).eval()
    return model, tokenizer


@pytest.fixture
def backend(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    return LocalHFBackend(model, tokenizer, name="tiny-random", max_new_tokens=8)


def run(coro):
    return asyncio.run(coro)


def test_choose_returns_probabilities_over_the_options(backend) -> None:
    messages = [{"role": "user", "content": "Which is better?"}, {"role": "assistant", "content": "Verdict: [["}]
    result = run(backend.choose(messages, ["A", "B", "C"]))
    assert result.error is None and list(result.probs) == ["A", "B", "C"]
    assert sum(result.probs.values()) == pytest.approx(1.0)
    assert all(0 < p < 1 for p in result.probs.values())
    assert backend.identity == "local_hf:tiny-random" and backend.usage().requests == 1


def test_rendering_ends_with_the_prefill(backend) -> None:
    backend.load()
    messages = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "Verdict: [["}]
    assert backend._render(messages).endswith("<|im_start|>assistant\nVerdict: [[")


def _reference_probs(model, tokenizer, prompt: str, options: list[str]) -> list[float]:
    """Slow reference: full forward passes, product over every token, P(stop) for prefix options."""
    def logprobs(ids):
        with torch.no_grad():
            return model(torch.tensor([ids])).logits[0, -1].double().log_softmax(-1)

    stem = prompt.rstrip(" ")
    base = tokenizer(stem, add_special_tokens=False)["input_ids"]
    seqs = [tokenizer(stem + prompt[len(stem):] + o, add_special_tokens=False)["input_ids"][len(base):]
            for o in options]
    scores = []
    for seq in seqs:
        total = sum(float(logprobs(base + seq[:i])[seq[i]]) for i in range(len(seq)))
        longer = {other[len(seq)] for other in seqs if len(other) > len(seq) and other[:len(seq)] == seq}
        if longer:
            after = logprobs(base + seq)
            total += math.log(1 - sum(math.exp(float(after[t])) for t in longer))
        scores.append(total)
    norm = sum(math.exp(s) for s in scores)
    return [math.exp(s) / norm for s in scores]


def test_colliding_options_use_exact_trie_probabilities(backend, model_and_tokenizer) -> None:
    """"1" and "10" share their first token here: the cached trie walk must equal the slow reference."""
    model, tokenizer = model_and_tokenizer
    options = [str(i) for i in range(1, 11)]
    assert tokenizer("10", add_special_tokens=False)["input_ids"][0] == tokenizer("1", add_special_tokens=False)[
        "input_ids"][0]
    messages = [{"role": "user", "content": "Rate it."}, {"role": "assistant", "content": "Score: "}]
    result = run(backend.choose(messages, options))
    assert sum(result.probs.values()) == pytest.approx(1.0)
    backend.load()
    expected = _reference_probs(model, tokenizer, backend._render(messages), options)
    assert [result.probs[o] for o in options] == pytest.approx(expected, abs=1e-5)
    assert result.probs["1"] != pytest.approx(result.probs["10"])  # not one first-token mass counted twice


def test_pairwise_verdict_without_parsing_text(backend) -> None:
    def no_chat(*args, **kwargs):
        raise AssertionError("the probability path must not generate text")

    backend.chat = no_chat  # type: ignore[method-assign]
    judgement = run(PairwiseTask(backend).compare("Write a haiku.", [], "An old pond.", "Frog jumps in."))
    assert judgement.verdict in {"first", "second", "tie"} and judgement.raw == ""
    assert sum(judgement.probs.values()) == pytest.approx(1.0)
    best = max(judgement.probs, key=judgement.probs.get)
    assert judgement.verdict == {"A": "first", "B": "second", "C": "tie"}[best]


def test_pointwise_and_quality_scores_are_expected_values(backend) -> None:
    pointwise = run(PointwiseTask(backend).score("Write a haiku.", ["Has 17 syllables"], "An old pond."))
    assert 1.0 <= pointwise.score <= 10.0 and set(pointwise.extra["probs"]) == {str(i) for i in range(1, 11)}
    quality = run(QualityDimensionsTask(backend).score("Write a haiku.", [], "An old pond."))
    dims = quality.extra["dimensions"]
    assert len(dims) == 6 and all(1.0 <= v <= 5.0 for v in dims.values())
    assert quality.score == pytest.approx(sum(dims.values()) / 6)


def test_chat_is_greedy_and_capped(backend) -> None:
    messages = [{"role": "user", "content": "Say something."}]
    first = run(backend.chat(messages, max_tokens=100))
    second = run(backend.chat(messages, max_tokens=100))
    assert first.text is not None and first.text == second.text  # greedy: deterministic
    assert 1 <= first.completion_tokens <= 8  # capped by max_new_tokens
    assert first.prompt_tokens > 0


def test_loader_is_called_lazily_once(model_and_tokenizer) -> None:
    calls = []

    def loader():
        calls.append(1)
        return model_and_tokenizer

    backend = build_judge_backend({"backend": "local_hf", "model": {"name": "tiny-random"}, "max_new_tokens": 4,
                                   "cache": False}, loader=loader)
    assert calls == []
    messages = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "Verdict: [["}]

    async def twice():
        return await asyncio.gather(backend.choose(messages, ["A", "B", "C"]),
                                    backend.choose(messages, ["A", "B", "C"]))

    first, second = run(twice())
    assert calls == [1] and first.probs == second.probs


def test_too_long_prompt_is_an_unknown_verdict(model_and_tokenizer) -> None:
    model, tokenizer = model_and_tokenizer
    backend = LocalHFBackend(model, tokenizer, name="tiny-random")
    judgement = run(PairwiseTask(backend).compare("p", [], "word " * 5000, "b"))
    assert judgement.verdict is None and "more than the model's 4096" in judgement.error
    assert backend.usage().failures == 1


def test_local_choices_are_cached(backend, tmp_path) -> None:
    cached = CachedBackend(backend, JudgeCache(tmp_path / "c.sqlite"))
    task = PairwiseTask(cached)
    first = run(task.compare("p", [], "a", "b"))
    second = run(task.compare("p", [], "a", "b"))
    assert second.cached and second.verdict == first.verdict and second.probs == pytest.approx(first.probs)
    assert backend.usage().requests == 1
