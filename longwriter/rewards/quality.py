"""Writing-quality reward (DESIGN 3.3): a number per response, measured on the answer part.

Two sources, chosen by config (`source`):
- "reward_model": a sequence-classification reward model (transformers
  `AutoModelForSequenceClassification`), reward = logits[:, 0] on the chat-formatted
  prompt + answer. LongWriter-Zero uses such an RM; its raw logits are fine because GRPO
  normalises each component within its group.
- "judge": a pointwise LLM judge score s on [score_min, score_max] (1-10), mapped to [0, 1] as
  (s - score_min) / (score_max - score_min); an unknown score is NaN (neutral), and counted.
- "auto" (default): the reward model when one is given to `build_recipe`, else the judge.
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
from longwriter.rewards.base import BuildContext, ComponentScores, RolloutBatch, nanmean, parse_options, rate, \
    register_component

logger = logging.getLogger(__name__)

ModelAndTokenizer = tuple[Any, Any]


class RewardModelScorer:
    """Scores (messages, answer) pairs with a sequence-classification RM, loaded lazily once.

    `model` is either an already-loaded (model, tokenizer) pair or a zero-argument callable
    returning one (so that building a recipe does not load weights). Texts longer than
    `max_length` tokens are truncated on the right (the end of a very long answer is not seen).
    """

    def __init__(self, model: ModelAndTokenizer | Callable[[], ModelAndTokenizer],
                 max_length: int = 4096, batch_size: int = 4) -> None:
        self._source = model
        if not isinstance(model, tuple) and not callable(model):
            raise TypeError("reward model: give a (model, tokenizer) tuple or a callable returning one")
        self._loaded: ModelAndTokenizer | None = tuple(model) if isinstance(model, tuple) else None
        self._lock = threading.Lock()
        self.max_length = max_length
        self.batch_size = max(1, batch_size)

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
        import torch

        model, tokenizer = self._model()
        texts = [self.format_text(tokenizer, m, a) for m, a in zip(prompts, answers)]
        # Without a pad token, batches would need padding the model cannot locate: go one by one.
        step = self.batch_size if tokenizer.pad_token is not None else 1
        device = next(model.parameters()).device
        out: list[float] = []
        model.eval()
        with torch.inference_mode():
            for start in range(0, len(texts), step):
                chunk = texts[start:start + step]
                enc = tokenizer(chunk, return_tensors="pt", padding=len(chunk) > 1, truncation=True,
                                max_length=self.max_length).to(device)
                out += model(**enc).logits[:, 0].float().cpu().tolist()
        return np.asarray(out, dtype=np.float64)


@dataclass
class QualityConfig:
    """source: "auto" | "reward_model" | "judge"; RM: max_length, batch_size; judge: score scale."""

    source: str = "auto"
    max_length: int = 4096
    batch_size: int = 4
    score_min: float = 1.0
    score_max: float = 10.0


@register_component("quality")
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
            source = "reward_model" if ctx.reward_model is not None else "judge"
        if source == "reward_model":
            if ctx.reward_model is None:
                raise ValueError("quality: source 'reward_model' but build_recipe got no reward_model")
            scorer = ctx.reward_model if isinstance(ctx.reward_model, RewardModelScorer) else \
                RewardModelScorer(ctx.reward_model, config.max_length, config.batch_size)
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
            rewards = await asyncio.to_thread(self.reward_model.score, prompts, answers)
            return ComponentScores(rewards, {"quality/rm_score/mean": nanmean(rewards)})
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
