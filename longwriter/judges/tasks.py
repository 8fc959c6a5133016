"""Judge tasks: each owns one prompt template (prompts.py) and its parser (parsers.py).

Two paths, chosen by the backend (`supports_probs`):
  - probability backends (local_hf): the template's `probs` ending plus an assistant prefill, then
    `backend.choose()` over the marker options. No free text is read at all.
  - chat backends (API): the template's `api` ending, `backend.chat()`, then the strict parser.
Every task returns a record; a failed call or an unparsable reply is a None score/verdict with
`error` set, never an exception and never a guess.
"""

from __future__ import annotations

import asyncio
from typing import Any, Mapping, Sequence

from longwriter.judges.base import (
    Backend,
    Message,
    PairwiseJudgement,
    PointwiseJudgement,
    choose_many,
    supports_probs,
)
from longwriter.judges.parsers import (
    MARKER_VERDICTS,
    LengthRangePrediction,
    parse_checklist_score,
    parse_dimensions,
    parse_length_range,
    parse_score_marker,
    parse_verdict,
)
from longwriter.judges.prompts import QUALITY_DIMENSIONS, format_criteria, get_template

SCORE_OPTIONS = tuple(str(i) for i in range(1, 11))
DEFAULT_MAX_TOKENS = 1024


def prompt_text(prompt: str | Sequence[Message]) -> str:
    """The writing request as text: a string as is, chat messages as their non-system turns."""
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(str(m["content"]) for m in prompt if m.get("role") != "system")


# Tries per judgement when a chat reply cannot be read, as the reference code asks again:
# LongBench-Write's eval_quality.py 5 times, WritingBench's evaluate_benchmark.py 3 times.
QUALITY_TRIES = 5
CHECKLIST_TRIES = 3


async def chat_until_parsed(backend: Backend, messages: Sequence[Message], max_tokens: int, parser: Any,
                            tries: int) -> tuple[Any, Any, str | None, bool]:
    """(parsed, raw text, error, cached): ask until `parser(text)` reports no error, `tries` times at most.

    A retry goes through `backend.chat_retry` when the backend has one (the judge cache: each
    attempt its own key, so a stored unparsable answer is not read back forever). A transport
    failure (text None) is not retried here: the backend already retried it.
    """
    parsed, raw, error, cached = None, "", "no reply", False
    for attempt in range(max(1, tries)):
        retry = getattr(backend, "chat_retry", None) if attempt else None
        result = await (retry(messages, max_tokens, attempt) if retry else backend.chat(messages, max_tokens))
        if result.text is None:
            return None, raw, result.error, result.cached
        parsed, error = parser(result.text)
        raw, cached = result.text, result.cached
        if error is None:
            break
    return parsed, raw, error, cached


def expected_value(probs: Mapping[str, float]) -> float:
    """Mean of the numeric options under their probabilities (options are digit strings)."""
    return sum(float(option) * p for option, p in probs.items())


class _Task:
    """Renders a template into messages for either path."""

    template_id: str

    def __init__(self, backend: Backend, template_id: str | None = None, max_tokens: int | None = None):
        self.backend = backend
        self.template = get_template(template_id or self.template_id)
        self._max_tokens = max_tokens

    @property
    def max_tokens(self) -> int:
        """Completion budget of a chat call: the task's own, else the judge config's cap
        (judge.max_tokens / judge.max_new_tokens), so a reasoning judge only needs a config change."""
        return self._max_tokens or getattr(self.backend, "max_tokens_cap", None) or DEFAULT_MAX_TOKENS

    @property
    def uses_probs(self) -> bool:
        return supports_probs(self.backend)

    def messages(self, probs: bool, **fields: Any) -> list[Message]:
        t = self.template
        ending = t.probs_ending if probs else t.api_ending
        user = f"{t.user}\n\n{ending}".format(**fields)
        out: list[Message] = [{"role": "system", "content": t.system}, {"role": "user", "content": user}]
        if probs and t.prefill:
            out.append({"role": "assistant", "content": t.prefill.format(**fields)})
        return out


