"""The engine vocabulary: which `engine.*` keys both engines share and what each adapter maps them to.

The keys and their defaults live in conf/engine/shared/grpo.yaml (one home, loaded by both
conf/engine/trl.yaml and conf/engine/verl.yaml); this module holds the name mapping that the TRL
adapter (`trl_engine/run.py`) and the verl adapter (`verl/config_builder.py`) implement, so the
docs table and the tests read it from one place, plus the checks both adapters share.
"""

from __future__ import annotations

from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf

from longwriter.config_checks import ROLLOUT_BACKENDS
from longwriter.errors import ConfigError

# shared key -> (TRL GRPOConfig field(s), verl ppo_trainer key(s)); "" = handled in the adapter (note).
SHARED_KEYS: dict[str, tuple[str, str]] = {
    "dry_run": ("(adapter: build and validate GRPOConfig, no training)", "(adapter: write and validate, no Ray)"),
    "max_steps": ("max_steps (null: -1)", "trainer.total_training_steps"),
    "num_train_epochs": ("num_train_epochs", "trainer.total_epochs"),
    "prompts_per_step": ("per_device_train_batch_size = prompts_per_step * num_generations / "
                         "(processes * gradient_accumulation_steps)", "data.train_batch_size"),
    "num_generations": ("num_generations", "actor_rollout_ref.rollout.n"),
    "max_prompt_length": ("(adapter: longer prompts dropped)", "data.max_prompt_length"),
    "max_completion_length": ("max_completion_length", "data.max_response_length"),
    "temperature": ("temperature", "actor_rollout_ref.rollout.temperature"),
    "top_p": ("top_p", "actor_rollout_ref.rollout.top_p"),
    "learning_rate": ("learning_rate", "actor_rollout_ref.actor.optim.lr"),
    "lr_scheduler_type": ("lr_scheduler_type", "actor_rollout_ref.actor.optim.lr_scheduler_type"),
    "warmup_ratio": ("warmup_steps (a float in [0, 1) is a ratio)", "actor_rollout_ref.actor.optim.lr_warmup_steps_ratio"),
    "beta": ("beta", "actor_rollout_ref.actor.kl_loss_coef (use_kl_loss = beta > 0), or "
                     "algorithm.kl_ctrl.kl_coef with kl_in_reward"),
    "clip_ratio_low": ("epsilon", "actor_rollout_ref.actor.clip_ratio_low"),
    "clip_ratio_high": ("epsilon_high", "actor_rollout_ref.actor.clip_ratio_high"),
    "precision": ("bf16 (mixed precision, fp32 master weights)",
                  "auto = bf16. actor_rollout_ref.{actor,ref}.fsdp_config.mixed_precision.param_dtype (bf16|fp32; "
                  "reduce_dtype, buffer_dtype, model_dtype fp32; critic.fsdp with ppo), actor_rollout_ref.rollout.dtype "
                  "(bfloat16|float32); megatron: {actor,ref}.megatron.dtype, bf16 only (adapter: verl/precision.py)"),
    "attn_implementation": ("model_init_kwargs.attn_implementation",
                            "actor_rollout_ref.model.override_config.attn_implementation"),
    "gradient_checkpointing": ("gradient_checkpointing", "actor_rollout_ref.model.enable_gradient_checkpointing"),
    "save_steps": ("save_steps", "trainer.save_freq"),
    "eval_steps": ("(refused: use eval.at_start/at_end)", "trainer.test_freq (null: -1)"),
    "lora": ("peft LoraConfig(r, lora_alpha, lora_dropout, target_modules)",
             "actor_rollout_ref.model.lora_rank (0 when disabled), lora_alpha, target_modules"),
    "rollout.backend": ("use_vllm (transformers or vllm)", "actor_rollout_ref.rollout.name (vllm or sglang)"),
    "rollout.vllm_mode": ("vllm_mode", "(verl colocates its rollout workers itself)"),
    "rollout.server_base_url": ("vllm_server_base_url", "(not used)"),
    "rollout.gpu_memory_utilization": ("vllm_gpu_memory_utilization", "actor_rollout_ref.rollout.gpu_memory_utilization"),
    "rollout.tensor_parallel_size": ("vllm_tensor_parallel_size",
                                     "actor_rollout_ref.rollout.tensor_model_parallel_size"),
    "rollout.drop_finished_rows": ("(the adapter's sampler: compact_sampler.py; vLLM batches continuously itself)",
                                   "(vLLM/SGLang batch continuously themselves)"),
}
TRL_ONLY = ("gradient_accumulation_steps", "loss_type", "mask_truncated_completions", "save_total_limit",
            "logging_steps", "sample_every", "num_samples_logged")
VERL_ONLY = ("algorithm", "strategy", "nnodes", "n_gpus_per_node", "ppo_mini_batch_size", "micro_batch_size_per_gpu",
             "use_dynamic_bsz", "critic_lr", "entropy_coeff", "loss_agg_mode", "kl_loss_type", "kl_in_reward",
             "val_temperature", "val_size", "val_before_train", "reward_workers", "curriculum_actor", "allow_local_judge", "judge_cache_dir")
PASSTHROUGH = ("trl", "verl")   # raw engine keys: engine.trl.<GRPOConfig field>, engine.verl.<verl key>
VLLM_MODES = ("colocate", "server")


def flat_items(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) for every leaf of a passthrough node; a YAML key may itself hold dots
    (`actor_rollout_ref.actor.ppo_max_token_len_per_gpu: 32768` in a preset) or nest."""
    plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    for key, value in (plain or {}).items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from flat_items(value, path + ".")
        else:
            yield path, value


def rollout_backend(engine_cfg: DictConfig, engine: str) -> str:
    backend = str(engine_cfg.rollout.backend)
    if backend not in ROLLOUT_BACKENDS[engine]:
        raise ConfigError(f"engine.rollout.backend={backend!r}: engine={engine} rolls out with "
                          f"{' or '.join(ROLLOUT_BACKENDS[engine])}")
    return backend


def max_steps(engine_cfg: DictConfig) -> int | None:
    value = engine_cfg.max_steps
    if value is None:
        return None
    if int(value) < 1:
        raise ConfigError(f"engine.max_steps={value}: give a positive number of steps, or null for "
                          f"engine.num_train_epochs passes over the data")
    return int(value)
