"""Build verl's ppo_trainer config from the project's config.

verl's packaged Hydra config (`verl/trainer/config/ppo_trainer.yaml` and its defaults list) stays
the one home of every verl default: it is composed with Hydra's compose API, then only the keys
the project maps from its engine vocabulary are overridden (`verl_overrides`), then `engine.verl`
(raw verl keys, e.g. engine.verl.data.train_batch_size=8).
Overrides are merged in struct mode, so a key verl does not have is an error, not a silent no-op.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf, open_dict

from longwriter.engines.verl.precision import precision_keys
from longwriter.engines.vocabulary import flat_items, max_steps, rollout_backend
from longwriter.errors import ConfigError


class VerlConfigError(ConfigError):
    """The verl config or its data would fail on the cluster; the message says which key."""


VERL_CONFIG_MODULE = "verl.trainer.config"
VERL_CONFIG_NAME = "ppo_trainer"
REWARD_MANAGER = "longwriter"        # registered in reward.py
ADV_ESTIMATOR = "longwriter"         # registered in advantage.py
TRAINER_MODE = "longwriter_sync"     # registered in trainer.py
CHECKPOINT_CALLBACK = "longwriter.engines.verl.trainer.CurriculumCheckpoint"
# Estimators per `engine.algorithm`: grpo needs no critic; ppo is GAE with a critic.
ALGORITHMS = {"grpo": (ADV_ESTIMATOR, False), "ppo": ("gae", True)}


@dataclass(frozen=True)
class VerlInputs:
    """What the launcher prepared: the parquet files, the model and where the run writes."""

    train_file: Path
    val_file: Path
    model_path: str
    output_dir: Path
    curriculum_path: Path | None = None


@contextmanager
def _own_hydra() -> Iterator[None]:
    """Compose verl's config even inside our own Hydra app (which already holds GlobalHydra)."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    outer = GlobalHydra.instance().hydra if GlobalHydra.instance().is_initialized() else None
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(VERL_CONFIG_MODULE, version_base=None):
            yield
    finally:
        GlobalHydra.instance().clear()
        if outer is not None:
            GlobalHydra.instance().initialize(outer)


def compose_verl_defaults(group_overrides: list[str] | None = None) -> DictConfig:
    """verl's own ppo_trainer config, exactly as `python -m verl.trainer.main_ppo` composes it."""
    from hydra import compose

    with _own_hydra():
        return compose(VERL_CONFIG_NAME, overrides=list(group_overrides or []))


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def per_worker_judge(judge: dict[str, Any], workers: int) -> dict[str, Any]:
    """Each reward worker runs its own judge client: split the client-side limits between them."""
    judge = dict(judge)
    if workers > 1:
        if judge.get("concurrency"):
            judge["concurrency"] = max(1, math.ceil(int(judge["concurrency"]) / workers))
        for key in ("rpm", "tpm"):
            if judge.get(key):
                judge[key] = float(judge[key]) / workers
    return judge


def longwriter_settings(cfg: DictConfig, inputs: VerlInputs) -> dict[str, Any]:
    """What the reward workers and the trainer need from our config (resolved, plain data)."""
    curriculum = None
    if inputs.curriculum_path is not None:
        curriculum = {"actor": str(cfg.engine.curriculum_actor), "path": str(inputs.curriculum_path)}
    judge_cache_dir = cfg.engine.get("judge_cache_dir")  # node-local: SQLite WAL fails across hosts
    return {
        "reward": _plain(cfg.reward),
        "judge": per_worker_judge(_plain(cfg.judge), int(cfg.engine.reward_workers)),
        "cache_dir": str(judge_cache_dir or cfg.paths.cache_dir),
        "curriculum": curriculum,
        "allow_local_judge": bool(cfg.engine.get("allow_local_judge", False)),
        "max_completion_tokens": int(cfg.engine.max_completion_length),  # soft_overlong's default L_max
    }


