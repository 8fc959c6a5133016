"""`python -m longwriter.compare` on a small real MLflow store made here: two plain runs and a
two-trial sweep (parent + children tagged as longwriter.tracking.sweep_callback tags them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from longwriter.compare import main
from longwriter.tracking.sweep_callback import ROLE_TAG, STUDY_TAG


def _run(client, experiment_id: str, name: str, params: dict, rewards: list[float], tags: dict | None = None,
         objective: float | None = None) -> str:
    run_id = client.create_run(experiment_id, run_name=name, tags=tags or {}).info.run_id
    for key, value in params.items():
        client.log_param(run_id, key, value)
    for step, value in enumerate(rewards, start=1):
        client.log_metric(run_id, "reward/total/mean", value, step=step)
    if objective is not None:
        client.log_metric(run_id, "objective", objective)
    client.set_terminated(run_id)
    return run_id


@pytest.fixture
def store(tmp_path: Path) -> str:
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    experiment_id = client.create_experiment("longwriter", artifact_location=str(tmp_path / "artifacts"))
    base = {"model.name": "tiny_random", "engine.max_steps": "4"}
    _run(client, experiment_id, "len-a", {**base, "reward.name": "length", "engine.learning_rate": "1e-05"},
         [0.1, 0.2, 0.3, 0.6])
    _run(client, experiment_id, "pw-b", {**base, "reward.name": "pairwise", "engine.learning_rate": "1e-05"},
         [0.5, 0.5, 0.4, 0.4])
    parent = client.create_run(experiment_id, run_name="study1", tags={ROLE_TAG: "parent", STUDY_TAG: "study1"})
    client.log_param(parent.info.run_id, "sweep.space.engine.beta", "interval(0.0, 0.1)")
    for job, (beta, objective) in enumerate([(0.01, 0.7), (0.09, 0.2)]):
        _run(client, experiment_id, f"study1-{job}", {**base, "reward.name": "length", "engine.beta": str(beta)},
             [0.1, objective], tags={"mlflow.parentRunId": parent.info.run_id}, objective=objective)
    return uri


def test_lists_every_training_run_with_params_and_reward(store: str, tmp_path: Path, capsys) -> None:
    assert main(["--store", store, "--experiment", "longwriter", "--out", str(tmp_path / "cmp"), "--no-log"]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0].split()[:3] == ["run", "run_id", "status"] and "reward.name" in lines[0]
    assert [line.split()[0] for line in lines[1:5]] == ["len-a", "pw-b", "study1-0", "study1-1"]  # no parent
    import pandas as pd

    table = pd.read_csv(tmp_path / "cmp" / "runs.csv")
    row = table.set_index("run").loc["len-a"]
    assert row["reward first quarter"] == pytest.approx(0.1) and row["reward last quarter"] == pytest.approx(0.6)
    assert row["reward.name"] == "length" and row["steps"] == 4
    assert "engine.beta" in table.columns  # differs between the runs, so it is shown
    assert (tmp_path / "cmp" / "reward_curves.png").stat().st_size > 1000


def test_one_sweep_lists_its_trials_and_logs_the_plots_into_its_parent(store: str, tmp_path: Path, capsys) -> None:
    import mlflow

    out = tmp_path / "sweep"
    assert main(["--store", store, "--experiment", "longwriter", "--sweep", "study1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert [line.split()[0] for line in printed.splitlines()[1:3]] == ["study1-0", "study1-1"]
    assert "len-a" not in printed
    table = __import__("pandas").read_csv(out / "runs.csv")
    assert table.objective.tolist() == pytest.approx([0.7, 0.2])
    assert table["engine.beta"].tolist() == pytest.approx([0.01, 0.09])
    assert {p.name for p in out.iterdir()} == {"runs.csv", "reward_curves.png", "objective.png",
                                               "objective_vs_engine.beta.png"}
    client = mlflow.MlflowClient(store)
    (parent,) = client.search_runs([client.get_experiment_by_name("longwriter").experiment_id],
                                   filter_string=f"tags.`{ROLE_TAG}` = 'parent'")
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "compare")}
    assert logged == {f"compare/{p.name}" for p in out.iterdir()}
    assert f"logged to MLflow run {parent.info.run_id}" in printed


def test_an_unknown_sweep_names_the_ones_there(store: str, tmp_path: Path, capsys) -> None:
    assert main(["--store", store, "--experiment", "longwriter", "--sweep", "nope", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "error: --sweep nope: no sweep of that study name in this store; " \
                                              "sweeps here: study1"


def test_a_missing_store_is_not_created(tmp_path: Path, capsys) -> None:
    store = f"sqlite:///{tmp_path}/none/mlflow.db"
    assert main(["--store", store, "--experiment", "longwriter", "--out", str(tmp_path / "o")]) == 2
    assert "no MLflow store at" in capsys.readouterr().err and not (tmp_path / "none").exists()
