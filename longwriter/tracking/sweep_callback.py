"""MLflow runs for Optuna sweeps: one parent run per study, one nested child run per trial.

The presets in sweeps/ list `MlflowSweepCallback` under `hydra.callbacks`; Hydra calls it:
- on_multirun_start: creates the study's parent run, or reuses it when the study resumes (found by
  its study-name and storage tags), logs the sweep config, and writes the parent's id into the
  sweep folder. Each trial reads it from there (`sweep_parent_run_id`): the link is a file next
  to the trials' own folders, not an environment variable.
- on_job_end (in the trial's process): tags the trial's run with the study; a trial that raised
  before it started its MLflow run gets a FAILED child run anyway, so every failed trial is listed.
- on_multirun_end: logs the best params and value read back from the Optuna storage (so they
  cover resumed invocations too) and finishes the parent. If the sweep dies in between, the
  parent is marked FAILED at exit instead of staying RUNNING forever.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from longwriter.errors import ConfigError
from longwriter.run_names import PARENT_FILE, job_run_name, running_trial_number
from longwriter.tracking.mlflow_run import RUN_INFO_FILE, _setup_experiment
from longwriter.tracking.objective import objective_metrics

logger = logging.getLogger(__name__)

ROLE_TAG = "longwriter.sweep.role"
STUDY_TAG = "longwriter.sweep.study"
STORAGE_TAG = "longwriter.sweep.storage"
JOB_TAG = "longwriter.sweep.job_num"
TRIAL_TAG = "longwriter.sweep.trial_number"
ERROR_TAG = "longwriter.error"
PID_TAG = "longwriter.sweep.pid"
HOST_TAG = "longwriter.sweep.host"


def sweep_parent_run_id(cfg: DictConfig) -> str | None:
    """The run this one nests under: `parent_run_id` if set, else (in a sweep) the sweep's parent."""
    if cfg.get("parent_run_id"):
        return str(cfg.parent_run_id)
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
    except ValueError:  # composed without a Hydra app
        return None
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    info = _read_parent(Path(hydra_cfg.sweep.dir))
    return info["run_id"] if info else None


def _read_parent(sweep_dir: Path) -> dict[str, str] | None:
    path = sweep_dir / PARENT_FILE
    return json.loads(path.read_text()) if path.exists() else None


