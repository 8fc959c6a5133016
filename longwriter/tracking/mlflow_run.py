"""One MLflow run per training run (or sweep trial), resumable.

The run id is written into the run's output folder, so `resume_from=<folder>` continues the same
MLflow run. Store URIs are absolute (Hydra jobs may change directory).
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import sqlite3
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf

from longwriter.tracking.redact import flatten, redact
from longwriter.tracking.ui_view import ensure_runs_view, refresh_runs_view, view_tags

logger = logging.getLogger(__name__)

RUN_INFO_FILE = "mlflow_run.json"
MAX_PARAM_LEN = 6000  # MLflow's limit on a param value is 6000 characters


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Serialise the first use of a sqlite store across processes: MLflow creates and migrates its
    tables when a process first opens the store, and two processes doing it at once on a fresh file
    crash inside alembic. The lock file sits next to the database."""
    path = _sqlite_path(uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# MLflow 3's UI opens an experiment by its kind: without this tag it guesses, and guessed the GenAI
# view (traces, "Evaluations") for training runs. An explicit kind set by the user is kept.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"


def _setup_experiment(tracking_cfg: DictConfig) -> str:
    """The experiment's id, creating the store's tables and the experiment if needed (under a lock)."""
    import mlflow

    uri = str(tracking_cfg.tracking_uri)
    mlflow.set_tracking_uri(uri)
    name = str(tracking_cfg.experiment_name)
    with store_lock(uri):
        client = mlflow.MlflowClient(uri)  # builds (migrates) a fresh store's tables: inside the lock
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is not None:
            if EXPERIMENT_KIND_TAG not in experiment.tags:  # a store made before the tag was set
                client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, TRAINING_KIND)
            ensure_runs_view(client, experiment)
            return experiment.experiment_id
        artifact_location = tracking_cfg.get("artifact_location")
        if artifact_location:
            Path(str(artifact_location)).mkdir(parents=True, exist_ok=True)
            artifact_location = Path(str(artifact_location)).resolve().as_uri()
        experiment_id = mlflow.create_experiment(name, artifact_location=artifact_location,
                                                 tags={EXPERIMENT_KIND_TAG: TRAINING_KIND, **view_tags()})
        return experiment_id


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
    resume: bool = False,
) -> Iterator[Any]:
    """Start the MLflow run for this run's folder, or with `resume=True` reopen the folder's run.

    A folder that already holds a run is refused unless resuming (a reused run name must not
    write into another run). A resumed run keeps its name. `parent_run_id` nests the run under a
    sweep's parent run.
    """
    import mlflow

    from longwriter.errors import ConfigError

    experiment_id = _setup_experiment(cfg.tracking)
    info_path = output_dir / RUN_INFO_FILE
    run_id = None
    if info_path.exists():
        if not resume:
            raise ConfigError(f"run_name={run_name} is taken: {output_dir} holds an earlier run; choose another "
                              f"run_name, or continue that run with resume_from={output_dir}")
        run_id = json.loads(info_path.read_text())["run_id"]
        logger.info("resuming MLflow run %s", run_id)
    all_tags = {"longwriter.output_dir": str(output_dir), **(tags or {})}
    if parent_run_id and run_id is None:
        all_tags["mlflow.parentRunId"] = parent_run_id
    name = None if run_id else run_name  # passing a name to a resumed run would rename it
    with mlflow.start_run(run_id=run_id, experiment_id=experiment_id, run_name=name, tags=all_tags) as run:
        if run_id is None:
            output_dir.mkdir(parents=True, exist_ok=True)
            info_path.write_text(json.dumps({"run_id": run.info.run_id, "experiment_id": experiment_id}))
            log_config(cfg)
        try:
            yield run
        except BaseException as err:  # the run ends FAILED (MLflow's context); say why on the run itself
            mlflow.set_tag("longwriter.error", f"{type(err).__name__}: {err}"[:5000])
            raise
        _refresh_view(experiment_id)


def _refresh_view(experiment_id: str) -> None:
    """The runs table's saved view with this run's metric sections too (ui_view.py); cosmetic, so a
    failure only warns."""
    import mlflow

    try:
        refresh_runs_view(mlflow.MlflowClient(), experiment_id)
    except Exception as err:  # noqa: BLE001 - never fail a finished run over the UI's view
        logger.warning("could not update the MLflow runs view: %s", err)


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


def rewind_metrics(tracking_uri: str, run_id: str, after_step: int) -> int:
    """Delete the run's metric values logged at steps after `after_step` (a resume from checkpoint N
    logs steps N+1... again: they replace the killed attempt's values instead of doubling them).
    Works on sqlite stores (the project's); returns how many values were deleted."""
    path = _sqlite_path(tracking_uri)
    if path is None:
        logger.warning("metrics after step %d are not removed on a non-sqlite store (%s): charts may show the "
                       "killed attempt's values too; the objective keeps the latest value per step", after_step,
                       tracking_uri)
        return 0
    with store_lock(tracking_uri), closing(sqlite3.connect(path, timeout=60)) as db, db:
        deleted = db.execute("DELETE FROM metrics WHERE run_uuid = ? AND step > ?", (run_id, after_step)).rowcount
        if deleted:
            db.execute("DELETE FROM latest_metrics WHERE run_uuid = ?", (run_id,))
            db.execute(
                "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                "SELECT key, value, timestamp, step, is_nan, run_uuid FROM ("
                "  SELECT *, ROW_NUMBER() OVER (PARTITION BY key ORDER BY step DESC, timestamp DESC, value DESC) AS rn"
                "  FROM metrics WHERE run_uuid = ?) WHERE rn = 1", (run_id,))
    if deleted:
        logger.info("resume: removed %d metric values logged after step %d (they are logged again)", deleted,
                    after_step)
    return deleted
