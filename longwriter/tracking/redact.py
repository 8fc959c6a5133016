"""Keep secrets out of MLflow params, artifacts and logs.

A key whose name looks like a secret has its value replaced. Keys that *name* an environment
variable (e.g. `api_key_env: OPENAI_API_KEY`) are kept: the variable's name is not a secret.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "***REDACTED***"
_SECRET_KEY = re.compile(r"(api[_-]?key|secret|password|passwd|credential|authorization|(^|[_-])token$)", re.I)
_NAMES_AN_ENV_VAR = re.compile(r"(_env|_env_var|_variable)$", re.I)
# Token counts and limits are numbers, not secrets.
_NUMERIC_TOKEN_KEY = re.compile(r"(max_tokens|max_new_tokens|tokens_per_minute|tpm|_tokens)$", re.I)


def is_secret_key(key: str) -> bool:
    if _NAMES_AN_ENV_VAR.search(key) or _NUMERIC_TOKEN_KEY.search(key):
        return False
    return bool(_SECRET_KEY.search(key))


def redact(value: Any) -> Any:
    """A copy of nested dicts/lists with the values of secret-looking keys replaced."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if is_secret_key(str(k)) and v not in (None, "") else redact(v)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists become their string form."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    out[prefix.rstrip(".")] = value
    return out