class MlflowSweepCallback(Callback):
    """Listed under `hydra.callbacks` by sweeps/common/optuna.yaml; see the module docstring."""

    def __init__(self) -> None:
        self._open: dict[str, Any] | None = None  # the parent run this process must still finish

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from mlflow import MlflowClient

        sweeper = config.hydra.sweeper
        study, storage = str(sweeper.study_name), str(sweeper.storage)
        _check_objective(config)
        if storage.startswith("sqlite:///"):  # Optuna does not create the folder of its sqlite file
            Path(storage[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        experiment_id = _setup_experiment(config.tracking)
        client = MlflowClient(str(config.tracking.tracking_uri))
        run_id = _find_parent(client, experiment_id, study, storage)
        if run_id is None:
            run_id = client.create_run(experiment_id, run_name=study, tags={
                ROLE_TAG: "parent", STUDY_TAG: study, STORAGE_TAG: storage,
                "mlflow.note.content": f"Optuna study `{study}` in `{storage}`; each trial is a child run.",
            }).info.run_id
            _log_sweep_params(client, run_id, config)
            logger.info("MLflow parent run %s created for study %s", run_id, study)
        else:
            mark_stale_trials(client, experiment_id, run_id, study, storage)
            client.update_run(run_id, status="RUNNING")
            logger.info("study %s resumes: reusing MLflow parent run %s", study, run_id)
        client.set_tag(run_id, PID_TAG, str(os.getpid()))
        client.set_tag(run_id, HOST_TAG, socket.gethostname())
        sweep_dir = Path(str(config.hydra.sweep.dir))
        client.log_text(run_id, OmegaConf.to_yaml(_sweep_summary(config)), f"sweep/{sweep_dir.name}.yaml")
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / PARENT_FILE).write_text(json.dumps({"run_id": run_id, "experiment_id": experiment_id,
                                                          "study": study, "storage": storage}))
        self._open = {"client": client, "run_id": run_id, "study": study, "storage": storage, "trial": None,
                      "run_file": None, "experiment_id": experiment_id,
                      "tracking_uri": str(config.tracking.tracking_uri), "sweep_dir": str(sweep_dir)}
        atexit.register(self._finish, "FAILED")

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Remember this process's running trial, so that a sweep stopped by a signal fails it."""
        if self._open is None:
            return
        self._open["trial"] = running_trial_number(self._open, list(config.hydra.overrides.task))
        self._open["run_file"] = Path(str(config.hydra.runtime.output_dir)) / RUN_INFO_FILE

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        from mlflow import MlflowClient

        parent = _read_parent(Path(str(config.hydra.sweep.dir)))
        if parent is None:
            return
        client = MlflowClient(str(config.tracking.tracking_uri))
        run_id = record_job_run(client, parent, config, job_return)
        if run_id is None:
            return
        client.set_tag(run_id, STUDY_TAG, parent["study"])
        client.set_tag(run_id, JOB_TAG, str(config.hydra.job.num))
        trial = running_trial_number(parent, list(config.hydra.overrides.task))
        if trial is not None:
            client.set_tag(run_id, TRIAL_TAG, str(trial))
        if self._open is not None:
            self._open["trial"] = self._open["run_file"] = None  # the sweeper records this trial itself

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._finish("FINISHED")

    def _finish(self, status: str) -> None:
        if self._open is None:
            return
        parent, self._open = self._open, None
        try:
            if status == "FAILED":  # the sweep is dying (signal, error): its running trial dies with it
                _fail_interrupted_trial(parent)
            _log_study_results(parent["client"], parent["run_id"], parent["study"], parent["storage"])
        finally:
            parent["client"].set_terminated(parent["run_id"], status)
            print("\n".join(sweep_summary_lines(parent, status)), flush=True)


def record_job_run(client: Any, parent: dict[str, Any], config: DictConfig, job_return: JobReturn) -> str | None:
    """The MLflow run of a multirun job that just ended (in the job's process): the one its folder
    names, or for a job that failed before its run started, a FAILED child run of `parent` made now,
    so every failed job is listed. A failed job's run gets the error as a tag and ends FAILED.
    None for a job that succeeded without a run (a dry run)."""
    failed = job_return.status == JobStatus.FAILED
    run_file = Path(str(config.hydra.runtime.output_dir)) / RUN_INFO_FILE
    if run_file.exists():
        run_id = json.loads(run_file.read_text())["run_id"]
    elif failed:
        run_id = client.create_run(parent["experiment_id"], run_name=_run_name(config),
                                   tags={"mlflow.parentRunId": parent["run_id"]}).info.run_id
    else:
        return None
    if failed:
        error = job_return._return_value  # the `return_value` property re-raises it
        client.set_tag(run_id, ERROR_TAG, f"{type(error).__name__}: {error}"[:5000])
        client.set_terminated(run_id, "FAILED")
    return run_id


def sweep_summary_lines(parent: dict[str, Any], status: str) -> list[str]:
    """What the end of a sweep prints: the parent run (each trial is its child) and how to look at it."""
    from longwriter.tracking.run_summary import runs_table_url, ui_pointer

    return [f"== sweep {parent['study']} {status.lower()} ==",
            f"MLflow parent run: {parent['run_id']} (experiment {parent['experiment_id']}); trials are its children",
            f"        MLflow UI: {ui_pointer(parent['tracking_uri'], parent['experiment_id'], parent['run_id'])}",
            f"       runs table: {runs_table_url(parent['tracking_uri'], parent['experiment_id'])}",
            f"     sweep folder: {parent['sweep_dir']}",
            f"  compare trials: python -m longwriter.compare --sweep {parent['study']}"]


def _fail_interrupted_trial(parent: dict[str, Any]) -> None:
    import optuna

    reason = "the sweep process stopped (signal or error) while this trial ran"
    if parent.get("trial") is not None:
        study = optuna.load_study(study_name=parent["study"], storage=parent["storage"])
        study.tell(parent["trial"], state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
    run_file = parent.get("run_file")
    if run_file is not None and run_file.exists():
        run_id = json.loads(run_file.read_text())["run_id"]
        run = parent["client"].get_run(run_id)
        if run.info.status == "RUNNING":
            parent["client"].set_tag(run_id, ERROR_TAG, reason)
            parent["client"].set_terminated(run_id, "FAILED")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_stale_trials(client, experiment_id: str, parent_run_id: str, study_name: str, storage: str) -> int:
    """When a study resumes, trials left RUNNING by a sweep process that is gone (SIGKILL, power loss)
    are marked FAIL in Optuna and their MLflow child runs FAILED. Nothing is marked while the parent's
    recorded process is still alive on this host (another invocation of the same study is running).
    Returns how many trials were marked."""
    import optuna

    parent = client.get_run(parent_run_id)
    pid, host = parent.data.tags.get(PID_TAG), parent.data.tags.get(HOST_TAG)
    if parent.info.status == "RUNNING" and pid and int(pid) != os.getpid():
        if host != socket.gethostname() or _pid_alive(int(pid)):
            logger.warning("study %s: its sweep process %s on %s may still be running; leaving its RUNNING trials "
                           "as they are", study_name, pid, host)
            return 0
    reason = ("stale: the sweep process died (e.g. SIGKILL) while this trial ran; marked FAILED when the study "
              "was resumed")
    study = optuna.load_study(study_name=study_name, storage=storage)
    stale = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in stale:
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
    children = client.search_runs([experiment_id], filter_string=(
        f"tags.`mlflow.parentRunId` = '{parent_run_id}' AND attributes.status = 'RUNNING'"), max_results=1000)
    for run in children:
        client.set_tag(run.info.run_id, ERROR_TAG, reason)
        client.set_terminated(run.info.run_id, "FAILED")
    if stale or children:
        logger.warning("study %s: marked %d stale trial(s) FAIL and %d MLflow run(s) FAILED (their sweep process "
                       "died)", study_name, len(stale), len(children))
    return len(stale)


def _check_objective(config: DictConfig) -> None:
    direction = config.hydra.sweeper.direction
    directions = list(direction) if OmegaConf.is_list(direction) else [direction]
    metrics = objective_metrics(config.get("objective"))
    if len(directions) != len(metrics):
        raise ConfigError(f"hydra.sweeper.direction has {len(directions)} entries but objective.metrics has "
                          f"{len(metrics)} ({metrics}); give one direction per objective metric")


def _find_parent(client, experiment_id: str, study: str, storage: str) -> str | None:
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{ROLE_TAG}` = 'parent'",
                              order_by=["attributes.start_time ASC"], max_results=1000)
    for run in runs:
        if run.data.tags.get(STUDY_TAG) == study and run.data.tags.get(STORAGE_TAG) == storage:
            return run.info.run_id
    return None


def _sweep_summary(config: DictConfig) -> dict[str, Any]:
    sweeper = OmegaConf.to_container(config.hydra.sweeper, resolve=True)
    objective = OmegaConf.to_container(config.objective, resolve=True) if config.get("objective") else {}
    objective["metrics"] = objective_metrics(objective)
    return {"sweeper": sweeper, "objective": objective, "overrides": list(config.hydra.overrides.task),
            "sweep_dir": str(config.hydra.sweep.dir)}


def _log_sweep_params(client, run_id: str, config: DictConfig) -> None:
    """Params are immutable in MLflow, so only what names the study; each invocation's full config
    goes to an artifact (`sweep/<stamp>.yaml`)."""
    summary = _sweep_summary(config)
    sweeper = summary["sweeper"]
    params = {
        "sweep.study_name": sweeper["study_name"], "sweep.storage": sweeper["storage"],
        "sweep.direction": str(sweeper["direction"]), "sweep.sampler": sweeper["sampler"]["_target_"],
        "sweep.objective.metrics": str(summary["objective"]["metrics"]),
        **{f"sweep.space.{k}": str(v) for k, v in (sweeper.get("params") or {}).items()},
    }
    for key, value in params.items():
        client.log_param(run_id, key, str(value)[:6000])


def _log_study_results(client, run_id: str, study_name: str, storage: str) -> None:
    """Trial counts, and the best params and value (single objective) or the Pareto front."""
    import optuna
    import yaml

    study = optuna.load_study(study_name=study_name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    step = len(trials)
    complete = states.count(optuna.trial.TrialState.COMPLETE)
    client.log_metric(run_id, "sweep/trials/total", len(trials), step=step)
    client.log_metric(run_id, "sweep/trials/complete", complete, step=step)
    client.log_metric(run_id, "sweep/trials/failed", states.count(optuna.trial.TrialState.FAIL), step=step)
    if not complete:
        return
    if len(study.directions) == 1:
        best = study.best_trial
        client.log_metric(run_id, "sweep/best_value", best.value, step=step)
        client.set_tag(run_id, "longwriter.sweep.best_trial", str(best.number))
        best_runs = client.search_runs([client.get_run(run_id).info.experiment_id], filter_string=(
            f"tags.`{TRIAL_TAG}` = '{best.number}' AND tags.`mlflow.parentRunId` = '{run_id}'"))
        if best_runs:
            client.set_tag(run_id, "longwriter.sweep.best_run_id", best_runs[0].info.run_id)
        for name, value in best.params.items():
            client.set_tag(run_id, f"best.{name}", str(value))
        result = {"best_trial": best.number, "best_value": best.value, "best_params": best.params}
    else:
        front = study.best_trials
        client.log_metric(run_id, "sweep/pareto_size", len(front), step=step)
        result = {"pareto_front": [{"trial": t.number, "values": t.values, "params": t.params} for t in front]}
    client.log_text(run_id, yaml.safe_dump(result, sort_keys=False), "sweep/best.yaml")


def _run_name(config: DictConfig) -> str:
    try:
        return job_run_name(config, config.hydra)
    except Exception:  # the name's own interpolation may be what failed
        return f"trial-{config.hydra.job.num}"
