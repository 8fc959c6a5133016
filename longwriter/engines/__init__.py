"""Training engines: thin adapters from the project's config to a trainer (TRL or verl).

Engines are looked up by `engine.name`; each module registers itself with `register_engine`.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig

from longwriter.errors import ConfigError

logger = logging.getLogger(__name__)

EngineFn = Callable[[DictConfig, Path], "float | None"]
_ENGINES: dict[str, str] = {
    # name -> module defining `run(cfg, output_dir)`; imported only when chosen (heavy imports).
    "trl": "longwriter.engines.trl_engine.run",
    "verl": "longwriter.engines.verl.launcher",
}


def resolve_output_dir(cfg: DictConfig) -> Path:
    """The run's folder: `resume_from` when continuing, else Hydra's job folder."""
    if cfg.get("resume_from"):
        path = Path(str(cfg.resume_from)).expanduser().resolve()
        # Hydra has already created the folder (it is the job's run dir), so look for a run inside it.
        if not (path / "mlflow_run.json").exists():
            raise ConfigError(
                f"resume_from={cfg.resume_from} is not a folder of an earlier run (no mlflow_run.json); pass the "
                f"output folder of the run to continue, e.g. outputs/train/<run_name>"
            )
        return path
    from longwriter.config_tools import job_output_dir

    return job_output_dir(cfg, "train")


def run_training(cfg: DictConfig) -> float | None:
    """Run the configured engine; returns the sweep objective (see each engine's docstring)."""
    name = str(cfg.engine.name)
    if name not in _ENGINES:
        raise ConfigError(f"engine={name!r} is unknown; choose one of {sorted(_ENGINES)}")
    module = importlib.import_module(_ENGINES[name])
    return module.run(cfg, resolve_output_dir(cfg))
