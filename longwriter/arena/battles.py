"""Swap-debiased pairwise battles between contestants' responses, judged by any pairwise judge.

For every prompt and every pair of contestants (a, b) the judge sees both orders, (a, b) and
(b, a). Agreement gives that outcome, disagreement a tie (the judge's position bias cancels), one
or both orders unknown make the battle unknown: it is counted and left out of the ratings, never
a win or a loss (`longwriter.rewards.pairwise.combine_orders`, the same rule as the reward).

Every call goes through the judge backend, so with the judge cache a rerun, or an arena with one
more contestant, pays only the comparisons it has never seen.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from longwriter.arena.ratings import Battle
from longwriter.data.schema import Sample
from longwriter.rewards.pairwise import combine_orders, response_outcome

SCORES = {"win": 1.0, "tie": 0.5, "loss": 0.0}


@dataclass
class BattleRecord:
    """One battle as logged: both orders' verdicts and the combined outcome for model_a."""

    sample_id: str
    model_a: str
    model_b: str
    a_first: str | None   # verdict with a shown first: "first" | "second" | "tie" | None
    b_first: str | None   # verdict with b shown first
    outcome: str | None   # for model_a: "win" | "tie" | "loss" | None (unknown)
    disagreed: bool

    def battle(self) -> Battle | None:
        return None if self.outcome is None else Battle(self.model_a, self.model_b, SCORES[self.outcome])


async def play(judge: Any, samples: Sequence[Sample], answers: Mapping[str, Sequence[str]]) -> list[BattleRecord]:
    """Every pair of contestants on every sample, both orders; `answers[name][i]` answers samples[i]."""
    names = list(answers)
    for name in names:
        if len(answers[name]) != len(samples):
            raise ValueError(f"contestant {name!r} has {len(answers[name])} answers for {len(samples)} prompts")
    calls, owners = [], []
    for i, sample in enumerate(samples):
        for a, b in itertools.combinations(names, 2):
            first, second = answers[a][i], answers[b][i]
            calls.append(judge.compare(sample.user_prompt, sample.criteria, first, second))
            calls.append(judge.compare(sample.user_prompt, sample.criteria, second, first))
            owners.append((sample.id, a, b))
    judgements = await asyncio.gather(*calls)
    records = []
    for k, (sample_id, a, b) in enumerate(owners):
        a_first, b_first = judgements[2 * k].verdict, judgements[2 * k + 1].verdict
        orders = [response_outcome(a_first, True), response_outcome(b_first, False)]
        outcome, disagreed = combine_orders(orders, "unknown")
        records.append(BattleRecord(sample_id, a, b, a_first, b_first, outcome, disagreed))
    return records
