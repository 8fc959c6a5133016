"""LongWriter-Zero length reward (DESIGN 3.3; Wu et al. 2025, arXiv 2506.18841).

For a word count `len`, the sample's target range [L_lower, L_upper] and a cap L_max:
    r = 1                                   if L_lower <= len <= L_upper
    r = len / L_lower                       if len < L_lower
    r = (L_max - len) / (L_max - L_upper)   if len > L_upper
clipped to [0, 1]. Words are counted as LongBench-Write's code does (`longwriter.text.count_words`:
ASCII-letter words plus CJK ideographs), or by the convention named in the `word_count` option,
on the answer part when the recipe's template is think/no_think.

L_max is either
  absolute (`l_max`, words; the paper's one fixed cap for every sample), default 12000: the largest
    upper bound the length-range predictor may return (DESIGN 5), so the reward reaches 0 exactly
    where no target can reach. At the lengths a CPU run produces this side is almost flat (a
    200-word answer to a 60-100-word request still earns 0.99), so over-length costs nothing; or
  relative (`l_max_ratio`, set => it replaces `l_max`): L_max = l_max_ratio * L_upper per sample,
    so writing twice the upper bound (ratio 2) earns 0 whatever the request. The CPU default
    (conf/reward/length.yaml) uses this one; the repro presets keep the paper's absolute cap.
When a sample's L_upper >= L_max the decay has no room and any length above L_upper gets 0 (a hard cap).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from longwriter.data.length_requirements import MAX_WORDS
from longwriter.prompting import answer_part, check_template
from longwriter.rewards.base import BuildContext, ComponentScores, Needs, RolloutBatch, nanmean, parse_options, \
    rate, register_component
from longwriter.text import DEFAULT_WORD_COUNT, check_word_count, count_words

logger = logging.getLogger(__name__)


def length_reward(words: int, lower: int, upper: int, l_max: float) -> float:
    """The piecewise length reward above for one response; clipped to [0, 1]."""
    if lower <= words <= upper:
        return 1.0
    if words < lower:  # lower > words >= 0, so lower > 0 here
        return max(0.0, min(1.0, words / lower))
    if l_max <= upper:
        return 0.0
    return max(0.0, min(1.0, (l_max - words) / (l_max - upper)))


@dataclass
class LengthConfig:
    """Where the over-length reward reaches 0 (see module doc): `l_max` words (absolute), or
    `l_max_ratio` * each sample's upper bound (relative; when set it replaces `l_max`);
    word_count: a `longwriter.text.WORD_COUNTS` convention (LongBench-Write's by default)."""

    l_max: float = float(MAX_WORDS)
    l_max_ratio: float | None = None
    word_count: str = DEFAULT_WORD_COUNT

    def __post_init__(self) -> None:
        check_word_count(self.word_count)

    def cap(self, upper: int) -> float:
        """L_max for a sample whose range ends at `upper` words."""
        return self.l_max if self.l_max_ratio is None else self.l_max_ratio * upper


@register_component("length", needs=Needs(length_ranges=True))
class LengthComponent:
    """Length reward per completion; NaN for samples without a feasible length range."""

    def __init__(self, config: LengthConfig | None = None, prompt_template: str = "plain") -> None:
        self.config = config or LengthConfig()
        self.prompt_template = check_template(prompt_template)
        if self.config.l_max <= 0:
            raise ValueError(f"length: l_max must be positive, got {self.config.l_max}")
        ratio = self.config.l_max_ratio
        if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or ratio <= 1):
            raise ValueError(f"length: l_max_ratio must be a number > 1 (the cap is l_max_ratio * L_upper) "
                             f"or null for the absolute l_max, got {ratio!r}")

    @classmethod
    def from_config(cls, options: Mapping[str, Any], ctx: BuildContext) -> "LengthComponent":
        return cls(parse_options(LengthConfig, options, "length"), ctx.prompt_template)

    async def score(self, batch: RolloutBatch) -> ComponentScores:
        n = len(batch)
        rewards = np.full(n, math.nan)
        words = np.zeros(n)
        below = np.zeros(n, dtype=bool)
        above = np.zeros(n, dtype=bool)
        applicable = np.zeros(n, dtype=bool)
        for i, (sample, completion) in enumerate(zip(batch.samples, batch.completions)):
            words[i] = count_words(answer_part(completion, self.prompt_template), self.config.word_count)
            length_range = sample.length_range
            # [0, 0] marks an infeasible request (DESIGN 5); data selection drops those, but a
            # stray one is "not applicable" rather than a reward for writing nothing.
            if length_range is None or tuple(length_range) == (0, 0):
                continue
            lower, upper = length_range
            applicable[i] = True
            rewards[i] = length_reward(int(words[i]), lower, upper, self.config.cap(upper))
            below[i], above[i] = words[i] < lower, words[i] > upper
        metrics = {
            "length/words/mean": nanmean(words),
            "length/applicable_rate": rate(applicable),
            "length/in_range_rate": rate(applicable & ~below & ~above, int(applicable.sum())),
            "length/below_rate": rate(below, int(applicable.sum())),
            "length/above_rate": rate(above, int(applicable.sum())),
        }
        return ComponentScores(rewards, metrics)
