"""`load_samples(data_cfg)`: the one entry point from a `data=` config to a list of Samples.

The loader is chosen by `data.format` when set, else by `data.name` (so `data=jsonl` just works and
a custom preset can say `name: my_set, format: jsonl`). Formats registered here and in the modules
imported below: builtin, jsonl, parquet (the project's own row format = `Sample.to_dict`), pairs
(any prompt/response JSONL), hf_hub, longbench_write, writingbench, verl_parquet.

Options every format takes:
  shuffle_seed  null keeps file order; an integer shuffles deterministically (random.Random(seed))
  limit         keep the first N samples after shuffling (null = all), so that a limited
                evaluation is a seeded random subset, not the shortest prompts of a sorted file
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

# Imported for their @register_loader side effect: the registry is filled explicitly, here.
from longwriter.data import benchmarks as _benchmarks  # noqa: F401
from longwriter.data import hf_hub as _hf_hub  # noqa: F401
from longwriter.data import verl_parquet as _verl_parquet  # noqa: F401
from longwriter.config_tools import plain
from longwriter.data.loader_registry import build_samples, get_loader, iter_jsonl, register_loader, require_object, \
    require_str, resolve_path
from longwriter.data.schema import DataError, Sample

logger = logging.getLogger(__name__)

BUILTIN_PATH = Path(__file__).resolve().with_name("builtin_prompts.jsonl")


def load_samples(data_cfg: Mapping[str, Any] | DictConfig) -> list[Sample]:
    """Load, validate, shuffle and limit the samples described by a `data` config group."""
    cfg = plain(data_cfg)
    fmt = cfg.get("format") or cfg.get("name")
    preset = cfg.get("name") or fmt  # what the user typed (data=length_prompts reads the builtin format)
    if not fmt:
        raise DataError("the data config has neither 'format' nor 'name' (pick data=<preset>)")
    samples = get_loader(str(fmt))(cfg)
    duplicates = sorted(sample_id for sample_id, n in Counter(s.id for s in samples).items() if n > 1)
    if duplicates:  # build_samples already refuses these with row numbers; this guards other loaders
        raise DataError(f"data={preset}: duplicate sample ids {duplicates[:5]}")
    seed = cfg.get("shuffle_seed")
    if seed is not None:
        random.Random(int(seed)).shuffle(samples)
    limit = cfg.get("limit")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise DataError(f"data.limit must be a non-negative integer or null, got {limit!r}")
        samples = samples[:limit]
    if not samples:
        logger.warning("data=%s gave no samples", preset)
    logger.info("data=%s: %d samples (shuffle_seed=%s, limit=%s)", preset, len(samples), seed, limit)
    return samples


def read_samples_jsonl(path: Path) -> list[Sample]:
    """Rows in `Sample.from_dict` form, one JSON object per line."""
    return build_samples(iter_jsonl(path))


def read_samples_parquet(path: Path) -> list[Sample]:
    """Columns named like the Sample fields; `meta` may be a JSON string (as `save_samples` writes)."""
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for unreadable files
        raise DataError(f"{path}: not a readable parquet file ({type(exc).__name__}: {exc})") from exc

    def located() -> Iterable[tuple[str, dict[str, Any]]]:
        for i, row in enumerate(rows):
            where = f"{path}:row {i}"
            if isinstance(row.get("meta"), str):
                try:
                    row["meta"] = json.loads(row["meta"])
                except json.JSONDecodeError as exc:
                    raise DataError(f"{where}: field 'meta' is not valid JSON ({exc.msg})") from None
            yield where, row

    return build_samples(located())


@register_loader("builtin")
def load_builtin(cfg: Mapping[str, Any]) -> list[Sample]:
    """A set shipped inside the package: `data.file` names a .jsonl in longwriter/data/ (default: the
    writing set with criteria and references, builtin_prompts.jsonl)."""
    name = cfg.get("file")
    if name is not None and (Path(str(name)).name != str(name) or not str(name).endswith(".jsonl")):
        raise DataError(f"data.file={name!r}: name a .jsonl file shipped in {BUILTIN_PATH.parent} (no folders); "
                        f"for your own file use data=jsonl data.path=...")
    path = BUILTIN_PATH if name is None else BUILTIN_PATH.with_name(str(name))
    if not path.is_file():
        shipped = sorted(p.name for p in BUILTIN_PATH.parent.glob("*.jsonl"))
        raise DataError(f"the built-in dataset file is missing: {path} (is the package installed with its data? "
                        f"shipped: {shipped})")
    return read_samples_jsonl(path)


@register_loader("jsonl")
def load_jsonl(cfg: Mapping[str, Any]) -> list[Sample]:
    return read_samples_jsonl(resolve_path(cfg))


@register_loader("pairs")
def load_pairs(cfg: Mapping[str, Any]) -> list[Sample]:
    """Prompt/response pairs, one JSON object per line: `data.prompt_field` (default `prompt`: a string or
    chat messages) and `data.response_field` (default `response`: a non-empty string), optionally `id`
    (default `<file stem>-<row number>`) and any other Sample field (criteria, length_range, meta). The
    response becomes the sample's one reference: what `python -m longwriter.sft` trains on, and what a
    pairwise reward compares with."""
    path = resolve_path(cfg)
    prompt_key = str(cfg.get("prompt_field") or "prompt")
    response_key = str(cfg.get("response_field") or "response")

    def located() -> Iterable[tuple[str, dict[str, Any]]]:
        for number, (where, row) in enumerate(iter_jsonl(path), start=1):
            row = dict(require_object(row, where))
            if prompt_key not in row:
                raise DataError(f"{where}: field '{prompt_key}' is missing (each line needs `{prompt_key}` and "
                                f"`{response_key}`; other names: data.prompt_field / data.response_field)")
            response = require_str(row, response_key, where)
            sample = {k: v for k, v in row.items() if k not in (prompt_key, response_key)}
            sample.update(id=row.get("id") or f"{path.stem}-{number}", prompt=row[prompt_key],
                          references=[response], source=row.get("source") or path.stem)
            yield where, sample

    samples = build_samples(located())
    if not samples:
        raise DataError(f"{path} is empty: give one JSON object with `{prompt_key}` and `{response_key}` per line")
    return samples


@register_loader("parquet")
def load_parquet(cfg: Mapping[str, Any]) -> list[Sample]:
    return read_samples_parquet(resolve_path(cfg))


def save_samples(samples: Sequence[Sample], path: str | Path) -> Path:
    """Write samples in the project's own format, chosen by suffix (.jsonl or .parquet).

    What `data=jsonl` / `data=parquet` read back into equal Samples; also how to move a Hub
    dataset to an offline machine (load it with data=hf_hub elsewhere, save, copy the file).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [sample.to_dict() for sample in samples]
    if path.suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif path.suffix == ".parquet":
        for row in rows:
            row["meta"] = json.dumps(row["meta"], ensure_ascii=False)
        pq.write_table(pa.Table.from_pylist(rows, schema=_sample_schema()), path)
    else:
        raise DataError(f"save_samples: unknown suffix {path.suffix!r} for {path} (use .jsonl or .parquet)")
    logger.info("wrote %d samples to %s", len(rows), path)
    return path


def _sample_schema() -> Any:
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.schema(
        [
            ("id", pa.string()),
            ("prompt", pa.list_(message)),
            ("criteria", pa.list_(pa.string())),
            ("references", pa.list_(pa.string())),
            ("length_range", pa.list_(pa.int64())),
            ("source", pa.string()),
            ("start_level", pa.int64()),
            ("meta", pa.string()),
        ]
    )

