"""Seed groups in MLflow: read a group's runs, log its aggregate into the group's parent run, and draw
one curve per group with its band.

A seed group is one config trained with several seeds (`python -m longwriter.train -m sweep=seeds`,
`longwriter/tracking/seed_callback.py`): each seed is its own run, tagged GROUP_TAG=<group id> and
nested under the group's parent run (ROLE_TAG=parent, STUDY_TAG=<group id>, GROUP_KIND_TAG=seeds), so
`python -m longwriter.compare --sweep <group id>` lists the seeds like a sweep's trials. Elsewhere
(`python -m longwriter.compare`, the notebook) runs are grouped by their params minus the seed
(`seed_stats.config_key`), whoever launched them. The statistics are in `seed_stats.py`.

The parent run holds (`log_group`):
  params       the group's config (the first finished seed's params) with `seed` = the list of seeds
  metrics      seeds/n, seeds/n_failed, seeds/n_not_finished; per learning figure F (seed_stats.
               learning_figures): seeds/F/{mean,ci95,std,min,max} (ci95: the half-width of the 95%
               CI of the mean, Student's t); per step, for the reward and the run summary's curves:
               <metric> (the mean over seeds), <metric>_ci95_low and _ci95_high (the 95% CI of the
               mean), <metric>_min and _max (in the same chart section of the UI)
  artifacts    seeds/summary.txt (what the end of the group printed), seeds/figures.json (a table: one
               row per seed with its status and every figure), seeds/curves.png (per curve the mean, EMA 0.6, with the seeds' min..max band)
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

from longwriter.tracking.run_summary import REWARD, TRACKED, following_quarters
from longwriter.tracking.ui_view import GROUP_TAG  # defined beside the saved view that groups by it
from longwriter.tracking.seed_stats import (
    REWARD_COMPONENT,
    GroupAggregate,
    Member,
    aggregate,
    band_label,
    config_key,
    is_run_identity,
    summary_lines,
)

logger = logging.getLogger(__name__)

SEED_TAG = "longwriter.group.seed"         # on every seed's run: its seed (a run that failed early has no params)
GROUP_KIND_TAG = "longwriter.sweep.kind"   # "seeds" on a seed group's parent run
ERROR_TAG = "longwriter.error"
ARTIFACT_DIR = "seeds"


def run_seed(run: Any) -> str | None:
    """The seed of an `mlflow.entities.Run`: its `seed` param, else the group's tag."""
    return run.data.params.get("seed") or run.data.tags.get(SEED_TAG)


def _following(client: Any, run_id: str) -> tuple[float, float] | None:
    """Spearman of requested vs written words, first and last quarter (run_summary), from the run's
    `rollouts/lengths.jsonl`; None without it."""
    from longwriter.tracking.plots import LENGTHS_ARTIFACT, read_lengths

    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR

    if not any(a.path == LENGTHS_ARTIFACT for a in client.list_artifacts(run_id, LENGTHS_ARTIFACT.rsplit("/", 1)[0])):
        return None
    shown = os.environ.get(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name)
    os.environ[MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name] = "false"  # one bar per run drowns the summary
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(run_id, LENGTHS_ARTIFACT, tmp)
            return following_quarters(read_lengths(Path(path).read_text(encoding="utf-8")))
    finally:
        if shown is None:
            os.environ.pop(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name, None)
        else:
            os.environ[MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name] = shown


def load_member(client: Any, run: Any) -> Member:
    """A run (an `mlflow.entities.Run`) with its metric history and learning figures."""
    from longwriter.tracking.plots import metric_history
    from longwriter.tracking.seed_stats import learning_figures

    history = metric_history(run.info.run_id, client)
    try:
        following = _following(client, run.info.run_id)
    except Exception as err:  # noqa: BLE001 - a figure less, not a failed comparison
        logger.warning("run %s: could not read its length records: %s", run.info.run_id, err)
        following = None
    return Member(run.info.run_id, run.info.run_name, run_seed(run), run.info.status,
                  learning_figures(history, following), history, run.data.tags.get(ERROR_TAG))


def group_runs(runs: Sequence[Any]) -> list[list[Any]]:
    """Runs grouped by their params minus the seed (in the order of each group's first run). A run
    with no params (it failed before logging them) joins the group its GROUP_TAG names."""
    by_key: dict[tuple, list[Any]] = {}
    by_tag: dict[str, tuple] = {}
    loose = []
    for run in runs:
        if not run.data.params and run.data.tags.get(GROUP_TAG):
            loose.append(run)
            continue
        key = config_key(run.data.params)
        by_key.setdefault(key, []).append(run)
        if run.data.tags.get(GROUP_TAG):
            by_tag.setdefault(run.data.tags[GROUP_TAG], key)
    for run in loose:
        key = by_tag.get(run.data.tags[GROUP_TAG], ("tag", run.data.tags[GROUP_TAG]))
        by_key.setdefault(key, []).append(run)
    return list(by_key.values())


def group_label(runs: Sequence[Any]) -> str:
    """The group id its runs are tagged with, else the first run's name (+ how many more)."""
    tags = {r.data.tags.get(GROUP_TAG) for r in runs}
    if len(tags) == 1 and None not in tags:
        return str(tags.pop())
    first = runs[0].info.run_name
    return first if len(runs) == 1 else f"{first} (+{len(runs) - 1})"


def load_groups(client: Any, runs: Sequence[Any]) -> list[tuple[GroupAggregate, list[Any]]]:
    """(aggregate, its runs) per group of `runs` (`group_runs`)."""
    return [(aggregate(group_label(group), [load_member(client, r) for r in group]), group)
            for group in group_runs(runs)]


