"""The engine vocabulary: which `engine.*` keys both engines share and what each adapter maps them to.

The values live in conf/engine/shared/grpo.yaml (loaded by both conf/engine/trl.yaml and
conf/engine/verl.yaml); meaning, rule and mapping of every key in longwriter/engine_settings.py. This
module gives the adapters (`trl_engine/run.py`, `verl/config_builder.py`) that mapping by engine, plus
the checks both adapters share.
"""

from __future__ import annotations

from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf

from longwriter.engine_settings import ROLLOUT_BACKENDS, VLLM_MODES, keys_of, shared_mapping  # noqa: F401
from longwriter.errors import ConfigError

# shared key -> (what TRL receives, what verl receives), and the keys one engine alone reads: from the
# settings' one home, longwriter/engine_settings.py.
SHARED_KEYS: dict[str, tuple[str, str]] = shared_mapping()
TRL_ONLY = keys_of("trl")
VERL_ONLY = keys_of("verl")
PASSTHROUGH = ("trl", "verl")   # raw engine keys: engine.trl.<GRPOConfig field>, engine.verl.<verl key>


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