class PairwiseTask(_Task):
    """Writing-RL pairwise comparison: Response A = `first`, B = `second`; [[C]] = tie.

    Probability path: the verdict is the argmax of P(A), P(B), P(C) after "Verdict: [[" (no unique
    maximum: unknown). Chat path: the last explicit marker (parsers.parse_verdict).
    """

    template_id = "pairwise_v1"
    options = ("A", "B", "C")

    async def compare(self, prompt: str | Sequence[Message], criteria: Sequence[str], first: str,
                      second: str) -> PairwiseJudgement:
        fields = dict(prompt=prompt_text(prompt), criteria=format_criteria(list(criteria or ())),
                      first=first, second=second)
        if self.uses_probs:
            result = await self.backend.choose(self.messages(True, **fields), self.options)
            if result.probs is None:
                return PairwiseJudgement(None, cached=result.cached, error=result.error)
            best = max(result.probs.values())
            winners = [o for o, p in result.probs.items() if p == best]
            if len(winners) != 1:
                return PairwiseJudgement(None, cached=result.cached, error="no unique most likely marker",
                                         probs=result.probs)
            return PairwiseJudgement(MARKER_VERDICTS[winners[0]], cached=result.cached, probs=result.probs)
        result = await self.backend.chat(self.messages(False, **fields), self.max_tokens)
        if result.text is None:
            return PairwiseJudgement(None, cached=result.cached, error=result.error)
        verdict, error = parse_verdict(result.text)
        return PairwiseJudgement(verdict, raw=result.text, cached=result.cached, error=error)


class PointwiseTask(_Task):
    """Criteria-aware 1-10 score.

    Probability path: the expected value of the score over the options "1".."10" after "Score: "
    (a smooth score, useful for ranking references and computing margins; extra["probs"] keeps
    the distribution). Chat path: the last `Score: N` marker.
    """

    template_id = "pointwise_v1"

    async def score(self, prompt: str | Sequence[Message], criteria: Sequence[str],
                    response: str) -> PointwiseJudgement:
        fields = dict(prompt=prompt_text(prompt), criteria=format_criteria(list(criteria or ())),
                      response=response)
        return await _score_1_to_10(self, fields, parse_score_marker)


async def _score_1_to_10(task: _Task, fields: dict, parser: Any, tries: int = 1) -> PointwiseJudgement:
    if task.uses_probs:
        result = await task.backend.choose(task.messages(True, **fields), SCORE_OPTIONS)
        if result.probs is None:
            return PointwiseJudgement(None, cached=result.cached, error=result.error)
        return PointwiseJudgement(expected_value(result.probs), cached=result.cached,
                                  extra={"probs": result.probs})
    value, raw, error, cached = await chat_until_parsed(task.backend, task.messages(False, **fields),
                                                        task.max_tokens, parser, tries)
    return PointwiseJudgement(value, raw=raw, cached=cached, error=error)


