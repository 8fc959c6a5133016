"""LongWriter-Zero format reward (DESIGN 3.3).

A completion is *well formed* when it is exactly one <think>...</think> followed by exactly one
<answer>...</answer> with nothing outside them (variant "think"), or exactly one
<answer>...</answer> and nothing else (variant "no_think"), and the answer is not empty.
It is *valid* when, in addition, the answer is not degenerate repetition:
    repetition = share of repeated n-grams of the answer (`longwriter.text.repetition_rate`,
                 words; CJK characters), n = 3 by default,
    repetitive = repetition > repetition_threshold (default 0.3).
Calibration: on the 114 WritingBench length-subset queries of 300-3000 words, natural English
text measures 0.05 (median) and 0.24 (99th percentile) at n = 3; loops measure above 0.5.

Reward: 1 when valid; `partial_credit` (default 0) when well formed but repetitive; 0 otherwise.
Metrics: format/valid_rate, format/well_formed_rate, format/repetitive_rate,
format/repetition/mean (measured on the best-effort answer of every completion).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from longwriter.rewards.base import BuildContext, ComponentScores, RolloutBatch, nanmean, parse_options, rate, \
    register_component
from longwriter.text import repetition_rate, split_think_answer

_ANSWER_ONLY = re.compile(r"^\s*<answer>(?P<answer>.*?)</answer>\s*$", re.DOTALL)
_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def parse_format(completion: str, variant: str) -> tuple[str, bool]:
    """(answer, well_formed) of a completion under variant "think" or "no_think"."""
    text = completion or ""
    if variant == "think":
        parts = split_think_answer(text)
        return parts.answer, parts.well_formed and bool(parts.answer)
    if variant == "no_think":
        counts_ok = text.count("<answer>") == 1 and text.count("</answer>") == 1
        no_think = "<think>" not in text and "</think>" not in text
        match = _ANSWER_ONLY.match(text) if counts_ok and no_think else None
        if match:
            answer = match["answer"].strip()
            return answer, bool(answer)
        return split_think_answer(text).answer, False
    raise ValueError(f"format variant must be 'think' or 'no_think', got '{variant}'")


@dataclass
class FormatConfig:
    """variant: "think" | "no_think" (default: the recipe's prompt template; "plain" needs one).
    partial_credit: reward for a well-formed but repetitive answer.
    repetition_n / repetition_threshold: the degenerate-repetition test (see module doc)."""

    variant: str | None = None
    partial_credit: float = 0.0
    repetition_n: int = 3
    repetition_threshold: float = 0.3


@register_component("format")
class FormatComponent:
    """Format reward per completion; never NaN (every completion has a format)."""

    def __init__(self, config: FormatConfig | None = None) -> None:
        self.config = config or FormatConfig(variant="think")
        if self.config.variant not in ("think", "no_think"):
            raise ValueError(f"format: variant must be 'think' or 'no_think', got {self.config.variant!r}")
        if not 0.0 <= self.config.partial_credit <= 1.0:
            raise ValueError(f"format: partial_credit must be in [0, 1], got {self.config.partial_credit}")
        if self.config.repetition_n < 1:
            raise ValueError(f"format: repetition_n must be >= 1, got {self.config.repetition_n}")

    @classmethod
    def from_config(cls, options: Mapping[str, Any], ctx: BuildContext) -> "FormatComponent":
        config = parse_options(FormatConfig, options, "format")
        if config.variant is None:
            if ctx.prompt_template == "plain":
                raise ValueError("format: the recipe's prompt_template is 'plain' (no tags to check); "
                                 "use prompt_template think/no_think or set the component's variant")
            config.variant = ctx.prompt_template
        return cls(config)

    def check(self, completion: str) -> tuple[float, bool, float]:
        """(reward, well_formed, repetition) for one completion."""
        answer, well_formed = parse_format(completion, self.config.variant or "think")
        repetition = repetition_rate(answer, self.config.repetition_n)
        if not well_formed:
            return 0.0, False, repetition
        if repetition > self.config.repetition_threshold:
            return self.config.partial_credit, True, repetition
        return 1.0, True, repetition

    async def score(self, batch: RolloutBatch) -> ComponentScores:
        judged = [self.check(c) for c in batch.completions]
        rewards = np.array([r for r, _, _ in judged], dtype=np.float64)
        well_formed = np.array([w for _, w, _ in judged], dtype=bool)
        repetition = np.array([p for _, _, p in judged], dtype=np.float64)
        repetitive = repetition > self.config.repetition_threshold
        metrics = {
            "format/valid_rate": rate(well_formed & ~repetitive),
            "format/well_formed_rate": rate(well_formed),
            "format/repetitive_rate": rate(repetitive),
            "format/repetition/mean": nanmean(repetition),
        }
        return ComponentScores(rewards, metrics)
