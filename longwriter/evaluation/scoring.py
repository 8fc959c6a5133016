"""Evaluation metrics over generated responses: one registered scorer per metric family.

A scorer fills its columns of the per-sample table (`ctx.rows`, one dict per sample) and returns
summary metrics named `eval/<name>/<stat>`. Scorers are selected by name (`eval.metrics`) from a
registry that refuses duplicates; judge scorers run concurrently in one event loop, and every
judge call is awaited through `asyncio.gather` (the backend bounds its own concurrency).

A sample that lacks what a metric needs (no required length, no checklist, no reference) is
skipped and counted in `<metric>/skipped`, never scored 0. A judge answer that cannot be read is
*unknown*: counted (`unknown`, `unknown_rate`), never a low score, a win or a loss.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Sequence

from longwriter.data.schema import Sample
from longwriter.errors import ConfigError
from longwriter.evaluation.following import following_figures
from longwriter.evaluation.metrics import (
    QUALITY_DIMENSIONS,
    checklist_score,
    length_score,
    policy_outcome,
    quality_score,
    win_rates,
    writingbench_score,
)
from longwriter.rewards.format import FormatConfig, parse_format
from longwriter.registry import Registry
from longwriter.rewards.pairwise import POSITIONS, combine_orders
from longwriter.text import DEFAULT_WORD_COUNT, count_words, repetition_rate

Metrics = dict[str, float | None]


@dataclass
class ScoringContext:
    """What every scorer sees. `answers` are the parts judged (see `prompting.answer_part`)."""

    samples: list[Sample]
    completions: list[str]
    answers: list[str]
    rows: list[dict[str, Any]]
    prompt_template: str = "plain"
    pairwise_position: str = "swap"
    pairwise_reference: int = -1  # index into each sample's references (-1 = strongest, 0 = level 0)
    word_count: str = DEFAULT_WORD_COUNT  # a `longwriter.text.WORD_COUNTS` convention
    backend: Any = None  # judge backend; None when no judge metric is selected
    progress: Any = None  # a tqdm bar shared by the judge scorers (None: no bar)
    format: FormatConfig = field(default_factory=FormatConfig)

    async def gather(self, calls: Sequence[Awaitable[Any]]) -> list[Any]:
        """Run judge calls concurrently, advancing the shared progress bar as each one finishes."""
        if self.progress is not None:
            self.progress.total = (self.progress.total or 0) + len(calls)
            self.progress.refresh()

        async def tracked(call: Awaitable[Any]) -> Any:
            try:
                return await call
            finally:
                if self.progress is not None:
                    self.progress.update(1)

        return list(await asyncio.gather(*(tracked(c) for c in calls)))


Scorer = Callable[[ScoringContext], Awaitable[Metrics]]
_SCORERS: Registry[tuple[Scorer, bool]] = Registry("evaluation metric")


def register_scorer(name: str, *, needs_judge: bool = False) -> Callable[[Scorer], Scorer]:
    def decorator(fn: Scorer) -> Scorer:
        _SCORERS.add(name, (fn, needs_judge))
        return fn

    return decorator


def check_metrics(names: Iterable[str]) -> list[str]:
    names = list(names)
    unknown = [n for n in names if n not in _SCORERS]
    if unknown:
        raise ConfigError(f"eval.metrics: unknown {unknown}; available: {sorted(_SCORERS)}")
    return names


def needs_judge(names: Iterable[str]) -> bool:
    return any(_SCORERS[n][1] for n in check_metrics(names))


async def score_all(ctx: ScoringContext, names: Sequence[str]) -> Metrics:
    """Every selected scorer, concurrently; their metrics merged."""
    results = await asyncio.gather(*(_SCORERS[n][0](ctx) for n in check_metrics(names)))
    merged: Metrics = {}
    for metrics in results:
        merged.update(metrics)
    return merged


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def required_length(sample: Sample) -> int | None:
    """The length asked for: LongBench-Write's `length`, else the middle of the sample's range."""
    required = sample.meta.get("required_length")
    if isinstance(required, int) and not isinstance(required, bool):
        return required
    if sample.length_range is not None:
        lo, hi = sample.length_range
        return int((lo + hi) / 2 + 0.5)
    return None


@register_scorer("length")
async def score_length(ctx: ScoringContext) -> Metrics:
    """LongBench-Write S_l per sample (words counted by `ctx.word_count`) and its mean over scored samples."""
    scores, words = [], []
    for sample, answer, row in zip(ctx.samples, ctx.answers, ctx.rows):
        required = required_length(sample)
        row["words"] = count_words(answer, ctx.word_count)
        row["required_length"] = required
        row["length_score"] = None if required is None else length_score(required, row["words"])
        words.append(row["words"])
        if row["length_score"] is not None:
            scores.append(row["length_score"])
    scored = [row for row in ctx.rows if row["length_score"] is not None]
    following = following_figures([r["required_length"] for r in scored], [r["words"] for r in scored])
    return {
        "eval/length_score/mean": _mean(scores),
        "eval/length_score/n": float(len(scores)),
        "eval/length_score/skipped": float(len(ctx.samples) - len(scores)),
        "eval/response_length/words/mean": _mean(words),
        # following, not shifting (evaluation/following.py): rank correlation and log-log slope of
        # required vs produced words, and the best S_l any constant length reaches on these prompts
        **{f"eval/length_following/{name}": following[name] for name in FOLLOWING_KEYS if name in following},
    }


FOLLOWING_KEYS = ("spearman", "log_slope", "blind_ceiling")


@register_scorer("format")
async def score_format(ctx: ScoringContext) -> Metrics:
    """Format validity and repetition (LongWriter-Zero's definitions, `rewards.format`).

    think / no_think templates: the tags must be exactly right (`parse_format`); plain: any
    non-empty answer is well formed. Valid = well formed and repetition <= the threshold.
    """
    cfg = ctx.format
    well, valid, repetitions = [], [], []
    for completion, answer, row in zip(ctx.completions, ctx.answers, ctx.rows):
        if ctx.prompt_template == "plain":
            well_formed = bool(answer.strip())
        else:
            answer, well_formed = parse_format(completion, ctx.prompt_template)
        repetition = repetition_rate(answer, cfg.repetition_n)
        row["format_well_formed"] = well_formed
        row["repetition"] = repetition
        row["format_valid"] = well_formed and repetition <= cfg.repetition_threshold
        well.append(well_formed)
        valid.append(row["format_valid"])
        repetitions.append(repetition)
    n = len(ctx.samples)
    return {
        "eval/format/valid_rate": _mean([float(v) for v in valid]),
        "eval/format/well_formed_rate": _mean([float(w) for w in well]),
        "eval/repetition/mean": _mean(repetitions),
        "eval/repetition/repetitive_rate": (sum(r > cfg.repetition_threshold for r in repetitions) / n) if n else None,
    }


@register_scorer("quality", needs_judge=True)
async def score_quality(ctx: ScoringContext) -> Metrics:
    """LongBench-Write S_q: six dimensions rated 1-5, each mapped to (mean - 1) * 25.

    As the reference code: a reply missing a dimension is asked again (the task), and a sample
    still incomplete is dropped whole (`metrics.quality_score`), counted in `dropped`.
    """
    from longwriter.judges import QualityDimensionsTask

    task = QualityDimensionsTask(ctx.backend)
    judgements = await ctx.gather([task.score(s.user_prompt, (), a) for s, a in zip(ctx.samples, ctx.answers)])
    per_sample = []
    for row, judgement in zip(ctx.rows, judgements):
        dims = dict(judgement.extra.get("dimensions") or {})
        for dim, value in dims.items():
            row[f"quality/{dim}"] = value
        row["quality_score"] = quality_score([dims])["s_q"]
        row["quality_error"] = judgement.error
        per_sample.append(dims)
    result = quality_score(per_sample)
    metrics: Metrics = {
        "eval/quality_score/mean": result["s_q"],
        "eval/quality_score/n": float(result["n_scored"]),
        "eval/quality_score/dropped": float(result["dropped"]),
    }
    for dim in QUALITY_DIMENSIONS:
        metrics[f"eval/quality_score/{dim}"] = result["dimensions"][dim]
    return metrics


def checklist_items(sample: Sample) -> list[Any]:
    """WritingBench's raw checklist items (their 1-10 rubric bands included) or the criteria."""
    raw = sample.meta.get("checklist")
    if isinstance(raw, list) and raw and all(isinstance(item, dict) for item in raw):
        return raw
    return list(sample.criteria)


@register_scorer("checklist", needs_judge=True)
async def score_checklist(ctx: ScoringContext) -> Metrics:
    """WritingBench score: an integer 1-10 per checklist criterion; the overall score pools every
    criterion score of every sample (`metrics.writingbench_score`), as `calculate_scores.py` does.

    A criterion still unreadable after the task's retries leaves its sample unscored (`dropped`).
    """
    from longwriter.judges import ChecklistTask

    task = ChecklistTask(ctx.backend)
    indices = [i for i, s in enumerate(ctx.samples) if checklist_items(s)]
    judgements = await ctx.gather([task.score(ctx.samples[i].user_prompt, checklist_items(ctx.samples[i]),
                                              ctx.answers[i]) for i in indices])
    per_sample, unknown_items, n_items = [], 0, 0
    for i, judgement in zip(indices, judgements):
        items = list(judgement.extra.get("items") or [])
        row = ctx.rows[i]
        row["checklist_items"] = items
        row["checklist_score"] = checklist_score(items)
        row["checklist_error"] = judgement.error
        unknown_items += sum(v is None for v in items)
        n_items += len(items)
        per_sample.append(items)
    result = writingbench_score(per_sample)
    return {
        "eval/checklist_score/mean": result["overall"],
        "eval/checklist_score/n": float(result["n_scored"]),
        "eval/checklist_score/skipped": float(len(ctx.samples) - len(indices)),
        "eval/checklist_score/dropped": float(result["dropped"]),
        "eval/checklist_score/unknown_item_rate": (unknown_items / n_items) if n_items else None,
    }


@register_scorer("pairwise", needs_judge=True)
async def score_pairwise(ctx: ScoringContext) -> Metrics:
    """Win / tie / loss against one reference of each sample: `eval.pairwise_reference` (default -1,
    the strongest; 0 = the level-0 reference, fixed while a curriculum moves during training).

    position=swap judges both orders: agreement gives that outcome, disagreement a tie (counted
    in position_disagreement), and one unknown order makes the comparison unknown.
    """
    from longwriter.judges import PairwiseTask

    if ctx.pairwise_position not in POSITIONS:
        raise ConfigError(f"eval.pairwise_position must be one of {list(POSITIONS)}, got {ctx.pairwise_position!r}")
    task = PairwiseTask(ctx.backend)
    orders = POSITIONS[ctx.pairwise_position]
    calls, owners = [], []
    for i, sample in enumerate(ctx.samples):
        if not sample.references:
            continue
        index = max(-len(sample.references), min(ctx.pairwise_reference, len(sample.references) - 1))
        reference, answer = sample.references[index], ctx.answers[i]
        for policy_first in orders:
            first, second = (answer, reference) if policy_first else (reference, answer)
            calls.append(task.compare(sample.user_prompt, sample.criteria, first, second))
            owners.append((i, policy_first))
    judgements = await ctx.gather(calls)
    per_sample: dict[int, list] = {}
    for (i, policy_first), judgement in zip(owners, judgements):
        per_sample.setdefault(i, []).append(policy_outcome(judgement.verdict, policy_first))
    outcomes, both_known, disagreed = [], 0, 0
    for i, order_outcomes in per_sample.items():
        outcome, disagree = combine_orders(order_outcomes, "unknown")
        ctx.rows[i]["pairwise_outcome"] = outcome or "unknown"
        ctx.rows[i]["pairwise_orders"] = [o or "unknown" for o in order_outcomes]
        outcomes.append(outcome)
        if len(order_outcomes) == 2 and None not in order_outcomes:
            both_known += 1
            disagreed += int(disagree)
    rates = win_rates(outcomes)
    return {
        "eval/pairwise/win_rate": rates["win"] if outcomes else None,
        "eval/pairwise/tie_rate": rates["tie"] if outcomes else None,
        "eval/pairwise/loss_rate": rates["loss"] if outcomes else None,
        "eval/pairwise/unknown_rate": rates["unknown"] if outcomes else None,
        "eval/pairwise/n": float(len(outcomes)),
        "eval/pairwise/skipped": float(len(ctx.samples) - len(outcomes)),
        "eval/pairwise/position_disagreement": (disagreed / both_known) if both_known else None,
    }
