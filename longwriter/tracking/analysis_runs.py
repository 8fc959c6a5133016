"""Where analyses (`longwriter.compare`, notebooks/compare_runs.ipynb) log their plots back to MLflow.

Into the sweep parent run they analyse, or else into a new run tagged `kind=<kind>`; listings of
training runs leave runs of NOT_TRAINING_KINDS out, so an analysis never shows up as a run to compare.
SFT warm-ups (`kind=sft`) are left out too (no reward to compare), unless a listing asks for them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

KIND_TAG = "kind"
SFT_KIND = "sft"
NOT_TRAINING_KINDS = ("compare", "analysis", "evaluate", "prepare", "arena", SFT_KIND)


def is_training_run(run: Any, include: tuple[str, ...] = ()) -> bool:
    """False for analysis, evaluation, preparation, arena and SFT runs (an `mlflow.entities.Run`), except
    the kinds in `include` (e.g. ("sft",))."""
    kind = run.data.tags.get(KIND_TAG)
    return kind in include or kind not in NOT_TRAINING_KINDS


def log_analysis_files(client: Any, experiment_id: str, files: Sequence[Path], kind: str, folder: str,
                       parent_run_id: str | None = None) -> str:
    """Log `files` under `folder/` of the run `parent_run_id`, or of a new finished run named
    `<kind>-<time>` tagged kind=<kind>; returns the run id."""
    if parent_run_id is not None:
        run_id = parent_run_id
    else:
        run_id = client.create_run(experiment_id, run_name=f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}",
                                   tags={KIND_TAG: kind}).info.run_id
    for path in files:
        client.log_artifact(run_id, str(path), folder)
    if parent_run_id is None:
        client.set_terminated(run_id)
    return run_id
