"""The few lines printed at the end of every training run: did it learn, and where to look.

Reward of the first vs the last quarter of the steps (the same tail the sweep objective uses),
the truncation and in-range rates beside it when the run logged them, whether the run's own
completions follow their requested lengths (Spearman of required vs produced words, pooled over
each quarter's steps, from `rollouts/lengths.jsonl`; a length-blind policy scores about 0), the
MLflow run id, the command that opens the MLflow UI on this run's store, and the final model's folder. Figures are
read back from MLflow, so a resumed run's summary covers the steps logged before the resume.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from longwriter.tracking.objective import logged_history
from longwriter.tracking.ui_view import VIEW_KEY, runs_page

REWARD = "reward/total/mean"
# (metric, label) reported first-quarter -> last-quarter when the run logged them.
TRACKED = (
    (REWARD, "reward"),
    ("length/in_range_rate", "in-range rate"),
    ("response_length/clip_ratio", "clip ratio"),
    ("length/words/mean", "words"),
)
SCRIPTS_DIR = Path(__file__).resolve().parents[2] / "scripts"


def quarter_means(values: Sequence[float]) -> tuple[float, float]:
    """Mean of the first and of the last quarter of `values` (at least one value each)."""
    if not values:
        return math.nan, math.nan
    k = max(1, len(values) // 4)
    return sum(values[:k]) / k, sum(values[-k:]) / k


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    experiment_id: str
    tracking_uri: str
    steps: int
    quarters: dict[str, tuple[float, float]]   # label -> (first quarter, last quarter)
    final_model: str | None

    def ui_command(self) -> str:
        return ui_command(self.tracking_uri, self.experiment_id, self.run_id)

    def lines(self) -> list[str]:
        out = [f"== training run summary ({self.steps} steps) =="]
        for label, (first, last) in self.quarters.items():
            out.append(f"{label:>14}: first quarter {first:.3f} -> last quarter {last:.3f} ({last - first:+.3f})")
        if not self.quarters:
            out.append("  (no per-step metrics were logged)")
        out.append(f"    MLflow run: {self.run_id} (experiment {self.experiment_id})")
        out.append(f"     MLflow UI: {ui_pointer(self.tracking_uri, self.experiment_id, self.run_id)}")
        out.append(f"    runs table: {runs_table_url(self.tracking_uri, self.experiment_id)}")
        out.append(f"   final model: {self.final_model or '(none saved)'}")
        return out


def ui_command(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """The command that opens the MLflow UI on a run's store (scripts/mlflow_ui.sh)."""
    script = shlex.quote(str(SCRIPTS_DIR / "mlflow_ui.sh"))
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {tracking_uri}/{run_page(experiment_id, run_id)}"
    return f"MLFLOW_STORE={shlex.quote(tracking_uri)} bash {script}"


def ui_pointer(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """`ui_command`, and for a local store the page to open once the UI is up."""
    command = ui_command(tracking_uri, experiment_id, run_id)
    if tracking_uri.startswith(("http://", "https://")):
        return command
    return f"{command}  then open http://127.0.0.1:5000/{run_page(experiment_id, run_id)}"


def runs_table_url(tracking_uri: str, experiment_id: str, view: str = VIEW_KEY) -> str:
    """The experiment's runs table with the objective, reward and main params as columns, through a
    saved view (ui_view.py: VIEW_KEY, or GROUPS_VIEW_KEY: one row per seed group)."""
    base = tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    return f"{base}/{runs_page(experiment_id, view)}"


def run_page(experiment_id: str, run_id: str) -> str:
    """The run's page in the UI's model-training view (MLflow 3 otherwise opens the GenAI view:
    traces, an "Evaluations" breadcrumb); tests/test_mlflow_ui.py checks what it renders."""
    return f"#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


def summarise_history(history: Sequence[Mapping[str, float]]) -> dict[str, tuple[float, float]]:
    """First- vs last-quarter means of the TRACKED metrics present in per-step dicts (oldest first)."""
    quarters = {}
    for key, label in TRACKED:
        series = [float(h[key]) for h in history if h.get(key) is not None]
        if series:
            quarters[label] = quarter_means(series)
    return quarters


def following_quarters(records: Sequence[Mapping[str, Any]]) -> tuple[float, float] | None:
    """Spearman(required, produced words) over the completions of the first vs the last quarter of
    the steps (`length_record`s, oldest first; required = the middle of each target range).
    None when the run has no length targets."""
    from longwriter.evaluation.following import spearman

    def pooled(chunk: Sequence[Mapping[str, Any]]) -> float:
        pairs = [((r[0] + r[1]) / 2, w) for rec in chunk for w, r in zip(rec["words"], rec["ranges"]) if r]
        return spearman([p[0] for p in pairs], [p[1] for p in pairs])

    if not any(r for rec in records for r in rec.get("ranges", [])):
        return None
    k = max(1, len(records) // 4)
    return pooled(records[:k]), pooled(records[-k:])


def _length_records(run_id: str) -> list[dict]:
    """The run's `rollouts/lengths.jsonl` records, or [] when it logged none."""
    import mlflow

    from longwriter.tracking.plots import LENGTHS_ARTIFACT, read_lengths

    try:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=LENGTHS_ARTIFACT)
    except Exception:  # noqa: BLE001 - no such artifact (a run without length targets, verl)
        return []
    return read_lengths(Path(path).read_text(encoding="utf-8"))


def run_summary(run: Any, final_model: str | Path | None, client: Any = None) -> RunSummary:
    """The summary of an MLflow run (an `mlflow.entities.Run`, e.g. `mlflow.active_run()`)."""
    import mlflow

    history = logged_history(run.info.run_id, [key for key, _ in TRACKED], client)
    steps = sum(1 for h in history if h.get(REWARD) is not None)
    quarters = summarise_history(history)
    following = following_quarters(_length_records(run.info.run_id))
    if following is not None:
        quarters[FOLLOWING_LABEL] = following
    return RunSummary(run.info.run_id, run.info.experiment_id, mlflow.get_tracking_uri(), steps,
                      quarters, str(final_model) if final_model else None)


FOLLOWING_LABEL = "following rho"  # Spearman(required, produced words) of the run's own completions


def print_run_summary(run: Any, final_model: str | Path | None) -> RunSummary:
    """Print the summary to stdout (after the progress bar, where a newcomer looks) and return it."""
    summary = run_summary(run, final_model)
    print("\n".join(summary.lines()), flush=True)
    return summary