def _model(cfg: DictConfig, inputs: VerlInputs) -> dict[str, Any]:
    e = cfg.engine
    model: dict[str, Any] = {"path": inputs.model_path,
                             "enable_gradient_checkpointing": bool(e.gradient_checkpointing)}
    if e.lora.enabled:
        model.update({"lora_rank": int(e.lora.r), "lora_alpha": int(e.lora.alpha),
                      "target_modules": list(e.lora.target_modules)})
    else:
        model["lora_rank"] = 0
    if str(e.attn_implementation) != "auto":
        model["override_config"] = {"attn_implementation": str(e.attn_implementation)}
    return model


def verl_overrides(cfg: DictConfig, inputs: VerlInputs) -> dict[str, Any]:
    """The verl keys this project sets from the shared engine vocabulary (conf/engine/shared/grpo.yaml;
    the name table is longwriter/engines/vocabulary.py); everything else keeps verl's default."""
    e = cfg.engine
    algorithm = str(e.algorithm)
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"engine.algorithm={algorithm!r}: choose one of {sorted(ALGORITHMS)}")
    estimator, use_critic = ALGORITHMS[algorithm]
    strategy = str(e.strategy)
    micro = int(e.micro_batch_size_per_gpu)
    beta, kl_in_reward = float(e.beta), bool(e.kl_in_reward)
    optim = {"lr": float(e.learning_rate), "lr_warmup_steps_ratio": float(e.warmup_ratio),
             "lr_scheduler_type": str(e.lr_scheduler_type)}
    actor: dict[str, Any] = {
        "optim": optim,
        # null: one update per step, following data.train_batch_size (also when engine.verl sets that).
        "ppo_mini_batch_size": int(e.ppo_mini_batch_size) if e.ppo_mini_batch_size else "${data.train_batch_size}",
        "ppo_micro_batch_size_per_gpu": micro,
        "use_dynamic_bsz": bool(e.use_dynamic_bsz),
        "clip_ratio_low": float(e.clip_ratio_low),
        "clip_ratio_high": float(e.clip_ratio_high),
        "entropy_coeff": float(e.entropy_coeff),
        "loss_agg_mode": str(e.loss_agg_mode),
        # beta is the KL loss coefficient (GRPO); with kl_in_reward it is the in-reward penalty instead.
        "use_kl_loss": beta > 0 and not kl_in_reward,
        "kl_loss_coef": beta,
        "kl_loss_type": str(e.kl_loss_type),
    }
    ref: dict[str, Any] = {"log_prob_micro_batch_size_per_gpu": micro}
    critic: dict[str, Any] = {"enable": use_critic, "model": {"path": inputs.model_path}}
    if strategy != "megatron":
        actor["strategy"] = strategy
        critic["strategy"] = strategy
    if use_critic:
        critic.update({"optim": {"lr": float(e.critic_lr)}, "ppo_micro_batch_size_per_gpu": micro})
    if cfg.get("eval") and cfg.eval.at_end:
        # eval.at_end evaluates the last checkpoint's Hugging Face weights (verl saves shards otherwise).
        actor["checkpoint"] = {"save_contents": ["model", "optimizer", "extra", "hf_model"]}
    val_temperature = float(e.val_temperature)
    eval_steps = e.get("eval_steps")
    return {
        "data": {
            "train_files": str(inputs.train_file),
            "val_files": str(inputs.val_file),
            "train_batch_size": int(e.prompts_per_step),
            "max_prompt_length": int(e.max_prompt_length),
            "max_response_length": int(e.max_completion_length),
            "filter_overlong_prompts": True,
            "seed": int(cfg.seed),
        },
        "actor_rollout_ref": {
            "model": _model(cfg, inputs),
            "actor": actor,
            "ref": ref,
            "rollout": {
                "name": rollout_backend(e, "verl"),
                "n": int(e.num_generations),
                "temperature": float(e.temperature),
                "top_p": float(e.top_p),
                "tensor_model_parallel_size": int(e.rollout.tensor_parallel_size),
                "gpu_memory_utilization": float(e.rollout.gpu_memory_utilization),
                "log_prob_micro_batch_size_per_gpu": micro,
                "val_kwargs": {"temperature": val_temperature, "do_sample": val_temperature > 0},
            },
        },
        "critic": critic,
        "algorithm": {
            "adv_estimator": estimator,
            "use_kl_in_reward": kl_in_reward,
            "kl_ctrl": {"kl_coef": beta if kl_in_reward else 0.0},
        },
        "reward": {"num_workers": int(e.reward_workers), "reward_manager": {"source": "register",
                                                                              "name": REWARD_MANAGER}},
        "trainer": {
            "nnodes": int(e.nnodes),
            "n_gpus_per_node": int(e.n_gpus_per_node),
            "total_epochs": int(e.num_train_epochs),
            "total_training_steps": max_steps(e),
            "save_freq": int(e.save_steps),
            "test_freq": -1 if eval_steps is None else int(eval_steps),
            "val_before_train": bool(e.val_before_train),
            "logger": ["console", "mlflow"],
            "project_name": str(cfg.tracking.experiment_name),   # verl's MLflow experiment
            "experiment_name": str(cfg.run_name),                 # verl's MLflow run name
            "default_local_dir": str(inputs.output_dir / "checkpoints"),
            "checkpoint_callback_class": CHECKPOINT_CALLBACK,
            "use_v1": True,
            "v1": {"trainer_mode": TRAINER_MODE},
        },
    }


