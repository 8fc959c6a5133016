"""The rollout sampler that drops ended rows (compact_sampler.py) samples as `model.generate` does."""

from __future__ import annotations

import pytest
import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

from longwriter.engines.trl_engine.compact_sampler import compact_generate, supports

EOS, PAD = 3, 0


@pytest.fixture(scope="module")
def model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=24, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         pad_token_id=PAD, eos_token_id=EOS, bos_token_id=1)
    return LlamaForCausalLM(config).eval()


def _left_padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    prompts = [[1, 7, 8, 9, 10, 11], [1, 12, 13], [1, 14, 15, 16, 17], [1, 18]] * 2
    width = max(map(len, prompts))
    ids = torch.tensor([[PAD] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


def _config(**kw) -> GenerationConfig:
    settings = dict(max_new_tokens=40, do_sample=True, temperature=1.0, top_p=1.0, top_k=0, pad_token_id=PAD,
                    eos_token_id=EOS, bos_token_id=1, disable_compile=True)
    return GenerationConfig(**{**settings, **kw})


def _ends(completions: torch.Tensor) -> list[int]:
    """Each row's completion length up to and including its first EOS (the whole width if none)."""
    return [int((row == EOS).nonzero()[0]) + 1 if (row == EOS).any() else row.numel() for row in completions]


def _greedy_eos(model, ids, mask) -> int:
    """A token that greedy decoding writes first at different steps in different rows: used as EOS,
    it ends rows at different steps (a random model never picks the configured EOS by itself)."""
    free = model.generate(input_ids=ids, attention_mask=mask, generation_config=_config(top_k=1, eos_token_id=[]))
    completions = free[:, ids.size(1):]
    for token in range(4, model.config.vocab_size):
        firsts = [int((row == token).nonzero()[0]) if (row == token).any() else completions.size(1) for row in completions]
        if min(firsts) < max(firsts):
            return token
    raise AssertionError("no token ends the rows at different steps")


def test_with_top_k_1_it_writes_exactly_what_generate_writes_including_rows_that_end_early(model) -> None:
    ids, mask = _left_padded_batch()
    eos = _greedy_eos(model, ids, mask)
    config = _config(top_k=1, eos_token_id=eos)  # one candidate token: deterministic, so row order cannot matter
    expected = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    got = compact_generate(model, ids, mask, config)
    assert got.shape == expected.shape
    assert torch.equal(got, expected)
    ends = [int((row == eos).nonzero()[0]) + 1 if (row == eos).any() else row.numel() for row in got[:, ids.size(1):]]
    assert min(ends) < max(ends), "the case must have rows that end at different steps"


def test_it_draws_what_generate_draws_while_no_row_has_ended(model) -> None:
    # Same seed, same warpers (temperature, top-k, top-p), same draw on the same batch: identical tokens
    # until the first row ends (then the batch shrinks and the random stream is split differently).
    ids, mask = _left_padded_batch()
    config = _config(temperature=0.7, top_k=12, top_p=0.9)
    compared = 0
    for seed in range(10):
        torch.manual_seed(seed)
        expected = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)[:, ids.size(1):]
        torch.manual_seed(seed)
        got = compact_generate(model, ids, mask, config)[:, ids.size(1):]
        first_end = min(_ends(expected))
        assert torch.equal(got[:, :first_end], expected[:, :first_end]), f"seed {seed}"
        compared += first_end
    assert compared >= 20, "the case must sample several steps before rows end"


def test_rows_that_end_leave_the_decode_batch(model) -> None:
    ids, mask = _left_padded_batch()
    eos = _greedy_eos(model, ids, mask)
    rows_per_step: list[int] = []
    hook = model.register_forward_pre_hook(lambda _m, _a, kw: rows_per_step.append(kw["input_ids"].size(0)),
                                           with_kwargs=True)
    try:
        out = compact_generate(model, ids, mask, _config(top_k=1, eos_token_id=eos))
    finally:
        hook.remove()
    completions = out[:, ids.size(1):]
    ends = sorted(int((r == eos).nonzero()[0]) + 1 if (r == eos).any() else r.numel() for r in completions)
    assert ends[0] < ends[-1]
    assert rows_per_step[0] == 4, "the prompt pass runs once per distinct prompt (the batch holds each twice)"
    assert rows_per_step[1] == ids.size(0) and rows_per_step[1:] == sorted(rows_per_step[1:], reverse=True)
    # the decode step after step t carries the rows that have not ended by t
    assert rows_per_step[1:] == [sum(end > t for end in ends) for t in range(1, len(rows_per_step))]


def test_after_its_end_a_row_is_padding_and_the_output_is_as_long_as_the_longest_row(model) -> None:
    ids, mask = _left_padded_batch()
    torch.manual_seed(3)
    completions = compact_generate(model, ids, mask, _config())[:, ids.size(1):]
    ends = _ends(completions)
    assert completions.size(1) == max(ends) <= 40
    for row, end in zip(completions, ends):
        assert (row[end:] == PAD).all()


def test_it_stops_at_the_token_budget() -> None:
    config = _config(max_new_tokens=5, eos_token_id=[])
    torch.manual_seed(0)
    small = LlamaForCausalLM(LlamaConfig(vocab_size=16, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1)).eval()
    ids, mask = torch.tensor([[1, 2, 3]]), torch.ones(1, 3, dtype=torch.long)
    assert compact_generate(small, ids, mask, config).shape == (1, 8)


@pytest.mark.parametrize("change, expected", [
    ({}, True),
    ({"top_k": 50, "top_p": 0.95, "temperature": 0.8}, True),
    ({"do_sample": False}, False),
    ({"repetition_penalty": 1.2}, False),
    ({"min_p": 0.1}, False),
    ({"num_beams": 2}, False),
    ({"cache_implementation": "static"}, False),
    ({"no_repeat_ngram_size": 3}, False),
])
def test_it_takes_only_the_settings_it_reproduces(change, expected) -> None:
    assert supports(_config(**change)) is expected
