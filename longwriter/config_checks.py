"""Every config value of train / evaluate / prepare / sft checked before anything starts.

One table per entry point maps a dotted key to a `Rule` (type, range, allowed choices); a few
`CROSS_CHECKS` relate two keys (GRPO needs groups of two, a rollout backend belongs to its engine).
`check_config` runs them all before a model loads or an MLflow run opens (the Hydra callback in
`longwriter.hydra_guard` for single runs, each entry point's `main` for sweep trials) and raises one
`ConfigError` naming every bad key, its value and what is allowed. Keys a config does not have
(a data-selection strategy's own keys, say) are skipped; `*` in a key stands for every child.

A key without a rule is not checked here: the engines and the reward/judge dataclasses check those
where they read them.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from omegaconf import DictConfig, ListConfig, OmegaConf

from longwriter.config_rules import (FLAG, PROBABILITY_MASS, TEXT, Rule, number,  # noqa: F401  (also re-exported)
                                     one_of, whole)
from longwriter.engine_settings import ROLLOUT_BACKENDS, engine_rules  # noqa: F401  (ROLLOUT_BACKENDS: re-exported)
from longwriter.errors import ConfigError

_ABSENT = object()
# The engines, kept here (below the engines layer) because `engine.name` is a config value checked
# before any engine is imported: name -> the module whose `run(cfg, output_dir)` trains with it
# (`longwriter.engines.run_training` imports it only when chosen: heavy imports).
ENGINES: dict[str, str] = {
    "trl": "longwriter.engines.trl_engine.run",
    "verl": "longwriter.engines.verl.launcher",
}


def engine_names() -> list[str]:
    return sorted(ENGINES)


# Registries whose names are config values; imported when checked (none of them loads torch).


def _combiners() -> list[str]:
    from longwriter.advantages import COMBINERS

    return sorted(COMBINERS)


def _loaders() -> list[str]:
    import longwriter.data.loaders  # noqa: F401  (registers the built-in loaders)
    from longwriter.data.loader_registry import _LOADERS

    return sorted(_LOADERS)


def _word_counts() -> list[str]:
    from longwriter.text import WORD_COUNTS

    return sorted(WORD_COUNTS)


def _eval_metrics() -> list[str]:
    from longwriter.evaluation.scoring import _SCORERS

    return sorted(_SCORERS)


def _templates() -> tuple[str, ...]:
    from longwriter.prompting import TEMPLATES

    return TEMPLATES


def _sft_templates() -> tuple[str, ...]:
    from longwriter.sft_data import SFT_TEMPLATES

    return SFT_TEMPLATES


# The engine settings' rules come from their one home, engine_settings (help, rule, mapping per key).
ENGINE: dict[str, Rule] = {"engine.name": one_of(engine_names), **engine_rules()}

REWARD: dict[str, Rule] = {
    "reward.combine": one_of(_combiners),
    "reward.prompt_template": one_of(_templates),
    "reward.components.*.weight": number(0),
}

DATA: dict[str, Rule] = {
    "data.format": one_of(_loaders),
    "data.limit": whole(1, null=True),
    "data.shuffle_seed": whole(null=True),
}

EVAL: dict[str, Rule] = {
    "eval.metrics": Rule("subset", choices=_eval_metrics),
    "eval.limit": whole(1, null=True),
    "eval.prompt_template": one_of(_templates),
    "eval.max_new_tokens": whole(1),
    "eval.batch_size": whole(1),
    "eval.temperature": number(0),
    "eval.top_p": PROBABILITY_MASS,
    "eval.seed": whole(),
    "eval.pairwise_position": one_of(("swap", "disadvantage", "advantage")),
    "eval.pairwise_reference": whole(),
    "eval.word_count": one_of(_word_counts),
    "eval.at_start": FLAG,
    "eval.at_end": FLAG,
}

SELECTION: dict[str, Rule] = {
    "data_selection.threshold": number(null=True),
    "data_selection.top_k": whole(1, null=True),
    "data_selection.k": whole(1),
    "data_selection.seed": whole(),
    "data_selection.order_references": FLAG,
    "data_selection.set_start_level": FLAG,
    "data_selection.keep_existing": FLAG,
}

PREPARE: dict[str, Rule] = {
    "prepare.output": TEXT,
    "prepare.verl_parquet": FLAG,
    "prepare.verl_split": TEXT,
    "prepare.max_prompt_tokens": whole(1, null=True),
    "prepare.log_dataset_max_mb": number(0),
    "prepare.references.keep_existing": FLAG,
}

SFT: dict[str, Rule] = {
    "sft.template": one_of(_sft_templates),
    "sft.reference": whole(),
    "sft.all_references": FLAG,
    "sft.on_holdout_overlap": one_of(("drop", "error")),
    "sft.max_steps": whole(1, null=True, says="must be a whole number of SFT steps, at least 1 "
                                              "(e.g. sft.max_steps=40), or null for sft.num_train_epochs passes "
                                              "over the data"),
    "sft.num_train_epochs": number(0, low_open=True),
    "sft.batch_size": whole(1),
    "sft.gradient_accumulation_steps": whole(1),
    "sft.learning_rate": number(0, low_open=True),
    "sft.lr_scheduler_type": TEXT,
    "sft.warmup_ratio": number(0.0, 1.0, high_open=True),
    "sft.max_length": whole(1),
    "sft.precision": one_of(("auto", "bf16", "fp32")),
    "sft.gradient_checkpointing": FLAG,
    "sft.lora.enabled": FLAG,
    "sft.lora.r": whole(1),
    "sft.lora.alpha": number(0, low_open=True),
    "sft.lora.dropout": number(0.0, 1.0, high_open=True),
    "sft.save_steps": whole(1),
    "sft.save_total_limit": whole(1, null=True),
    "sft.logging_steps": whole(1),
    "sft.num_samples_logged": whole(0),
    "sft.sample_max_new_tokens": whole(1),
}

COMMON: dict[str, Rule] = {"run_name": TEXT, "tracking.experiment_name": TEXT, "tracking.tracking_uri": TEXT}

RULES: dict[str, dict[str, Rule]] = {
    "train": {**COMMON, **ENGINE, **REWARD, **DATA, **SELECTION, **EVAL, "seed": whole(),
              "stop_after_unknown_steps": whole(0, null=True)},
    "evaluate": {**COMMON, **DATA, **EVAL},
    "prepare": {**COMMON, **DATA, **SELECTION, **PREPARE},
    "sft": {**COMMON, **DATA, **SFT, "seed": whole()},
}


def _grpo_group(cfg: DictConfig) -> str | None:
    algorithm, group = _get(cfg, "engine.algorithm"), _get(cfg, "engine.num_generations")
    if algorithm == "grpo" and group == 1:
        return ("engine.num_generations=1: GRPO compares >= 2 completions per prompt (one response per prompt "
                "is PPO with a critic: engine=verl engine.algorithm=ppo)")
    return None


def _rollout_of_engine(cfg: DictConfig) -> str | None:
    engine, backend = _get(cfg, "engine.name"), _get(cfg, "engine.rollout.backend")
    allowed = ROLLOUT_BACKENDS.get(engine)
    if allowed and backend in ("transformers", "vllm", "sglang") and backend not in allowed:
        return f"engine.rollout.backend={backend!r}: engine={engine} rolls out with {' or '.join(allowed)}"
    return None


def _soft_overlong_limits(cfg: DictConfig) -> str | None:
    """soft_overlong's l_max / l_cache against each other and engine.max_completion_length (the rules:
    longwriter/rewards/overlong.py's `resolve_limits`, which the component applies again when built)."""
    from longwriter.rewards.overlong import resolve_limits

    components = _get(cfg, "reward.components")
    budget = _get(cfg, "engine.max_completion_length")
    if not isinstance(components, DictConfig) or budget is _ABSENT:
        return None
    problems = []
    for name in components.keys():
        spec = _get(cfg, f"reward.components.{name}")
        if isinstance(spec, DictConfig) and str(spec.get("type", name)) == "soft_overlong":
            try:
                resolve_limits(spec.get("l_max"), spec.get("l_cache"), budget, where=f"reward.components.{name}")
            except ValueError as error:
                problems.append(str(error))
    return "; ".join(problems) or None


