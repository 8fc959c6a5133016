"""DAPO's soft overlong punishment (Yu et al. 2025, arXiv 2503.14476, eq. 13) as a reward component.

For a completion of |y| tokens, a budget L_max and a buffer L_cache before it:
    R = 0                                   if |y| <= L_max - L_cache
    R = ((L_max - L_cache) - |y|) / L_cache if L_max - L_cache < |y| <= L_max
    R = -1                                  if |y| > L_max
So the penalty falls linearly from 0 to -1 across the buffer and never rewards being short. |y| counts
the tokens the engine generated (EOS included: TRL's completion_ids, verl's response mask), on the whole
completion (think part included: the budget caps all of it). TRL ships the same formula as
`trl.rewards.get_soft_overlong_punishment` (tests/test_rewards_overlong.py compares the two); verl's DAPO
reward manager as `reward.overlong_buffer` (its `penalty_factor` is this component's `weight`).

L_max defaults to the engine's budget (`engine.max_completion_length`, DAPO's setting: 16384 + a 4096
buffer = 20480 generated tokens). A larger L_max is refused: completions stop at the budget, so the
penalty could never reach -1 (and with L_max - L_cache >= budget never start). L_cache defaults to a fifth
of L_max (DAPO's 4096 of 20480). This is a different quantity from the `length` component's: that one
counts *words* against each sample's requested range; this one only keeps completions off the token
cap, where a truncated answer is cut mid-sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from longwriter.rewards.base import BuildContext, ComponentScores, RolloutBatch, nanmean, parse_options, rate, \
    register_component

DEFAULT_CACHE_SHARE = 0.2  # DAPO: L_cache 4096 of L_max 20480


def soft_overlong_penalty(tokens: int, l_max: int, l_cache: int) -> float:
    """Eq. 13 above for one completion of `tokens` tokens; in [-1, 0]."""
    start = l_max - l_cache
    if tokens <= start:
        return 0.0
    if tokens <= l_max:
        return (start - tokens) / l_cache
    return -1.0


def _whole(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def resolve_limits(l_max: Any, l_cache: Any, budget: Any, where: str = "soft_overlong") -> tuple[int, int]:
    """(L_max, L_cache) in tokens from the options (null: the defaults above) and the engine's budget
    (None: unknown); a clear ValueError for a value that cannot work."""
    if budget is not None and (not _whole(budget) or budget < 1):
        raise ValueError(f"{where}: the engine's token budget must be a whole number >= 1, got {budget!r}")
    if l_max is None:
        if budget is None:
            raise ValueError(f"{where}: l_max is null (= engine.max_completion_length) but no engine budget is "
                             f"known here; set l_max (tokens)")
        l_max = budget
    if not _whole(l_max) or l_max < 2:
        raise ValueError(f"{where}: l_max must be a whole number of tokens >= 2 (or null: the engine's budget), "
                         f"got {l_max!r}")
    if budget is not None and l_max > budget:
        raise ValueError(f"{where}: l_max={l_max} exceeds engine.max_completion_length={budget}: completions stop "
                         f"at the budget, so the penalty could never reach -1; use l_max <= {budget} "
                         f"(null: the budget)")
    if l_cache is None:
        l_cache = max(1, int(round(DEFAULT_CACHE_SHARE * l_max)))
    if not _whole(l_cache) or l_cache <= 0:
        raise ValueError(f"{where}: l_cache must be a whole number of tokens > 0 (the buffer before l_max in "
                         f"which the penalty falls from 0 to -1), got {l_cache!r}")
    if l_cache >= l_max:
        raise ValueError(f"{where}: l_cache={l_cache} must be < l_max={l_max} (the penalty-free part "
                         f"L_max - L_cache must hold at least one token)")
    return int(l_max), int(l_cache)


@dataclass
class SoftOverlongConfig:
    """l_max: tokens at which the penalty reaches -1 (null: the engine's budget, engine.max_completion_length);
    l_cache: the buffer before l_max in which it falls linearly from 0 (null: a fifth of l_max, DAPO's share)."""

    l_max: int | None = None
    l_cache: int | None = None


@register_component("soft_overlong")
class SoftOverlongComponent:
    """Penalty per completion in [-1, 0] from its token count (RolloutBatch.completion_tokens)."""

    def __init__(self, config: SoftOverlongConfig | None = None, budget: int | None = None) -> None:
        self.config = config or SoftOverlongConfig()
        self.l_max, self.l_cache = resolve_limits(self.config.l_max, self.config.l_cache, budget)

    @classmethod
    def from_config(cls, options: Mapping[str, Any], ctx: BuildContext) -> "SoftOverlongComponent":
        return cls(parse_options(SoftOverlongConfig, options, "soft_overlong"), ctx.max_completion_tokens)

    async def score(self, batch: RolloutBatch) -> ComponentScores:
        if batch.completion_tokens is None:
            raise ValueError("soft_overlong needs each completion's token count (RolloutBatch.completion_tokens), "
                             "which the engine passes with its rollouts; this batch has none")
        tokens = batch.completion_tokens
        rewards = np.array([soft_overlong_penalty(int(t), self.l_max, self.l_cache) for t in tokens],
                           dtype=np.float64)
        in_buffer = (tokens > self.l_max - self.l_cache) & (tokens <= self.l_max)
        metrics = {
            "overlong/tokens/mean": nanmean(tokens),
            "overlong/buffer_rate": rate(in_buffer),
            "overlong/over_rate": rate(tokens > self.l_max),
        }
        return ComponentScores(rewards, metrics)
