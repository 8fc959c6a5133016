"""Evaluation formulas (DESIGN section 6; ../shared/benchmarks/README.md): small pure functions.

  S_l  LongBench-Write length score (Bai et al. 2024, "LongWriter", sec. 2.2), per prompt, 0-100.
  S_q  LongBench-Write quality score: six judge dimensions rated 1-5, each mapped to 0-100.
  checklist score: WritingBench (Wu et al. 2025): 1-10 per query-specific criterion, mean.
  win rates: pairwise verdicts of the policy against references.

Lengths are `longwriter.text.count_words` units (English words + one per CJK character).
Repetition rate lives in `longwriter.rewards.format` (shared with the reward); not repeated here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from longwriter.judges.prompts import QUALITY_DIMENSIONS  # the judge's JSON keys, e.g. "breadth_and_depth"
from longwriter.text import count_words

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


def length_score_text(required: int, text: str) -> float:
    """S_l of a text, counting words as LongBench-Write does (CJK characters count one each)."""
    return length_score(required, count_words(text))


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
    """S_q from per-sample judge ratings {dimension: 1-5 or None}.

    Each dimension: mean over the samples that have it (None or absent = missing, skipped), then
    (mean - 1) * 25, so 1 -> 0 and 5 -> 100. S_q = mean of the six mapped dimensions; None when a
    dimension has no rating at all (an average over fewer dimensions is not comparable).
    Names are matched case-insensitively, " " = "_" ("Breadth and Depth" = "breadth_and_depth").

    Returns {"s_q": float | None, "dimensions": {dim: mapped | None},
             "missing": {dim: number of samples without it}, "n_samples": int}.
    >>> quality_score([{d: 4 for d in QUALITY_DIMENSIONS}])["s_q"]
    75.0
    """
    sums = dict.fromkeys(QUALITY_DIMENSIONS, 0.0)
    counts = dict.fromkeys(QUALITY_DIMENSIONS, 0)
    for i, sample in enumerate(dimension_scores):
        for name, value in sample.items():
            dim = _normalise_dimension(name)
            if dim not in sums:
                raise ValueError(f"sample {i}: unknown quality dimension {name!r}; known: {QUALITY_DIMENSIONS}")
            if value is None:
                continue
            if not 1 <= value <= 5 or math.isnan(value):
                raise ValueError(f"sample {i}: {name} = {value} is outside the 1-5 scale")
            sums[dim] += value
            counts[dim] += 1
    mapped = {d: ((sums[d] / counts[d]) - 1.0) * 25.0 if counts[d] else None for d in QUALITY_DIMENSIONS}
    complete = all(v is not None for v in mapped.values())
    return {
        "s_q": sum(mapped.values()) / len(mapped) if complete else None,  # type: ignore[arg-type]
        "dimensions": mapped,
        "missing": {d: len(dimension_scores) - counts[d] for d in QUALITY_DIMENSIONS},
        "n_samples": len(dimension_scores),
    }


def checklist_score(scores: Iterable[float | None]) -> float | None:
    """WritingBench sample score: mean of the 1-10 criterion scores, skipping None; None if none.

    >>> checklist_score([8, None, 6])
    7.0
    """
    valid = []
    for score in scores:
        if score is None:
            continue
        if not 1 <= score <= 10 or math.isnan(score):
            raise ValueError(f"checklist score {score} is outside the 1-10 scale")
        valid.append(float(score))
    return sum(valid) / len(valid) if valid else None


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
