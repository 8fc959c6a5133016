"""Checklist (rubric) reward: the judge scores each of the sample's criteria on its own, and the reward is
their weighted, normalised mean (DESIGN 3.8).

RLCF (Viswanathan et al. 2025, arXiv 2507.18624, "Checklists Are Better Than Reward Models") grades a
response on every item of an instruction-specific checklist and averages the item scores with importance
weights; Rubrics as Rewards (arXiv 2507.17746, RaR-Explicit) judges each rubric item independently and
aggregates r = sum_j w_j c_j / sum_j w_j. Here, for a sample with criteria j = 1..k (the WritingBench-style
`Sample.criteria` the data carries), weights w_j >= 0 and judge scores s_j on [score_min, score_max] (1-10,
the WritingBench critic's scale: `ChecklistTask`, one request per criterion):
    u_j = (s_j - score_min) / (score_max - score_min)      in [0, 1]
    r   = sum_{j known} w_j u_j / sum_{j known} w_j        in [0, 1]
An unreadable score for criterion j (after the task's retries) is unknown: counted
(`checklist/unknown_rate`) and left out of both sums; when no criterion with a positive weight is known the
reward is NaN (unknown: neutral in its group, as every judged component's unknown). Weights: 1 each unless
the sample gives `meta["criteria_weights"]` (one non-negative number per criterion, positive sum);
WritingBench's checklists carry none, and its sample score is the plain mean.

A sample without criteria has nothing to score: training refuses such data before the first step
(`longwriter.training_guards.require_criteria`), and `score` raises on one rather than judging it against
generic criteria. Each criterion is its own judge request (the rendered criterion is part of the judge
cache key), all requests of a batch concurrent, bounded by the judge backend.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from longwriter.judges.base import PointwiseJudgement
from longwriter.prompting import answer_part, check_template
from longwriter.rewards.base import BuildContext, ComponentScores, Needs, RolloutBatch, nanmean, parse_options, \
    rate, register_component

WEIGHTS_KEY = "criteria_weights"  # Sample.meta key: one weight per criterion


class CriterionJudge(Protocol):
    """Scores one response against one criterion (`longwriter.judges.ChecklistTask`)."""

    async def score_item(self, prompt: str, item: str, response: str) -> PointwiseJudgement: ...


def criteria_weights(criteria: Sequence[str], meta: Mapping[str, Any], where: str = "sample") -> np.ndarray:
    """[k] weights of a sample's criteria: meta["criteria_weights"] when given, else ones; a clear
    ValueError for weights that cannot normalise (wrong count, negative, not finite, zero sum)."""
    given = meta.get(WEIGHTS_KEY)
    if given is None:
        return np.ones(len(criteria))
    if not isinstance(given, (list, tuple)) or any(isinstance(w, bool) or not isinstance(w, (int, float))
                                                   for w in given):
        raise ValueError(f"{where}: meta.{WEIGHTS_KEY} must be a list of numbers, got {given!r}")
    weights = np.asarray(given, dtype=np.float64)
    if weights.shape != (len(criteria),):
        raise ValueError(f"{where}: meta.{WEIGHTS_KEY} has {weights.size} weights for {len(criteria)} criteria")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(f"{where}: meta.{WEIGHTS_KEY} must be finite, >= 0 and sum to more than 0, got {given!r}")
    return weights


def weighted_checklist_reward(units: Sequence[float], weights: Sequence[float]) -> float:
    """sum_j w_j u_j / sum_j w_j over the known u_j (not NaN); NaN when no positive weight is known."""
    u = np.asarray(units, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    known = ~np.isnan(u) & (w > 0)
    if not known.any():
        return math.nan
    return float(np.dot(w[known], u[known]) / w[known].sum())


@dataclass
class ChecklistConfig:
    """score_min/score_max: the judge's scale (ChecklistTask asks for integers 1-10), mapped to [0, 1]."""

    score_min: float = 1.0
    score_max: float = 10.0

    def __post_init__(self) -> None:
        if not self.score_max > self.score_min:
            raise ValueError(f"checklist: score_max ({self.score_max}) must be greater than score_min "
                             f"({self.score_min})")


@register_component("checklist", needs=Needs(checklist_judge=True, criteria=True))
class ChecklistComponent:
    """Weighted mean of per-criterion judge scores, each mapped to [0, 1] (module doc)."""

    def __init__(self, judge: CriterionJudge, config: ChecklistConfig | None = None,
                 prompt_template: str = "plain") -> None:
        self.judge = judge
        self.config = config or ChecklistConfig()
        self.prompt_template = check_template(prompt_template)

    @classmethod
    def from_config(cls, options: Mapping[str, Any], ctx: BuildContext) -> "ChecklistComponent":
        if ctx.checklist_judge is None:
            raise ValueError("checklist: the recipe needs a per-criterion judge (build_recipe(checklist_judge=...))")
        return cls(ctx.checklist_judge, parse_options(ChecklistConfig, options, "checklist"), ctx.prompt_template)

    def to_unit(self, score: float | None) -> float:
        """Judge score -> [0, 1] (clipped); None -> NaN (unknown)."""
        if score is None or math.isnan(score):
            return math.nan
        lo, hi = self.config.score_min, self.config.score_max
        return float(min(1.0, max(0.0, (score - lo) / (hi - lo))))

    async def score(self, batch: RolloutBatch) -> ComponentScores:
        missing = sorted({s.id for s in batch.samples if not s.criteria})
        if missing:
            raise ValueError(f"checklist: sample(s) {missing[:3]} have no criteria to score; train on data whose "
                             f"samples all carry `criteria` (data=builtin, data=writingbench)")
        weights = [criteria_weights(s.criteria, s.meta, f"sample {s.id!r}") for s in batch.samples]
        answers = [answer_part(c, self.prompt_template) for c in batch.completions]
        requests = [(i, item) for i, s in enumerate(batch.samples) for item in s.criteria]
        judgements = await asyncio.gather(*(
            self.judge.score_item(batch.samples[i].user_prompt, item, answers[i]) for i, item in requests))
        raw = np.array([math.nan if j.score is None else j.score for j in judgements], dtype=np.float64)
        units = np.array([self.to_unit(j.score) for j in judgements], dtype=np.float64)
        rewards = np.full(len(batch), math.nan)
        labels: list[str | None] = []
        start = 0
        for i, sample in enumerate(batch.samples):
            end = start + len(sample.criteria)
            rewards[i] = weighted_checklist_reward(units[start:end], weights[i])
            labels.append(" ".join("?" if math.isnan(s) else f"{s:g}" for s in raw[start:end]))
            start = end
        metrics = {
            "checklist/criterion_score/mean": nanmean(raw),  # pooled over every criterion, as WritingBench's overall
            "checklist/criterion_unit/mean": nanmean(units),
            "checklist/unknown_rate": rate(np.isnan(raw)),  # per criterion judgement
            "checklist/all_unknown_rate": rate(np.isnan(rewards)),  # per completion: reward unknown
            "checklist/criteria/mean": nanmean([len(s.criteria) for s in batch.samples]),
        }
        return ComponentScores(rewards, metrics, labels={"criteria_scores": labels})
