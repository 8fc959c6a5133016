"""What a verl launch checks about the cluster before verl starts (and a dry run reports early).

- The judge must be able to serve every Ray reward worker: `judge=local_hf` loads a model inside
  each worker, on the CPU beside vLLM (minutes per step, per worker); refused unless
  `engine.allow_local_judge=true`.
- The plugin must import inside a Ray worker: verl swallows a failing `verl.plugins` entry point
  and reports only "Unknown reward manager/trainer" later, so a probe task imports it there first.
- SQLite files (judge cache, curriculum store) use WAL, which needs every process to be on one
  host with a local filesystem. The reward workers' judge cache lives on each node's local disk
  (`engine.judge_cache_dir`); a path on a network filesystem is reported.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# Filesystem types (as /proc/mounts names them) on which SQLite's WAL mode is unsafe.
NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph", "fuse.ceph",
                       "glusterfs", "fuse.glusterfs", "9p", "fuse.sshfs", "fuse.s3fs", "fuse.gcsfuse", "fuse.juicefs",
                       "afs", "wekafs", "fuse.weka")


def filesystem_type(path: str | os.PathLike, mounts: str = "/proc/mounts") -> str | None:
    """The type of the filesystem holding `path` (its nearest existing parent), from /proc/mounts."""
    try:
        lines = Path(mounts).read_text().splitlines()
    except OSError:
        return None
    target = Path(path).expanduser().resolve()  # non-strict: a file not created yet is fine
    best, best_type = "", None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = fields[1].replace("\\040", " ")
        inside = str(target) == mount_point or str(target).startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, fields[2]
    return best_type


def on_network_filesystem(path: str | os.PathLike, mounts: str = "/proc/mounts") -> bool:
    kind = filesystem_type(path, mounts)
    return kind is not None and kind.lower() in NETWORK_FILESYSTEMS


def judge_problem(settings: dict[str, Any], allow_local_judge: bool) -> str | None:
    """Why the configured judge cannot serve the Ray reward workers (None when it can)."""
    from omegaconf import OmegaConf

    from longwriter.training_setup import needs_judge

    if not needs_judge(OmegaConf.create(settings["reward"])):
        return None
    if str(settings["judge"].get("backend")) == "local_hf" and not allow_local_judge:
        return ("judge=local_hf cannot serve a verl cluster: every Ray reward worker would load its own copy of "
                f"{(settings['judge'].get('model') or {}).get('name', 'the local model')} on the CPU beside vLLM. "
                "Serve a judge (judge=vllm_server judge.base_url=..., or judge=openai/dashscope), score quality with a "
                "reward model (reward.components.quality.model=...), or set engine.allow_local_judge=true to accept it")
    return None


def sqlite_warnings(settings: dict[str, Any]) -> list[str]:
    """SQLite files that would sit on a network filesystem (WAL is unsafe there)."""
    warnings = []
    cache_dir = settings.get("cache_dir")
    if cache_dir and settings["judge"].get("cache") and on_network_filesystem(cache_dir):
        warnings.append(f"the reward workers' judge cache {cache_dir} is on a network filesystem "
                        f"({filesystem_type(cache_dir)}), where SQLite's WAL mode is unsafe: set "
                        f"engine.judge_cache_dir to a node-local folder (the default is)")
    curriculum = settings.get("curriculum") or {}
    if curriculum.get("path") and on_network_filesystem(curriculum["path"]):
        warnings.append(f"the curriculum store {curriculum['path']} is on a network filesystem "
                        f"({filesystem_type(curriculum['path'])}); only the curriculum actor (pinned to the head node) "
                        f"opens it, which SQLite tolerates, but put paths.output_root on a local disk if you can")
    return warnings


def _probe_plugin() -> str | None:
    """Runs inside a Ray worker: import verl (which loads the entry point) and look our names up."""
    try:
        import verl  # noqa: F401
        from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
        from verl.trainer.ppo.core_algos import get_adv_estimator_fn
        from verl.trainer.ppo.v1 import get_trainer_cls

        from longwriter.engines.verl.config_builder import ADV_ESTIMATOR, REWARD_MANAGER, TRAINER_MODE

        get_reward_manager_cls(REWARD_MANAGER)
        get_adv_estimator_fn(ADV_ESTIMATOR)
        get_trainer_cls(TRAINER_MODE)
    except Exception as error:  # noqa: BLE001 - reported to the driver with its type
        import traceback

        return f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=4)}"
    return None


def check_plugin_in_ray_worker(timeout_s: float = 300.0) -> None:
    """Import the plugin in a Ray worker of the running cluster; one clear error if it fails there."""
    import ray

    from longwriter.engines.verl.config_builder import VerlConfigError

    problem = ray.get(ray.remote(num_cpus=0)(_probe_plugin).remote(), timeout=timeout_s)
    if problem:
        raise VerlConfigError(
            "longwriter's verl plugin does not load inside a Ray worker, so verl would not find the 'longwriter' "
            "reward manager, estimator and trainer. Install the project in the workers' Python "
            f"(pip install -e '.[verl]' on every node). In the worker:\n{problem}")
