"""The documented UI command (`bash scripts/mlflow_ui.sh`) serves the project's store, and a real
headless browser (Debian's chromium) shows the sweep's parent run, its child runs and their metrics,
and the saved view that groups the seeds of each seed group into one row (and one banded chart line).

chromium exits 0 even when the page failed to render, so every check is on the rendered text.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT
from sweep_store import STUDY, sweep_store, tracking_uri

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("chromium") is None,
                       reason="chromium is not installed (bash .ci/install-system-deps.sh installs it)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(root: Path):
    """The base URL of the UI started by the documented script on the store `root`/mlflow.db."""
    port = _free_port()
    env = {**os.environ, "PORT": str(port), "MLFLOW_STORE": tracking_uri(root),
           # Background job workers are for GenAI features; without them the server is up in half the time.
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = (root / "mlflow_ui.log").open("w")
    server = subprocess.Popen(["bash", str(ROOT / "scripts" / "mlflow_ui.sh")], env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            assert server.poll() is None, (root / "mlflow_ui.log").read_text()
            try:
                if urllib.request.urlopen(f"{base}/health", timeout=2).read() == b"OK":
                    break
            except OSError:
                assert time.time() < deadline, "the MLflow UI did not come up in 90 s"
                time.sleep(0.25)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the script execs mlflow, whose workers share its group
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """(base URL, MLflow client) of the UI started by the documented script on a fresh store."""
    import mlflow

    root = sweep_store(tmp_path_factory)
    with serve(root) as base:
        yield base, mlflow.MlflowClient(tracking_uri(root))


def rendered_text(url: str, tmp_path: Path) -> str:
    """The page's visible text after the app has rendered (the virtual time budget lets it fetch)."""
    proc = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=2400,1000", "--virtual-time-budget=15000",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", proc.stdout, flags=re.S)
    text = html.unescape(re.sub(r"<[^>]+>", " ", dom))
    return re.sub(r"\s+", " ", text)


def _sweep(client):
    experiment = client.get_experiment_by_name("longwriter")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.info.run_name == STUDY]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2
    return experiment.experiment_id, parent, children


def test_runs_table_lists_the_sweep_and_its_trials(ui, tmp_path: Path) -> None:
    base, client = ui
    experiment_id, parent, children = _sweep(client)
    nested = rendered_text(f"{base}/#/experiments/{experiment_id}/runs", tmp_path)
    assert STUDY in nested and "3 matching runs" in nested, nested[:2000]
    # Sorted by name, the table lists child runs flat instead of folded under their parent.
    flat = rendered_text(f"{base}/#/experiments/{experiment_id}/runs?orderByKey=attributes.run_name&orderByAsc=true",
                         tmp_path)
    for run in [parent, *children]:
        assert run.info.run_name in flat, run.info.run_name
    charts = rendered_text(f"{base}/#/experiments/{experiment_id}/runs?orderByKey=attributes.run_name"
                           f"&orderByAsc=true&compareRunsMode=CHART", tmp_path)
    for section in ["reward/total", "reward/pairwise", "reward/length", "curriculum/level", "train"]:
        assert f" {section} " in charts, section


def test_run_pages_show_parent_children_and_metrics(ui, tmp_path: Path) -> None:
    base, client = ui
    experiment_id, parent, children = _sweep(client)
    page = rendered_text(f"{base}/#/experiments/{experiment_id}/runs/{parent.info.run_id}", tmp_path)
    assert "Child runs" in page and all(c.info.run_name in page for c in children), page[:3000]
    assert "sweep/best_value" in page and "best.reward" in page
    child = next(c for c in children if c.data.tags["reward"] == "pairwise")
    page = rendered_text(f"{base}/#/experiments/{experiment_id}/runs/{child.info.run_id}", tmp_path)
    assert child.info.run_name in page
    for metric in ["reward/total/mean", "curriculum/level/mean", "objective", "eval/length_score/mean"]:
        assert f" {metric} " in page, metric


