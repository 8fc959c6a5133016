"""Reward-hacking monitors: what a policy that games its reward changes first (issue 10 item 7).

LongWriter-Zero reports that its policy learned to pad and repeat; a pairwise policy can win by
exploiting the judge's position bias. Every scored training batch therefore logs, whatever the
recipe (measured on the answer part of each completion):

    monitor/repetition/mean   mean over answers of `repetition_rate(answer, n)` (share of repeated
                              word trigrams inside one answer; loops -> 1)
    monitor/repetition/max    the worst answer of the batch
    monitor/distinct_1, _2    distinct-n over the batch (Li et al. 2016): distinct n-grams of all
                              answers / all n-grams; falls when answers collapse onto one text
    monitor/length_drift/mean mean over answers with a target of  words / mid - 1, where mid is the
                              middle of the sample's word range: 0 on target, +1 = twice as long
                              (padding), -0.5 = half as long
    monitor/length_drift/abs_mean  the same without sign (distance from the target)

The pairwise swap-disagreement monitor needs judge calls and lives with the pairwise component
(`judge/swap_disagreement`).
"""

from __future__ import annotations

import math
from typing import Sequence

from longwriter.data.schema import Sample
from longwriter.rewards.base import nanmean
from longwriter.text import count_words, repetition_rate, repetition_units

DEFAULT_REPETITION_N = 3


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams over all texts / total n-grams (n-grams never cross texts); NaN if none."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        units = repetition_units(text)
        grams = [tuple(units[i:i + n]) for i in range(len(units) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else math.nan


def length_drift(words: int, length_range: tuple[int, int] | None) -> float:
    """words / middle of the range - 1 (0 on target); NaN without a usable range."""
    if length_range is None:
        return math.nan
    mid = (length_range[0] + length_range[1]) / 2
    return words / mid - 1.0 if mid > 0 else math.nan


def batch_monitors(samples: Sequence[Sample], answers: Sequence[str],
                   repetition_n: int = DEFAULT_REPETITION_N) -> dict[str, float]:
    """The `monitor/...` metrics of one batch (see module doc); answers are the answer parts."""
    if len(samples) != len(answers):
        raise ValueError(f"batch_monitors: {len(samples)} samples for {len(answers)} answers")
    repetition = [repetition_rate(a, repetition_n) for a in answers]
    drift = [length_drift(count_words(a), s.length_range) for s, a in zip(samples, answers)]
    return {
        "monitor/repetition/mean": nanmean(repetition),
        "monitor/repetition/max": max(repetition) if repetition else math.nan,
        "monitor/distinct_1": distinct_n(answers, 1),
        "monitor/distinct_2": distinct_n(answers, 2),
        "monitor/length_drift/mean": nanmean(drift),
        "monitor/length_drift/abs_mean": nanmean([abs(d) for d in drift]),
    }


def length_record(step: int, samples: Sequence[Sample], answers: Sequence[str]) -> dict:
    """One step's word counts with each completion's target range (what the length plot draws)."""
    return {
        "step": int(step),
        "sample_ids": [s.id for s in samples],
        "words": [count_words(a) for a in answers],
        "ranges": [list(s.length_range) if s.length_range is not None else None for s in samples],
    }