def verl_additions(cfg: DictConfig, inputs: VerlInputs) -> dict[str, Any]:
    """Keys verl leaves open for users (absent from its schema), so merged outside struct mode."""
    return {
        # verl's documented place for reward-manager kwargs (DAPO reads reward.reward_kwargs too).
        "reward": {"reward_kwargs": {"longwriter": longwriter_settings(cfg, inputs)}},
        # verl's MLflow logger reads these in the TaskRunner; the launcher adds MLFLOW_RUN_ID.
        "ray_kwargs": {"ray_init": {"runtime_env": {"env_vars": {
            "MLFLOW_TRACKING_URI": str(cfg.tracking.tracking_uri),
        }}}},
    }


def _is_free_form(verl_cfg: DictConfig, key: str) -> bool:
    """A verl key may be added under a node verl leaves open: an empty mapping such as
    `actor_rollout_ref.model.override_config` or `rollout.engine_kwargs.vllm`."""
    parts = key.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        node = OmegaConf.select(verl_cfg, ".".join(parts[:cut]), default="__missing__")
        if isinstance(node, str) and node == "__missing__":
            continue
        return isinstance(node, DictConfig) and len(node) == 0
    return False


def apply_native_keys(verl_cfg: DictConfig, native: Any) -> DictConfig:
    """`engine.verl.<verl key>`: verl's own keys, as verl users type them, applied last (they win over the
    vocabulary). An unknown key is an error naming it, never a silent no-op."""
    for key, value in flat_items(native):
        missing = OmegaConf.select(verl_cfg, key, default="__missing__")
        if isinstance(missing, str) and missing == "__missing__" and not _is_free_form(verl_cfg, key):
            raise ConfigError(f"engine.verl.{key}: verl's config has no key '{key}' (verl 0.9.1 ppo_trainer)")
        with open_dict(verl_cfg):
            OmegaConf.update(verl_cfg, key, value, merge=True)
    return verl_cfg


def build_verl_config(cfg: DictConfig, inputs: VerlInputs) -> DictConfig:
    """verl's composed defaults <- the vocabulary's keys (`engine.precision`'s: verl/precision.py) <-
    `engine.verl` (raw verl keys); verl interpolations are kept."""
    groups = ["model_engine=megatron"] if str(cfg.engine.strategy) == "megatron" else []
    verl_cfg = compose_verl_defaults(groups)
    verl_cfg = OmegaConf.merge(verl_cfg, verl_overrides(cfg, inputs))
    _, use_critic = ALGORITHMS[str(cfg.engine.algorithm)]
    with open_dict(verl_cfg):
        verl_cfg = OmegaConf.merge(verl_cfg, verl_additions(cfg, inputs), precision_keys(cfg.engine, use_critic))
    return apply_native_keys(verl_cfg, cfg.engine.get("verl"))


def save_verl_config(verl_cfg: DictConfig, path: Path) -> Path:
    """Write the config as one YAML that verl's own CLI accepts (`--config-path/--config-name`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(verl_cfg, path, resolve=False)
    return path
