"""`MLFLOW_TRACKING_URI` in the environment chooses the MLflow store (conf/tracking/mlflow_local.yaml);
`tracking.tracking_uri=` on the command line still wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import compose


def test_the_environment_store_is_where_the_run_lands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from longwriter.tracking.mlflow_run import mlflow_run

    store = f"sqlite:///{tmp_path}/elsewhere.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    cfg = compose([f"paths.output_root={tmp_path}/outputs"], config_name="evaluate")
    assert cfg.tracking.tracking_uri == store
    with mlflow_run(cfg, tmp_path / "outputs" / "run", run_name="env-store") as run:
        run_id = run.info.run_id
    assert mlflow.MlflowClient(store).get_run(run_id).info.run_name == "env-store"
    assert not (tmp_path / "outputs" / "mlflow.db").exists()


def test_without_it_the_store_is_the_output_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert compose([f"paths.output_root={tmp_path}"]).tracking.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"


def test_the_command_line_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    assert compose(["tracking.tracking_uri=sqlite:///x.db"]).tracking.tracking_uri == "sqlite:///x.db"


def test_the_experiment_is_marked_as_model_training(tmp_path: Path) -> None:
    """MLflow 3 picks an experiment's UI view by its kind tag; ours hold training runs. A store made
    before the tag existed gets it on the next run; a kind set by hand is kept."""
    import mlflow
    from omegaconf import OmegaConf

    from longwriter.tracking.mlflow_run import EXPERIMENT_KIND_TAG, _setup_experiment

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking = OmegaConf.create({"tracking_uri": uri, "experiment_name": "new", "artifact_location": str(tmp_path / "a")})
    client = mlflow.MlflowClient(uri)
    assert client.get_experiment(_setup_experiment(tracking)).tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    old = client.create_experiment("old")
    _setup_experiment(OmegaConf.merge(tracking, {"experiment_name": "old"}))
    assert client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    mine = client.create_experiment("mine", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    _setup_experiment(OmegaConf.merge(tracking, {"experiment_name": "mine"}))
    assert client.get_experiment(mine).tags[EXPERIMENT_KIND_TAG] == "genai_development"
