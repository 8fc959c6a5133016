"""Run names: one per run, readable, never shared.

A single run is named by `run_name` (default: a timestamp). In a multirun (`-m`), every job gets
`<base>-<number>-<key overrides>`: the base is the seed group's id (`-m sweep=seeds`), else `run_name`
when given on the command line, else the Optuna study name (sweeps) or the sweep folder's timestamp
(plain multiruns); the number is the Optuna trial number (`t<n>`, unique across resumed invocations of
a study) or the Hydra job number; the key overrides are the values this job was given for the keys
that vary across the sweep.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf

from longwriter.tracking.redact import redact_override

MAX_NAME_LEN = 120
PARENT_FILE = "mlflow_parent_run.json"  # in a sweep's folder: the parent MLflow run and the Optuna study (sweep_callback)
_SWEEP_FUNCTIONS = ("choice(", "range(", "interval(", "glob(", "tag(")


def _hydra_config() -> Any | None:
    try:
        from hydra.core.hydra_config import HydraConfig

        return HydraConfig.get()
    except ValueError:  # composed without a Hydra app (tests, notebooks)
        return None


def is_multirun(hydra_cfg: Any | None = None) -> bool:
    from hydra.types import RunMode

    hydra_cfg = hydra_cfg if hydra_cfg is not None else _hydra_config()
    return hydra_cfg is not None and hydra_cfg.mode == RunMode.MULTIRUN


def swept_keys(hydra_cfg: Any, argv: Iterable[str] | None = None) -> list[str]:
    """Keys that vary across this multirun: the sweeper's search space plus every command-line
    override written as a sweep (`a=1,2`, `b=choice(x,y)`, `c=range(3)`)."""
    params = OmegaConf.select(hydra_cfg, "sweeper.params") or {}
    keys = [str(k) for k in params]
    for arg in argv if argv is not None else sys.argv[1:]:
        key, sep, value = arg.partition("=")
        if not sep or arg.startswith("-") or key.startswith("hydra"):
            continue
        if "," in value.replace("\\,", "") or value.startswith(_SWEEP_FUNCTIONS):
            if not (value.startswith("[") or value.startswith("{")):  # a list/dict value, not a sweep
                keys.append(key.lstrip("+~"))
    return list(dict.fromkeys(keys))


def _short(key: str, value: str) -> str:
    label = key.split("@")[-1].split(".")[-1].split("/")[-1]
    try:
        number = float(value)
        if not value.lstrip("-").isdigit():
            value = f"{number:.3g}"
    except ValueError:
        pass
    return f"{label}={value}"


def key_overrides(task_overrides: Iterable[str], keys: Iterable[str]) -> str:
    """`lr=2.1e-05,beta=0.034` from this job's overrides of the swept keys (secrets hidden)."""
    wanted = set(keys)
    parts = []
    for override in task_overrides:
        key, sep, value = str(override).partition("=")
        if sep and key.lstrip("+~") in wanted:
            parts.append(_short(key.lstrip("+~"), redact_override(f"{key}={value}").partition("=")[2]))
    return ",".join(parts)


def _user_run_name(hydra_cfg: Any) -> str | None:
    for override in hydra_cfg.overrides.task:
        key, sep, value = str(override).partition("=")
        if sep and key.lstrip("+") == "run_name":
            return value
    return None


def running_trial_number(parent: dict[str, str], overrides: list[str]) -> int | None:
    """The Optuna trial this job ran: the running trial whose params are among the job's overrides
    (the sweeper writes each param as `name=value`; it tells the result only after the job ends)."""
    import optuna

    study = optuna.load_study(study_name=parent["study"], storage=parent["storage"])
    given = set(overrides)
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if trial.params and all(f"{k}={v}" in given for k, v in trial.params.items()):
            return trial.number
    return None


def _parent_info(hydra_cfg: Any) -> dict[str, Any] | None:
    """What the sweep's callback wrote into the sweep folder (its MLflow parent run), if anything."""
    import json

    parent_file = Path(str(hydra_cfg.sweep.dir)) / PARENT_FILE
    return json.loads(parent_file.read_text()) if parent_file.exists() else None


def _trial_number(hydra_cfg: Any, task_overrides: list[str]) -> int | None:
    parent = _parent_info(hydra_cfg)
    if parent is None:
        return None
    try:
        return running_trial_number(parent, task_overrides)
    except Exception:  # the study cannot be read: fall back to the job number
        return None


def job_run_name(cfg: DictConfig, hydra_cfg: Any | None = None) -> str:
    """The MLflow run name of this job (see the module docstring)."""
    hydra_cfg = hydra_cfg if hydra_cfg is not None else _hydra_config()
    if not is_multirun(hydra_cfg):
        return str(cfg.run_name)
    task = [str(o) for o in hydra_cfg.overrides.task]
    study = OmegaConf.select(hydra_cfg, "sweeper.study_name", default=None)
    group = None if study else (_parent_info(hydra_cfg) or {}).get("group")  # a seed group (seed_callback.py)
    base = group or _user_run_name(hydra_cfg) or study or Path(str(hydra_cfg.sweep.dir)).name
    trial = _trial_number(hydra_cfg, task) if study else None
    number = f"t{trial}" if trial is not None else str(hydra_cfg.job.num)
    keys = key_overrides(task, swept_keys(hydra_cfg))
    name = f"{base}-{number}" + (f"-{keys}" if keys else "")
    return name[:MAX_NAME_LEN]