class QualityDimensionsTask(_Task):
    """LongBench-Write S_q judge: six dimensions scored 1-5.

    `score` is the mean of the dimensions that could be read (1-5 scale) and
    extra["dimensions"] maps each dimension to its score or None. Chat path: one JSON reply,
    parsed strictly. Probability path: the options "1".."5" after the prefill `{"<dimension>": `
    for each dimension, the expected value (judged independently of the others); the six
    requests go as one `choose_many`, so the local judge reads the shared prompt only once.
    A chat reply missing a dimension is asked again (QUALITY_TRIES in all, as LongBench-Write's
    code does); `metrics.quality_score` then drops a sample that is still incomplete. `criteria` is accepted for the protocol and not used (fixed dimensions).
    """

    template_id = "quality_v1"
    dimensions = QUALITY_DIMENSIONS

    async def score(self, prompt: str | Sequence[Message], criteria: Sequence[str],
                    response: str) -> PointwiseJudgement:
        fields = dict(prompt=prompt_text(prompt), response=response)
        raw, cached, error = "", False, None
        if self.uses_probs:
            # One call for the six: they differ only in the prefill, so the local judge reads the
            # shared prompt once (LocalHFBackend.choose_many); other backends get six choose() calls.
            results = await choose_many(self.backend, [self.messages(True, dimension=d, **fields)
                                                       for d in self.dimensions], ("1", "2", "3", "4", "5"))
            dims = {d: (None if r.probs is None else expected_value(r.probs)) for d, r in zip(self.dimensions, results)}
            cached = all(r.cached for r in results)
            errors = [f"{d}: {r.error}" for d, r in zip(self.dimensions, results) if r.error]
            error = "; ".join(errors) or None
        else:
            parsed, raw, error, cached = await chat_until_parsed(
                self.backend, self.messages(False, dimension="", **fields), self.max_tokens,
                lambda text: parse_dimensions(text, self.dimensions), QUALITY_TRIES)
            dims = parsed or {d: None for d in self.dimensions}
        present = [v for v in dims.values() if v is not None]
        score = sum(present) / len(present) if present else None
        return PointwiseJudgement(score, raw=raw, cached=cached, error=error, extra={"dimensions": dims})


def format_checklist_item(item: str | Mapping[str, Any]) -> str:
    """A WritingBench checklist item ({name, criteria_description, "1-2": ..., ...}) as text."""
    if isinstance(item, str):
        return item
    lines = [f"{item.get('name', 'Criterion')}: {item.get('criteria_description', '')}".strip()]
    bands = [k for k in item if k not in ("name", "criteria_description")]
    lines += [f"- {band}: {item[band]}" for band in bands]
    return "\n".join(lines)


class ChecklistTask(_Task):
    """WritingBench-style critic: 1-10 against one checklist criterion at a time.

    `score_item` judges one criterion (chat path: an integer 1-10, an unreadable reply asked again,
    CHECKLIST_TRIES in all, as WritingBench does); `score` judges each criterion (concurrently) and
    returns their mean with extra["items"] (one score or None per criterion).
    """

    template_id = "checklist_v1"

    async def score_item(self, prompt: str | Sequence[Message], item: str | Mapping[str, Any],
                         response: str) -> PointwiseJudgement:
        fields = dict(prompt=prompt_text(prompt), criterion=format_checklist_item(item), response=response)
        return await _score_1_to_10(self, fields, parse_checklist_score, CHECKLIST_TRIES)

    async def score(self, prompt: str | Sequence[Message], criteria: Sequence[str | Mapping[str, Any]],
                    response: str) -> PointwiseJudgement:
        if not criteria:
            return PointwiseJudgement(None, error="no checklist criteria")
        items = await asyncio.gather(*(self.score_item(prompt, c, response) for c in criteria))
        scores = [j.score for j in items]
        present = [s for s in scores if s is not None]
        errors = [f"item {i}: {j.error}" for i, j in enumerate(items) if j.error]
        return PointwiseJudgement(sum(present) / len(present) if present else None,
                                  cached=all(j.cached for j in items), error="; ".join(errors) or None,
                                  extra={"items": scores})


class LengthRangeTask(_Task):
    """LongWriter-Zero query length prediction: JSON {"range": [lo, hi]} validated by the rules.

    Always the chat path (a range is not a small set of options), greedy on local models.
    """

    template_id = "length_range_v1"

    async def predict(self, prompt: str | Sequence[Message]) -> LengthRangePrediction:
        result = await self.backend.chat(self.messages(False, prompt=prompt_text(prompt)), self.max_tokens)
        if result.text is None:
            return LengthRangePrediction(None, "backend_error", cached=result.cached, error=result.error)
        prediction = parse_length_range(result.text)
        prediction.cached = result.cached
        return prediction
