"""One command runs a config over seeds (`-m sweep=seeds`) through Hydra's real multirun on the tiny
model: each seed its own MLflow run under one parent that holds the aggregate, one seed failing (a
seed the config checks refuse) is reported as failed and left out, and `compare` shows the group."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import TINY_RUN, run_cli
from longwriter.tracking.seed_groups import GROUP_KIND_TAG, GROUP_TAG, SEED_TAG
from longwriter.tracking.sweep_callback import ERROR_TAG, ROLE_TAG, STUDY_TAG


@pytest.mark.slow
def test_seed_group_end_to_end_with_one_failed_seed(output_root: Path, tmp_path: Path) -> None:
    import mlflow

    uri = f"sqlite:///{output_root}/mlflow.db"
    proc = run_cli("longwriter.train", [
        "-m", "sweep=seeds", "seed=0,bogus,1", *TINY_RUN, "engine.max_steps=2", "data.limit=8",
        f"paths.output_root={output_root}", f"tracking.tracking_uri={uri}",
    ], check=False)
    printed = proc.stdout
    assert proc.returncode == 1, proc.stderr[-3000:]  # a seed failed: the command says so...
    assert "2 seed(s) finished, 1 failed ==" in printed, printed[-3000:]  # ...after the group's figures
    assert "seed bogus: FAILED (left out of the means): ConfigError: seed='bogus': must be a whole number" in printed
    assert " reward/change " in printed and "runs by group: http://127.0.0.1:5000/" in printed

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("longwriter")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get(ROLE_TAG) == "parent"]
    group = parent.info.run_name
    assert group.startswith("seeds-") and parent.data.tags[STUDY_TAG] == group
    assert parent.data.tags[GROUP_KIND_TAG] == "seeds" and parent.info.status == "FINISHED"
    assert (parent.data.metrics["seeds/n"], parent.data.metrics["seeds/n_failed"]) == (2, 1)
    assert parent.data.params["seed"] == "0,bogus,1"
    seeds = {r.data.tags[SEED_TAG]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert {s: r.info.status for s, r in seeds.items()} == {"0": "FINISHED", "1": "FINISHED", "bogus": "FAILED"}
    assert all(r.data.tags[GROUP_TAG] == group and r.info.run_name.startswith(f"{group}-") for r in seeds.values())
    assert seeds["bogus"].data.tags[ERROR_TAG].startswith("ConfigError")
    rewards = [seeds[s].data.metrics["objective"] for s in ("0", "1")]
    assert parent.data.metrics["seeds/objective/mean"] == pytest.approx(sum(rewards) / 2)
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "seeds")} == {
        "seeds/summary.txt", "seeds/figures.json", "seeds/curves.png"}

    # compare: tiny-model runs only with --all; one row for the group
    import pandas as pd

    args = ["--store", uri, "--experiment", "longwriter", "--no-log"]
    proc = run_cli("longwriter.compare", [*args, "--out", str(tmp_path / "none")], check=False)
    assert proc.returncode == 2 and "need --all" in proc.stderr
    run_cli("longwriter.compare", [*args, "--all", "--out", str(tmp_path / "groups")])
    (row,) = pd.read_csv(tmp_path / "groups" / "runs.csv").to_dict("records")
    assert (row["group"], row["n"], row["failed"], row["seeds"]) == (group, 2, 1, "0,1,bogus(failed)")
    assert row["objective mean"] == pytest.approx(sum(rewards) / 2)
    proc = run_cli("longwriter.compare", [*args, "--sweep", group, "--out", str(tmp_path / "seeds")])
    assert len(pd.read_csv(tmp_path / "seeds" / "runs.csv")) == 3
