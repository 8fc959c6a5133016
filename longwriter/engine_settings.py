"""The one typed home of the `engine.*` settings: for each key what it means, what it accepts and what
each engine receives.

conf/engine/shared/grpo.yaml keeps the values only; from this table come the checks every run makes
before it starts (`config_checks`), the vocabulary the adapters implement (`engines/vocabulary.py`), the
table in docs/engines.md and the meanings in docs/config_reference.md (`python -m
longwriter.config_reference`). A new shared key is one `EngineSetting` here plus its value in the YAML;
tests/test_engine_settings.py fails when a YAML key has no setting or a setting no check or no mapping.
"""

from __future__ import annotations

from dataclasses import dataclass

from longwriter.config_rules import FLAG, PROBABILITY_MASS, TEXT, TEXTS, Rule, number, one_of, whole

# engine -> the rollout backends it supports (`engine.rollout.backend`).
ROLLOUT_BACKENDS: dict[str, tuple[str, ...]] = {"trl": ("transformers", "vllm"), "verl": ("vllm", "sglang")}
VLLM_MODES = ("colocate", "server")
PRECISIONS = ("auto", "bf16", "fp32")
# verl 0.9.1's `agg_loss` modes (actor.loss_agg_mode).
LOSS_AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")


@dataclass(frozen=True)
class EngineSetting:
    """One `engine.<key>`. `trl` / `verl`: what that engine's adapter sets from it (its own key names,
    or a note in brackets when the adapter handles it itself); None: that engine ignores the key."""

    key: str
    rule: Rule
    help: str
    trl: str | None
    verl: str | None

    def __post_init__(self) -> None:
        if self.trl is None and self.verl is None:
            raise ValueError(f"engine.{self.key}: no engine reads it (give what TRL or verl receives)")
        if not self.help.strip():
            raise ValueError(f"engine.{self.key}: say what it means")

    @property
    def scope(self) -> str:
        return "both" if self.trl is not None and self.verl is not None else "trl" if self.verl is None else "verl"


