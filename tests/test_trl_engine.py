"""The TRL engine optimises with exactly the project's advantage function."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from longwriter.advantages import combine_advantages, grpo_advantages
from longwriter.async_utils import BackgroundLoop
from longwriter.data.loaders import load_samples
from longwriter.models import resolve_model_path
from longwriter.rewards import COMPONENTS, ComponentScores, build_recipe

from conftest import compose


class CharModComponent:
    """A deterministic, varied reward for tests: (characters mod 5) / 4 (registered per test, see below)."""

    @classmethod
    def from_config(cls, options, ctx):
        return cls()

    async def score(self, batch):
        rewards = np.array([(len(c) % 5) / 4 for c in batch.completions], dtype=np.float64)
        return ComponentScores(rewards, {})


def _trl_normalize_then_sum(components: dict[str, np.ndarray], weights: dict[str, float], group: int) -> np.ndarray:
    """What TRL's multi_objective_aggregation='normalize_then_sum' would compute (for contrast)."""
    stacked = np.stack([components[k] for k in weights], axis=1).reshape(-1, group, len(weights))
    z = (stacked - stacked.mean(1, keepdims=True)) / (stacked.std(1, ddof=1, keepdims=True) + 1e-4)
    summed = (z.reshape(-1, len(weights)) * np.array(list(weights.values()))).sum(1)
    return (summed - summed.mean()) / (summed.std(ddof=1) + 1e-4)


@pytest.mark.parametrize("combine", ["mean_advantage", "sum_reward", "gdpo"])
def test_trl_advantages_equal_the_project_function(tmp_path, monkeypatch, combine: str) -> None:
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig

    from longwriter.engines.trl_engine.trainer import LongwriterGRPOTrainer, RecipeReward

    monkeypatch.setitem(COMPONENTS, "test_char_mod", CharModComponent.from_config)  # undone after the test
    cfg = compose(["model=tiny_random", "data.limit=4"])
    model_path = resolve_model_path(cfg.model, cfg.paths.cache_dir)
    samples = load_samples(cfg.data)
    recipe = build_recipe({
        "name": "t", "combine": combine, "prompt_template": "think", "eps": 1e-4,  # TRL's eps, for the gdpo case
        "components": {"length": {"weight": 1.0}, "format": {"weight": 0.5}, "test_char_mod": {"weight": 2.0},
                       # token counts reach components: soft_overlong refuses a batch without them
                       "soft_overlong": {"weight": 1.0, "l_max": 24, "l_cache": 8}},
    })
    group = 4
    args = GRPOConfig(
        output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2 * group, num_generations=group,
        max_completion_length=24, learning_rate=1e-5, beta=0.0, report_to="none", remove_unused_columns=False,
        scale_rewards="none", logging_steps=1, save_strategy="no", use_cpu=True, seed=0,
    )
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    loop = BackgroundLoop()
    by_id = {s.id: s for s in samples}
    try:
        trainer = LongwriterGRPOTrainer(
            model=model_path, reward_funcs=[RecipeReward(recipe, by_id, loop)], args=args,
            train_dataset=Dataset.from_list([{"prompt": recipe.apply_prompt(s.prompt), "sample_id": s.id}
                                             for s in samples]),
            processing_class=tokenizer, recipe=recipe, samples_by_id=by_id, loop=loop,
        )
        trainer.train()
    finally:
        loop.close()
    rollout = trainer.last_rollout
    rewards = {k: np.asarray(v) for k, v in rollout["rewards"].items()}
    assert ((rewards["soft_overlong"] <= 0) & (rewards["soft_overlong"] >= -1)).all()
    groups = np.arange(len(rollout["completions"])) // group
    # each group is one prompt's completions: mixing prompts in a group (or one batch-wide group) would
    # let a prompt's reward level, not the quality of an answer to it, decide the advantage
    ids = np.asarray(rollout["sample_ids"])
    assert all(len(set(ids[groups == g])) == 1 for g in np.unique(groups)) and len(set(ids)) == len(np.unique(groups))
    expected = combine_advantages(rewards, recipe.weights, groups, combine, recipe.eps)
    # What TRL put into the loss is the project's function, to float32 precision.
    np.testing.assert_allclose(rollout["trl_advantages"], expected, atol=1e-5)
    assert np.abs(expected).sum() > 0, "degenerate batch: every advantage is zero"
    if combine == "mean_advantage":
        by_hand = sum(recipe.weights[k] * grpo_advantages(rewards[k], groups, recipe.eps) for k in rewards)
        np.testing.assert_allclose(expected, by_hand / sum(recipe.weights.values()), atol=1e-9)
        assert not np.allclose(rollout["trl_advantages"], _trl_normalize_then_sum(rewards, recipe.weights, group),
                               atol=1e-3)
    if combine == "gdpo":  # ...is TRL's own normalize_then_sum, on what TRL trained with
        np.testing.assert_allclose(rollout["trl_advantages"], _trl_normalize_then_sum(rewards, recipe.weights, group),
                                   atol=1e-4)
    logged = trainer.state.log_history[0]
    assert 0.0 < logged["rollout/decoded_rows_frac"] <= 1.0  # sampled by compact_sampler (the default)
    assert 0.0 <= logged["advantage/format/zero_std_group_frac"] <= 1.0
    assert "advantage/total/tie_component_spread_frac" in logged


