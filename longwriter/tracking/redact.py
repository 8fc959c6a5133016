"""Keep secrets out of MLflow params, artifacts, Hydra's saved files and logs.

A key whose name looks like a secret has its value replaced, and so has everything under a key
that carries raw request fields (`extra_body`, `headers`, ...): provider extras may hold tokens
under any name. Keys that *name* an environment variable (e.g. `api_key_env: OPENAI_API_KEY`,
`headers_env: {X-Org: MY_ORG_VAR}`) are kept: the variable's name is not a secret.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf

REDACTED = "***REDACTED***"
HYDRA_DIR = ".hydra"  # where a run keeps its (redacted) copies of Hydra's config, hydra and overrides files
_SECRET_KEY = re.compile(r"(api[_-]?key|secret|password|passwd|credential|authorization|(^|[_-])token$)", re.I)
_NAMES_AN_ENV_VAR = re.compile(r"(_env|_env_var|_variable)$", re.I)
# Token counts and limits are numbers, not secrets.
_NUMERIC_TOKEN_KEY = re.compile(r"(max_tokens|max_new_tokens|tokens_per_minute|tpm|_tokens)$", re.I)
# Subtrees sent as-is to a provider: every value under them is treated as a secret.
OPAQUE_KEYS = frozenset({"extra_body", "extra_headers", "headers", "default_headers"})


def is_secret_key(key: str) -> bool:
    if _NAMES_AN_ENV_VAR.search(key) or _NUMERIC_TOKEN_KEY.search(key):
        return False
    return bool(_SECRET_KEY.search(key))


def is_secret_path(path: str) -> bool:
    """A dotted config path (`judge.extra_body.x`, `judge.api_key`) whose value must not be shown."""
    parts = [p for p in re.split(r"[./]", path.lstrip("+~")) if p]
    return any(p in OPAQUE_KEYS for p in parts[:-1]) or (bool(parts) and (
        is_secret_key(parts[-1]) or parts[-1] in OPAQUE_KEYS))


def _hide(value: Any) -> Any:
    """Every leaf of an opaque subtree replaced (its keys stay: they say what was set)."""
    if isinstance(value, dict):
        return {k: _hide(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hide(v) for v in value]
    return value if value in (None, "") else REDACTED


def redact(value: Any) -> Any:
    """A copy of nested dicts/lists with the values of secret-looking keys replaced."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if str(k) in OPAQUE_KEYS:
                out[k] = _hide(v)
            elif is_secret_key(str(k)) and v not in (None, ""):
                out[k] = REDACTED
            else:
                out[k] = redact(v)
        return out
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def redact_override(override: str) -> str:
    """`judge.extra_body.key=abc` -> `judge.extra_body.key=***REDACTED***` (other overrides unchanged).

    A dict-valued override of an opaque key (`judge.extra_body={a: 1}`) is hidden whole.
    """
    key, sep, value = override.partition("=")
    if not sep or not value:
        return override
    return f"{key}={REDACTED}" if is_secret_path(key) else override


def redact_overrides(overrides: Iterable[str]) -> list[str]:
    return [redact_override(str(o)) for o in overrides]


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists become their string form."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    out[prefix.rstrip(".")] = value
    return out


def redact_hydra(plain: dict) -> dict:
    """A plain Hydra config (or a task config holding `hydra`) with secrets hidden, overrides included."""
    plain = redact(plain)
    hydra = plain.get("hydra") if "hydra" in plain else plain
    overrides = hydra.get("overrides") or {}
    for kind in ("task", "hydra"):
        if overrides.get(kind):
            overrides[kind] = redact_overrides(overrides[kind])
    job = hydra.get("job") or {}
    if job.get("override_dirname"):
        job["override_dirname"] = ",".join(redact_overrides(job["override_dirname"].split(",")))
    return plain


def save_redacted_hydra_files(config: DictConfig, folder: Path) -> None:
    """Hydra's three files, with the values of secret-like keys and opaque subtrees hidden."""
    plain = OmegaConf.to_container(config, resolve=False)
    write_hydra_files(plain, {"hydra": plain.pop("hydra")}, folder)


def write_hydra_files(task_plain: dict, hydra_plain: dict, folder: Path) -> None:
    """`config.yaml`, `hydra.yaml` and `overrides.yaml` in `folder`, secrets hidden."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(redact(task_plain)))
    (folder / "hydra.yaml").write_text(OmegaConf.to_yaml(redact_hydra(hydra_plain)))
    overrides = redact_overrides(hydra_plain["hydra"].get("overrides", {}).get("task") or [])
    (folder / "overrides.yaml").write_text(OmegaConf.to_yaml(overrides))