def test_the_printed_run_link_opens_the_model_training_view(ui, tmp_path: Path) -> None:
    """The link the end of a run prints (run_summary.run_page): MLflow 3 would otherwise show a
    training run in its GenAI view, with an "Evaluations" breadcrumb and trace tabs."""
    from longwriter.tracking.run_summary import run_page

    base, client = ui
    experiment_id, parent, children = _sweep(client)
    assert client.get_experiment(experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    page = rendered_text(f"{base}/{run_page(experiment_id, children[0].info.run_id)}", tmp_path)
    assert "Model registry" in page and " Runs " in page, page[:1500]
    assert "Evaluations" not in page and "Evaluation runs" not in page
    assert "reward/total/mean" in page


def test_the_printed_runs_table_link_shows_objective_and_main_params(ui, tmp_path: Path) -> None:
    """The runs-table link the end of a run or sweep prints opens the project's saved view
    (longwriter/tracking/ui_view.py): objective, reward and the main params are columns, where
    MLflow's default table shows only Created, Dataset, Duration, Source and Models."""
    from longwriter.tracking.ui_view import PARAM_COLUMNS, VIEW_NAME, runs_page

    base, client = ui
    experiment_id, parent, children = _sweep(client)
    page = rendered_text(f"{base}/{runs_page(experiment_id)}", tmp_path)
    assert VIEW_NAME in page and "error loading shared view" not in page.lower(), page[:2000]
    assert " Metrics " in page and " Parameters " in page, page[:2000]  # the column groups' header row
    for column in ["objective", "reward/total/mean", *PARAM_COLUMNS]:
        assert f" {column} " in page, column
    assert STUDY in page and "3 matching runs" in page
    # Its chart mode: metric sections with the reward first (MLflow's own order is alphabetical:
    # advantage, curriculum, judge, length ... reward).
    # (the view sorts by the objective, so the trials are listed flat and the charts draw them)
    assert "Sort: objective" in page
    charts = rendered_text(f"{base}/{runs_page(experiment_id)}&compareRunsMode=CHART", tmp_path)
    sections = re.findall(r" ([a-z_]+(?:/[a-z_]+)*) \((\d+)\) Add chart", charts)
    names = [name for name, count in sections if count != "0"]
    assert names[:3] == ["reward/total", "reward/length", "reward/pairwise"], sections
    assert {"judge", "curriculum/level", "train", "timing"} <= set(names)
    assert names.index("reward/pairwise") < names.index("judge") < names.index("train")


def test_a_training_run_shows_its_samples_as_a_table(ui, tmp_path: Path) -> None:
    """The pairwise trial's logged completions (samples/samples.json, an MLflow table) render as a
    table in the run's artifact view: prompt, completion, words, target, rewards, the judge's verdict."""
    from longwriter.tracking.run_summary import run_page

    base, client = ui
    experiment_id, parent, children = _sweep(client)
    child = next(c for c in children if c.data.tags["reward"] == "pairwise")
    url = f"{base}/{run_page(experiment_id, child.info.run_id)}".replace("?", "/artifacts/samples/samples.json?")
    page = rendered_text(url, tmp_path)
    for column in ["step", "sample_id", "words", "target", "reward_pairwise", "reward_total", "advantage",
                   "pairwise_verdict", "prompt"]:
        assert f" {column} " in page, (column, page[:3000])
    assert any(f" {verdict} " in page for verdict in ("win", "tie", "loss", "unknown")), page[page.find("pairwise_verdict"):][:3000]


def test_the_seed_groups_view_folds_each_groups_seeds_into_one_row(tmp_path_factory, tmp_path: Path) -> None:
    """The `runs by group:` link the end of a seed group prints (ui_view.GROUPS_VIEW_KEY): the UI's own
    "Group by" on the group tag, set from the server by a saved view, with only seed-group runs listed;
    its charts draw one line per group (MLflow shades the min..max of the group's runs)."""
    import mlflow

    from longwriter.tracking.mlflow_run import EXPERIMENT_KIND_TAG, TRAINING_KIND
    from longwriter.tracking.run_summary import runs_table_url
    from longwriter.tracking.seed_groups import GROUP_TAG
    from longwriter.tracking.sweep_callback import ROLE_TAG
    from longwriter.tracking.ui_view import GROUPS_VIEW_KEY, GROUPS_VIEW_NAME, refresh_runs_view, view_tags
    from test_seed_groups import make_run

    root = tmp_path_factory.mktemp("groups_ui")
    client = mlflow.MlflowClient(tracking_uri(root))
    experiment_id = client.create_experiment("longwriter", artifact_location=str(root / "artifacts"),
                                             tags={EXPERIMENT_KIND_TAG: TRAINING_KIND, **view_tags()})
    for group, lr, seeds in (("grp-a", "3e-05", 3), ("grp-b", "1e-05", 2)):
        parent = client.create_run(experiment_id, run_name=group, tags={ROLE_TAG: "parent"}).info.run_id
        for seed in range(seeds):
            make_run(client, experiment_id, f"{group}-s{seed}", {"engine.learning_rate": lr, "seed": str(seed)},
                     [0.5 + 0.02 * step + 0.05 * seed for step in range(8)],
                     tags={GROUP_TAG: group, "mlflow.parentRunId": parent})
        client.set_terminated(parent)
    make_run(client, experiment_id, "loose-run", {"engine.learning_rate": "2e-05", "seed": "0"}, [0.3, 0.4])
    refresh_runs_view(client, experiment_id)

    with serve(root) as base:
        url = runs_table_url(base, experiment_id, GROUPS_VIEW_KEY)
        page = rendered_text(url, tmp_path)
        assert GROUPS_VIEW_NAME in page and "error loading shared view" not in page.lower(), page[:2000]
        assert f"Group by: {GROUP_TAG}" in page, page[:2000]
        assert "Group: grp-a 3" in page and "Group: grp-b 2" in page, page[:2000]
        assert "(average)" in page  # the group's row holds the mean of its runs
        assert "5 matching runs" in page and "loose-run" not in page  # only seed-group runs
        charts = rendered_text(f"{url}&compareRunsMode=CHART", tmp_path)
        assert "grp-a (reward/total/mean)" in charts and "grp-b (reward/total/mean)" in charts, charts[:2000]