def test_weights_move_after_one_step(tmp_path) -> None:
    """A real optimisation step changes the policy (the loop is not a no-op)."""
    from longwriter.engines import run_training

    cfg = compose(["model=tiny_random", "data.limit=4", "engine.max_steps=1", "engine.prompts_per_step=2",
                   "engine.num_generations=4", "engine.max_completion_length=16", "engine.learning_rate=1e-2",
                   "engine.beta=0.0", f"paths.output_root={tmp_path}", "run_name=w"])
    from transformers import AutoModelForCausalLM

    before = AutoModelForCausalLM.from_pretrained(resolve_model_path(cfg.model, cfg.paths.cache_dir)).state_dict()
    run_training(cfg)
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "train" / "w" / "final_model").state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) >= len(before) // 2, f"only {len(changed)} of {len(before)} tensors changed"


def _one_step_weight_change(tmp_path, name: str, accumulation: str) -> dict[str, torch.Tensor]:
    """final - initial weights after one plain-SGD step of a tiny run (SGD: the change is lr x gradient)."""
    from transformers import AutoModelForCausalLM

    from longwriter.engines import run_training

    cfg = compose(["model=tiny_random", "data.limit=4", "engine.max_steps=1", "engine.prompts_per_step=2",
                   "engine.num_generations=4", "engine.max_completion_length=16", "engine.learning_rate=1e-2",
                   f"engine.gradient_accumulation_steps={accumulation}", "engine.trl.optim=sgd",
                   "eval.at_start=false", "eval.at_end=false", f"paths.output_root={tmp_path}", f"run_name={name}"])
    before = AutoModelForCausalLM.from_pretrained(resolve_model_path(cfg.model, cfg.paths.cache_dir)).state_dict()
    run_training(cfg)
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "train" / name / "final_model").state_dict()
    return {k: after[k] - before[k] for k in before}


def test_micro_batches_give_the_same_update_as_one_pass(tmp_path) -> None:
    """engine.gradient_accumulation_steps splits the step's 8 completions into micro batches without changing
    the rollouts or the gradient (dapo normalises by the whole batch's tokens): the SGD step is the same."""
    whole = _one_step_weight_change(tmp_path, "one", "1")
    split = _one_step_weight_change(tmp_path, "four", "4")
    moved = sum(float(d.norm()) ** 2 for d in whole.values()) ** 0.5
    differ = sum(float((whole[k] - split[k]).norm()) ** 2 for k in whole) ** 0.5
    assert moved > 0.0
    assert differ <= 1e-4 * moved, f"update differs by {differ:.3g} (update size {moved:.3g})"
