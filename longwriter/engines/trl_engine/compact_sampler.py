"""Sampling that drops finished sequences from the batch: the rollout's decode loop on a CPU.

`model.generate` keeps every row of the batch in every decode step until the last one ends, so on
the length task (16 completions of 10-150 words under a 144-token budget) about half of the decode
compute goes to rows that already wrote their end-of-sequence token; on a CPU, where a decode step
costs in proportion to the rows it carries, that half is wall time. This loop samples exactly as
`generate` does with the same settings (temperature, then top-k, then top-p, then a multinomial
draw; the processors are transformers' own) but removes a row from the batch and from the KV cache
(`Cache.batch_select_indices`) the step it ends. The output has `generate`'s shape and padding:
prompt then completion, `pad_token_id` after each row's end, as long as the longest completion.
A GRPO batch holds each prompt `num_generations` times: the prompt pass runs once per distinct
prompt and its KV cache is copied to the rows that share it.

Settings it does not implement (repetition penalty, min-p, beams, stop strings, ...) are refused by
`supports`; the caller then uses `generate`. Random draws differ from `generate`'s for one seed
(the rows draw in another order), which changes which completions a seed samples, not their law.
"""

from __future__ import annotations

from typing import Any

import torch

# GenerationConfig fields this loop reproduces; any other field set away from its default means
# `generate` must run instead (see `supports`).
_HANDLED = {"max_new_tokens", "do_sample", "temperature", "top_k", "top_p", "pad_token_id", "eos_token_id",
            "bos_token_id", "disable_compile", "cache_implementation", "use_cache", "return_dict_in_generate",
            "output_scores", "output_logits", "transformers_version", "max_length", "min_p",
            "repetition_penalty", "num_return_sequences", "num_beams"}


def supports(config: Any) -> bool:
    """Whether `config` (a GenerationConfig) samples as this loop does."""
    diff = config.to_diff_dict()
    if set(diff) - _HANDLED or not config.do_sample or config.max_new_tokens is None:
        return False
    return (config.min_p in (None, 0.0) and config.repetition_penalty in (None, 1.0)
            and config.num_return_sequences in (None, 1) and config.num_beams in (None, 1)
            and config.cache_implementation in (None, "dynamic") and not config.return_dict_in_generate)


def _warpers(config: Any) -> list:
    """transformers' own sampling warpers, in `generate`'s order."""
    from transformers.generation.logits_process import (
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    warpers = []
    if config.temperature is not None and config.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(config.temperature))
    if config.top_k:
        warpers.append(TopKLogitsWarper(top_k=config.top_k, min_tokens_to_keep=1))
    if config.top_p is not None and config.top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=config.top_p, min_tokens_to_keep=1))
    return warpers


def _eos_ids(config: Any) -> torch.Tensor:
    eos = config.eos_token_id
    return torch.tensor([eos] if isinstance(eos, int) else list(eos or []), dtype=torch.long)


@torch.no_grad()
def compact_generate(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                     generation_config: Any, stats: dict | None = None, **unused: Any) -> torch.Tensor:
    """`model.generate(input_ids, attention_mask, generation_config)` for a left-padded batch,
    dropping each row from the computation once it has ended (see the module docstring).
    `stats`, if given, receives `decoded_rows_frac`: the row-steps decoded over those `generate`
    would decode (every row for as many steps as the longest completion)."""
    from transformers import DynamicCache

    config = generation_config
    device = input_ids.device
    batch = input_ids.size(0)
    budget = int(config.max_new_tokens)
    eos = _eos_ids(config).to(device)
    warpers = _warpers(config)
    out = torch.full((batch, budget), int(config.pad_token_id), dtype=torch.long, device=device)
    rows = torch.arange(batch, device=device)  # the original row of each row still in the batch
    mask = attention_mask
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    next_position = positions[:, -1:] + 1
    cache = DynamicCache(config=model.config)
    # One prompt pass per distinct prompt (a group's rows share theirs), then the cache fans out.
    distinct, row_of = torch.unique(torch.cat([input_ids, mask.long()], dim=1), dim=0, return_inverse=True)
    first = torch.full((distinct.size(0),), batch, dtype=torch.long, device=device).scatter_reduce(
        0, row_of, torch.arange(batch, device=device), reduce="amin")
    logits = model(input_ids=input_ids[first], attention_mask=mask[first], position_ids=positions[first],
                   past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1, :]
    if first.numel() < batch:
        cache.batch_select_indices(row_of)
    logits = logits[row_of]
    steps = 0
    row_steps = 0
    for step in range(budget):
        scores = logits.float()
        for warp in warpers:
            scores = warp(None, scores)
        tokens = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        out[rows, step] = tokens
        row_steps += rows.numel()
        steps = step + 1
        if step + 1 == budget:
            break
        alive = ~torch.isin(tokens, eos)
        if not bool(alive.all()):
            if not bool(alive.any()):
                break
            keep = alive.nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            rows, tokens, mask, next_position = rows[keep], tokens[keep], mask[keep], next_position[keep]
        mask = torch.cat([mask, mask.new_ones((mask.size(0), 1))], dim=1)
        logits = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=next_position,
                       past_key_values=cache, use_cache=True).logits[:, -1, :]
        next_position = next_position + 1
    if stats is not None:
        stats["decoded_rows_frac"] = row_steps / (batch * steps)
    return torch.cat([input_ids, out[:, :steps]], dim=1)
