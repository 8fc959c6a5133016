"""Typed schemas behind conf/: a config block whose keys and defaults live in one dataclass.

Hydra reads each schema below from its ConfigStore, so the YAML that uses one (through its defaults
list, e.g. `- /schema/judge@_here_: openai`) sets only what differs from the dataclass, while every
key still shows in `--cfg job`, can be overridden without `+` and is type-checked. The dataclasses
are the runtime settings themselves (`OpenAISettings`, `GenerationOptions`), so code and config
cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from longwriter.generation import GenerationOptions
from longwriter.judges.settings import LocalHFSettings, OpenAISettings


@dataclass(frozen=True)
class OpenAIJudgeConfig(OpenAISettings):
    """`judge=openai` and the presets built on it: the backend's settings plus how the judge is wrapped."""

    name: str = "openai"
    backend: str = "openai"
    cache: bool = True  # persistent judgement cache under ${paths.cache_dir}/judges/
    # Free-form mappings stay untyped here so that `+judge.extra_body.<field>=...` can add to a null one.
    extra_body: Any = None
    headers_env: Any = None
    extra_body_env: Any = None


@dataclass(frozen=True)
class LocalHFJudgeConfig(LocalHFSettings):
    """`judge=local_hf`: the backend's settings, the judge model's config (`model`) and the cache switch."""

    name: str = "local_hf"
    backend: str = "local_hf"
    cache: bool = True
    model: Any = None  # a conf/model/*.yaml node, chosen in conf/judge/local_hf.yaml's defaults


SCHEMAS = {
    ("schema/judge", "openai"): OpenAIJudgeConfig,
    ("schema/judge", "local_hf"): LocalHFJudgeConfig,
    ("schema/generation", "default"): GenerationOptions,
}


def register_config_schemas() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent); called before any composition."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    store = ConfigStore.instance()
    for (group, name), schema in SCHEMAS.items():
        node = OmegaConf.structured(schema)
        OmegaConf.set_readonly(node, False)  # frozen dataclass = read-only node; YAML and overrides must write
        store.store(group=group, name=name, node=node)
