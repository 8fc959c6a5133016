"""Writing-quality reward (DESIGN 3.3): a number per response, measured on the answer part.

Two sources, chosen by config (`source`):
- "reward_model": a sequence-classification reward model (transformers
  `AutoModelForSequenceClassification`) named by `model:` (Hub id or local folder), reward =
  logits[:, 0] on the chat-formatted prompt + answer, truncated on the right to the RM's own input
  limit (or `max_length`). LongWriter-Zero uses such an RM. Scale: the raw logit, an unbounded
  real number whose zero means nothing; GRPO normalises each component within its group, so under
  `combine: mean_advantage` only the order within a group matters, while under `sum_reward` the
  logit's spread sets its weight against the other components (rescale with `weight`).
  Concurrent `score` calls (verl's reward loop scores one trajectory per call) are gathered into
  batches of `batch_size`; the RM sits on the GPU when the scoring process sees one (`device: auto`).
- "judge": a pointwise LLM judge score s on [score_min, score_max] (1-10), mapped to [0, 1] as
  (s - score_min) / (score_max - score_min); an unknown score is NaN (neutral), and counted.
- "auto" (default): the reward model when `model:` is set or one is given to `build_recipe`,
  else the judge.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from longwriter.judges.base import PointwiseJudge
from longwriter.prompting import answer_part, check_template
from longwriter.rewards.base import BuildContext, ComponentScores, Needs, RolloutBatch, nanmean, parse_options, \
    rate, register_component

logger = logging.getLogger(__name__)

ModelAndTokenizer = tuple[Any, Any]


class RewardModelScorer:
    """Scores (messages, answer) pairs with a sequence-classification RM, loaded lazily once.

    `model` is either an already-loaded (model, tokenizer) pair or a zero-argument callable
    returning one (so that building a recipe does not load weights). Texts longer than
    `max_length` tokens (default: the RM's own limit) are truncated on the right (the end of a
    very long answer is not seen; `truncated_rate` counts how often).
    """

    def __init__(self, model: ModelAndTokenizer | Callable[[], ModelAndTokenizer],
                 max_length: int | None = None, batch_size: int = 4) -> None:
        self._source = model
        if not isinstance(model, tuple) and not callable(model):
            raise TypeError("reward model: give a (model, tokenizer) tuple or a callable returning one")
        self._loaded: ModelAndTokenizer | None = tuple(model) if isinstance(model, tuple) else None
        self._lock = threading.Lock()
        self.max_length = max_length
        self.batch_size = max(1, batch_size)
        self._pending: list[tuple[list, list, asyncio.Future]] = []
        self._drainer: asyncio.Task | None = None

    def _model(self) -> ModelAndTokenizer:
        with self._lock:
            if self._loaded is None:
                self._loaded = self._source()  # type: ignore[operator]
                logger.info("quality: loaded reward model %s", type(self._loaded[0]).__name__)
            return self._loaded

    @staticmethod
    def format_text(tokenizer: Any, messages: Sequence[dict[str, str]], answer: str) -> str:
        """The chat-formatted conversation when the tokenizer has a template, else prompt + answer."""
        if getattr(tokenizer, "chat_template", None):
            conversation = [*messages, {"role": "assistant", "content": answer}]
            return tokenizer.apply_chat_template(conversation, tokenize=False)
        user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        return f"{user}\n\n{answer}"

    def score(self, prompts: Sequence[Sequence[dict[str, str]]], answers: Sequence[str]) -> np.ndarray:
        """[N] float: logits[:, 0] for each (messages, answer). Blocking; call it in a thread."""
        return self.score_with_truncation(prompts, answers)[0]

    def score_with_truncation(self, prompts: Sequence[Sequence[dict[str, str]]],
                              answers: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """([N] scores, [N] bool: the text was cut to the RM's input limit). Blocking."""
        import torch

        from longwriter.models.reward_model import max_input_length

        model, tokenizer = self._model()
        limit = self.max_length or max_input_length(model, tokenizer)
        texts = [self.format_text(tokenizer, m, a) for m, a in zip(prompts, answers)]
        # Without a pad token, batches would need padding the model cannot locate: go one by one.
        step = self.batch_size if tokenizer.pad_token is not None else 1
        device = next(model.parameters()).device
        out: list[float] = []
        truncated: list[bool] = []
        model.eval()
        with torch.inference_mode():
            for start in range(0, len(texts), step):
                chunk = texts[start:start + step]
                lengths = [len(ids) for ids in tokenizer(chunk, add_special_tokens=True)["input_ids"]]
                truncated += [limit is not None and n > limit for n in lengths]
                enc = tokenizer(chunk, return_tensors="pt", padding=len(chunk) > 1, truncation=limit is not None,
                                max_length=limit).to(device)
                out += model(**enc).logits[:, 0].float().cpu().tolist()
        return np.asarray(out, dtype=np.float64), np.asarray(truncated, dtype=bool)

    async def score_async(self, prompts: Sequence[Sequence[dict[str, str]]],
                          answers: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """`score_with_truncation` off the event loop; calls that arrive while the RM is busy are
        scored together in the next pass (batches of `batch_size`), so one-trajectory calls batch."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._pending.append((list(prompts), list(answers), future))
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let callers scheduled in the same tick join the first pass
        while self._pending:
            taken, self._pending = self._pending, []
            prompts = [p for entry in taken for p in entry[0]]
            answers = [a for entry in taken for a in entry[1]]
            try:
                scores, truncated = await asyncio.to_thread(self.score_with_truncation, prompts, answers)
            except Exception as error:  # noqa: BLE001 - handed to every waiting caller
                for *_, future in taken:
                    if not future.done():
                        future.set_exception(error)
                continue
            start = 0
            for entry_prompts, _, future in taken:
                end = start + len(entry_prompts)
                if not future.done():
                    future.set_result((scores[start:end], truncated[start:end]))
                start = end


def _lazy_loader(config: "QualityConfig") -> Callable[[], ModelAndTokenizer]:
    """The RM named by `model:`, loaded on first use (building a recipe loads no weights)."""
    if not config.model:
        raise ValueError("quality: source 'reward_model' needs reward.components.quality.model "
                         "(a Hub id or a local folder of a sequence-classification checkpoint)")

    def load() -> ModelAndTokenizer:
        from longwriter.models.reward_model import load_reward_model

        return load_reward_model(str(config.model), config.device)

    return load


@dataclass
class QualityConfig:
    """source: "auto" | "reward_model" | "judge".
    RM: model (Hub id or local folder), device (auto | cpu | cuda[:N]), max_length (null: the RM's
    own limit), batch_size; judge: score scale."""

    source: str = "auto"
    model: str | None = None
    device: str = "auto"
    max_length: int | None = None
    batch_size: int = 8
    score_min: float = 1.0
    score_max: float = 10.0


def quality_needs(options: Mapping[str, Any]) -> Needs:
    """A pointwise judge unless a reward model scores: source "judge", or "auto" without `model`
    (a reward model passed to build_recipe is not known from the config, so "auto" counts it as judged)."""
    config = parse_options(QualityConfig, options, "quality")
    return Needs(pointwise_judge=config.source == "judge" or (config.source == "auto" and not config.model))


@register_component("quality", needs=quality_needs)
class QualityComponent:
    """Writing-quality reward per completion (RM logit, or judge score mapped to [0, 1])."""

    def __init__(self, config: QualityConfig, prompt_template: str = "plain", *,
                 reward_model: RewardModelScorer | None = None, judge: PointwiseJudge | None = None) -> None:
        self.config = config
        self.prompt_template = check_template(prompt_template)
        if (reward_model is None) == (judge is None):
            raise ValueError("quality: give exactly one of a reward model or a pointwise judge")
        if config.score_max <= config.score_min:
            raise ValueError("quality: score_max must be greater than score_min")
        self.reward_model = reward_model
        self.judge = judge

    @classmethod
    def from_config(cls, options: Mapping[str, Any], ctx: BuildContext) -> "QualityComponent":
        config = parse_options(QualityConfig, options, "quality")
        source = config.source
        if source == "auto":
            source = "reward_model" if ctx.reward_model is not None or config.model else "judge"
        if source == "reward_model":
            model = ctx.reward_model if ctx.reward_model is not None else _lazy_loader(config)
            scorer = model if isinstance(model, RewardModelScorer) else \
                RewardModelScorer(model, config.max_length, config.batch_size)
            return cls(config, ctx.prompt_template, reward_model=scorer)
        if source == "judge":
            if ctx.pointwise_judge is None:
                raise ValueError("quality: source 'judge' but build_recipe got no pointwise_judge")
            return cls(config, ctx.prompt_template, judge=ctx.pointwise_judge)
        raise ValueError(f"quality: source must be 'auto', 'reward_model' or 'judge', got '{config.source}'")

    def to_unit(self, score: float | None) -> float:
        """Judge score -> [0, 1]; None (unknown) -> NaN."""
        if score is None or (isinstance(score, float) and math.isnan(score)):
            return math.nan
        lo, hi = self.config.score_min, self.config.score_max
        return float(min(1.0, max(0.0, (score - lo) / (hi - lo))))

    async def score(self, batch: RolloutBatch) -> ComponentScores:
        answers = [answer_part(c, self.prompt_template) for c in batch.completions]
        if self.reward_model is not None:
            prompts = [s.prompt for s in batch.samples]
            rewards, truncated = await self.reward_model.score_async(prompts, answers)
            return ComponentScores(rewards, {"quality/rm_score/mean": nanmean(rewards),
                                             "quality/rm_truncated_rate": rate(truncated)})
        assert self.judge is not None
        judgements = await asyncio.gather(*(
            self.judge.score(s.user_prompt, s.criteria, a) for s, a in zip(batch.samples, answers)
        ))
        raw = np.array([math.nan if j.score is None else j.score for j in judgements], dtype=np.float64)
        rewards = np.array([self.to_unit(j.score) for j in judgements], dtype=np.float64)
        metrics = {
            "quality/judge_score/mean": nanmean(raw),
            "quality/unknown_rate": rate(np.isnan(rewards)),
        }
        return ComponentScores(rewards, metrics)
