"""`python -m longwriter.compare` on a small real MLflow store made here: two plain runs, a
two-trial sweep (parent + children tagged as longwriter.tracking.sweep_callback tags them), one config
over three seeds of which one failed, a tiny-model run and an evaluation run."""

from __future__ import annotations

from pathlib import Path

import pytest

from longwriter.compare import main, varying_params
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
    base = {"model.name": "smollm2_135m", "engine.max_steps": "4", "seed": "0"}
    _run(client, experiment_id, "len-a", {**base, "reward.name": "length", "engine.learning_rate": "1e-05"},
         [0.1, 0.2, 0.3, 0.6])
    _run(client, experiment_id, "pw-b", {**base, "reward.name": "pairwise", "engine.learning_rate": "1e-05"},
         [0.5, 0.5, 0.4, 0.4])
    parent = client.create_run(experiment_id, run_name="study1", tags={ROLE_TAG: "parent", STUDY_TAG: "study1"})
    client.log_param(parent.info.run_id, "sweep.space.engine.beta", "interval(0.0, 0.1)")
    for job, (beta, objective) in enumerate([(0.01, 0.7), (0.09, 0.2)]):
        _run(client, experiment_id, f"study1-{job}", {**base, "reward.name": "length", "engine.beta": str(beta)},
             [0.1, objective], tags={"mlflow.parentRunId": parent.info.run_id}, objective=objective)
    # one config over three seeds (names and output folders differ too): seed 2 failed
    seeds = {**base, "reward.name": "length", "engine.learning_rate": "3e-05"}
    for seed, rewards in ((0, [0.2, 0.4, 0.5, 0.8]), (1, [0.3, 0.3, 0.5, 0.6]), (2, [9.0])):
        run_id = _run(client, experiment_id, f"len-s{seed}", {**seeds, "seed": str(seed), "run_name": f"len-s{seed}",
                                                              "eval/final/model": f"/out/len-s{seed}/final_model"},
                      rewards, objective=rewards[-1])
        if seed == 2:
            client.set_terminated(run_id, "FAILED")
    _run(client, experiment_id, "tiny", {**base, "model.name": "tiny_random", "model.source": "random"}, [0.1, 0.2])
    _run(client, experiment_id, "eval-1", {}, [], tags={"kind": "evaluate"})
    return uri


def test_by_run_lists_every_training_run_with_params_seed_and_reward(store: str, tmp_path: Path, capsys) -> None:
    args = ["--store", store, "--experiment", "longwriter", "--out", str(tmp_path / "cmp"), "--no-log"]
    assert main([*args, "--by", "run"]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0].split()[:3] == ["run", "run_id", "status"] and "reward.name" in lines[0]
    # no parent, no tiny-model run, no evaluation run
    assert [line.split()[0] for line in lines[1:8]] == ["len-a", "pw-b", "study1-0", "study1-1", "len-s0", "len-s1",
                                                        "len-s2"]
    assert not lines[8].strip()
    import pandas as pd

    table = pd.read_csv(tmp_path / "cmp" / "runs.csv")
    row = table.set_index("run").loc["len-a"]
    assert row["reward first quarter"] == pytest.approx(0.1) and row["reward last quarter"] == pytest.approx(0.6)
    assert row["reward.name"] == "length" and row["steps"] == 4
    assert "engine.beta" in table.columns  # differs between the runs, so it is shown
    assert table.set_index("run").seed.to_dict()["len-s2"] == 2
    assert "eval/final/model" not in table.columns and "run_name" not in table.columns  # per-run names
    assert (tmp_path / "cmp" / "reward_curves.png").stat().st_size > 1000
    assert main([*args, "--by", "run", "--all"]) == 0
    assert {"tiny", "eval-1"} <= {line.split()[0] for line in capsys.readouterr().out.splitlines()[1:] if line}


