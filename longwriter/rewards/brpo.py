"""Reference-free pairwise reward: Writing-Zero's bootstrapped reference (Jia et al. 2025, arXiv 2506.00103,
"BRPO": Bootstrapped Relative Policy Optimization).

No reference answers are needed: in each group (the completions to one prompt) one completion, drawn
uniformly at random, becomes the group's temporary reference, and the pairwise judge compares every other
completion of the group with it:
    r_i = win | tie | loss   (1.0 / 0.5 / 0.0 by default, as `pairwise`) for i != ref
    r_ref = tie              (the reference against itself; on the paper's +1/-1 scale this is 0)
    r_i = NaN (unknown)      for an unreadable verdict (neutral within the group, counted)
so the reward is relative within the group by construction, and the advantage step (`reward.combine`)
normalises it as any other reward. The judge, its positions and swap debiasing, unknown-verdict accounting,
cache and concurrency are the `pairwise` component's (longwriter/rewards/pairwise.py). A group of one
completion has nothing to compare with: its reward is unknown.

The draw comes from a `random.Random(seed)` owned by the component, so a run with the same seed and
batches draws the same references. It needs whole groups in one scoring call: the TRL engine scores each
step's groups together; verl's reward loop scores one trajectory at a time, so the verl engine refuses
this component (longwriter/engines/verl/validate.py).
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from longwriter.judges.base import PairwiseJudge
from longwriter.prompting import answer_part, check_template
from longwriter.rewards.base import BuildContext, ComponentScores, Needs, RolloutBatch, parse_options, rate, \
    register_component
from longwriter.rewards.pairwise import POSITIONS, SWAP_PARTIAL, Outcome, combine_orders, response_outcome


@dataclass
class BootstrapPairwiseConfig:
    """position: disadvantage (reference first) | advantage | swap; win/tie/loss: rewards;
    swap_partial: unknown | use_known (swap with one order unreadable); seed: the reference draws."""

    position: str = "swap"
    win: float = 1.0
    tie: float = 0.5
    loss: float = 0.0
    swap_partial: str = "unknown"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.position not in POSITIONS:
            raise ValueError(f"bootstrap_pairwise: position must be one of {list(POSITIONS)}, got '{self.position}'")
        if self.swap_partial not in SWAP_PARTIAL:
            raise ValueError(f"bootstrap_pairwise: swap_partial must be one of {list(SWAP_PARTIAL)}, "
                             f"got '{self.swap_partial}'")


def draw_references(group_index: np.ndarray, rng: random.Random) -> dict[int, int]:
    """{group id: row of its temporary reference}, one uniform draw per group (groups in sorted order)."""
    return {int(g): rng.choice(np.flatnonzero(group_index == g).tolist()) for g in np.unique(group_index)}


@register_component("bootstrap_pairwise", needs=Needs(pairwise_judge=True, whole_group=True))
class BootstrapPairwiseComponent:
    """Each completion judged against a completion drawn from its own group (module doc)."""

    def __init__(self, judge: PairwiseJudge, config: BootstrapPairwiseConfig | None = None,
                 prompt_template: str = "plain") -> None:
        self.judge = judge
        self.config = config or BootstrapPairwiseConfig()
        self.prompt_template = check_template(prompt_template)
        self.rng = random.Random(self.config.seed)

    @classmethod
    def from_config(cls, options: Mapping[str, Any], ctx: BuildContext) -> "BootstrapPairwiseComponent":
        if ctx.pairwise_judge is None:
            raise ValueError("bootstrap_pairwise: the recipe needs a pairwise judge (build_recipe(pairwise_judge=...))")
        return cls(ctx.pairwise_judge, parse_options(BootstrapPairwiseConfig, options, "bootstrap_pairwise"),
                   ctx.prompt_template)

    async def _outcome(self, batch: RolloutBatch, row: int, reference: int) -> tuple[Outcome | None, bool | None]:
        """(outcome for `row`, whether the two orders disagreed: None unless swap with both known)."""
        sample = batch.samples[row]
        answer = answer_part(batch.completions[row], self.prompt_template)
        other = answer_part(batch.completions[reference], self.prompt_template)
        orders = POSITIONS[self.config.position]

        async def judged(response_first: bool) -> Outcome | None:
            first, second = (answer, other) if response_first else (other, answer)
            judgement = await self.judge.compare(sample.user_prompt, sample.criteria, first, second)
            return response_outcome(judgement.verdict, response_first)

        outcomes = await asyncio.gather(*(judged(order) for order in orders))
        outcome, disagreed = combine_orders(outcomes, self.config.swap_partial)
        return outcome, (disagreed if len(outcomes) == 2 and None not in outcomes else None)

    async def score(self, batch: RolloutBatch) -> ComponentScores:
        cfg = self.config
        references = draw_references(batch.group_index, self.rng)
        rows = [i for i in range(len(batch)) if references[int(batch.group_index[i])] != i
                and int((batch.group_index == batch.group_index[i]).sum()) > 1]
        results = await asyncio.gather(*(self._outcome(batch, i, references[int(batch.group_index[i])])
                                         for i in rows))
        rewards = np.full(len(batch), math.nan)
        labels: list[str | None] = [None] * len(batch)
        for g, ref in references.items():
            if int((batch.group_index == g).sum()) > 1:
                rewards[ref], labels[ref] = cfg.tie, "reference"
        value = {"win": cfg.win, "tie": cfg.tie, "loss": cfg.loss}
        outcomes = [outcome for outcome, _ in results]
        for i, outcome in zip(rows, outcomes):
            rewards[i] = math.nan if outcome is None else value[outcome]
        for i, outcome in zip(rows, outcomes):
            labels[i] = outcome or "unknown"
        metrics = {f"brpo/{k}_rate": rate([o == k for o in outcomes]) for k in ("win", "tie", "loss")}
        metrics["brpo/unknown_rate"] = rate([o is None for o in outcomes])
        if cfg.position == "swap":
            metrics["brpo/position_disagreement"] = rate([d for _, d in results if d is not None])
        return ComponentScores(rewards, metrics, labels={"verdict": labels})
