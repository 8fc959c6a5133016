"""Per-row tables as MLflow table artifacts (`mlflow.log_table`): one JSON file per table that the
UI's artifact view shows as a table, instead of JSON lines cut at the right edge.

Used by evaluation (one row per evaluated sample) and training (one row per logged completion).
Logging to a file that already exists appends the rows (MLflow's behaviour), so a training run keeps
one samples table with a `step` column.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence


def _table_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def log_table(rows: Sequence[Mapping[str, Any]], artifact_file: str, client: Any = None,
              run_id: str | None = None) -> None:
    """`rows` (dicts; the union of their keys, in first-seen order, are the columns) as an MLflow table
    artifact of the active run (or, given an `MlflowClient`, of `run_id`); NaN and missing cells become
    empty."""
    import mlflow
    import pandas as pd

    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    frame = pd.DataFrame([{c: _table_value(row.get(c)) for c in columns} for row in rows], columns=columns)
    frame = frame.astype(object).where(frame.notna(), None)
    if client is not None:
        client.log_table(run_id, frame, artifact_file=artifact_file)
    else:
        mlflow.log_table(frame, artifact_file=artifact_file)


SAMPLES_TABLE = "samples/samples.json"  # a training run's logged completions, one row each (with `step`)


def training_sample_rows(step: int, samples: Sequence[Any], completions: Sequence[str], answers: Sequence[str],
                         rewards: Mapping[str, Sequence[float]], total: Sequence[float],
                         advantages: Sequence[float], labels: Mapping[str, Sequence[str | None]],
                         limit: int) -> list[dict[str, Any]]:
    """The first `limit` completions of a scored training batch as table rows: what was asked, what came
    back, how long it is against the target, each reward component, the total, the advantage and the
    components' labels (e.g. `pairwise_verdict`). `samples` are `longwriter.data.schema.Sample`s;
    `answers` the answer part of each completion (what length and quality measure)."""
    from longwriter.text import count_words

    rows = []
    for i in range(min(int(limit), len(completions))):
        sample = samples[i]
        target = sample.length_range
        # The short columns first: the UI's table shows the columns that fit, the long texts last.
        row = {"step": int(step), "sample_id": sample.id, "words": count_words(answers[i]),
               "target": f"{target[0]}-{target[1]}" if target is not None else None}
        row.update({f"reward_{name}": float(values[i]) for name, values in rewards.items()})
        row["reward_total"] = float(total[i])
        row["advantage"] = float(advantages[i])
        row.update({name: values[i] for name, values in labels.items()})
        row.update(prompt=sample.user_prompt, completion=completions[i])
        rows.append(row)
    return rows
