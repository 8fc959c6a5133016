"""Judge backend for any OpenAI-compatible endpoint (OpenAI, DashScope compatible mode, vllm serve).

The openai client's own retries are off (`max_retries=0`): this module owns the retry loop so
that every attempt passes the rate limiter, is counted (Usage.requests counts HTTP attempts,
Usage.retries the repeats) and a call that still fails returns `ChatResult(text=None, error=...)`
instead of raising: the reward turns it into an *unknown* verdict and counts it.
Retried: timeouts, connection errors, 429 and 5xx (Retry-After honoured). Not retried: other 4xx.

The API key is read once from the environment variable named by `api_key_env` and handed to the
client; it never appears in this object's repr, in config dumps or in log messages.

`choose()` on an API backend is chat + a strict match of the whole reply against the options
(one-hot probabilities). The judge tasks do not use it: for API backends they call `chat()` and
parse their own explicit markers (see `tasks.py`).
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import logging
import math
import os
import random
import time
from dataclasses import asdict
from typing import Any, Mapping, Sequence

import openai

from longwriter.judges.base import ChatResult, ChoiceResult, JudgeError, Message, Usage
from longwriter.judges.ratelimit import LoopLocal, RateLimiter
from longwriter.judges.settings import OpenAISettings

logger = logging.getLogger(__name__)

def _from_env(names: Mapping[str, str] | None, key: str) -> dict[str, str]:
    """{name: value of the environment variable it names}; a missing variable is one clear error."""
    values = {}
    for name, variable in (names or {}).items():
        value = os.environ.get(str(variable))
        if not value:
            raise JudgeError(f"{key}.{name} names the environment variable {variable}, which is not set; "
                             f"export {variable}=... before starting")
        values[str(name)] = value
    return values


def estimate_tokens(messages: Sequence[Message]) -> int:
    """Upper-ish estimate before the call (about 3 characters a token; CJK is denser, settled later)."""
    return sum(math.ceil(len(str(m.get("content", ""))) / 3) + 4 for m in messages)


def _retry_after_s(error: openai.APIStatusError) -> float | None:
    headers = error.response.headers if error.response is not None else {}
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return None if parsed is None else max(0.0, parsed.timestamp() - time.time())


def _error_message(error: openai.APIStatusError) -> str:
    """The server's own error message when the body has one (OpenAI shape), else the client's."""
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:300]
    return str(error.message)[:300]


def match_option(text: str, options: Sequence[str]) -> str | None:
    """The option the whole reply names (ignoring whitespace, brackets, quotes), else None."""
    cleaned = text.strip().strip("[]*`'\".: \n\t")
    hits = [o for o in options if cleaned == o]
    return hits[0] if len(hits) == 1 else None


class OpenAIBackend:
    """Backend over `openai.AsyncOpenAI` with our retries, limits and accounting."""

    provides_probs = False

    def __init__(self, settings: OpenAISettings, *, seed: int | None = None):
        self.settings = settings
        key = os.environ.get(settings.api_key_env)
        if not key:
            if settings.api_key_required:
                raise JudgeError(
                    f"judge API key missing: set the environment variable {settings.api_key_env} "
                    f"(named by judge.api_key_env)"
                )
            key = "EMPTY"  # local servers ignore it; the client refuses an empty key
        headers = _from_env(settings.headers_env, "judge.headers_env")
        self._extra_body = {**(settings.extra_body or {}), **_from_env(settings.extra_body_env, "judge.extra_body_env")}
        # The key lives only inside this factory's closure and the clients it builds.
        # The aiohttp transport (openai[aiohttp]) costs less CPU per request than the default httpx
        # one: with 16 responses arriving at once on one event loop, that is the difference between
        # 0.895 and 0.933 of the ideal throughput in benchmarks/judge_throughput.py.
        self._clients = LoopLocal(lambda: openai.AsyncOpenAI(
            base_url=settings.base_url, api_key=key, timeout=settings.timeout_s, max_retries=0,
            default_headers=headers or None, http_client=openai.DefaultAioHttpClient(timeout=settings.timeout_s)))
        self._limiter = RateLimiter(settings.concurrency, settings.rpm, settings.tpm)
        self._usage = Usage()
        self._rng = random.Random(seed)
        suffix = "" if settings.temperature == 0 else f"#temperature={settings.temperature}"
        if self._extra_body:  # a digest: the values may be secrets and must not reach the cache file
            suffix += "#extra=" + hashlib.sha256(json.dumps(self._extra_body, sort_keys=True, default=str)
                                                 .encode()).hexdigest()[:16]
        self.identity = f"openai:{settings.model}@{settings.base_url}{suffix}"
        self.max_tokens_cap = settings.max_tokens

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "OpenAIBackend":
        return cls(OpenAISettings.from_config(cfg))

    def __repr__(self) -> str:
        s = self.settings
        return f"OpenAIBackend(model={s.model!r}, base_url={s.base_url!r}, api_key_env={s.api_key_env!r})"

    @property
    def limiter(self) -> RateLimiter:
        return self._limiter

    def usage(self) -> Usage:
        return Usage(**asdict(self._usage))

    def _backoff_s(self, attempt: int) -> float:
        base = min(self.settings.max_backoff_s, self.settings.backoff_s * 2**attempt)
        return base * (0.5 + 0.5 * self._rng.random())  # jitter: spread retries of a burst apart

    def _request(self, messages: Sequence[Message], max_tokens: int) -> dict[str, Any]:
        request: dict[str, Any] = {"model": self.settings.model, "messages": [dict(m) for m in messages],
                                   self.settings.max_tokens_field: max_tokens}
        if self.settings.temperature is not None:
            request["temperature"] = self.settings.temperature
        if self._extra_body:
            request.update(self._extra_body)
        return request

    async def chat(self, messages: Sequence[Message], max_tokens: int) -> ChatResult:
        max_tokens = min(max_tokens, self.settings.max_tokens)
        request = self._request(messages, max_tokens)
        estimate = estimate_tokens(messages) + max_tokens
        client = self._clients.get()
        error, delay = "", 0.0
        for attempt in range(self.settings.max_retries + 1):
            if attempt:
                self._usage.retries += 1
                await asyncio.sleep(delay)
            try:
                async with self._limiter.slot(estimate) as slot:
                    self._usage.requests += 1
                    # The client's generic post() (documented for custom requests), plain JSON back:
                    # the typed create() walks every message through its param transform and builds
                    # pydantic models, ~1 ms of CPU a request that a wave of concurrent responses
                    # pays in series on one event loop. Errors still map to openai exceptions.
                    data = await client.post("/chat/completions", body=request, cast_to=object)
            except openai.APITimeoutError as exc:
                error, delay = _timeout_or_refused(exc, self.settings.timeout_s), self._backoff_s(attempt)
            except openai.APIConnectionError as exc:
                error, delay = f"connection error: {exc.__cause__ or exc}", self._backoff_s(attempt)
            except openai.APIStatusError as exc:
                error = f"HTTP {exc.status_code}: {_error_message(exc)}"
                if exc.status_code != 429 and exc.status_code < 500:
                    break  # the request itself is wrong (auth, model name, context length)
                retry_after = _retry_after_s(exc)
                delay = self._backoff_s(attempt) if retry_after is None else retry_after
                delay = min(delay, self.settings.max_backoff_s)
            except (openai.OpenAIError, ValueError) as exc:  # malformed response body (JSON) and the like
                error = f"malformed response: {type(exc).__name__}: {exc}"
                break
            else:
                result = self._account(data)
                slot.settle(result.prompt_tokens + result.completion_tokens)
                if result.text is not None:
                    return result
                error = result.error or "empty reply"
                break  # a reply without content: asking again would cost the same for nothing
            logger.debug("judge attempt %d failed (%s)", attempt + 1, error)
        else:
            error = f"{error} (after {self.settings.max_retries + 1} attempts)"
        self._usage.failures += 1
        logger.warning("judge call to %s failed: %s", self.settings.base_url, error)
        return ChatResult(text=None, error=error)

    def _account(self, data: Any) -> ChatResult:
        """Tokens and cost from the response's `usage`, then its text (None + error if absent)."""
        if not isinstance(data, dict):
            return ChatResult(None, error=f"malformed response: {str(data)[:200]}")
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        self._usage.prompt_tokens += prompt
        self._usage.completion_tokens += completion
        self._usage.cost_usd += (prompt * self.settings.price_per_1m_input
                                 + completion * self.settings.price_per_1m_output) / 1e6
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"]
        except (KeyError, IndexError, TypeError):
            return ChatResult(None, prompt, completion, error=f"malformed response: {str(data)[:200]}")
        if not isinstance(text, str):
            return ChatResult(None, prompt, completion,
                              error=f"no content (finish_reason={choice.get('finish_reason')})")
        return ChatResult(text=text, prompt_tokens=prompt, completion_tokens=completion)

    async def choose(self, messages: Sequence[Message], options: Sequence[str]) -> ChoiceResult:
        longest = max(len(o) for o in options)
        result = await self.chat(messages, max_tokens=max(8, longest + 8))
        if result.text is None:
            return ChoiceResult(None, error=result.error)
        picked = match_option(result.text, options)
        if picked is None:
            return ChoiceResult(None, error=f"reply names no single option: {result.text[:80]!r}")
        return ChoiceResult({o: float(o == picked) for o in options})

    async def check(self) -> None:
        """Fail fast at startup with one clear message when the endpoint cannot serve the judge."""
        client = self._clients.get()
        where = f"judge endpoint {self.settings.base_url}"
        try:
            page = await client.models.list()
        except openai.APIConnectionError as exc:
            raise JudgeError(f"{where} unreachable: {exc.__cause__ or exc}; "
                             f"start the server or set judge.base_url") from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise JudgeError(f"{where} rejected the API key from ${self.settings.api_key_env} "
                             f"(HTTP {exc.status_code})") from None
        except openai.APIStatusError as exc:
            logger.warning("%s does not list models (HTTP %s); assuming it serves %s",
                           where, exc.status_code, self.settings.model)
            return
        ids = [m.id for m in getattr(page, "data", [])]
        if ids and self.settings.model not in ids:
            logger.warning("%s does not list model %r (it lists %d models, e.g. %s)",
                           where, self.settings.model, len(ids), ids[:5])

    async def aclose(self) -> None:
        """Close the current event loop's HTTP client."""
        client = self._clients.pop_current()
        if client is not None:
            await client.close()


def _timeout_or_refused(exc: Exception, timeout_s: float) -> str:
    """The aiohttp transport reports a refused connection as a connect *timeout*; name it as it is."""
    cause = exc.__cause__ or exc.__context__
    if cause is not None and "Cannot connect to host" in str(cause):
        return f"connection error: {cause}"
    return f"timeout after {timeout_s:g}s"
