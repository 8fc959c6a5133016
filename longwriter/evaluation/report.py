"""Log one evaluation into the active MLflow run: metrics, params, per-sample table, plots.

Metric names are the same for every evaluation (`eval/...`), with the step telling them apart:
a standalone `longwriter.evaluate` logs at step 0, a training run's final evaluation at its last
step, so that base and trained model line up in one MLflow chart. Artifacts and params go under
`label` ("eval", or "eval/initial" and "eval/final" inside a training run) so that two
evaluations in one run never overwrite each other.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any, Mapping, Sequence

from longwriter.tracking.mlflow_run import MAX_PARAM_LEN, log_metrics
from longwriter.tracking.tables import log_table

logger = logging.getLogger(__name__)

TABLE_FILE = "samples.json"
SUMMARY_FILE = "summary.json"


def finite_metrics(metrics: Mapping[str, float | None]) -> dict[str, float]:
    """The metrics that have a value (None = not measured: no sample had what the metric needs)."""
    out = {}
    for key, value in metrics.items():
        if value is None or isinstance(value, bool):
            continue
        if math.isfinite(float(value)):
            out[key] = float(value)
    return out


def log_params_once(params: Mapping[str, Any]) -> None:
    """Log params; one already logged with another value (a resumed run) is kept, with a warning."""
    import mlflow

    run = mlflow.active_run()
    existing = mlflow.get_run(run.info.run_id).data.params if run else {}
    new = {}
    for key, value in params.items():
        text = str(value)[:MAX_PARAM_LEN]
        if key in existing:
            if existing[key] != text:
                logger.warning("param %s already logged as %r; keeping it (this evaluation: %r)", key, existing[key], text)
            continue
        new[key] = text
    if new:
        mlflow.log_params(new)


def _plots(rows: Sequence[Mapping[str, Any]], metrics: Mapping[str, float]) -> dict[str, Any]:
    """Figures worth a glance: S_l histogram, required vs produced length, S_q per dimension."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    figures = {}
    scored = [r for r in rows if r.get("length_score") is not None]
    if scored:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.hist([r["length_score"] for r in scored], bins=20, range=(0, 100), color="tab:blue")
        ax.set(xlabel="S_l (length score)", ylabel="samples",
               title=f"S_l per sample (mean {metrics.get('eval/length_score/mean', float('nan')):.1f})")
        figures["length_score_hist.png"] = fig

        fig, ax = plt.subplots(figsize=(6, 5))
        required = [max(1, r["required_length"]) for r in scored]
        produced = [max(1, r["words"]) for r in scored]  # log axes: an empty output is drawn at 1
        points = ax.scatter(required, produced, s=14, alpha=0.7, c=[r["length_score"] for r in scored],
                            cmap="viridis", vmin=0, vmax=100)
        fig.colorbar(points, ax=ax, label="S_l")
        low, top = min(required + produced) / 1.5, max(required + produced) * 1.5
        ax.plot([low, top], [low, top], color="grey", lw=1, ls="--", label="produced = required")
        ax.set(xlim=(low, top), ylim=(low, top))
        ax.set(xscale="log", yscale="log", xlabel="required length (words)", ylabel="produced length (words)",
               title="Required vs produced length")
        ax.legend(loc="upper left")
        figures["length_scatter.png"] = fig

    dims = {k.rsplit("/", 1)[1]: v for k, v in metrics.items()
            if k.startswith("eval/quality_score/") and k.rsplit("/", 1)[1] not in ("mean", "n", "dropped")}
    if dims:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.barh(list(dims), list(dims.values()), color="tab:green")
        ax.set(xlim=(0, 100), xlabel="score (0-100)", title="S_q per dimension")
        fig.tight_layout()
        figures["quality_dimensions.png"] = fig
    return figures


def log_evaluation(
    rows: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, float | None],
    params: Mapping[str, Any],
    *,
    label: str = "eval",
    step: int = 0,
) -> dict[str, float]:
    """Everything of one evaluation into the active MLflow run; returns the metrics logged."""
    import matplotlib.pyplot as plt
    import mlflow

    logged = finite_metrics(metrics)
    log_metrics(logged, step=step)
    log_params_once({f"{label}/{key}": value for key, value in params.items()})
    log_table(rows, f"{label}/{TABLE_FILE}")
    for name, fig in _plots(rows, logged).items():
        mlflow.log_figure(fig, f"{label}/plots/{name}")
        plt.close(fig)
    not_measured = sorted(k for k, v in metrics.items() if v is None)
    summary = {"step": step, "params": {k: str(v) for k, v in params.items()}, "metrics": logged,
               "not_measured": not_measured}
    mlflow.log_text(json.dumps(summary, indent=2, ensure_ascii=False), f"{label}/{SUMMARY_FILE}")
    logger.info("evaluation logged (%s, step %d): %s", label, step, _headline(logged))
    return logged


def _headline(metrics: Mapping[str, float]) -> str:
    keys = ("eval/length_score/mean", "eval/quality_score/mean", "eval/checklist_score/mean",
            "eval/pairwise/win_rate", "eval/format/valid_rate", "eval/repetition/mean")
    return ", ".join(f"{k.split('/', 1)[1]}={metrics[k]:.3f}" for k in keys if k in metrics) or "no scores"
