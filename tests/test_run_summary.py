"""The end-of-run summary: first- vs last-quarter figures, run id, UI command, final model."""

from __future__ import annotations

import math

import pytest

from longwriter.tracking.run_summary import RunSummary, quarter_means, run_summary, summarise_history


def test_quarter_means_use_at_least_one_step_each():
    assert quarter_means([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]) == pytest.approx((0.15, 0.75))
    assert quarter_means([0.2, 0.9]) == (0.2, 0.9)
    assert all(math.isnan(x) for x in quarter_means([]))


def test_history_gives_quarters_only_for_logged_metrics():
    history = [{"reward/total/mean": r, "response_length/clip_ratio": 1 - r} for r in (0.2, 0.4, 0.6, 0.8)]
    quarters = summarise_history(history)
    assert quarters == {"reward": pytest.approx((0.2, 0.8)), "clip ratio": pytest.approx((0.8, 0.2))}


def test_lines_name_run_ui_command_and_model():
    summary = RunSummary("abc123", "7", "sqlite:////tmp/x y/mlflow.db", 8, {"reward": (0.25, 0.5)}, "/tmp/run/final_model")
    text = "\n".join(summary.lines())
    assert "first quarter 0.250 -> last quarter 0.500 (+0.250)" in text
    assert "abc123" in text and "/tmp/run/final_model" in text
    assert "MLFLOW_STORE='sqlite:////tmp/x y/mlflow.db' bash " in text and "mlflow_ui.sh" in text
    assert "#/experiments/7/runs/abc123?workflowType=machine_learning" in text
    # the runs table through the project's saved view (objective, reward and main params as columns)
    assert "runs table: http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning" \
           "&viewStateShareKey=longwriter-runs" in text


def test_summary_reads_the_mlflow_run(tmp_path):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    with mlflow.start_run() as run:
        for step, reward in enumerate([0.1, 0.2, 0.5, 0.7], start=1):
            mlflow.log_metric("reward/total/mean", reward, step=step)
        summary = run_summary(mlflow.active_run(), tmp_path / "final_model")
    assert summary.run_id == run.info.run_id and summary.steps == 4
    assert summary.quarters["reward"] == pytest.approx((0.1, 0.7))
    assert summary.final_model == str(tmp_path / "final_model")


def test_sweep_end_names_the_parent_run_and_the_ui_command():
    from longwriter.tracking.sweep_callback import sweep_summary_lines

    text = "\n".join(sweep_summary_lines({"study": "s1", "run_id": "p42", "experiment_id": "3",
                                          "tracking_uri": "sqlite:////tmp/o/mlflow.db", "sweep_dir": "/tmp/o/sw"},
                                         "FINISHED"))
    assert "== sweep s1 finished ==" in text and "MLflow parent run: p42 (experiment 3)" in text
    assert "MLFLOW_STORE=sqlite:////tmp/o/mlflow.db bash " in text and "#/experiments/3/runs/p42" in text
    assert "/tmp/o/sw" in text and "python -m longwriter.compare --sweep s1" in text
    assert "#/experiments/3/runs?workflowType=machine_learning&viewStateShareKey=longwriter-runs" in text


def _record(step, words, ranges):
    return {"step": step, "sample_ids": [f"s{i}" for i in range(len(words))], "words": words, "ranges": ranges}


def test_following_quarters_pool_each_quarters_completions():
    from longwriter.tracking.run_summary import following_quarters

    ranges = [[8, 12], [8, 12], [40, 60], [40, 60]]
    blind = [_record(s, [29, 31, 29, 31], ranges) for s in (1, 2)]        # one length for every request
    following = [_record(s, [10, 12, 45, 50], ranges) for s in (3, 4, 5, 6, 7, 8)]
    first, last = following_quarters(blind + following)
    assert first == pytest.approx(0.0) and last == pytest.approx(0.8944, abs=1e-4)  # ties share ranks
    assert following_quarters([_record(1, [3, 4], [None, None])]) is None     # no length targets: no line


def test_summary_prints_following_from_the_runs_length_records(tmp_path):
    import json

    import mlflow

    from longwriter.tracking.plots import LENGTHS_ARTIFACT

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    ranges = [[8, 12], [40, 60]]
    records = [_record(1, [30, 20], ranges), _record(2, [20, 30], ranges), _record(3, [10, 50], ranges),
               _record(4, [12, 44], ranges)]
    with mlflow.start_run():
        for step in range(1, 5):
            mlflow.log_metric("reward/total/mean", 0.1 * step, step=step)
        mlflow.log_text("".join(json.dumps(r) + "\n" for r in records), LENGTHS_ARTIFACT)
        summary = run_summary(mlflow.active_run(), None)
    assert summary.quarters["following rho"] == pytest.approx((-1.0, 1.0))
    assert "following rho: first quarter -1.000 -> last quarter 1.000 (+2.000)" in "\n".join(summary.lines())
