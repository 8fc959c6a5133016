"""Pairwise comparison reward against a curriculum reference (Writing-RL, DESIGN 3.1 and 3.2).

Each completion (its answer part) is compared with `references[min(level, len - 1)]` of its
sample, where the level comes from the curriculum state (or the sample's start_level when the
recipe has no curriculum). Positions:
  disadvantage: reference first, response second (harder for the policy; the paper's default)
  advantage:    response first, reference second
  swap:         both orders; agreement -> that outcome, disagreement -> tie (counted as
                judge/position_disagreement). When one order is unknown, `swap_partial` decides:
                "unknown" (default: a single order carries the position bias swap exists to
                cancel) or "use_known". Both unknown -> unknown.
Rewards: win / tie / loss (1.0 / 0.5 / 0.0, the paper's values). An unknown verdict is never
silently a win or a loss: `unknown` = "neutral" (default: NaN, i.e. zero advantage within its
group), "tie" or "loss", and judge/unknown_rate counts it. A sample without references gets NaN,
counted in judge/no_reference_rate.

Position-bias monitor (reward hacking through the judge's order preference): with a single-order
position, `swap_check_fraction` of the judged completions (sampled, seeded) are judged once more in
the other order; that extra verdict never changes the reward. judge/swap_disagreement is the share
of checked pairs (both orders known) whose outcomes differ; judge/swap_checked counts them. With
position=swap every comparison is checked and judge/swap_disagreement = judge/position_disagreement.

After the verdicts, a TRAINING batch reports wins to the curriculum (only completions with a
known verdict; ties do not move levels); validation batches never touch it by default.

Options that reproduce the public Writing-RL code (`verl/utils/reward_score/writing_rl.py`)
instead of the paper, used by experiments/writing_rl_repro_code.yaml:
  win: 1.1, tie: 0.55, loss: 0.1, unknown: loss   the code pays score + format_score = 1.1 for a
      win, half that for a tie, format_score = 0.1 for a loss and for a reply it cannot read;
  verdict_reading: first_marker | public_code      the code reads the first marker and, without
      one, searches bare letters (`judges.parsers.read_verdict`); applies to chat judges, whose
      reply text is kept (probability judges have no text to read);
  validation_moves_levels: true                    the code's validation reward shares the level
      file with training, so validation wins move levels too.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from longwriter.judges.base import PairwiseJudge, PairwiseJudgement
from longwriter.judges.parsers import VERDICT_READINGS, read_verdict
from longwriter.prompting import answer_part, check_template
from longwriter.rewards.base import BuildContext, ComponentScores, Needs, RolloutBatch, nanmean, parse_options, \
    rate, register_component
from longwriter.curriculum import RULES

logger = logging.getLogger(__name__)

Outcome = Literal["win", "tie", "loss"]
# Which orders each position asks the judge for: True = the response is shown first.
POSITIONS: dict[str, tuple[bool, ...]] = {"disadvantage": (False,), "advantage": (True,), "swap": (False, True)}
UNKNOWN_POLICIES = ("neutral", "tie", "loss")
SWAP_PARTIAL = ("unknown", "use_known")


def response_outcome(verdict: str | None, response_first: bool) -> Outcome | None:
    """The judge's verdict on (first, second) as an outcome for the response; None = unknown."""
    if verdict == "tie":
        return "tie"
    if verdict in ("first", "second"):
        return "win" if (verdict == "first") == response_first else "loss"
    return None


def combine_orders(outcomes: Sequence[Outcome | None], swap_partial: str = "unknown") -> tuple[Outcome | None, bool]:
    """(outcome, disagreed) from the outcomes of one or two orders (see module doc)."""
    known = [o for o in outcomes if o is not None]
    if len(outcomes) == 1 or not known:
        return (known[0] if known else None), False
    if len(known) == 1:
        return (known[0] if swap_partial == "use_known" else None), False
    if known[0] == known[1]:
        return known[0], False
    return "tie", True


