"""The number(s) a sweep optimises, computed from a run's logged metric history.

Defined once here so that every engine returns the same thing. For each metric in
`objective.metrics` (default: `reward/total/mean`), the mean over the last `tail_fraction` of the
steps at which it was logged: the tail rather than the last step, because one GRPO step is noisy.
The history is read back from the MLflow run, so it covers steps logged before a resume and
metrics logged outside the trainer (e.g. `eval/...` from `eval.at_end=true`, logged once at the
last step). One metric gives a float (single-objective sweeps); several give a tuple in the order
of the sweeper's `direction` list. MLflow gets it as `objective`, or `objective/<metric>`.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

from longwriter.errors import LongwriterError

logger = logging.getLogger(__name__)

DEFAULT_METRICS = ("reward/total/mean",)
DEFAULT_TAIL_FRACTION = 0.25

Objective = float | tuple[float, ...]


class ObjectiveError(LongwriterError):
    """A configured objective metric was never logged by the run."""


def objective_metrics(objective_cfg: Mapping[str, Any] | None) -> list[str]:
    metrics = (objective_cfg or {}).get("metrics") or DEFAULT_METRICS
    return [str(m) for m in metrics]


def tail_mean(values: Sequence[float], tail_fraction: float = DEFAULT_TAIL_FRACTION) -> float:
    """Mean of the last `tail_fraction` of `values`, rounded down but at least one value."""
    tail = values[-max(1, int(len(values) * tail_fraction)):]
    return float(sum(tail) / len(tail))


def compute_objective(history: Sequence[Mapping[str, float]], objective_cfg: Mapping[str, Any] | None = None
                      ) -> Objective | None:
    """The objective from per-step metric dicts (oldest first).

    With no `objective` config a missing metric gives None (a plain run has nothing to optimise);
    when a sweep preset names its metrics, a missing one is an error, so the trial fails loudly.
    """
    metrics = objective_metrics(objective_cfg)
    tail_fraction = float((objective_cfg or {}).get("tail_fraction", DEFAULT_TAIL_FRACTION))
    values = []
    for key in metrics:
        series = [float(h[key]) for h in history if h.get(key) is not None]
        if not series:
            if objective_cfg is None:
                return None
            raise ObjectiveError(f"objective metric {key!r} was never logged by this run (check objective.metrics "
                                 f"against the run's metrics in MLflow)")
        values.append(tail_mean(series, tail_fraction))
    return values[0] if len(values) == 1 else tuple(values)


def logged_history(run_id: str, metrics: Sequence[str], client: Any = None) -> list[dict[str, float]]:
    """Per-step dicts {metric: value} of an MLflow run, oldest step first; a step logged twice
    (a resumed run repeats the steps after its last checkpoint) keeps its latest value."""
    import mlflow

    client = client or mlflow.MlflowClient()
    by_step: dict[int, dict[str, tuple[int, float]]] = {}
    for key in metrics:
        for m in client.get_metric_history(run_id, key):
            seen = by_step.setdefault(m.step, {}).get(key)
            if seen is None or m.timestamp >= seen[0]:
                by_step[m.step][key] = (m.timestamp, m.value)
    return [{k: v for k, (_, v) in by_step[step].items()} for step in sorted(by_step)]


def run_objective(run_id: str, objective_cfg: Mapping[str, Any] | None = None) -> Objective | None:
    """`compute_objective` over what the MLflow run `run_id` has logged."""
    return compute_objective(logged_history(run_id, objective_metrics(objective_cfg)), objective_cfg)


def log_objective(value: Objective | None, objective_cfg: Mapping[str, Any] | None = None) -> None:
    """Log the objective to the active MLflow run (what the sweeper saw, next to the curves)."""
    import mlflow

    if value is None:
        return
    if isinstance(value, tuple):
        mlflow.log_metrics({f"objective/{m}": v for m, v in zip(objective_metrics(objective_cfg), value)})
    else:
        mlflow.log_metric("objective", value)
