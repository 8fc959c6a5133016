"""What every judge returns and the two layers a judge is made of.

A *backend* talks to a model: an OpenAI-compatible endpoint, or an in-process transformers model.
It offers two primitives:
  - `chat(messages, max_tokens)`: free text (used with an explicit parser),
  - `choose(messages, options)`: a probability per option string (local_hf reads these from the
    next-token distribution; API backends may fall back to chat + parse).
A *judge* (`longwriter.judges.tasks`) owns one prompt template and its parser together and turns
backend calls into records: a pairwise verdict or a pointwise score, never a bare string.

Records carry the raw text and the error (if any) so that an *unknown* verdict is explainable and
counted, never silently turned into a win or a loss.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal, Protocol, Sequence, runtime_checkable

from longwriter.errors import LongwriterError

Message = dict[str, str]
Verdict = Literal["first", "second", "tie"]


class JudgeError(LongwriterError, RuntimeError):
    """A judge cannot work at all (unreachable endpoint at startup, missing key, missing model)."""


@dataclass
class Usage:
    """Running accounting of one backend (summed over calls)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
    retries: int = 0
    failures: int = 0

    def add(self, other: "Usage") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class ChatResult:
    """One backend chat call. `text` is None when the call failed after retries (see `error`)."""

    text: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    error: str | None = None


@dataclass
class ChoiceResult:
    """One backend choice call: probability per option (renormalised over the options)."""

    probs: dict[str, float] | None
    cached: bool = False
    error: str | None = None


@runtime_checkable
class Backend(Protocol):
    identity: str  # stable id used in cache keys: backend kind + model (+ base_url), never a key

    async def chat(self, messages: Sequence[Message], max_tokens: int) -> ChatResult: ...

    async def choose(self, messages: Sequence[Message], options: Sequence[str]) -> ChoiceResult: ...

    def usage(self) -> Usage: ...


def supports_probs(backend: object) -> bool:
    """True when `backend.choose()` reads real model probabilities (local_hf).

    Backends opt in with a class attribute `provides_probs = True`; for the others (API
    backends) `choose()` is only chat + a strict match, so judge tasks use chat + their parser.
    """
    return bool(getattr(backend, "provides_probs", False))


async def choose_many(backend: Backend, requests: Sequence[Sequence[Message]], options: Sequence[str]
                      ) -> list[ChoiceResult]:
    """`backend.choose_many` when the backend has it, else one `choose` per request (concurrently)."""
    batched = getattr(type(backend), "choose_many", None)
    if batched is not None:
        return await backend.choose_many(requests, options)
    return list(await asyncio.gather(*(backend.choose(messages, options) for messages in requests)))


@dataclass
class PairwiseJudgement:
    """Verdict for (first, second) in the order shown to the judge; None = unknown."""

    verdict: Verdict | None
    raw: str = ""
    cached: bool = False
    error: str | None = None
    probs: dict[str, float] | None = None


@dataclass
class PointwiseJudgement:
    """A score on the template's scale (e.g. 1-10); None = unknown."""

    score: float | None
    raw: str = ""
    cached: bool = False
    error: str | None = None
    extra: dict = field(default_factory=dict)


class PairwiseJudge(Protocol):
    async def compare(
        self, prompt: str, criteria: Sequence[str], first: str, second: str
    ) -> PairwiseJudgement: ...


class PointwiseJudge(Protocol):
    async def score(self, prompt: str, criteria: Sequence[str], response: str) -> PointwiseJudgement: ...