def curve_metrics(groups: Sequence[GroupAggregate]) -> list[str]:
    """The per-step curves worth a band: the total reward, its components, the run summary's curves."""
    logged = {k for g in groups for m in g.finished for k, v in m.curves.items() if len(v) > 1}
    components = sorted(k for k in logged if REWARD_COMPONENT.match(k))
    wanted = [REWARD, *components, *(key for key, _ in TRACKED if key != REWARD)]
    return [k for k in wanted if k in logged]


# ----------------------------------------------------------------------------------------------
# pictures


def distinct_colors(n: int) -> list[tuple[float, float, float, float]]:
    """n colours that differ: tab10 up to 10, tab20 up to 20, beyond that hues spaced by the golden
    ratio with alternating lightness (never a repeat)."""
    import matplotlib
    from matplotlib.colors import hsv_to_rgb

    if n <= 10:
        return [matplotlib.colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [matplotlib.colormaps["tab20"](i) for i in range(n)]
    colors = []
    for i in range(n):
        hue = (i * 0.618033988749895) % 1.0
        r, g, b = hsv_to_rgb((hue, 0.85 if i % 2 else 0.6, 0.9 if (i // 2) % 2 else 0.65))
        colors.append((float(r), float(g), float(b), 1.0))
    return colors


def curves_figure(groups: Sequence[GroupAggregate], metrics: Sequence[str], weight: float = 0.0,
                  band: str = "minmax"):
    """One panel per metric, one line per group (the mean over its finished seeds) with its band; a
    group of one seed is a plain line. Legends name the group, n and what the band is."""
    from longwriter.tracking.plots import _pyplot

    plt = _pyplot()
    metrics = list(metrics) or [REWARD]
    cols = min(2, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7.5 * cols, 4.2 * rows), squeeze=False)
    colors = distinct_colors(len(groups))
    for ax, metric in zip(axes.flat, metrics):
        for color, group in zip(colors, groups):
            points = group.band(metric, weight, band)
            if not points:
                continue
            steps = [p.step for p in points]
            ax.plot(steps, [p.mean for p in points], color=color, lw=1.6, label=f"{group.label} (n={group.n})")
            if group.n > 1:
                ax.fill_between(steps, [p.low for p in points], [p.high for p in points], color=color, alpha=0.2,
                                lw=0)
        ax.set(title=metric, xlabel="step")
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=7, title=band_label(band, weight), title_fontsize=7)
        else:
            ax.text(0.5, 0.5, f"no {metric} logged", ha="center", va="center", transform=ax.transAxes)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# the parent run


def group_params(runs: Sequence[Any], seeds: Sequence[str]) -> dict[str, str]:
    """The group's config for its parent run: the first run with params, minus what names one run,
    with `seed` = the seeds."""
    source = next((r for r in runs if r.data.params), None)
    params = {k: v for k, v in (source.data.params if source else {}).items() if not is_run_identity(k)}
    params["seed"] = ",".join(seeds)
    return params


def log_group(client: Any, parent_run_id: str, group: GroupAggregate, runs: Sequence[Any],
              seeds: Sequence[str], weight: float = 0.6) -> None:
    """Log the group's aggregate into its parent run (see the module docstring)."""
    import time

    from mlflow.entities import Metric, Param

    from longwriter.tracking.plots import _pyplot, png_bytes
    from longwriter.tracking.tables import log_table

    now = int(time.time() * 1000)
    metrics = [Metric("seeds/n", group.n, now, 0), Metric("seeds/n_failed", len(group.failed), now, 0),
               Metric("seeds/n_not_finished", len(group.running) + len(group.missing), now, 0)]
    for name, stats in group.figures.items():
        for stat in ("mean", "ci95", "std", "min", "max"):
            value = getattr(stats, stat)
            if math.isfinite(value):
                metrics.append(Metric(f"seeds/{name}/{stat}", value, now, 0))
    curves = curve_metrics([group])
    for metric in curves:
        for ci, spread in zip(group.band(metric, band="ci95"), group.band(metric, band="minmax")):
            metrics.append(Metric(metric, ci.mean, now, ci.step))
            if ci.n > 1:
                metrics += [Metric(f"{metric}_ci95_low", ci.low, now, ci.step),
                            Metric(f"{metric}_ci95_high", ci.high, now, ci.step),
                            Metric(f"{metric}_min", spread.low, now, ci.step),
                            Metric(f"{metric}_max", spread.high, now, ci.step)]
    for start in range(0, len(metrics), 1000):  # MLflow's batch limit
        client.log_batch(parent_run_id, metrics=metrics[start:start + 1000])
    existing = client.get_run(parent_run_id).data.params
    params = [Param(k, str(v)[:6000]) for k, v in group_params(runs, seeds).items() if k not in existing]
    for start in range(0, len(params), 100):
        client.log_batch(parent_run_id, params=params[start:start + 100])

    client.log_text(parent_run_id, "\n".join(summary_lines(group)) + "\n", f"{ARTIFACT_DIR}/summary.txt")
    rows = [{"seed": m.seed, "run": m.name, "run_id": m.run_id, "status": m.status, **m.figures,
             "error": m.error} for m in group.members]
    if rows:
        log_table(rows, f"{ARTIFACT_DIR}/figures.json", client, parent_run_id)
    if curves:
        fig = curves_figure([group], curves, weight)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "curves.png"
            path.write_bytes(png_bytes(fig))
            client.log_artifact(parent_run_id, str(path), ARTIFACT_DIR)
        _pyplot().close(fig)