S = EngineSetting
SETTINGS: tuple[EngineSetting, ...] = (
    # ---- both engines ---------------------------------------------------------------------------
    S("dry_run", FLAG, "true: compose, map and validate the engine's own config, write it into the run folder "
      "and stop (no training; verl: no Ray, no GPU)",
      "(adapter: build and validate GRPOConfig, no training)", "(adapter: write and validate, no Ray)"),
    S("max_steps", whole(1, null=True, says="must be a whole number of GRPO steps, at least 1 (e.g. "
                                             "engine.max_steps=50), or null for engine.num_train_epochs passes "
                                             "over the data"),
      "optimisation steps; null: num_train_epochs passes over the data",
      "max_steps (null: -1)", "trainer.total_training_steps"),
    S("num_train_epochs", number(0, low_open=True), "passes over the data, only with max_steps: null",
      "num_train_epochs", "trainer.total_epochs"),
    S("prompts_per_step", whole(1), "distinct prompts per optimisation step, over all processes/GPUs",
      "per_device_train_batch_size = prompts_per_step * num_generations / (processes * "
      "gradient_accumulation_steps)", "data.train_batch_size"),
    S("num_generations", whole(1), "group size G: completions per prompt", "num_generations",
      "actor_rollout_ref.rollout.n"),
    S("max_prompt_length", whole(1), "longer prompts are dropped (tokens, chat template applied)",
      "(adapter: longer prompts dropped)", "data.max_prompt_length"),
    S("max_completion_length", whole(1), "tokens per completion (the default length data asks for up to 80 "
      "words, about 105-125 tokens)", "max_completion_length", "data.max_response_length"),
    S("temperature", number(0, low_open=True), "sampling temperature of the rollout", "temperature",
      "actor_rollout_ref.rollout.temperature"),
    S("top_p", PROBABILITY_MASS, "nucleus sampling mass of the rollout (1: off)", "top_p",
      "actor_rollout_ref.rollout.top_p"),
    S("learning_rate", number(0, low_open=True), "the policy's learning rate", "learning_rate",
      "actor_rollout_ref.actor.optim.lr"),
    S("lr_scheduler_type", TEXT, "constant | cosine (verl knows these two; TRL any transformers scheduler)",
      "lr_scheduler_type", "actor_rollout_ref.actor.optim.lr_scheduler_type"),
    S("warmup_ratio", number(0.0, 1.0, high_open=True), "fraction of the steps with a linear learning-rate warm-up",
      "warmup_steps (a float in [0, 1) is a ratio)", "actor_rollout_ref.actor.optim.lr_warmup_steps_ratio"),
    S("beta", number(0), "KL coefficient to the reference policy (0: no KL term, no reference model)", "beta",
      "actor_rollout_ref.actor.kl_loss_coef (use_kl_loss = beta > 0), or algorithm.kl_ctrl.kl_coef with "
      "kl_in_reward"),
    S("clip_ratio_low", number(0.0, 1.0, high_open=True), "PPO clip range below 1", "epsilon",
      "actor_rollout_ref.actor.clip_ratio_low"),
    S("clip_ratio_high", number(0), "PPO clip range above 1 (> clip_ratio_low: DAPO's clip-higher)",
      "epsilon_high", "actor_rollout_ref.actor.clip_ratio_high"),
    S("precision", one_of(PRECISIONS), "auto | bf16 | fp32: auto = bf16 on CPUs with AMX-BF16 and on bf16 GPUs, "
      "else fp32 (AVX512-BF16 alone was slower than fp32)",
      "bf16 (mixed precision, fp32 master weights)",
      "auto = bf16. actor_rollout_ref.{actor,ref}.fsdp_config.mixed_precision.param_dtype (bf16|fp32; "
      "reduce_dtype, buffer_dtype, model_dtype fp32; critic.fsdp with ppo), actor_rollout_ref.rollout.dtype "
      "(bfloat16|float32); megatron: {actor,ref}.megatron.dtype, bf16 only (adapter: verl/precision.py)"),
    S("attn_implementation", one_of(("auto", "sdpa", "eager", "flash_attention_2")),
      "auto (flash_attention_2 when installed on a GPU, else sdpa) | sdpa | eager | flash_attention_2",
      "model_init_kwargs.attn_implementation", "actor_rollout_ref.model.override_config.attn_implementation"),
    S("gradient_checkpointing", FLAG, "recompute activations in the backward pass (less memory, slower)",
      "gradient_checkpointing", "actor_rollout_ref.model.enable_gradient_checkpointing"),
    S("save_steps", whole(1), "checkpoint every N steps (resume_from= continues from the last one)",
      "save_steps", "trainer.save_freq"),
    S("eval_steps", whole(1, null=True), "verl: validate on the held-out parquet every N steps; TRL: see "
      "eval.at_start/at_end", "(refused: use eval.at_start/at_end)", "trainer.test_freq (null: -1)"),
    S("lora.enabled", FLAG, "train LoRA adapters instead of every weight",
      "peft LoraConfig (none when false)", "actor_rollout_ref.model.lora_rank (0 when false)"),
    S("lora.r", whole(1), "LoRA rank", "LoraConfig.r", "actor_rollout_ref.model.lora_rank"),
    S("lora.alpha", number(0, low_open=True), "LoRA scaling alpha", "LoraConfig.lora_alpha",
      "actor_rollout_ref.model.lora_alpha"),
    S("lora.dropout", number(0.0, 1.0, high_open=True), "LoRA dropout (TRL only: verl's LoRA has none)",
      "LoraConfig.lora_dropout", "(verl's LoRA has no dropout)"),
    S("lora.target_modules", TEXTS, "the modules that get adapters", "LoraConfig.target_modules",
      "actor_rollout_ref.model.target_modules"),
    S("rollout.backend", one_of(("transformers", "vllm", "sglang")),
      "transformers (TRL) | vllm (TRL, verl) | sglang (verl)", "use_vllm (transformers or vllm)",
      "actor_rollout_ref.rollout.name (vllm or sglang)"),
    S("rollout.vllm_mode", one_of(VLLM_MODES), "TRL + vllm: colocate (vLLM inside each training process) | "
      "server (`trl vllm-serve`)", "vllm_mode", "(verl colocates its rollout workers itself)"),
    S("rollout.server_base_url", Rule("str", null=True), "TRL + vllm server mode: e.g. http://10.0.0.5:8000 "
      "(null: http://localhost:8000)", "vllm_server_base_url", "(not used)"),
    S("rollout.gpu_memory_utilization", PROBABILITY_MASS, "share of the GPU's memory the rollout engine takes",
      "vllm_gpu_memory_utilization", "actor_rollout_ref.rollout.gpu_memory_utilization"),
    S("rollout.tensor_parallel_size", whole(1), "GPUs one rollout engine spans", "vllm_tensor_parallel_size",
      "actor_rollout_ref.rollout.tensor_model_parallel_size"),
    S("rollout.drop_finished_rows", FLAG, "TRL + transformers: a completion leaves the decode batch the step it "
      "ends (compact_sampler.py, about 1.6x the tokens/s on CPU); false: transformers' generate, which decodes "
      "every row to the end",
      "(the adapter's sampler: compact_sampler.py; vLLM batches continuously itself)",
      "(vLLM/SGLang batch continuously themselves)"),
    # ---- TRL only ---------------------------------------------------------------------------------
    S("gradient_accumulation_steps", whole(1, words=("auto",)),
      "micro batches per step: the step's batch is split, not multiplied (loss_type dapo, grpo, dr_grpo: the "
      "same gradient as one pass). auto: on CPU micro batches of 4 completions (a 16-completion step updated "
      "in 9.4 s at 4.3 GB peak RSS against 13.8 s at 7.9 GB in one pass), on a GPU one pass; or a number that "
      "divides the step's completions per process",
      "gradient_accumulation_steps (= steps_per_generation)", None),
    S("loss_type", TEXT, "TRL's loss aggregation: dapo | grpo | dr_grpo | bnpo | ...", "loss_type", None),
    S("mask_truncated_completions", FLAG, "true: completions cut at max_completion_length get no loss",
      "mask_truncated_completions", None),
    S("save_total_limit", whole(1, null=True), "checkpoints kept (older ones deleted)", "save_total_limit", None),
    S("logging_steps", whole(1), "log metrics every N steps", "logging_steps", None),
    S("sample_every", whole(1), "log sample generations as an MLflow artifact every N steps",
      "(adapter: sample-logging callback)", None),
    S("num_samples_logged", whole(0), "completions in each logged sample", "(adapter: sample-logging callback)",
      None),
    # ---- verl only (TRL refuses a non-default algorithm or kl_in_reward, ignores the rest) ---------------------
    S("algorithm", one_of(("grpo", "ppo")), "grpo: group-relative advantages through the project's "
      "combine_advantages (no critic); ppo: GAE with a critic (verl's stock estimator; the reward is the "
      "recipe's weighted total). TRL trains grpo only and refuses ppo", None,
      "algorithm.adv_estimator, critic.enable"),
    S("strategy", one_of(("fsdp", "fsdp2", "megatron")), "verl's model_engine/strategy", None,
      "actor_rollout_ref.actor.strategy, critic.strategy"),
    S("nnodes", whole(1), "machines of the Ray cluster", None, "trainer.nnodes"),
    S("n_gpus_per_node", whole(1), "GPUs per machine", None, "trainer.n_gpus_per_node"),
    S("ppo_mini_batch_size", whole(1, null=True), "prompts per actor/critic update (null: prompts_per_step, one "
      "update per step)", None, "actor_rollout_ref.actor.ppo_mini_batch_size"),
    S("micro_batch_size_per_gpu", whole(1), "actor/critic/ref/rollout log-prob micro batches", None,
      "actor.ppo_micro_batch_size_per_gpu, ref/rollout.log_prob_micro_batch_size_per_gpu, "
      "critic.ppo_micro_batch_size_per_gpu"),
    S("use_dynamic_bsz", FLAG, "pack micro batches by tokens instead of a fixed count", None,
      "actor_rollout_ref.actor.use_dynamic_bsz"),
    S("critic_lr", number(0, low_open=True), "the critic's learning rate (algorithm=ppo only)", None,
      "critic.optim.lr"),
    S("entropy_coeff", number(0), "entropy bonus coefficient", None, "actor_rollout_ref.actor.entropy_coeff"),
    S("loss_agg_mode", one_of(LOSS_AGG_MODES), "how the policy loss is averaged over tokens and sequences", None,
      "actor_rollout_ref.actor.loss_agg_mode"),
    S("kl_loss_type", TEXT, "verl's KL estimator (low_var_kl, kl, abs, mse, full, ...)", None,
      "actor_rollout_ref.actor.kl_loss_type"),
    S("kl_in_reward", FLAG, "true: beta is a KL penalty inside the reward (PPO style), not a loss term. TRL "
      "refuses it", None, "algorithm.use_kl_in_reward"),
    S("val_temperature", number(0), "sampling temperature of verl's validation (0: greedy)", None,
      "actor_rollout_ref.rollout.val_kwargs.temperature, do_sample"),
    S("val_size", whole(0), "held-out samples written to val.parquet (they never move the curriculum)", None,
      "(adapter: val.parquet)"),
    S("val_before_train", FLAG, "validate before the first step", None, "trainer.val_before_train"),
    S("reward_workers", whole(1), "Ray reward-loop workers (judge rate limits are split across them)", None,
      "reward.num_workers"),
    S("curriculum_actor", TEXT, "name of the Ray actor holding the reference levels", None,
      "(adapter: reward.reward_kwargs.longwriter)"),
    S("allow_local_judge", FLAG, "judge=local_hf loads a model inside every Ray reward worker (CPU, beside "
      "vLLM): refused at launch unless true (serve a judge instead: judge=vllm_server / openai / dashscope)",
      None, "(adapter: launch check)"),
    S("judge_cache_dir", Rule("str", null=True), "the reward workers' judge cache (SQLite, WAL), on each node's "
      "local disk: WAL is unsafe on a network filesystem shared by several hosts. null: paths.cache_dir "
      "(single-node runs only)", None, "(adapter: reward.reward_kwargs.longwriter)"),
)
del S

