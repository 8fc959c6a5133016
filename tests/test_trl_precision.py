"""The TRL trainer's fp32 path is exact and its bf16 path (autocast + bf16 sampling copy) is close.

One rollout batch is generated once; both trainers then compute the loss gradient on that same
batch. fp32 must equal an independent fp32 computation from full-vocabulary logits (TRL's chunked
log-probs are an implementation detail, not an approximation); bf16 must point the same way.
Tolerances: fp32 per-token log-probs within 1e-4 and gradients within 1e-4 relative; bf16 gradients
with cosine similarity >= 0.98 to fp32's and log-probs within 0.05 on average.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from longwriter.async_utils import BackgroundLoop
from longwriter.data.loaders import load_samples
from longwriter.models import resolve_model_path
from longwriter.rewards import build_recipe

from conftest import compose


def _trainer(tmp_path, precision: str, loop, beta: float = 0.04):
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig

    from longwriter.engines.trl_engine.trainer import LongwriterGRPOTrainer, RecipeReward

    cfg = compose(["model=tiny_random", "data.limit=4"])
    model_path = resolve_model_path(cfg.model, cfg.paths.cache_dir)
    samples = load_samples(cfg.data)
    recipe = build_recipe({"name": "t", "combine": "sum_reward", "prompt_template": "plain",
                           "components": {"length": {"weight": 1.0}}})
    args = GRPOConfig(
        output_dir=str(tmp_path / precision), max_steps=1, per_device_train_batch_size=8, num_generations=4,
        max_completion_length=16, learning_rate=1e-5, beta=beta, report_to="none", remove_unused_columns=False,
        scale_rewards="none", logging_steps=1, save_strategy="no", use_cpu=True, seed=0, loss_type="dapo",
        bf16=precision == "bf16",
    )
    by_id = {s.id: s for s in samples}
    torch.manual_seed(0)
    return LongwriterGRPOTrainer(
        model=model_path, reward_funcs=[RecipeReward(recipe, by_id, loop)], args=args,
        train_dataset=Dataset.from_list([{"prompt": recipe.apply_prompt(s.prompt), "sample_id": s.id}
                                         for s in samples]),
        processing_class=AutoTokenizer.from_pretrained(model_path), recipe=recipe, samples_by_id=by_id, loop=loop,
        precision=precision,
    )


def _grad(trainer, inputs) -> torch.Tensor:
    trainer.model.zero_grad()
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by train(); compute_loss reads it
    with trainer.compute_loss_context_manager():
        loss = trainer.compute_loss(trainer.model, inputs)
    loss.backward()
    return torch.cat([p.grad.flatten().float() for p in trainer.model.parameters() if p.grad is not None])


def _full_logit_logps(model, inputs) -> torch.Tensor:
    """Per-token log-probs of the completion from the plain model's full fp32 logits."""
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    n = inputs["completion_ids"].size(1)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits[:, -n - 1:-1].float()
    return torch.log_softmax(logits, dim=-1).gather(-1, inputs["completion_ids"].unsqueeze(-1)).squeeze(-1)


def _independent_grad(model, inputs) -> torch.Tensor:
    """d/dθ of -Σ A·logp over completion tokens / #tokens (dapo; the KL term's gradient is 0 at θ = θ_ref)."""
    model.zero_grad()
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    n = inputs["completion_ids"].size(1)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, -n - 1:-1].float()
    logps = torch.log_softmax(logits, dim=-1).gather(-1, inputs["completion_ids"].unsqueeze(-1)).squeeze(-1)
    cmask = inputs["completion_mask"].float()
    loss = -(inputs["advantages"].unsqueeze(1) * logps * cmask).sum() / cmask.sum()
    loss.backward()
    return torch.cat([p.grad.flatten().float() for p in model.parameters() if p.grad is not None])


def test_fp32_is_exact_and_bf16_is_close(tmp_path) -> None:
    loop = BackgroundLoop()
    try:
        fp32 = _trainer(tmp_path, "fp32", loop)
        bf16 = _trainer(tmp_path, "bf16", loop)
        assert fp32.generation_copy is None and fp32.ref_model.dtype == torch.float32
        assert bf16.generation_copy is not None and bf16.ref_model.dtype == torch.bfloat16
        assert bf16.model.dtype == torch.float32, "master weights stay fp32"
        fp32.model.train()
        batch = next(iter(fp32.get_train_dataloader()))
        inputs = fp32._generate_and_score_completions(batch)
        assert inputs["advantages"].abs().sum() > 0, "degenerate batch: every advantage is zero"

        # fp32: TRL's chunked log-probs equal the full-logit ones; the gradient equals the independent one.
        logps, _, _ = fp32._get_per_token_logps_and_entropies(
            fp32.model, torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1),
            torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1), inputs["completion_ids"].size(1))
        reference = _full_logit_logps(fp32.model, inputs)
        cmask = inputs["completion_mask"].bool()
        torch.testing.assert_close(logps[cmask], reference[cmask], atol=1e-4, rtol=0)
        g32 = _grad(fp32, inputs)
        expected = _independent_grad(fp32.model, inputs)
        torch.testing.assert_close(g32, expected, atol=1e-7, rtol=1e-4)

        # bf16: same gradient direction on the same batch; the sampling copy holds the policy's weights.
        bf16_logps, _, _ = bf16._get_per_token_logps_and_entropies(
            bf16.model, torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1),
            torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1), inputs["completion_ids"].size(1))
        assert (bf16_logps - logps).abs()[cmask].mean() < 0.05
        g16 = _grad(bf16, inputs)
        cosine = torch.nn.functional.cosine_similarity(g16, g32, dim=0).item()
        assert cosine >= 0.98, cosine
        bf16.generation_copy.sync()
        policy = dict(bf16.model.named_parameters())
        for name, param in bf16.generation_copy.model.named_parameters():
            assert param.dtype == torch.bfloat16
            torch.testing.assert_close(param, policy[name].detach().to(torch.bfloat16))
    finally:
        loop.close()


def test_bf16_training_step_samples_from_the_copy(tmp_path) -> None:
    loop = BackgroundLoop()
    try:
        trainer = _trainer(tmp_path, "bf16", loop, beta=0.0)
        assert trainer.ref_model is None
        calls = []  # forward passes of the copy: the rollout's sampler (compact_sampler or generate) runs it
        hook = trainer.generation_copy.model.register_forward_pre_hook(lambda *_: calls.append(1))
        before = [p.detach().clone() for p in trainer.model.parameters()]
        trainer.train()
        hook.remove()
        assert calls, "the rollout was not sampled from the bf16 copy"
        assert any(not torch.equal(b, p) for b, p in zip(before, trainer.model.parameters()))
        assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
        assert np.isfinite(trainer.state.log_history[-1]["train_loss"])
    finally:
        loop.close()