@dataclass
class PairwiseConfig:
    """position: disadvantage | advantage | swap; win/tie/loss: rewards; unknown: neutral | tie | loss;
    swap_partial: unknown | use_known; curriculum_rule: any | majority | per_response;
    verdict_reading: last_marker | first_marker | public_code; validation_moves_levels: bool;
    swap_check_fraction / swap_check_seed: the sampled position-bias monitor (module doc)."""

    position: str = "disadvantage"
    win: float = 1.0
    tie: float = 0.5
    loss: float = 0.0
    unknown: str = "neutral"
    swap_partial: str = "unknown"
    curriculum_rule: str = "any"
    verdict_reading: str = "last_marker"
    validation_moves_levels: bool = False
    swap_check_fraction: float = 0.0
    swap_check_seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.swap_check_fraction) <= 1.0:
            raise ValueError(f"pairwise: swap_check_fraction must be in [0, 1], got {self.swap_check_fraction}")
        for name, value, allowed in (("position", self.position, tuple(POSITIONS)),
                                     ("verdict_reading", self.verdict_reading, VERDICT_READINGS),
                                     ("unknown", self.unknown, UNKNOWN_POLICIES),
                                     ("swap_partial", self.swap_partial, SWAP_PARTIAL),
                                     ("curriculum_rule", self.curriculum_rule, RULES)):
            if value not in allowed:
                raise ValueError(f"pairwise: {name} must be one of {list(allowed)}, got '{value}'")