BY_KEY: dict[str, EngineSetting] = {setting.key: setting for setting in SETTINGS}


def engine_rules() -> dict[str, Rule]:
    """`engine.<key>` -> its Rule, for config_checks."""
    return {f"engine.{setting.key}": setting.rule for setting in SETTINGS}


def shared_mapping() -> dict[str, tuple[str, str]]:
    """Keys both engines read -> (what TRL receives, what verl receives); the `lora.*` leaves as one row."""
    rows: dict[str, tuple[str, str]] = {}
    for setting in SETTINGS:
        if setting.scope != "both":
            continue
        if setting.key.startswith("lora."):
            rows["lora"] = ("peft LoraConfig(r, lora_alpha, lora_dropout, target_modules)",
                            "actor_rollout_ref.model.lora_rank (0 when disabled), lora_alpha, target_modules")
        else:
            rows[setting.key] = (setting.trl, setting.verl)
    return rows


def keys_of(scope: str) -> tuple[str, ...]:
    """The keys only one engine reads (`scope`: trl or verl)."""
    return tuple(setting.key for setting in SETTINGS if setting.scope == scope)


def vocabulary_table() -> list[str]:
    """docs/engines.md's table of the shared keys (generated: python -m longwriter.config_reference)."""
    rows = ["| `engine.` key | TRL 1.16 `GRPOConfig` | verl 0.9.1 `ppo_trainer` |", "| --- | --- | --- |"]
    for key, (trl, verl) in shared_mapping().items():
        rows.append(f"| `{key}` | {trl.replace('|', chr(92) + '|')} | {verl.replace('|', chr(92) + '|')} |")
    return rows
