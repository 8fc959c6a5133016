"""The runs table's saved view (longwriter/tracking/ui_view.py): its columns, its chart sections with
the reward first, and the experiment tag a training run leaves behind (rendered: test_mlflow_ui.py)."""

from __future__ import annotations

import json

from longwriter.tracking.ui_view import (
    GROUPS_VIEW_NAME,
    GROUPS_VIEW_TAG,
    VIEW_KEY,
    VIEW_NAME,
    VIEW_TAG,
    chart_sections,
    refresh_runs_view,
    view_state,
)

LOGGED = ["advantage/zero_std_group_frac", "curriculum/level/mean", "judge/win_rate", "length/words/mean",
          "reward/pairwise/mean", "reward/total/mean", "reward/length/mean", "timing/step_s", "train/loss",
          "objective", "system/cpu_utilization_percentage", "train/clip_ratio/high_max", "zeta/custom"]


def test_sections_put_the_reward_total_first_then_components_then_the_rest():
    assert chart_sections(LOGGED) == ["reward/total", "reward/length", "reward/pairwise", "length/words", "judge",
                                      "curriculum/level", "advantage", "train", "train/clip_ratio", "timing", "zeta"]


def test_state_selects_objective_reward_and_main_params_and_keeps_the_section_order():
    state = view_state(LOGGED)
    assert state["selectedColumns"][:3] == ["metrics.`objective`", "metrics.`reward/total/mean`",
                                            "params.`reward.name`"]
    assert (state["orderByKey"], state["orderByAsc"]) == ("metrics.`objective`", False)
    assert state["isAccordionReordered"] is True and state["compareRunCharts"] == []
    assert [s["name"] for s in state["compareRunSections"]] == chart_sections(LOGGED)
    assert "compareRunSections" not in view_state()  # nothing logged yet: the UI's own sections


def test_refresh_writes_the_view_with_the_experiments_metrics(tmp_path):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment_id = client.create_experiment("x")
    for key in ("train/loss", "reward/total/mean"):
        run = client.create_run(experiment_id)
        client.log_metric(run.info.run_id, key, 1.0, step=1)
    refresh_runs_view(client, experiment_id)
    envelope = json.loads(client.get_experiment(experiment_id).tags[VIEW_TAG])
    assert VIEW_TAG == f"mlflow.sharedViewState.{VIEW_KEY}" and envelope["name"] == VIEW_NAME
    sections = [s["name"] for s in json.loads(envelope["state"])["compareRunSections"]]
    assert sections == ["reward/total", "train"]
    grouped = json.loads(client.get_experiment(experiment_id).tags[GROUPS_VIEW_TAG])
    assert grouped["name"] == GROUPS_VIEW_NAME
    assert [s["name"] for s in json.loads(grouped["state"])["compareRunSections"]] == ["reward/total", "train"]


def test_the_groups_view_groups_by_the_seed_groups_tag_and_lists_only_their_runs():
    state = view_state(LOGGED, grouped=True)
    assert state["groupBy"] == {"aggregateFunction": "average",
                                "groupByKeys": [{"mode": "tag", "groupByData": "longwriter.group"}]}
    assert state["searchFilter"] == "tags.`longwriter.group` LIKE '%'" and state["useGroupedValuesInCharts"] is True
    assert state["selectedColumns"] == view_state(LOGGED)["selectedColumns"]
    assert "groupBy" not in view_state(LOGGED)
