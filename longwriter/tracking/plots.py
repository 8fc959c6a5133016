"""Pictures of a finished run, built from what the run itself logged, saved to MLflow as PNG.

Every run gets (when it logged the metrics behind them):
    plots/rewards.png        reward/<component>/mean and reward/total/mean per step
    plots/lengths.png        word count of every completion per step, each drawn over its target
                             band (from the run's `rollouts/lengths.jsonl`); without that file, the
                             mean of length/words/mean with the in-range rate
    plots/monitors.png       reward-hacking monitors (`longwriter.rewards.monitors`): repetition,
                             distinct-1/2, length drift, and for pairwise runs judge/swap_disagreement
    plots/curriculum.png     pairwise runs: mean reference level (batch and all samples) and the
                             level histogram per step
    plots/verdicts.png       pairwise runs: win / tie / loss / unknown rates per step
    plots/format.png         recipes with a format component: valid / well-formed / repetitive rates
    plots/eval_before_after.png  runs with eval.at_start and eval.at_end: each headline evaluation
                             score at its first and its last logged step (e.g. S_l, win rate vs references)

matplotlib runs with the Agg backend (no display). `log_run_plots(run_id)` is what the engines
call at the end of training; `run_figures` is the pure part (history in, figures out) that tests use.
"""

from __future__ import annotations

import io
import json
import logging
import re
from typing import Any, Mapping, Sequence

logger = logging.getLogger(__name__)

History = Mapping[str, Sequence[tuple[int, float]]]  # metric -> [(step, value)], oldest first
LENGTHS_ARTIFACT = "rollouts/lengths.jsonl"
PLOTS_DIR = "plots"

_REWARD = re.compile(r"^reward/(?P<name>[^/]+)/mean$")
_LEVEL_HIST = re.compile(r"^curriculum/level_hist/(?P<level>\d+)$")
_MONITOR_PANELS = (
    ("repetition (share of repeated trigrams)", ("monitor/repetition/mean", "monitor/repetition/max")),
    ("distinct-n over the batch", ("monitor/distinct_1", "monitor/distinct_2")),
    ("length drift (words / target mid - 1)", ("monitor/length_drift/mean", "monitor/length_drift/abs_mean")),
    ("judge position bias", ("judge/swap_disagreement",)),
)
_VERDICTS = ("judge/win_rate", "judge/tie_rate", "judge/loss_rate", "judge/unknown_rate")
_FORMAT = ("format/valid_rate", "format/well_formed_rate", "format/repetitive_rate")
_EVAL_HEADLINES = ("eval/length_score/mean", "eval/quality_score/mean", "eval/checklist_score/mean",
                   "eval/pairwise/win_rate", "eval/format/valid_rate", "eval/repetition/mean")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _series(history: History, key: str) -> tuple[list[int], list[float]]:
    points = list(history.get(key, ()))
    return [int(s) for s, _ in points], [float(v) for _, v in points]


def _lines(ax, history: History, keys: Sequence[str], label=lambda k: k) -> bool:
    drawn = False
    for key in keys:
        steps, values = _series(history, key)
        if steps:
            ax.plot(steps, values, marker="o", markersize=3, label=label(key))
            drawn = True
    if drawn:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return drawn


def _reward_figure(plt, history: History):
    components = sorted(m["name"] for k in history if (m := _REWARD.match(k)) and m["name"] != "total")
    keys = [f"reward/{c}/mean" for c in components] + ["reward/total/mean"]
    if not any(history.get(k) for k in keys):
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    _lines(ax, history, keys, label=lambda k: k.split("/")[1])
    ax.set_title("reward per component (mean over the step's completions)")
    ax.set_ylabel("reward")
    return fig


def _length_figure(plt, history: History, lengths: Sequence[Mapping[str, Any]] | None):
    if lengths:
        fig, ax = plt.subplots(figsize=(7, 4))
        for record in lengths:
            step = int(record["step"])
            words, ranges = record["words"], record["ranges"]
            bands = {tuple(r) for r in ranges if r}
            for k, (lo, hi) in enumerate(sorted(bands)):  # each target band as a shaded bar at its step
                ax.add_patch(plt.Rectangle((step - 0.35, lo), 0.7, hi - lo, color="tab:green", alpha=0.12, lw=0,
                                           label="target band" if step == lengths[0]["step"] and k == 0 else None))
            colours = ["tab:blue" if r and r[0] <= w <= r[1] else ("tab:orange" if r and w < r[0] else "tab:red")
                       for w, r in zip(words, ranges)]
            offsets = [step + (i - (len(words) - 1) / 2) * (0.5 / max(len(words), 1)) for i in range(len(words))]
            ax.scatter(offsets, words, c=colours, s=12, zorder=3)
        ax.scatter([], [], c="tab:blue", s=12, label="in range")
        ax.scatter([], [], c="tab:orange", s=12, label="below")
        ax.scatter([], [], c="tab:red", s=12, label="above")
        ax.autoscale_view()
        ax.set_xlabel("step")
        ax.set_ylabel("words (answer part)")
        ax.set_title("length of every completion per step, over its target band")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        return fig
    if not history.get("length/words/mean"):
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    _lines(ax, history, ["length/words/mean"])
    ax.set_ylabel("words")
    twin = ax.twinx()
    steps, values = _series(history, "length/in_range_rate")
    if steps:
        twin.plot(steps, values, color="tab:green", linestyle="--", label="in-range rate")
        twin.set_ylim(0, 1)
        twin.set_ylabel("in-range rate")
    ax.set_title("mean answer length per step")
    return fig


