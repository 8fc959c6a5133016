"""Loader for datasets on the Hugging Face Hub, mapped into the Sample schema by a column map.

Config (conf/data/hf_hub.yaml):
  repo_id     dataset repo, e.g. "THUDM/LongWriter-6k" (required)
  subset      the dataset's config name (null = default)
  split       e.g. "train"
  revision    git revision to pin (null = main)
  cache_dir   datasets cache (null = the HF default)
  columns     schema field -> dataset column; null skips the field. `prompt` may be a string
              column or a chat-message column; `references` may be a string or a list column;
              `id` null -> "<repo>:<split>:<row>".
  source      Sample.source (null = repo_id)

Any failure to fetch becomes ONE DataError that says what to do on an offline machine: load it
elsewhere, save it with `longwriter.data.loaders.save_samples`, and use data=jsonl/parquet.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from longwriter.data.loader_registry import build_samples, is_missing, register_loader
from longwriter.data.schema import DataError, Sample

logger = logging.getLogger(__name__)

SCHEMA_FIELDS = ("id", "prompt", "criteria", "references", "length_range", "source", "start_level", "meta")


def _fetch(repo_id: str, subset: str | None, split: str, revision: str | None, cache_dir: str | None) -> Any:
    """`datasets.load_dataset` with every failure turned into the one offline-aware DataError."""
    try:
        import datasets  # heavy import: only when this loader runs

        return datasets.load_dataset(repo_id, subset, split=split, revision=revision, cache_dir=cache_dir)
    except Exception as exc:  # noqa: BLE001 - network, auth, missing repo/split: all the same advice
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        raise DataError(
            f"could not load HF dataset {repo_id!r} (subset={subset}, split={split}, revision={revision}): "
            f"{reason}; this machine may be offline: download it elsewhere and use data=jsonl/parquet "
            "with data.path=... (longwriter.data.loaders.save_samples writes either format)"
        ) from exc


def map_row(row: Mapping[str, Any], columns: Mapping[str, str | None], default_id: str, source: str) -> dict:
    """One dataset row -> a Sample.from_dict row, following `columns` (schema field -> column)."""
    unknown = sorted(set(columns) - set(SCHEMA_FIELDS))
    if unknown:
        raise DataError(f"data.columns has unknown schema fields {unknown}; allowed: {list(SCHEMA_FIELDS)}")
    out: dict[str, Any] = {"id": default_id, "source": source}
    for field_name, column in columns.items():
        if column is None:
            continue
        if column not in row:
            raise DataError(
                f"data.columns.{field_name}={column!r} is not a column of the dataset; columns: {sorted(row)}"
            )
        out[field_name] = row[column]
    if isinstance(out.get("references"), str):
        out["references"] = [out["references"]]
    if out.get("id") is not None:
        out["id"] = str(out["id"])
    return out


@register_loader("hf_hub")
def load_hf_hub(cfg: Mapping[str, Any]) -> list[Sample]:
    repo_id = cfg.get("repo_id")
    if is_missing(repo_id):
        raise DataError("data=hf_hub needs a dataset: set data.repo_id=<owner/name>")
    split = str(cfg.get("split") or "train")
    subset, revision = cfg.get("subset"), cfg.get("revision")
    columns = dict(cfg.get("columns") or {"prompt": "prompt"})
    source = str(cfg.get("source") or repo_id)
    dataset = _fetch(str(repo_id), subset, split, revision, cfg.get("cache_dir"))
    logger.info("loaded HF dataset %s (%s, revision %s): %d rows", repo_id, split, revision, len(dataset))

    def rows() -> Iterator[tuple[str, dict[str, Any]]]:
        for i, row in enumerate(dataset):
            yield f"{repo_id}[{split}]:row {i}", map_row(row, columns, f"{repo_id}:{split}:{i}", source)

    return build_samples(rows())
