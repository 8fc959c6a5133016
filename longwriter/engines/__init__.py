"""Training engines: thin adapters from the project's config to a trainer (TRL or verl).

Engines are looked up by `engine.name` in `longwriter.config_checks.ENGINES` (name -> module), which
sits below this package so that a config is checked without importing any engine.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig

from longwriter.config_checks import ENGINES, check_config
from longwriter.errors import ConfigError

logger = logging.getLogger(__name__)

EngineFn = Callable[[DictConfig, Path], "float | None"]


def resolve_output_dir(cfg: DictConfig, entry: str = "train") -> Path:
    """The run's folder: `resume_from` when continuing, else Hydra's job folder (`entry`: train or sft)."""
    if cfg.get("resume_from"):
        path = Path(str(cfg.resume_from)).expanduser().resolve()
        # Hydra has already created the folder (it is the job's run dir), so look for a run inside it.
        if not (path / "mlflow_run.json").exists():
            raise ConfigError(
                f"resume_from={cfg.resume_from} is not a folder of an earlier run (no mlflow_run.json); pass the "
                f"output folder of the run to continue, e.g. outputs/{entry}/<run_name>"
            )
        return path
    from longwriter.config_tools import job_output_dir

    return job_output_dir(cfg, entry)


def is_main_process() -> bool:
    """RANK 0, or a single process (torchrun and `accelerate launch` set RANK before Python starts)."""
    return int(os.environ.get("RANK", "0") or 0) == 0


def prepare_run(cfg: DictConfig, entry: str = "train") -> tuple[DictConfig, Path]:
    """The config this run trains with and its folder (`entry`: train, or sft for `longwriter.sft`).

    A new run gets its MLflow name (distinct per multirun job, see `longwriter.run_names`) and
    saves its resolved config; a resume restores the run's own config and refuses overrides that
    would change what is trained (`longwriter.resume`).
    """
    from omegaconf import open_dict

    from longwriter.resume import record_resume, restore_config, save_resume_hydra_files, save_run_config
    from longwriter.run_names import job_run_name

    output_dir = resolve_output_dir(cfg, entry)
    if cfg.get("resume_from"):
        cfg, accepted = restore_config(cfg, output_dir, entry=entry)
        record_resume(output_dir, accepted)
        save_resume_hydra_files(cfg, output_dir)
        return cfg, output_dir
    # Under `accelerate launch` every process composes the same run folder; only the main one checks it
    # (the others start while it may already have opened the run).
    if is_main_process() and (output_dir / "mlflow_run.json").exists():
        raise ConfigError(f"run_name={cfg.run_name} is taken: {output_dir} holds an earlier run; choose another "
                          f"run_name, or continue that run with resume_from={output_dir}")
    with open_dict(cfg):
        cfg.run_name = job_run_name(cfg)
    save_run_config(cfg, output_dir)
    return cfg, output_dir


def run_training(cfg: DictConfig) -> float | None:
    """Run the configured engine; returns the sweep objective (see each engine's docstring)."""
    check_config(cfg, "train")  # values' types and ranges (the CLI has checked them already; callers in code too)
    name = str(cfg.engine.name)
    cfg, output_dir = prepare_run(cfg)
    module = importlib.import_module(ENGINES[name])
    result = module.run(cfg, output_dir)
    if cfg.engine.get("dry_run"):
        return dry_run_objective(cfg)
    return result


def dry_run_objective(cfg: DictConfig) -> float | tuple[float, ...]:
    """What a dry run returns: 0.0 per objective metric (nothing was trained). Optuna completes a
    trial only with a number; a dry-run sweep keeps its study in memory and runs one trial
    (sweeps/common/optuna.yaml), so these zeros never reach a real study."""
    from longwriter.tracking.objective import objective_metrics

    metrics = objective_metrics(cfg.get("objective"))
    return 0.0 if len(metrics) == 1 else tuple(0.0 for _ in metrics)
