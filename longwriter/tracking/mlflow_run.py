"""One MLflow run per training run (or sweep trial), resumable.

The run id is written into the run's output folder, so `resume_from=<folder>` continues the same
MLflow run. Store URIs are absolute (Hydra jobs may change directory).
"""

from __future__ import annotations

import json
import logging
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf

from longwriter.tracking.redact import flatten, redact

logger = logging.getLogger(__name__)

RUN_INFO_FILE = "mlflow_run.json"
MAX_PARAM_LEN = 6000  # MLflow's limit on a param value is 6000 characters


def _setup_experiment(tracking_cfg: DictConfig) -> str:
    import mlflow

    uri = str(tracking_cfg.tracking_uri)
    mlflow.set_tracking_uri(uri)
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    name = str(tracking_cfg.experiment_name)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = tracking_cfg.get("artifact_location")
    if artifact_location:
        Path(str(artifact_location)).mkdir(parents=True, exist_ok=True)
        artifact_location = Path(str(artifact_location)).resolve().as_uri()
    return mlflow.create_experiment(name, artifact_location=artifact_location)


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain data with secrets redacted (what params and artifacts see)."""
    return redact(OmegaConf.to_container(cfg, resolve=True))


def log_config(cfg: DictConfig) -> None:
    import mlflow
    import yaml

    plain = resolved_config(cfg)
    params = {k: (str(v)[:MAX_PARAM_LEN]) for k, v in flatten(plain).items()}
    items = list(params.items())
    for start in range(0, len(items), 100):  # MLflow batches at most 100 params per call
        mlflow.log_params(dict(items[start:start + 100]))
    mlflow.log_text(yaml.safe_dump(plain, sort_keys=False, allow_unicode=True), "config/resolved.yaml")


@contextmanager
def mlflow_run(
    cfg: DictConfig,
    output_dir: Path,
    run_name: str,
    tags: dict[str, str] | None = None,
    parent_run_id: str | None = None,
) -> Iterator[Any]:
    """Start (or, when the output folder has one, resume) the MLflow run for this training run.

    `parent_run_id` nests the run under a sweep's parent run.
    """
    import mlflow

    experiment_id = _setup_experiment(cfg.tracking)
    info_path = output_dir / RUN_INFO_FILE
    run_id = None
    if info_path.exists():
        run_id = json.loads(info_path.read_text())["run_id"]
        logger.info("resuming MLflow run %s", run_id)
    all_tags = {"longwriter.output_dir": str(output_dir), **(tags or {})}
    if parent_run_id and run_id is None:
        all_tags["mlflow.parentRunId"] = parent_run_id
    with mlflow.start_run(run_id=run_id, experiment_id=experiment_id, run_name=run_name, tags=all_tags) as run:
        if run_id is None:
            output_dir.mkdir(parents=True, exist_ok=True)
            info_path.write_text(json.dumps({"run_id": run.info.run_id, "experiment_id": experiment_id}))
            log_config(cfg)
        yield run


def log_metrics(metrics: dict[str, float], step: int) -> None:
    """Log finite numbers only (MLflow rejects None; NaN charts badly)."""
    import mlflow

    clean = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            clean[key] = number
    if clean:
        mlflow.log_metrics(clean, step=step)
