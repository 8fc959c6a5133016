"""End-of-run pictures: which figures a run's history produces, and that they land in MLflow as PNG."""

from __future__ import annotations

from pathlib import Path

from longwriter.tracking.plots import log_run_plots, png_bytes, read_lengths, run_figures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _steps(values):
    return [(step, float(v)) for step, v in enumerate(values, 1)]


LENGTH_RUN = {
    "reward/length/mean": _steps([0.2, 0.4, 0.6]),
    "reward/total/mean": _steps([0.2, 0.4, 0.6]),
    "length/words/mean": _steps([20, 40, 60]),
    "monitor/repetition/mean": _steps([0.1, 0.1, 0.2]),
    "monitor/length_drift/mean": _steps([-0.8, -0.5, -0.1]),
}
PAIRWISE_RUN = {
    "reward/pairwise/mean": _steps([0.2, 0.5]),
    "reward/total/mean": _steps([0.2, 0.5]),
    "judge/win_rate": _steps([0.2, 0.5]), "judge/tie_rate": _steps([0.0, 0.0]),
    "judge/loss_rate": _steps([0.8, 0.5]), "judge/unknown_rate": _steps([0.0, 0.0]),
    "judge/swap_disagreement": _steps([0.5, 0.25]),
    "curriculum/level/mean": _steps([0.0, 0.5]), "curriculum/level/mean_all": _steps([0.0, 0.25]),
    "curriculum/level_hist/0": _steps([1.0, 0.5]), "curriculum/level_hist/1": _steps([0.0, 0.5]),
    "eval/pairwise/win_rate": [(0, 0.25), (2, 0.75)],  # eval.at_start / eval.at_end
}


def test_a_length_run_gets_rewards_lengths_and_monitors_but_no_pairwise_pictures():
    lengths = [{"step": 1, "sample_ids": ["a", "a"], "words": [10, 30], "ranges": [[20, 40], [20, 40]]},
               {"step": 2, "sample_ids": ["b", "b"], "words": [25, 50], "ranges": [[20, 40], None]}]
    figures = run_figures(LENGTH_RUN, lengths)
    assert sorted(figures) == ["lengths.png", "monitors.png", "rewards.png"]
    for fig in figures.values():
        assert png_bytes(fig).startswith(PNG_MAGIC)
    # the reward picture draws one line per component plus the total
    assert [line.get_label() for line in figures["rewards.png"].axes[0].get_lines()] == ["length", "total"]
    # without length records the length picture falls back to the logged mean
    assert "lengths.png" in run_figures(LENGTH_RUN)


def test_a_pairwise_run_gets_curriculum_and_verdict_pictures():
    figures = run_figures(PAIRWISE_RUN)
    assert sorted(figures) == ["curriculum.png", "eval_before_after.png", "monitors.png", "rewards.png", "verdicts.png"]
    bars = figures["eval_before_after.png"].axes[0].patches
    assert [bar.get_height() for bar in bars] == [0.25, 0.75]
    verdict_lines = [line.get_label() for line in figures["verdicts.png"].axes[0].get_lines()]
    assert verdict_lines == ["win_rate", "tie_rate", "loss_rate", "unknown_rate"]
    assert run_figures({}) == {}


def test_read_lengths_keeps_the_last_record_of_a_repeated_step():
    text = '{"step": 2, "words": [1]}\n{"step": 1, "words": [5]}\n\n{"step": 2, "words": [7]}\n'
    assert read_lengths(text) == [{"step": 1, "words": [5]}, {"step": 2, "words": [7]}]


def test_log_run_plots_draws_from_the_runs_own_metrics(tmp_path: Path):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.create_experiment("plots", artifact_location=(tmp_path / "artifacts").as_uri())
    run_id = client.create_run(experiment).info.run_id
    for key, points in PAIRWISE_RUN.items():
        for step, value in points:
            client.log_metric(run_id, key, value, step=step)
    paths = log_run_plots(run_id, client=client)
    assert sorted(paths) == ["plots/curriculum.png", "plots/eval_before_after.png", "plots/monitors.png",
                             "plots/rewards.png", "plots/verdicts.png"]
    local = Path(client.download_artifacts(run_id, "plots/curriculum.png", str(tmp_path / "dl")))
    assert local.read_bytes().startswith(PNG_MAGIC)
