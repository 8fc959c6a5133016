"""Seed groups in a real (temporary sqlite) MLflow store: runs grouped by params minus the seed, the
aggregate a group's parent run holds (with one failed seed listed, not averaged), which multiruns form
a seed group, and colours for many groups. The real multirun end to end: test_seed_sweep_e2e.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import open_dict

from longwriter.tracking.seed_callback import SEEDS_KIND, log_finished_group, swept_seeds
from longwriter.tracking.seed_groups import GROUP_TAG, SEED_TAG, distinct_colors, group_runs, load_groups
from longwriter.tracking.sweep_callback import ERROR_TAG, ROLE_TAG

BASE = {"reward.name": "length", "model.name": "smollm2_135m", "engine.learning_rate": "3e-05"}


def make_run(client, experiment_id: str, name: str, params: dict, rewards: list[float], status: str = "FINISHED",
             tags: dict | None = None, evals: tuple[float, float] | None = None) -> str:
    run_id = client.create_run(experiment_id, run_name=name, tags=tags or {}).info.run_id
    for key, value in params.items():
        client.log_param(run_id, key, value)
    for step, value in enumerate(rewards, start=1):
        client.log_metric(run_id, "reward/total/mean", value, step=step)
    if evals:
        client.log_metric(run_id, "eval/length_score/mean", evals[0], step=0)
        client.log_metric(run_id, "eval/length_score/mean", evals[1], step=len(rewards))
    if rewards:
        client.log_metric(run_id, "objective", rewards[-1])
    client.set_terminated(run_id, status)
    return run_id


@pytest.fixture
def store(tmp_path: Path):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    return client, client.create_experiment("longwriter", artifact_location=str(tmp_path / "artifacts"))


def test_runs_that_differ_only_in_seed_are_one_group(store) -> None:
    client, experiment_id = store
    for seed in (0, 1):
        make_run(client, experiment_id, f"a-s{seed}", {**BASE, "seed": str(seed), "run_name": f"a-s{seed}",
                                                       "eval/final/model": f"/out/a-s{seed}/final_model"},
                 [0.1, 0.3], tags={GROUP_TAG: "a"})
    make_run(client, experiment_id, "b", {**BASE, "engine.learning_rate": "1e-05", "seed": "0"}, [0.2, 0.2])
    # died before logging params: its group tag puts it with its siblings
    make_run(client, experiment_id, "a-s2", {}, [], status="FAILED", tags={GROUP_TAG: "a", SEED_TAG: "2"})
    runs = client.search_runs([experiment_id], order_by=["attributes.start_time ASC"])
    assert [[r.info.run_name for r in group] for group in group_runs(runs)] == [["a-s0", "a-s1", "a-s2"], ["b"]]
    (a, _), (b, _) = load_groups(client, runs)
    assert (a.label, a.n, a.seeds()) == ("a", 2, "0,1,2(failed)")
    assert (b.label, b.n, b.seeds()) == ("b", 1, "0")


def test_the_parent_run_holds_the_aggregate_and_names_the_failed_seed(store) -> None:
    client, experiment_id = store
    parent = client.create_run(experiment_id, run_name="g", tags={ROLE_TAG: "parent"}).info.run_id
    child = {"mlflow.parentRunId": parent, GROUP_TAG: "g"}
    make_run(client, experiment_id, "g-s0", {**BASE, "seed": "0", "run_name": "g-s0"}, [0.2, 0.4, 0.6, 0.8],
             tags=child, evals=(40.0, 60.0))
    make_run(client, experiment_id, "g-s1", {**BASE, "seed": "1", "run_name": "g-s1"}, [0.4, 0.4, 0.6, 0.6],
             tags=child, evals=(40.0, 70.0))
    make_run(client, experiment_id, "g-s2", {**BASE, "seed": "2"}, [5.0, 5.0], status="FAILED",
             tags={**child, ERROR_TAG: "RuntimeError: out of memory"}, evals=(0.0, 99.0))

    group = log_finished_group(client, parent, experiment_id, "g", ["0", "1", "2"])
    assert group.n == 2 and [m.seed for m in group.failed] == ["2"]
    run = client.get_run(parent)
    metrics = run.data.metrics
    assert (metrics["seeds/n"], metrics["seeds/n_failed"], metrics["seeds/n_not_finished"]) == (2, 1, 0)
    # reward change: seed 0 0.8 - 0.2 = 0.6, seed 1 0.6 - 0.4 = 0.2 (one-step quarters); the failed seed's 0 is out
    assert metrics["seeds/reward/change/mean"] == pytest.approx(0.4)
    assert (metrics["seeds/reward/change/min"], metrics["seeds/reward/change/max"]) == pytest.approx((0.2, 0.6))
    # std of (0.6, 0.2) = 0.2828; half-width 12.706 * 0.2828 / sqrt(2) = 2.5412
    assert metrics["seeds/reward/change/ci95"] == pytest.approx(2.5412, abs=1e-3)
    assert metrics["seeds/heldout/length_score/after/mean"] == pytest.approx(65.0)
    assert metrics["seeds/heldout/length_score/change/mean"] == pytest.approx(25.0)
    # per step: the mean over the finished seeds, and the band
    means = {m.step: m.value for m in client.get_metric_history(parent, "reward/total/mean")}
    assert means == pytest.approx({1: 0.3, 2: 0.4, 3: 0.6, 4: 0.7})
    assert {m.step: m.value for m in client.get_metric_history(parent, "reward/total/mean_min")}[1] == pytest.approx(0.2)
    assert {m.step: m.value for m in client.get_metric_history(parent, "reward/total/mean_ci95_high")}[1] > 0.4
    assert run.data.params["seed"] == "0,1,2" and run.data.params["engine.learning_rate"] == "3e-05"
    assert "run_name" not in run.data.params

    artifacts = {a.path for a in client.list_artifacts(parent, "seeds")}
    assert artifacts == {"seeds/summary.txt", "seeds/figures.json", "seeds/curves.png"}
    folder = Path(client.download_artifacts(parent, "seeds"))
    summary = (folder / "summary.txt").read_text()
    assert summary.startswith("== seed group g: 2 seed(s) finished, 1 failed ==")
    assert "seed 2: FAILED (left out of the means): RuntimeError: out of memory" in summary
    table = json.loads((folder / "figures.json").read_text())
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    assert [(r["seed"], r["status"]) for r in rows] == [("0", "FINISHED"), ("1", "FINISHED"), ("2", "FAILED")]
    assert rows[0]["reward/change"] == pytest.approx(0.6)
    assert (folder / "curves.png").read_bytes().startswith(b"\x89PNG")


def _multirun_config(overrides: list[str], task: list[str]):
    """The config a multirun's callbacks see: composed with its Hydra node, the command line as task."""
    from hydra import compose, initialize_config_dir

    from longwriter.paths import CONF_DIR, register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.overrides.task = task
    return cfg


