"""Export Samples to verl's RL parquet format and import them back (DESIGN section 5).

One row per sample, the columns verl's RLHFDataset reads:
  data_source   sample.source (verl routes rewards by it)
  prompt        the chat messages [{"role", "content"}]
  ability       "writing"
  reward_model  {"style": "model" | "rule",
                 "ground_truth": {"prompt":   the user prompt text,
                                  "target":   the references, weakest -> strongest (may be []),
                                  "criteria": the criteria joined by newlines, or None when there
                                              are none (Writing-RL formats this string into its
                                              judge template and uses its default template on None),
                                  "id":       the stable sample id}}
  extra_info    {"index": i, "split": split, "length_range": [lo, hi] | None, "start_level": int,
                 "criteria": the criteria list (exact; the joined string cannot be split back
                 when a criterion spans lines), "meta": JSON string}

About ground_truth.id: Writing-RL's reward function uses it as the key into a JSON file of current
reference indices that it rewrites from inside the reward function (the curriculum level). Here it
is only the stable sample id; the curriculum level lives in the training loop's state, checkpointed
and logged (start_level is kept in extra_info as the initial level).

Importing also accepts files written by others: a string target becomes a one-element list, a
missing extra_info.criteria falls back to splitting ground_truth.criteria on newlines.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from longwriter.data.loader_registry import build_samples, register_loader, resolve_path
from longwriter.data.schema import DataError, Sample

logger = logging.getLogger(__name__)

ABILITY = "writing"
RewardStyle = Literal["model", "rule"]


def verl_schema() -> Any:
    """Explicit arrow schema: no null-typed columns when e.g. every target list is empty."""
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    ground_truth = pa.struct(
        [("prompt", pa.string()), ("target", pa.list_(pa.string())), ("criteria", pa.string()), ("id", pa.string())]
    )
    extra_info = pa.struct(
        [
            ("index", pa.int64()),
            ("split", pa.string()),
            ("length_range", pa.list_(pa.int64())),
            ("start_level", pa.int64()),
            ("criteria", pa.list_(pa.string())),
            ("meta", pa.string()),
        ]
    )
    return pa.schema(
        [
            ("data_source", pa.string()),
            ("prompt", pa.list_(message)),
            ("ability", pa.string()),
            ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", ground_truth)])),
            ("extra_info", extra_info),
        ]
    )


def to_verl_rows(samples: Sequence[Sample], split: str = "train", reward_style: RewardStyle = "model") -> list[dict]:
    """Samples -> verl row dicts (the columns described in the module docstring)."""
    if reward_style not in ("model", "rule"):
        raise ValueError(f"reward_style must be 'model' or 'rule', got {reward_style!r}")
    rows = []
    for index, sample in enumerate(samples):
        try:
            meta = json.dumps(sample.meta, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise DataError(f"sample {sample.id!r}: meta is not JSON-serialisable ({exc})") from None
        rows.append(
            {
                "data_source": sample.source,
                "prompt": [{"role": m["role"], "content": m["content"]} for m in sample.prompt],
                "ability": ABILITY,
                "reward_model": {
                    "style": reward_style,
                    "ground_truth": {
                        "prompt": sample.user_prompt,
                        "target": list(sample.references),
                        "criteria": "\n".join(sample.criteria) if sample.criteria else None,
                        "id": sample.id,
                    },
                },
                "extra_info": {
                    "index": index,
                    "split": split,
                    "length_range": list(sample.length_range) if sample.length_range is not None else None,
                    "start_level": sample.start_level,
                    "criteria": list(sample.criteria),
                    "meta": meta,
                },
            }
        )
    return rows


def export_verl_parquet(
    samples: Sequence[Sample], path: str | Path, split: str = "train", reward_style: RewardStyle = "model"
) -> Path:
    """Write `samples` as one verl parquet file (e.g. train.parquet / val.parquet); returns the path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(to_verl_rows(samples, split, reward_style), schema=verl_schema())
    pq.write_table(table, path)
    logger.info("wrote %d samples (%s) to verl parquet %s", len(samples), split, path)
    return path


def _row_to_sample_dict(row: Any, where: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected an object, got {type(row).__name__}")
    reward_model = row.get("reward_model")
    if not isinstance(reward_model, dict) or not isinstance(reward_model.get("ground_truth"), dict):
        raise DataError(f"{where}: field 'reward_model.ground_truth' must be an object")
    truth = reward_model["ground_truth"]
    extra = row.get("extra_info") or {}
    if not isinstance(extra, dict):
        raise DataError(f"{where}: field 'extra_info' must be an object")
    target = truth.get("target")
    references = [] if target is None else [target] if isinstance(target, str) else target
    criteria = extra.get("criteria")
    if criteria is None:
        joined = truth.get("criteria") or ""
        criteria = [line for line in joined.split("\n") if line.strip()] if isinstance(joined, str) else joined
    meta = extra.get("meta")
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: field 'extra_info.meta' is not valid JSON ({exc.msg})") from None
    sample_id = truth.get("id")
    return {
        "id": str(sample_id) if sample_id is not None else None,
        "prompt": row.get("prompt"),
        "criteria": criteria,
        "references": references,
        "length_range": extra.get("length_range"),
        "source": row.get("data_source"),
        "start_level": extra.get("start_level") or 0,
        "meta": meta or {},
    }


def from_verl_rows(rows: Iterable[dict[str, Any]], where: str = "verl rows") -> list[Sample]:
    """verl row dicts -> Samples, each validated by Sample.from_dict (duplicate ids refused)."""
    located = ((f"{where}:row {i}", row) for i, row in enumerate(rows))
    return build_samples((loc, _row_to_sample_dict(row, loc)) for loc, row in located)


def import_verl_parquet(path: str | Path) -> list[Sample]:
    """Read a verl parquet file back into Samples (inverse of `export_verl_parquet`)."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise DataError(f"verl parquet file not found: {path}")
    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for unreadable files
        raise DataError(f"{path}: not a readable parquet file ({type(exc).__name__}: {exc})") from exc
    return from_verl_rows(rows, where=str(path))


@register_loader("verl_parquet")
def load_verl_parquet(cfg: Any) -> list[Sample]:
    """`data=parquet data.format=verl_parquet data.path=...`: train on an existing verl file."""
    return import_verl_parquet(resolve_path(cfg))
