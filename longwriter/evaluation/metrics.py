"""Evaluation formulas (DESIGN section 6; ../shared/benchmarks/README.md): small pure functions.

  S_l  LongBench-Write length score (Bai et al. 2024, "LongWriter", sec. 2.2), per prompt, 0-100.
  S_q  LongBench-Write quality score: six judge dimensions rated 1-5, each mapped to 0-100.
  checklist score: WritingBench (Wu et al. 2025): 1-10 per query-specific criterion; overall = pooled mean.
  win rates: pairwise verdicts of the policy against references.

Lengths are `longwriter.text.count_words` units (LongBench-Write's code: ASCII-letter words + CJK ideographs).
Repetition rate lives in `longwriter.rewards.format` (shared with the reward); not repeated here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from longwriter.judges.prompts import QUALITY_DIMENSIONS  # the judge's JSON keys, e.g. "breadth_and_depth"
from longwriter.text import DEFAULT_WORD_COUNT, count_words

Outcome = Literal["win", "tie", "loss"]


def length_score(required: int, output_words: int) -> float:
    """S_l for required length x and output length y, in [0, 100].

    y > x:  100 * max(0, 1 - (y/x - 1) / 3)     (writing 4x the request scores 0)
    y <= x: 100 * max(0, 1 - (x/y - 1) / 2)     (writing a third of the request scores 0)
    y = 0 (x > 0): 0, the limit of the second branch; the reference code divides by zero here.
    x = 0: a request for nothing: 100 if y = 0 else 0 (the limit of the first branch).

    >>> length_score(1000, 1000), round(length_score(1000, 2000), 2), length_score(1000, 500)
    (100.0, 66.67, 50.0)
    """
    if required < 0 or output_words < 0:
        raise ValueError(f"lengths must be >= 0, got required={required}, output_words={output_words}")
    x, y = required, output_words
    if x == 0:
        return 100.0 if y == 0 else 0.0
    if y == 0:
        return 0.0
    if y > x:
        return 100.0 * max(0.0, 1.0 - (y / x - 1.0) / 3.0)
    return 100.0 * max(0.0, 1.0 - (x / y - 1.0) / 2.0)


def length_score_text(required: int, text: str, word_count: str = DEFAULT_WORD_COUNT) -> float:
    """S_l of a text, counting words as LongBench-Write's code does (or by another named convention)."""
    return length_score(required, count_words(text, word_count))


def mean_length_score(required: Sequence[int], output_words: Sequence[int]) -> float | None:
    """S_l over a benchmark: the mean of per-prompt scores; None for no prompts.

    >>> mean_length_score([1000, 1000], [1000, 500])
    75.0
    """
    if len(required) != len(output_words):
        raise ValueError(f"{len(required)} required lengths but {len(output_words)} outputs")
    if not required:
        return None
    return sum(length_score(x, y) for x, y in zip(required, output_words)) / len(required)


def _normalise_dimension(name: str) -> str:
    return "_".join(name.replace("_", " ").lower().split())


def quality_score(dimension_scores: Sequence[Mapping[str, float | None]]) -> dict:
    """S_q from per-sample judge ratings {dimension: 1-5 or None}, as LongBench-Write's code does.

    A sample missing any of the six dimensions (None or absent; the judge was already retried) is
    dropped whole, as `eval_quality.py` drops it. Over the kept samples each dimension's mean maps
    to (mean - 1) * 25 (1 -> 0, 5 -> 100) and S_q is the mean of the six; None when no sample is
    complete. Names are matched case-insensitively, " " = "_" ("Breadth and Depth" = "breadth_and_depth").

    Returns {"s_q": float | None, "dimensions": {dim: mapped | None}, "n_samples": all samples,
             "n_scored": complete samples, "dropped": incomplete samples}.
    >>> quality_score([{d: 4 for d in QUALITY_DIMENSIONS}, {"relevance": 1}])["s_q"]
    75.0
    """
    sums = dict.fromkeys(QUALITY_DIMENSIONS, 0.0)
    kept = 0
    for i, sample in enumerate(dimension_scores):
        values: dict[str, float] = {}
        for name, value in sample.items():
            dim = _normalise_dimension(name)
            if dim not in sums:
                raise ValueError(f"sample {i}: unknown quality dimension {name!r}; known: {QUALITY_DIMENSIONS}")
            if value is None:
                continue
            if not 1 <= value <= 5 or math.isnan(value):
                raise ValueError(f"sample {i}: {name} = {value} is outside the 1-5 scale")
            values[dim] = float(value)
        if len(values) < len(QUALITY_DIMENSIONS):
            continue
        kept += 1
        for dim, value in values.items():
            sums[dim] += value
    mapped = {d: ((sums[d] / kept) - 1.0) * 25.0 if kept else None for d in QUALITY_DIMENSIONS}
    return {
        "s_q": sum(mapped.values()) / len(mapped) if kept else None,  # type: ignore[arg-type]
        "dimensions": mapped,
        "n_samples": len(dimension_scores),
        "n_scored": kept,
        "dropped": len(dimension_scores) - kept,
    }