def _model_folder(cfg: DictConfig) -> str | None:
    """model.path, when set, must be a saved model folder (config.json, tokenizer)."""
    from longwriter.models.loading import model_folder_problem

    path = _get(cfg, "model.path")
    if path is _ABSENT or path in (None, ""):
        return None
    return model_folder_problem(path)


def _sft_batch(cfg: DictConfig) -> str | None:
    size, accumulation = _get(cfg, "sft.batch_size"), _get(cfg, "sft.gradient_accumulation_steps")
    if _ABSENT in (size, accumulation) or size % accumulation == 0:
        return None
    return (f"sft.gradient_accumulation_steps={accumulation} must divide sft.batch_size={size} (the step's batch "
            f"is split into that many micro batches)")


CROSS_CHECKS: dict[str, tuple[Callable[[DictConfig], str | None], ...]] = {
    "train": (_grpo_group, _rollout_of_engine, _soft_overlong_limits, _model_folder),
    "evaluate": (_model_folder,),
    "prepare": (_model_folder,),  # prepare.output's suffix: longwriter.prepare.output_path
    "sft": (_model_folder, _sft_batch),
}


def _get(cfg: DictConfig, key: str) -> Any:
    """The resolved value, `_ABSENT` when the config has no such key (or it cannot be resolved yet,
    e.g. a `${hydra:...}` outside a job: the code that reads it reports that)."""
    try:
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
    except Exception:  # noqa: BLE001 - an unresolvable interpolation is not this module's to judge
        return _ABSENT
    return value


def _expand(cfg: DictConfig, key: str) -> Iterator[str]:
    if "*" not in key:
        yield key
        return
    head, _, tail = key.partition(".*.")
    parent = _get(cfg, head)
    if isinstance(parent, DictConfig):
        for child in parent.keys():
            yield from _expand(cfg, f"{head}.{child}.{tail}")


def show(value: Any) -> str:
    """A value as the user would type it back: 'abc' quoted, null, true/false, numbers plain."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, ListConfig):
        return str(OmegaConf.to_container(value))
    return repr(value) if isinstance(value, str) else str(value)


def config_problems(cfg: DictConfig, entry: str) -> list[str]:
    """One `key=value: what is allowed` line per bad value of `entry`'s config (empty: all good)."""
    problems = []
    for pattern, rule in RULES.get(entry, {}).items():
        for key in _expand(cfg, pattern):
            value = _get(cfg, key)
            if value is _ABSENT or rule.accepts(value):
                continue
            problems.append(f"{key}={show(value)}: {rule.allowed()}")
    if not problems:  # cross checks read values that the table has already found well-typed
        problems = [p for check in CROSS_CHECKS.get(entry, ()) if (p := check(cfg))]
    return problems


def check_config(cfg: DictConfig, entry: str) -> None:
    """Raise one ConfigError listing every bad value (`entry`: train, evaluate, prepare or sft)."""
    problems = config_problems(cfg, entry)
    if problems:
        raise ConfigError("; ".join(problems))
