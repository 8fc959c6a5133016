"""Judge backend settings: one frozen dataclass per backend, the one home of every default.

Light on purpose (no openai/torch import): Hydra's config schema (`longwriter.config_schema`) reads
these classes at start-up, so `conf/judge/*.yaml` only select a backend and set what differs, while
every key stays overridable from the command line (`judge.concurrency=4`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

from longwriter.judges.base import JudgeError

# Keys of a judge config that select or wrap the backend rather than configure it.
_NON_BACKEND_KEYS = {"name", "backend", "cache"}


@dataclass(frozen=True)
class OpenAISettings:
    """Everything an OpenAI-compatible judge needs, and the one home of its defaults (suited to a generic
    endpoint: no client-side rate limit, no price). conf/judge/openai.yaml and the presets built on it
    override only what their provider needs (URL, model, rate limits, prices)."""

    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"  # name of the environment variable, never the key itself
    api_key_required: bool = True  # false for local servers (vllm serve without --api-key)
    concurrency: int = 16  # requests in flight at once
    rpm: float | None = None  # requests per minute (None: no client-side limit)
    tpm: float | None = None  # tokens per minute, prompt + max completion estimated up front
    timeout_s: float = 120.0  # per attempt
    max_retries: int = 5  # attempts = 1 + max_retries
    backoff_s: float = 1.0  # first backoff; doubles per attempt, with jitter
    max_backoff_s: float = 60.0  # cap on one wait, Retry-After included
    price_per_1m_input: float = 0.0  # USD per 1M prompt tokens
    price_per_1m_output: float = 0.0  # USD per 1M completion tokens
    temperature: float | None = 0.0  # None: omit (models that refuse the parameter)
    max_tokens: int = 1024  # cap on completion tokens per call; tasks ask for less when enough
    max_tokens_field: str = "max_tokens"  # "max_completion_tokens" for OpenAI reasoning models
    extra_body: dict | None = None  # provider extras, e.g. {enable_thinking: false} for Qwen3 (never logged)
    # Secrets for a provider come from the environment only: {header name: env var name} and
    # {request body field: env var name}, read when the backend is built.
    headers_env: dict | None = None
    extra_body_env: dict | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "OpenAISettings":
        """Strict: an unknown key is an error (a typo must not silently fall back to a default)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known - _NON_BACKEND_KEYS)
        if unknown:
            raise JudgeError(f"unknown judge config keys for an openai backend: {unknown}; known: {sorted(known)}")
        return cls(**{k: v for k, v in cfg.items() if k in known})


@dataclass(frozen=True)
class LocalHFSettings:
    """An in-process transformers judge (conf/judge/local_hf.yaml adds which model to load)."""

    max_new_tokens: int = 256  # cap on generated tokens of a free-text (chat) judge call