def _checked_criterion(score: float) -> float:
    if not 1 <= score <= 10 or math.isnan(score):
        raise ValueError(f"checklist score {score} is outside the 1-10 scale")
    return float(score)


def checklist_score(scores: Sequence[float | None]) -> float | None:
    """WritingBench sample score: the mean of its 1-10 criterion scores; None when any is unknown
    (the judge was already retried; WritingBench never reports a partly scored sample) or none given.

    >>> checklist_score([8, 7, 6]), checklist_score([8, None, 6])
    (7.0, None)
    """
    if not scores or any(s is None for s in scores):
        return None
    return sum(_checked_criterion(s) for s in scores) / len(scores)  # type: ignore[arg-type]


def writingbench_score(per_sample: Sequence[Sequence[float | None]]) -> dict:
    """WritingBench overall score as `calculate_scores.py` computes it: every criterion score of
    every (complete) sample pooled into one mean, NOT the mean of the sample means (samples with
    more criteria weigh more). Samples with an unknown criterion are dropped and counted.

    Returns {"overall": float | None, "n_samples", "n_scored", "dropped", "n_criteria"}.
    >>> writingbench_score([[10, 10, 10, 10], [4, 6]])["overall"]  # 48/6, not (10 + 5)/2
    8.0
    """
    total, count, kept = 0.0, 0, 0
    for scores in per_sample:
        if checklist_score(scores) is None:
            continue
        kept += 1
        total += sum(_checked_criterion(s) for s in scores)  # type: ignore[arg-type]
        count += len(scores)
    return {"overall": total / count if count else None, "n_samples": len(per_sample), "n_scored": kept,
            "dropped": len(per_sample) - kept, "n_criteria": count}


def policy_outcome(verdict: str | None, policy_first: bool) -> Outcome | None:
    """A judge verdict on (first, second) seen from the policy's side; None stays unknown.

    >>> policy_outcome("second", policy_first=False), policy_outcome("tie", True)
    ('win', 'tie')
    """
    if verdict is None:
        return None
    if verdict == "tie":
        return "tie"
    if verdict not in ("first", "second"):
        raise ValueError(f"unknown verdict {verdict!r}; expected 'first', 'second', 'tie' or None")
    return "win" if (verdict == "first") == policy_first else "loss"


def win_rates(verdicts: Iterable[str | None]) -> dict[str, float]:
    """Fractions of win / tie / loss / unknown over policy-side outcomes (None = unknown).

    Unknown verdicts stay in the denominator and are reported, never counted as wins or losses.
    >>> win_rates(["win", "win", "tie", None])
    {'win': 0.5, 'tie': 0.25, 'loss': 0.0, 'unknown': 0.25, 'n': 4}
    """
    counts = {"win": 0, "tie": 0, "loss": 0, "unknown": 0}
    for verdict in verdicts:
        key = "unknown" if verdict is None else verdict
        if key not in counts:
            raise ValueError(f"unknown outcome {verdict!r}; expected 'win', 'tie', 'loss', 'unknown' or None")
        counts[key] += 1
    n = sum(counts.values())
    rates: dict[str, float] = {k: (v / n if n else 0.0) for k, v in counts.items()}
    rates["n"] = n
    return rates
