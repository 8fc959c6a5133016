"""The runs table's saved view "longwriter runs": the objective, the reward and the main params as
columns, runs sorted by the objective (best first), and in its chart mode the metric sections with the
reward first.

MLflow 3's runs table shows Run Name, Created, Dataset, Duration, Source and Models unless a user picks
columns in the browser (kept in that browser's local storage), and its charts group metrics by the name
before the last "/" into sections sorted alphabetically (advantage, curriculum, judge, length, ... before
reward). The one thing a server can set is a saved view: an experiment tag
`mlflow.sharedViewState.<key>` holding the table's state (columns, chart sections in a chosen order),
opened by `?viewStateShareKey=<key>` in the URL (alone: sort keys in the URL make the UI ignore the
view) and listed under the table's "Views". Every training
experiment gets this view, rewritten at the end of each run so its chart sections cover the metrics
logged so far (save your own edits as a new view); the links the end of a run or sweep prints open it
(tests/test_mlflow_ui.py checks the rendered page). A run's own "Model metrics" tab keeps MLflow's
alphabetical order: its layout lives in the browser only.
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterable

VIEW_KEY = "longwriter-runs"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
VIEW_NAME = "longwriter runs"
# The same table with the seeds of each seed group (runs tagged longwriter.group, seed_groups.py)
# folded into one row per group: the UI's "Group by" on that tag, and its charts draw each group as
# one line (the mean over its runs) with a min..max band.
GROUPS_VIEW_KEY = "longwriter-groups"
GROUPS_VIEW_TAG = f"mlflow.sharedViewState.{GROUPS_VIEW_KEY}"
GROUPS_VIEW_NAME = "longwriter seed groups"
GROUP_TAG = "longwriter.group"  # on every seed-group run: the group id (tracking/seed_groups.py); the groups view groups by it
METRIC_COLUMNS = ("objective", "reward/total/mean")
PARAM_COLUMNS = ("reward.name", "model.name", "data.name", "engine.learning_rate", "engine.beta",
                 "engine.max_steps")


def _column(group: str, key: str) -> str:
    return f"{group}.`{key}`"  # the UI's column ids


# Chart sections first by these prefixes (in this order), the rest alphabetically after them.
SECTION_ORDER = ("reward/total", "reward", "eval", "length", "format", "quality", "judge", "curriculum",
                 "response_length", "monitor", "advantage", "train", "timing")


def _section(metric: str) -> str | None:
    """The UI's section of a metric: its name before the last "/" (None: the default section)."""
    return metric.rsplit("/", 1)[0] if "/" in metric else None


def chart_sections(metrics: Iterable[str]) -> list[str]:
    """The sections of `metrics`, the reward's first (SECTION_ORDER), then alphabetically."""
    def rank(section: str) -> tuple[int, str]:
        for i, prefix in enumerate(SECTION_ORDER):
            if section == prefix or section.startswith(prefix + "/"):
                return i, section
        return len(SECTION_ORDER), section

    # System metrics (system/...) have their own section in the UI.
    sections = {_section(m) for m in metrics if not m.startswith("system/")}
    return sorted((s for s in sections if s is not None), key=rank)


def view_state(metrics: Iterable[str] = (), grouped: bool = False) -> dict[str, Any]:
    """The table state the view restores (the UI's own field names): columns, and chart sections in
    order (`isAccordionReordered` keeps that order; the UI fills each section with its metrics).
    `grouped`: the seed groups' view: only runs of a seed group, grouped by their group tag."""
    columns = [_column("metrics", m) for m in METRIC_COLUMNS] + [_column("params", p) for p in PARAM_COLUMNS]
    # Best objective first: a leaderboard, with a sweep's trials listed flat (so the chart mode draws them;
    # folded under their parent they would not be drawn). The parent (no objective) comes last.
    state: dict[str, Any] = {"selectedColumns": [*columns, _column("attributes", "Duration")],
                             "orderByKey": _column("metrics", "objective"), "orderByAsc": False}
    sections = chart_sections(metrics)
    if sections:
        state.update(compareRunSections=[{"name": name, "uuid": f"longwriter-{name}", "display": True,
                                          "isReordered": False} for name in sections],
                     compareRunCharts=[], isAccordionReordered=True)
    if grouped:
        state.update(groupBy={"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": GROUP_TAG}]},
                     useGroupedValuesInCharts=True, searchFilter=f"tags.`{GROUP_TAG}` LIKE '%'")
    return state


def view_tag_value(metrics: Iterable[str] = (), now_ms: int | None = None, grouped: bool = False) -> str:
    """The tag's value: the UI's saved-view envelope {name, createdAt, updatedAt, state (JSON text)}."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return json.dumps({"name": GROUPS_VIEW_NAME if grouped else VIEW_NAME, "createdAt": now_ms, "updatedAt": now_ms,
                       "state": json.dumps(view_state(metrics, grouped))})


def view_tags(metrics: Iterable[str] = ()) -> dict[str, str]:
    """{experiment tag: value} of both views."""
    metrics = list(metrics)
    return {VIEW_TAG: view_tag_value(metrics), GROUPS_VIEW_TAG: view_tag_value(metrics, grouped=True)}


def ensure_runs_view(client: Any, experiment: Any) -> None:
    """Add the views to an experiment (an `mlflow.entities.Experiment`) that lacks them."""
    for tag, value in view_tags().items():
        if tag not in (experiment.tags or {}):
            client.set_experiment_tag(experiment.experiment_id, tag, value)


def refresh_runs_view(client: Any, experiment_id: str) -> None:
    """Rewrite the views with chart sections for every metric the experiment's runs have logged."""
    metrics: set[str] = set()
    page_token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=page_token)
        for run in page:
            metrics.update(run.data.metrics)
        page_token = page.token
        if not page_token:
            break
    for tag, value in view_tags(metrics).items():
        client.set_experiment_tag(experiment_id, tag, value)


def runs_page(experiment_id: str, key: str = VIEW_KEY) -> str:
    """The experiment's runs table in the model-training view, through a saved view."""
    return f"#/experiments/{experiment_id}/runs?workflowType=machine_learning&viewStateShareKey={key}"
