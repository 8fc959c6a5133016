"""Seed groups: one config over several seeds in one command, one MLflow parent run with the aggregate.

    python -m longwriter.train -m sweep=seeds                  # the default job, seeds 0,1,2
    python -m longwriter.train -m sweep=seeds seed=0,1,2,3,4   # other seeds
    python -m longwriter.train -m seed=0,1 reward=pairwise     # any multirun that sweeps only `seed`

conf/train.yaml lists `SeedGroupCallback` under hydra.callbacks, so it sees every multirun; it acts
only when Hydra's basic sweeper runs jobs that differ in `seed` alone (an Optuna sweep has its own
parent run, `sweep_callback.py`; a multirun over other keys too is left as it is):
- on_multirun_start: creates the group's parent run, named by the group id (`<run_name or "seeds">-
  <sweep folder>`) and tagged ROLE_TAG=parent, STUDY_TAG=<group id>, GROUP_KIND_TAG=seeds, and writes
  its id into the sweep folder (`mlflow_parent_run.json`, as an Optuna sweep does), so every seed's
  run nests under it and is named after the group.
- on_job_end (each seed): tags the seed's run GROUP_TAG=<group id> and SEED_TAG=<seed>; a seed that
  failed before its run started gets a FAILED run anyway (`sweep_callback.record_job_run`).
- after the last seed (its on_job_end: Hydra's basic sweeper runs every job and then re-raises the
  first failed one's error, so the command exits 1 and `on_multirun_end` is never called): reads the
  seeds' runs back, logs the aggregate into the parent (`seed_groups.log_group`) and prints it with the
  links. A group stopped before its last seed (Ctrl-C, SIGTERM) is finished the same way at exit. The
  parent ends FINISHED when every seed ran, failed ones included (counted and listed with their error,
  never averaged), and FAILED when the group was interrupted or no seed finished.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from longwriter.tracking.seed_groups import GROUP_KIND_TAG, GROUP_TAG, SEED_TAG

logger = logging.getLogger(__name__)

SEEDS_KIND = "seeds"
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def swept_seeds(config: DictConfig) -> list[str] | None:
    """The seeds of this multirun's jobs, in launch order, when the basic sweeper runs jobs that
    differ only in `seed`; None otherwise."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sweeper = config.hydra.sweeper
    if sweeper.get("_target_") != BASIC_SWEEPER:
        return None
    given = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()] + list(config.hydra.overrides.task)
    overrides = OverridesParser.create().parse_overrides(given)
    if {o.get_key_element().lstrip("+~") for o in overrides if o.is_sweep_override()} != {"seed"}:
        return None
    jobs = [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
    return [next(o.partition("=")[2] for o in job if o.lstrip("+~").startswith("seed=")) for job in jobs]


def group_id(config: DictConfig) -> str:
    """`<run_name given on the command line, else "seeds">-<sweep folder name (its timestamp)>`."""
    from longwriter.run_names import _user_run_name

    return f"{_user_run_name(config.hydra) or 'seeds'}-{Path(str(config.hydra.sweep.dir)).name}"


class SeedGroupCallback(Callback):
    """Listed under `hydra.callbacks` by conf/train.yaml; see the module docstring."""

    def __init__(self) -> None:
        self._open: dict[str, Any] | None = None  # the group this process must still finish

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from mlflow import MlflowClient

        from longwriter.tracking.mlflow_run import _setup_experiment
        from longwriter.tracking.sweep_callback import HOST_TAG, PARENT_FILE, PID_TAG, ROLE_TAG, STUDY_TAG

        seeds = swept_seeds(config)
        if seeds is None or config.engine.get("dry_run"):
            return
        group = group_id(config)
        experiment_id = _setup_experiment(config.tracking)
        client = MlflowClient(str(config.tracking.tracking_uri))
        run_id = client.create_run(experiment_id, run_name=group, tags={
            ROLE_TAG: "parent", STUDY_TAG: group, GROUP_KIND_TAG: SEEDS_KIND, PID_TAG: str(os.getpid()),
            HOST_TAG: socket.gethostname(),
            "mlflow.note.content": (f"Seed group `{group}`: one config over seeds {', '.join(seeds)}; each seed is a "
                                    f"child run tagged `{GROUP_TAG}={group}`. The metrics seeds/... are the mean, "
                                    f"95% CI (Student t), std, min and max over the finished seeds."),
        }).info.run_id
        sweep_dir = Path(str(config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / PARENT_FILE).write_text(json.dumps({"run_id": run_id, "experiment_id": experiment_id,
                                                          "group": group, "kind": SEEDS_KIND, "seeds": seeds}))
        logger.info("seed group %s: MLflow parent run %s, seeds %s", group, run_id, ",".join(seeds))
        self._open = {"client": client, "run_id": run_id, "group": group, "seeds": seeds, "ended": 0,
                      "experiment_id": experiment_id, "tracking_uri": str(config.tracking.tracking_uri),
                      "sweep_dir": str(sweep_dir)}
        atexit.register(self._finish, False)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        from mlflow import MlflowClient

        from longwriter.tracking.sweep_callback import _read_parent, record_job_run

        parent = _read_parent(Path(str(config.hydra.sweep.dir)))
        if parent is None or parent.get("kind") != SEEDS_KIND:
            return
        client = MlflowClient(str(config.tracking.tracking_uri))
        run_id = record_job_run(client, parent, config, job_return)
        if run_id is not None:
            client.set_tag(run_id, GROUP_TAG, parent["group"])
            client.set_tag(run_id, SEED_TAG, str(config.get("seed")))
        if self._open is not None:  # the sweep's own process (Hydra's basic launcher runs jobs in it)
            self._open["ended"] += 1
            if self._open["ended"] == len(self._open["seeds"]):
                self._finish(True)  # now: a failed seed makes Hydra raise before on_multirun_end

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._finish(True)

    def _finish(self, complete: bool) -> None:
        if self._open is None:
            return
        group, self._open = self._open, None
        complete = complete or group["ended"] == len(group["seeds"])
        client = group["client"]
        status = "FAILED"
        try:
            aggregate = log_finished_group(client, group["run_id"], group["experiment_id"], group["group"],
                                           group["seeds"])
            status = "FINISHED" if complete and aggregate.n else "FAILED"
            print("\n".join(group_summary_lines(aggregate, group, status)), flush=True)
        except Exception as err:  # noqa: BLE001 - the seeds' own runs stand; only the report is missing
            logger.error("seed group %s: could not aggregate its seeds into run %s: %s", group["group"],
                         group["run_id"], err)
            client.set_tag(group["run_id"], "longwriter.error", f"aggregate failed: {type(err).__name__}: {err}"[:5000])
        finally:
            client.set_terminated(group["run_id"], status)


def log_finished_group(client: Any, parent_run_id: str, experiment_id: str, group: str, seeds: list[str]):
    """Read the group's seed runs (the parent's children) and log their aggregate into the parent."""
    from longwriter.tracking.seed_groups import load_member, log_group
    from longwriter.tracking.seed_stats import aggregate

    runs = client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
                              order_by=["attributes.start_time ASC"], max_results=1000)
    result = aggregate(group, [load_member(client, r) for r in runs], seeds)
    log_group(client, parent_run_id, result, runs, seeds)
    return result


def group_summary_lines(aggregate: Any, group: dict[str, Any], status: str) -> list[str]:
    """The grouped figures and where to look: the parent run, the runs grouped in the UI, compare."""
    from longwriter.tracking.run_summary import runs_table_url, ui_pointer
    from longwriter.tracking.seed_stats import summary_lines
    from longwriter.tracking.ui_view import GROUPS_VIEW_KEY

    uri, experiment_id = group["tracking_uri"], group["experiment_id"]
    return [*summary_lines(aggregate),
            f"  group {status.lower()}; MLflow parent run: {group['run_id']} (experiment {experiment_id}); "
            f"seeds are its children",
            f"        MLflow UI: {ui_pointer(uri, experiment_id, group['run_id'])}",
            f"  runs by group: {runs_table_url(uri, experiment_id, GROUPS_VIEW_KEY)}",
            f"    sweep folder: {group['sweep_dir']}",
            f"  compare groups: python -m longwriter.compare   (this group's seeds: --sweep {group['group']})"]
