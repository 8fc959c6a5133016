"""Sweeps end cleanly (slow: real sweeps on the tiny model). SIGTERM fails the running trial, its
MLflow run and the parent at once; after SIGKILL, running the study again marks what the dead
process left RUNNING as FAIL/FAILED. Either way nothing stays RUNNING (docs/sweeps.md)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

pytestmark = pytest.mark.slow

STUDY = "length_lr_beta-tiny_random"
SWEEP = ["-m", "sweep=length_lr_beta", "model=tiny_random", "engine.max_steps=3", "engine.prompts_per_step=2",
         "engine.num_generations=2", "engine.max_completion_length=16", "data.limit=8"]


def _states(root: Path) -> tuple[dict[str, str], list[str], object]:
    import mlflow
    import optuna

    client = mlflow.MlflowClient(f"sqlite:///{root}/mlflow.db")
    experiment = client.get_experiment_by_name("longwriter")
    runs = {r.info.run_name: r.info.status for r in client.search_runs([experiment.experiment_id])}
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{root}/optuna/studies.db")
    return runs, [t.state.name for t in study.trials], client


def _start_and_signal(root: Path, sig: signal.Signals, n_trials: int = 2) -> subprocess.Popen:
    seen = set((root / "sweeps" / STUDY).glob("*/0/train.log")) if (root / "sweeps").exists() else set()
    proc = subprocess.Popen([sys.executable, "-m", "longwriter.train", *SWEEP, f"hydra.sweeper.n_trials={n_trials}",
                             f"paths.output_root={root}"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 600
    while True:
        logs = set((root / "sweeps" / STUDY).glob("*/0/train.log")) - seen
        if any("step 1/3" in log.read_text() for log in logs):
            break
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.time() < deadline
        time.sleep(0.1)
    os.killpg(proc.pid, sig)
    proc.wait(timeout=300)
    return proc


def test_sigterm_and_sigkill_leave_nothing_running_once_the_sweep_is_rerun(tmp_path: Path) -> None:
    root = tmp_path / "outputs"
    proc = _start_and_signal(root, signal.SIGTERM)
    assert proc.returncode == 128 + signal.SIGTERM
    runs, trials, client = _states(root)
    assert "RUNNING" not in runs.values() and "RUNNING" not in trials, (runs, trials)
    assert runs[STUDY] == "FAILED" and trials == ["FAIL"]
    child = next(name for name in runs if name != STUDY)
    assert child.startswith(f"{STUDY}-t0-learning_rate=") and ",beta=" in child

    _start_and_signal(root, signal.SIGKILL)
    runs, trials, _ = _states(root)
    assert list(runs.values()).count("RUNNING") == 2 and trials[-1] == "RUNNING"  # the problem SIGKILL leaves

    run_cli("longwriter.train", [*SWEEP, "hydra.sweeper.n_trials=1", f"paths.output_root={root}"])
    runs, trials, client = _states(root)
    assert "RUNNING" not in runs.values() and "RUNNING" not in trials, (runs, trials)
    assert trials == ["FAIL", "FAIL", "COMPLETE"] and runs[STUDY] == "FINISHED"
    killed = [r for r in client.search_runs([client.get_experiment_by_name("longwriter").experiment_id])
              if r.info.run_name.startswith(f"{STUDY}-t1-")]
    assert len(killed) == 1 and killed[0].data.tags["longwriter.error"].startswith("stale: the sweep process died")
    assert len(set(runs)) == 4  # parent + three distinctly named trials