def _monitor_figure(plt, history: History):
    panels = [(title, keys) for title, keys in _MONITOR_PANELS if any(history.get(k) for k in keys)]
    if not panels:
        return None
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2.4 * len(panels)), sharex=True, squeeze=False)
    for ax, (title, keys) in zip(axes[:, 0], panels):
        _lines(ax, history, keys, label=lambda k: k.split("/", 1)[1])
        ax.set_title(title, fontsize=9)
    fig.suptitle("reward-hacking monitors")
    fig.tight_layout()
    return fig


def _curriculum_figure(plt, history: History):
    hist_keys = sorted((k for k in history if _LEVEL_HIST.match(k)), key=lambda k: int(_LEVEL_HIST.match(k)["level"]))
    if not history.get("curriculum/level/mean") and not hist_keys:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
    _lines(top, history, ["curriculum/level/mean", "curriculum/level/mean_all"],
           label=lambda k: "this step's samples" if k.endswith("/mean") else "all training samples")
    top.set_ylabel("mean reference level")
    top.set_title("curriculum: reference level over steps")
    if hist_keys:
        steps = sorted({s for k in hist_keys for s, _ in history[k]})
        shares = [[dict(history[k]).get(s, 0.0) for s in steps] for k in hist_keys]
        bottom.stackplot(steps, shares, labels=[f"level {_LEVEL_HIST.match(k)['level']}" for k in hist_keys], alpha=0.8)
        bottom.set_ylim(0, 1)
        bottom.set_ylabel("share of the step's samples")
        bottom.set_xlabel("step")
        bottom.legend(fontsize=7, loc="upper left")
    return fig


def _simple_figure(plt, history: History, keys: Sequence[str], title: str, ylabel: str):
    if not any(history.get(k) for k in keys):
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    _lines(ax, history, keys, label=lambda k: k.split("/", 1)[1])
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    return fig


def _eval_figure(plt, history: History):
    pairs = [(k, _series(history, k)) for k in _EVAL_HEADLINES if len(history.get(k, ())) >= 2]
    if not pairs:
        return None
    fig, axes = plt.subplots(1, len(pairs), figsize=(3 * len(pairs), 3.5), squeeze=False)
    for ax, (key, (steps, values)) in zip(axes[0], pairs):
        bars = ax.bar([f"step {steps[0]}", f"step {steps[-1]}"], [values[0], values[-1]],
                      color=["tab:gray", "tab:blue"])
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
        ax.set_title(key.split("/", 1)[1], fontsize=9)
    fig.suptitle("evaluation before and after training")
    fig.tight_layout()
    return fig


def run_figures(history: History, lengths: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """{file name: matplotlib Figure} for every picture whose metrics the history holds."""
    plt = _pyplot()
    figures = {
        "rewards.png": _reward_figure(plt, history),
        "lengths.png": _length_figure(plt, history, lengths),
        "monitors.png": _monitor_figure(plt, history),
        "curriculum.png": _curriculum_figure(plt, history),
        "verdicts.png": _simple_figure(plt, history, _VERDICTS, "judge verdicts against the current reference",
                                       "share of judged completions"),
        "format.png": _simple_figure(plt, history, _FORMAT, "format of the completions", "share of completions"),
        "eval_before_after.png": _eval_figure(plt, history),
    }
    return {name: fig for name, fig in figures.items() if fig is not None}


def png_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def metric_history(run_id: str, client: Any = None) -> dict[str, list[tuple[int, float]]]:
    """Every metric of an MLflow run as {metric: [(step, value)]}, one value per step (the latest)."""
    import mlflow

    client = client or mlflow.MlflowClient()
    history: dict[str, list[tuple[int, float]]] = {}
    for key in client.get_run(run_id).data.metrics:
        latest: dict[int, tuple[int, float]] = {}
        for m in client.get_metric_history(run_id, key):
            if m.step not in latest or m.timestamp >= latest[m.step][0]:
                latest[m.step] = (m.timestamp, m.value)
        history[key] = [(step, latest[step][1]) for step in sorted(latest)]
    return history


def read_lengths(text: str) -> list[dict[str, Any]]:
    """The records of a `rollouts/lengths.jsonl` artifact, one step each; a resumed step keeps its last."""
    by_step: dict[int, dict[str, Any]] = {}
    for line in text.splitlines():
        if line.strip():
            record = json.loads(line)
            by_step[int(record["step"])] = record
    return [by_step[s] for s in sorted(by_step)]


def log_run_plots(run_id: str, lengths: Sequence[Mapping[str, Any]] | None = None, client: Any = None) -> list[str]:
    """Draw the run's pictures from its own logged metrics (and length records) and log them as
    `plots/*.png` artifacts of that run. Returns the artifact paths. Never fails the run: a plotting
    error is logged as a warning (the training result matters more than its picture)."""
    import tempfile
    from pathlib import Path

    import mlflow

    client = client or mlflow.MlflowClient()
    try:
        figures = run_figures(metric_history(run_id, client), lengths)
        paths = []
        with tempfile.TemporaryDirectory() as folder:
            for name, fig in figures.items():
                (Path(folder) / name).write_bytes(png_bytes(fig))
                _pyplot().close(fig)
                client.log_artifact(run_id, str(Path(folder) / name), PLOTS_DIR)
                paths.append(f"{PLOTS_DIR}/{name}")
        logger.info("logged %d plot(s) to MLflow run %s: %s", len(paths), run_id, ", ".join(paths))
        return paths
    except Exception as error:  # noqa: BLE001 (a picture must not fail a finished training)
        logger.warning("could not draw the run's plots: %s", error)
        return []

