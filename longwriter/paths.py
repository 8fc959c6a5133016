"""Where the project lives, so that configs can use absolute paths from any working directory, and
what Hydra needs before composing (resolvers, typed schemas, open passthrough nodes).

`CONF_DIR` and `PACKAGE_DIR` live in `longwriter.config_tools` (the foundations layer, which reads
presets from conf/) and are named here too.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

from omegaconf import OmegaConf

from longwriter.config_schema import register_config_schemas
from longwriter.config_tools import CONF_DIR, PACKAGE_DIR

__all__ = ["CONF_DIR", "PACKAGE_DIR", "launch_time", "project_root", "register_passthrough_nodes",
           "register_resolvers"]


def project_root() -> Path:
    """The checkout that holds conf/ (or LONGWRITER_HOME when set, e.g. for installed copies)."""
    env = os.environ.get("LONGWRITER_HOME")
    if env:
        return Path(env).resolve()
    return PACKAGE_DIR.parent


@functools.lru_cache(maxsize=1)
def launch_time() -> float:
    """When this run was launched (`${lw_now:%Y%m%d-%H%M%S}` in run_name): now, or, in a rank started by
    torchrun / `accelerate launch --multi_gpu` (LOCAL_RANK and WORLD_SIZE > 1 set), the start time of the
    launcher process, the parent of every rank on this node, so that all ranks compose the same run name
    and therefore the same run folder. (Several nodes: pass run_name= explicitly.)"""
    if "LOCAL_RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        import psutil

        return psutil.Process(os.getppid()).create_time()
    return time.time()


def register_resolvers() -> None:
    """Register `${lw_root:}`, `${lw_or:a,b}` and the open engine passthrough nodes once; Hydra apps and
    the compose API both call this before composing."""
    register_config_schemas()
    register_passthrough_nodes()
    if not OmegaConf.has_resolver("lw_root"):
        OmegaConf.register_new_resolver("lw_root", lambda: str(project_root()))
    if not OmegaConf.has_resolver("lw_or"):
        # First value unless it is null/empty (oc.select only falls back when the key is missing).
        OmegaConf.register_new_resolver("lw_or", lambda value, default: default if value in (None, "") else value)
    if not OmegaConf.has_resolver("lw_now"):
        OmegaConf.register_new_resolver("lw_now", lambda pattern: time.strftime(pattern, time.localtime(launch_time())),
                                        use_cache=True)
    if not OmegaConf.has_resolver("lw_if"):
        # `${lw_if:${engine.dry_run},a,b}`: a when the condition is true, else b (dry-run sweeps).
        OmegaConf.register_new_resolver("lw_if", lambda condition, then, otherwise: then if condition else otherwise)


PASSTHROUGH_ENGINES = ("trl", "verl")


def register_passthrough_nodes() -> None:
    """`engine.trl` and `engine.verl`: nodes that accept any key without a `+` (the raw keys of TRL's
    GRPOConfig and of verl's ppo_trainer config, checked against them by the engine adapters).

    Hydra makes the whole config struct, so an undeclared key needs `+key=`; YAML cannot mark one
    node as open. A node stored with the struct flag explicitly off keeps it through composition,
    so `engine.verl.data.train_batch_size=8` works as verl users type it
    (conf/engine/shared/grpo.yaml loads this node as `passthrough`)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    if "passthrough.yaml" in (store.repo.get("engine", {}).get("shared", {}) or {}):
        return
    node = OmegaConf.create({name: {} for name in PASSTHROUGH_ENGINES})
    for name in PASSTHROUGH_ENGINES:
        OmegaConf.set_struct(node[name], False)
    store.store(group="engine/shared", name="passthrough", node=node)