@register_component("pairwise", needs=Needs(pairwise_judge=True, references=True, curriculum=True))
class PairwiseComponent:
    """Judge each completion against its sample's current reference; optionally move the curriculum."""

    def __init__(self, judge: PairwiseJudge, config: PairwiseConfig | None = None, *,
                 curriculum: Any = None, prompt_template: str = "plain") -> None:
        self.judge = judge
        self.config = config or PairwiseConfig()
        self.curriculum = curriculum
        self.prompt_template = check_template(prompt_template)
        self._swap_rng = random.Random(self.config.swap_check_seed)

    @classmethod
    def from_config(cls, options: Mapping[str, Any], ctx: BuildContext) -> "PairwiseComponent":
        if ctx.pairwise_judge is None:
            raise ValueError("pairwise: the recipe needs a pairwise judge (build_recipe(pairwise_judge=...))")
        config = parse_options(PairwiseConfig, options, "pairwise")
        return cls(ctx.pairwise_judge, config, curriculum=ctx.curriculum, prompt_template=ctx.prompt_template)

    def _levels(self, batch: RolloutBatch) -> list[int]:
        """Reference index per completion: curriculum level (or start level), capped at the last."""
        unique = list({s.id: s for s in batch.samples}.values())
        if self.curriculum is not None:
            by_id = dict(zip((s.id for s in unique), self.curriculum.levels(unique)))
        else:
            by_id = {s.id: s.start_level for s in unique}
        return [min(by_id[s.id], max(len(s.references) - 1, 0)) for s in batch.samples]

    async def _compare(self, sample, answer: str, reference: str, response_first: bool) -> PairwiseJudgement:
        first, second = (answer, reference) if response_first else (reference, answer)
        return await self.judge.compare(sample.user_prompt, sample.criteria, first, second)

    def _swap_checked(self, judged: list[int]) -> set[int]:
        """Completions judged a second time in the other order (single-order positions only)."""
        fraction = float(self.config.swap_check_fraction)
        if self.config.position == "swap" or fraction <= 0 or not judged:
            return set()
        k = max(1, round(fraction * len(judged)))
        return set(self._swap_rng.sample(judged, min(k, len(judged))))

    async def _outcomes(self, batch: RolloutBatch, levels: list[int]
                        ) -> tuple[list[Outcome | None], list[bool | None], list[bool]]:
        """Outcome per completion (None = unknown or no reference), whether the two orders disagreed
        (None when not measured), and the sampled swap checks' disagreements (both orders known)."""
        orders = POSITIONS[self.config.position]
        judged = [i for i, s in enumerate(batch.samples) if s.references]
        checked = self._swap_checked(judged)
        calls, owners = [], []
        for i in judged:
            sample = batch.samples[i]
            answer = answer_part(batch.completions[i], self.prompt_template)
            reference = sample.references[levels[i]]
            extra = (not orders[0],) if i in checked else ()
            for response_first in (*orders, *extra):
                calls.append(self._compare(sample, answer, reference, response_first))
                owners.append((i, response_first, bool(extra) and response_first == extra[0]))
        judgements = await asyncio.gather(*calls)  # every judge call of the batch runs concurrently
        per_completion: dict[int, list[Outcome | None]] = {}
        check_outcome: dict[int, Outcome | None] = {}
        for (i, response_first, is_check), judgement in zip(owners, judgements):
            outcome = response_outcome(self._verdict(judgement), response_first)
            if is_check:
                check_outcome[i] = outcome
            else:
                per_completion.setdefault(i, []).append(outcome)
        outcomes: list[Outcome | None] = [None] * len(batch)
        disagreed: list[bool | None] = [None] * len(batch)
        for i, order_outcomes in per_completion.items():
            outcomes[i], disagreed[i] = combine_orders(order_outcomes, self.config.swap_partial)
            if len(order_outcomes) == 2 and None in order_outcomes:
                disagreed[i] = None  # only comparisons with both orders known measure position bias
        checks = [per_completion[i][0] != check_outcome[i] for i in check_outcome
                  if per_completion[i][0] is not None and check_outcome[i] is not None]
        return outcomes, disagreed, checks

    def _verdict(self, judgement: PairwiseJudgement) -> str | None:
        """The judgement's verdict, re-read from its reply text under `verdict_reading` if asked."""
        if self.config.verdict_reading == "last_marker" or not judgement.raw:
            return judgement.verdict
        return read_verdict(judgement.raw, self.config.verdict_reading)[0]

    def _reward(self, outcome: Outcome | None) -> float:
        cfg = self.config
        if outcome is None:
            return {"neutral": math.nan, "tie": cfg.tie, "loss": cfg.loss}[cfg.unknown]
        return {"win": cfg.win, "tie": cfg.tie, "loss": cfg.loss}[outcome]

    async def score(self, batch: RolloutBatch) -> ComponentScores:
        levels = self._levels(batch)
        outcomes, disagreed, checks = await self._outcomes(batch, levels)
        has_ref = np.array([bool(s.references) for s in batch.samples], dtype=bool)
        rewards = np.array([self._reward(o) if has_ref[i] else math.nan for i, o in enumerate(outcomes)])
        metrics = self._metrics(batch, outcomes, disagreed, has_ref, levels)
        if self.config.position == "swap":
            checks = [d for d in disagreed if d is not None]
        if self.config.position == "swap" or self.config.swap_check_fraction > 0:
            metrics["judge/swap_checked"] = float(len(checks))
            metrics["judge/swap_disagreement"] = rate(checks)
        if self.curriculum is not None and (batch.training or self.config.validation_moves_levels):
            metrics["curriculum/moved"] = float(len(self._report(batch, outcomes, has_ref)))
            stored = self.curriculum.snapshot()  # every training sample once the engine registered them
            if stored:
                metrics["curriculum/level/mean_all"] = float(np.mean(list(stored.values())))
        verdicts = [(o or "unknown") if has_ref[i] else None for i, o in enumerate(outcomes)]
        return ComponentScores(rewards, metrics, labels={"verdict": verdicts})

    def _report(self, batch: RolloutBatch, outcomes: list[Outcome | None], has_ref: np.ndarray) -> dict[str, int]:
        """Tell the curriculum which judged responses won (unknown verdicts are left out)."""
        rows = [i for i, o in enumerate(outcomes) if has_ref[i] and o is not None]
        if not rows:
            return {}
        samples = [batch.samples[i] for i in rows]
        return self.curriculum.record(
            [s.id for s in samples], batch.group_index[rows], [outcomes[i] == "win" for i in rows],
            [len(s.references) for s in samples], rule=self.config.curriculum_rule,
            start_levels=[s.start_level for s in samples])

    def _metrics(self, batch: RolloutBatch, outcomes, disagreed, has_ref: np.ndarray, levels) -> dict[str, float]:
        judged = int(has_ref.sum())
        counts = {k: sum(1 for i, o in enumerate(outcomes) if has_ref[i] and o == k) for k in ("win", "tie", "loss")}
        metrics = {f"judge/{k}_rate": (counts[k] / judged if judged else math.nan) for k in counts}
        metrics["judge/unknown_rate"] = (judged - sum(counts.values())) / judged if judged else math.nan
        metrics["judge/no_reference_rate"] = rate(~has_ref)
        if self.config.position == "swap":
            both_known = [d for d in disagreed if d is not None]
            metrics["judge/position_disagreement"] = rate(both_known)
        per_sample = {s.id: levels[i] for i, s in enumerate(batch.samples) if s.references}
        metrics["curriculum/level/mean"] = nanmean(list(per_sample.values()))
        num_levels = max((len(s.references) for s in batch.samples), default=0)
        for level in range(num_levels):  # every level, zeros included, so the series stay continuous
            share = sum(1 for v in per_sample.values() if v == level) / len(per_sample)
            metrics[f"curriculum/level_hist/{level}"] = share
        return metrics
