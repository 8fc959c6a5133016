"""The data-loader table and what every loader shares: file lookup, JSONL reading, row checks.

A loader is a plain function `cfg -> list[Sample]` registered under a name; `load_samples`
(in `longwriter.data.loaders`) picks one by `data.format` (or `data.name`). Registration is
explicit (a decorator that refuses duplicate names), never discovery by subclassing.

Every row goes through `Sample.from_dict(row, where=...)` in `build_samples`, which also refuses
duplicate ids, so a bad row fails at load time with its file and line, never deep in training.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from longwriter.data.schema import DataError, Sample
from longwriter.registry import Registry

LoaderFn = Callable[[Mapping[str, Any]], list[Sample]]
_LOADERS: Registry[LoaderFn] = Registry("data loader")
register_loader = _LOADERS.register  # `@register_loader("<name>")`: the loader for `data.format=<name>`


def get_loader(name: str) -> LoaderFn:
    try:
        return _LOADERS[name]
    except KeyError:
        raise DataError(
            f"unknown data format {name!r}; registered: {', '.join(sorted(_LOADERS))} "
            "(set data.format=<one of these> or pick a data=<preset>)"
        ) from None


def registered_loaders() -> list[str]:
    return sorted(_LOADERS)


def is_missing(value: Any) -> bool:
    """None, blank, or OmegaConf's "???" (a required key the user has not set)."""
    return value is None or str(value).strip() in ("", "???")


def resolve_path(cfg: Mapping[str, Any], key: str = "path") -> Path:
    """The existing file named by `cfg[key]`; relative paths are taken from the working directory.

    Errors name the config key to set (`data.<key>`) because that is what the user must change.
    """
    value = cfg.get(key)
    fmt = cfg.get("format") or cfg.get("name")
    if is_missing(value):
        raise DataError(f"data={fmt} needs a file: set data.{key}=<path to the file>")
    path = Path(str(value)).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    path = path.resolve()
    if not path.is_file():
        raise DataError(
            f"data file not found: {path} (from data.{key}={value!r}; relative paths are resolved "
            f"against the working directory {Path.cwd()}); set data.{key}=<existing file>"
        )
    return path


def _json_problem(exc: json.JSONDecodeError) -> str:
    """`Expecting value at column 3`; messages that end in "at" ("... starting at") are not doubled."""
    message = exc.msg[:-3] if exc.msg.endswith(" at") else exc.msg
    return f"{message} at column {exc.colno}"


def iter_jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    """Yield (where, parsed row) per non-blank line; `where` is "file:line" for error messages."""
    try:
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{line_no}"
                try:
                    yield where, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{where}: invalid JSON ({_json_problem(exc)})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def build_samples(rows: Iterable[tuple[str, Mapping[str, Any]]]) -> list[Sample]:
    """Validate (where, row) pairs into Samples, refusing duplicate ids with both locations."""
    samples: list[Sample] = []
    first_seen: dict[str, str] = {}
    for where, row in rows:
        sample = Sample.from_dict(row, where=where)
        if sample.id in first_seen:
            raise DataError(f"{where}: field 'id' duplicates {sample.id!r} (first seen at {first_seen[sample.id]})")
        first_seen[sample.id] = where
        samples.append(sample)
    return samples


def require_str(row: Mapping[str, Any], key: str, where: str, *, allow_missing: bool = False) -> str | None:
    """`row[key]` as a non-empty string, or a DataError naming the row and field."""
    value = row.get(key)
    if value is None and allow_missing:
        return None
    if not isinstance(value, str) or not value.strip():
        got = "missing" if value is None else f"{type(value).__name__} {value!r:.60}"
        raise DataError(f"{where}: field '{key}' must be a non-empty string, got {got}")
    return value


def require_int(row: Mapping[str, Any], key: str, where: str, *, minimum: int = 0) -> int:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        got = "missing" if value is None else f"{type(value).__name__} {value!r:.60}"
        raise DataError(f"{where}: field '{key}' must be an integer >= {minimum}, got {got}")
    return value


def require_object(row: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(row, Mapping):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    return row