def test_which_multiruns_are_seed_groups() -> None:
    preset = _multirun_config(["sweep=seeds"], ["sweep=seeds"])
    assert swept_seeds(preset) == ["0", "1", "2"]
    assert preset.hydra.callbacks.seed_group._target_ == "longwriter.tracking.seed_callback.SeedGroupCallback"
    assert swept_seeds(_multirun_config(["sweep=seeds"], ["sweep=seeds", "seed=5,6,7,8"])) == ["5", "6", "7", "8"]
    assert swept_seeds(_multirun_config([], ["seed=0,1", "reward=pairwise"])) == ["0", "1"]
    assert swept_seeds(_multirun_config([], ["seed=0,1", "engine.beta=0.0,0.1"])) is None  # other keys too
    assert swept_seeds(_multirun_config([], ["engine.beta=0.0,0.1"])) is None
    assert swept_seeds(_multirun_config(["sweep=length_lr_beta"], ["sweep=length_lr_beta"])) is None  # Optuna
    assert SEEDS_KIND == "seeds"


def test_colours_stay_distinct_for_any_number_of_groups() -> None:
    for n in (3, 10, 11, 20, 21, 40):
        colors = distinct_colors(n)
        assert len(colors) == n and len({tuple(round(c, 3) for c in color) for color in colors}) == n, n


def test_a_group_stopped_before_its_last_seed_ends_failed_and_names_the_missing_seed(store, capsys) -> None:
    """What the exit hook does when Ctrl-C or SIGTERM stopped the group after its first seed."""
    from longwriter.tracking.seed_callback import SeedGroupCallback

    client, experiment_id = store
    parent = client.create_run(experiment_id, run_name="g", tags={ROLE_TAG: "parent"}).info.run_id
    make_run(client, experiment_id, "g-s0", {**BASE, "seed": "0"}, [0.2, 0.4],
             tags={"mlflow.parentRunId": parent, GROUP_TAG: "g"})
    callback = SeedGroupCallback()
    callback._open = {"client": client, "run_id": parent, "group": "g", "seeds": ["0", "1"], "ended": 1,
                      "experiment_id": experiment_id, "tracking_uri": "sqlite:///x", "sweep_dir": "/x"}
    callback._finish(False)
    run = client.get_run(parent)
    assert run.info.status == "FAILED" and run.data.metrics["seeds/n_not_finished"] == 1
    printed = capsys.readouterr().out
    assert "1 seed(s) finished, 1 never started" in printed and "  seed 1: never started (left out)" in printed
    assert "group failed; MLflow parent run" in printed
    callback._finish(False)  # the exit hook after an ordinary finish: nothing more