def test_by_group_one_row_per_config_with_its_seeds(store: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "groups"
    assert main(["--store", store, "--experiment", "longwriter", "--out", str(out), "--no-log"]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0].split()[:4] == ["group", "n", "failed", "seeds"]
    import pandas as pd

    table = pd.read_csv(out / "runs.csv").set_index("group")
    assert table.index.tolist() == ["len-a", "pw-b", "study1-0", "study1-1", "len-s0 (+2)"]
    seeds = table.loc["len-s0 (+2)"]
    assert (seeds.n, seeds.failed, seeds.seeds) == (2, 1, "0,1,2(failed)")
    # reward change: seed 0 0.8 - 0.2, seed 1 0.6 - 0.3 (one-step quarters); the failed seed's reward is out
    assert seeds["reward/change mean"] == pytest.approx(0.45)
    assert (seeds["reward/change min"], seeds["reward/change max"]) == pytest.approx((0.3, 0.6))
    assert seeds["objective mean"] == pytest.approx(0.7) and seeds["objective ci95"] == pytest.approx(1.2706, abs=1e-3)
    assert table.loc["len-a", "n"] == 1 and "seed" not in table.columns  # the seed is in `seeds`, not a param
    row = next(line for line in lines if line.startswith("len-s0 (+2)") or " len-s0 (+2) " in line)
    assert "0.700 [0.600, 0.800]" in row
    assert {p.name for p in out.iterdir()} >= {"runs.csv", "reward_curves.png", "objective.png"}


def test_grouped_curves_are_drawn_with_their_band_and_smoothing(store: str, tmp_path: Path, monkeypatch) -> None:
    from longwriter.tracking import seed_groups

    drawn = {}
    original = seed_groups.curves_figure

    def spy(groups, metrics, weight=0.0, band="minmax"):
        drawn.update(labels=[g.label for g in groups], n=[g.n for g in groups], weight=weight, band=band)
        return original(groups, metrics, weight, band)

    monkeypatch.setattr(seed_groups, "curves_figure", spy)
    assert main(["--store", store, "--experiment", "longwriter", "--out", str(tmp_path / "o"), "--no-log",
                 "--smooth", "0.3", "--band", "ci95"]) == 0
    assert drawn == {"labels": ["len-a", "pw-b", "study1-0", "study1-1", "len-s0 (+2)"], "n": [1, 1, 1, 1, 2],
                     "weight": 0.3, "band": "ci95"}
    with pytest.raises(SystemExit):  # argparse: "argument --smooth: must be in [0, 1), got 1"
        main(["--store", store, "--experiment", "longwriter", "--out", str(tmp_path / "o"), "--smooth", "1"])


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
    assert capsys.readouterr().err.strip() == "error: --sweep nope: no sweep or seed group of that name in this " \
                                              "store; here: study1"


def test_a_missing_store_is_not_created(tmp_path: Path, capsys) -> None:
    store = f"sqlite:///{tmp_path}/none/mlflow.db"
    assert main(["--store", store, "--experiment", "longwriter", "--out", str(tmp_path / "o")]) == 2
    assert "no MLflow store at" in capsys.readouterr().err and not (tmp_path / "none").exists()


def test_the_seed_is_shown_first_however_many_params_differ() -> None:
    """11 stored runs once differed in more params than the table's limit (8), cut alphabetically: the
    seed was never shown."""
    from types import SimpleNamespace

    def run(seed: int, **params: str):
        return SimpleNamespace(data=SimpleNamespace(params={"seed": str(seed), "run_name": f"r{seed}", **params}))

    runs = [run(i, **{f"a.k{j}": str(i * j) for j in range(10)}) for i in range(3)]
    assert varying_params(runs) == ["seed", "a.k1", "a.k2", "a.k3", "a.k4", "a.k5", "a.k6", "a.k7"]
    assert varying_params(runs, seed=False)[0] == "a.k1"
    assert varying_params([run(0), run(0)]) == []
