"""Per-token log-probabilities of the completion on CPU, with TRL's own chunked kernel, tuned for CPUs.

TRL 1.16 already avoids full-vocabulary logits (`add_fused_lm_head` + `trl.kernels.ChunkedLogProbFunction`),
but off Triton devices it (a) scores every position, prompt included, so that Neuron graphs keep
one shape, and (b) projects 32768 vocabulary columns per tile: 4096 tokens x 32768 x 4 bytes is a
512 MB fp32 tile, folded by several full-size elementwise passes. On a 2-core CPU that was most of
the update's time and its peak memory. Here only the completion's rows are scored and tiles are
`VOCAB_CHUNK` columns wide; the arithmetic is TRL's kernel (same forward, same recomputing backward),
so the values are the same to float rounding (tests/test_trl_precision.py checks against full logits).

Used for plain causal LMs only (no soft-capping or logit scaling, no multimodal inputs, no MoE aux
loss, no fp32 LM-head cast); anything else takes TRL's path unchanged.
"""

from __future__ import annotations

import torch

# Vocabulary columns per tile. Measured on this 2-core EPYC (fp32, 1024 tokens, H=576, V=49152,
# forward + backward): see docs in /work/notes/speed.md; 8192 was fastest of 2048..32768.
VOCAB_CHUNK = 8192
_SCALING_KEYS = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")


def supports(model, device: torch.device, cast_lm_head_to_fp32: bool) -> bool:
    """Whether `completion_logprobs` computes exactly what TRL's fused head would for this model."""
    if device.type != "cpu" or cast_lm_head_to_fp32:
        return False
    config = model.config.get_text_config()
    if config is not model.config:  # vision-language models: TRL's path knows their inputs
        return False
    return all(getattr(config, key, None) is None for key in _SCALING_KEYS)


def completion_logprobs(model, input_ids, attention_mask, logits_to_keep: int, temperature: float,
                        batch_size: int, compute_entropy: bool, autocast) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(log-probs, entropies or None), each [B, logits_to_keep], 0 where the completion is padding.

    `model` is the unwrapped causal LM (PEFT: its base model, adapters applied in place);
    `autocast` is the accelerator's autocast context factory (bf16 mixed precision or a no-op).
    """
    from trl.kernels import ChunkedLogProbFunction

    outputs = ("log_probs", "entropy") if compute_entropy else ("log_probs",)
    backbone = model.base_model
    lm_head = model.get_output_embeddings()
    all_logps, all_entropies = [], []
    for start in range(0, input_ids.size(0), batch_size):
        ids = input_ids[start:start + batch_size]
        mask = attention_mask[start:start + batch_size]
        with autocast():
            hidden = backbone(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
            hidden = hidden[:, -logits_to_keep - 1:-1]  # the positions that predict the completion tokens
            targets = ids[:, -logits_to_keep:]
            valid = mask[:, -logits_to_keep:].bool()
            logps, entropy, *_ = ChunkedLogProbFunction.apply(
                hidden[valid], lm_head.weight, lm_head.bias, targets[valid], temperature, VOCAB_CHUNK, None, 1.0,
                outputs)
        all_logps.append(logps.new_zeros(valid.shape).masked_scatter(valid, logps))
        if compute_entropy:
            all_entropies.append(entropy.new_zeros(valid.shape).masked_scatter(valid, entropy))
    return torch.cat(all_logps), (torch.cat(all_entropies) if compute_entropy else None)
