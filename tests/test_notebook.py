"""notebooks/compare_runs.ipynb runs headless against a store made by a short real sweep and writes
its plots and tables."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from conftest import ROOT
from sweep_store import STUDY, sweep_store, tracking_uri

NOTEBOOK = ROOT / "notebooks" / "compare_runs.ipynb"
PLOTS = ["reward_curves.png", "component_rewards.png", "curriculum_levels.png", "before_after.png", "seed_groups.png"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_notebook_is_valid_and_has_a_parameters_cell() -> None:
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert all(not c.outputs for c in code), "commit the notebook without outputs"


@pytest.mark.slow
def test_notebook_executes_and_writes_its_plots(tmp_path_factory, tmp_path: Path, monkeypatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    import mlflow

    root = sweep_store(tmp_path_factory)
    plots = tmp_path / "plots"
    # The notebook logs its plots back into the store: into a copy, so the shared store keeps its 3 runs.
    store = tmp_path / "mlflow.db"
    shutil.copyfile(root / "mlflow.db", store)
    # The kernel inherits these: the notebook's parameters cell reads them.
    monkeypatch.setenv("LONGWRITER_TRACKING_URI", f"sqlite:///{store}")
    monkeypatch.setenv("LONGWRITER_PLOTS_DIR", str(plots))
    monkeypatch.setenv("LONGWRITER_INCLUDE_TINY", "1")  # the store's runs are tiny-model runs
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    for name in PLOTS:
        data = (plots / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
    rows = list(csv.DictReader((plots / "final_metrics.csv").open()))
    assert sorted(r["recipe"] for r in rows) == ["length", "pairwise"]
    assert all(r["sweep"] == STUDY and r["status"] == "FINISHED" and r["reward/total/mean"] for r in rows)
    assert all(len(r["run_id"]) == 32 for r in rows)  # each row names its MLflow run
    assert sorted(r["reward.name"] for r in rows) == ["length", "pairwise"]  # the swept key, as a column
    pairwise = next(r for r in rows if r["recipe"] == "pairwise")
    assert pairwise["curriculum/level/mean"] != ""  # the curriculum panel had data to plot
    (sweep,) = csv.DictReader((plots / "sweeps.csv").open())
    assert sweep["run"] == STUDY and float(sweep["sweep/trials/total"]) == 2
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "2 training runs (2 recipes), 1 sweeps" in printed
    # the two trials differ in their recipe, not only in their seed: two groups of one seed each
    groups = list(csv.DictReader((plots / "seed_groups.csv").open()))
    assert sorted(g["reward.name"] for g in groups) == ["length", "pairwise"]
    assert all(g["n"] == "1" and g["failed"] == "0" and g["objective mean"] for g in groups)
    assert "2 groups of 2 training runs" in printed

    # The plots went back into MLflow: one new run tagged kind=analysis holding every written file.
    client = mlflow.MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("longwriter")
    (analysis,) = client.search_runs([experiment.experiment_id], "tags.kind = 'analysis'")
    assert analysis.info.status == "FINISHED" and f"logged to MLflow run {analysis.info.run_id}" in printed
    logged = {a.path for a in client.list_artifacts(analysis.info.run_id, "notebook")}
    assert logged == {f"notebook/{p.name}" for p in plots.iterdir()} and "notebook/reward_curves.png" in logged
