"""Where a policy came from: a small JSON file that a stage writing a model folder puts inside it.

`python -m longwriter.sft` writes `longwriter_origin.json` into the folder it saves (the SFT run's
MLflow run id, name, experiment, store, base model, template, data, steps). A training run started
from that folder (`model.path=<folder>`) reads it back and tags its own MLflow run with it
(`policy_origin=<sft run id>`, `policy_origin.kind`, `policy_origin.run_name`, ...), so the RL run
names the run that made its starting policy; the folder itself is the run's param `model.path`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping

logger = logging.getLogger(__name__)

ORIGIN_FILE = "longwriter_origin.json"
ORIGIN_TAG = "policy_origin"


def write_origin(folder: str | Path, record: Mapping[str, Any]) -> Path:
    path = Path(folder) / ORIGIN_FILE
    path.write_text(json.dumps(dict(record), indent=1, default=str) + "\n")
    return path


def read_origin(model_path: str | Path | None) -> dict[str, Any] | None:
    """The folder's origin record, or None (a preset's own weights, a Hub id, a folder without one)."""
    if not model_path:
        return None
    path = Path(str(model_path)) / ORIGIN_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        logger.warning("%s is unreadable (%s): the run's policy origin is not recorded", path, err)
        return None
    return record if isinstance(record, dict) else None


def origin_tags(model_path: str | Path | None) -> dict[str, str]:
    """MLflow tags naming the run that made the policy in `model_path` (empty when none did)."""
    record = read_origin(model_path)
    if not record or not record.get("run_id"):
        return {}
    tags = {ORIGIN_TAG: str(record["run_id"]), f"{ORIGIN_TAG}.path": str(model_path)}
    for key in ("kind", "run_name", "experiment_id", "tracking_uri", "base_model", "template"):
        if record.get(key) not in (None, ""):
            tags[f"{ORIGIN_TAG}.{key}"] = str(record[key])
    return tags
