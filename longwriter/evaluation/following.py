"""Does a policy follow the requested length, or write one length for every request? (DESIGN 7b)

S_l alone cannot tell: a policy that always writes the middle of a narrow span scores high. These
figures separate following from shifting, over prompts with required counts x and produced counts y:

  Spearman rho(x, y)   rank correlation (average ranks for ties); 1 = longer requests always get
                       longer answers, 0 = length-blind.
  slope                least-squares slope of log(y) on log(x); 1 = proportional following, 0 = one
                       length for all (answers of 0 words are left out: log 0 is undefined).
  length-blind ceiling the best mean S_l any constant-length policy reaches on the same x: the bar a
                       learned policy must clear before its S_l says anything about following
                       (90.3 on targets 20..40, 71.5 on 15..150).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from longwriter.evaluation.metrics import length_score, mean_length_score


def _ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank (as scipy.stats.rankdata's 'average')."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _pearson(x: Sequence[float], y: Sequence[float]) -> float:
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else math.nan


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho of paired values; NaN when fewer than 2 pairs or either side is constant.

    >>> spearman([10, 20, 30], [5, 50, 40]), spearman([1, 2, 3], [7, 7, 7])
    (0.5, nan)
    """
    if len(x) != len(y):
        raise ValueError(f"{len(x)} x values but {len(y)} y values")
    if len(x) < 2:
        return math.nan
    return _pearson(_ranks(x), _ranks(y))


def log_slope(required: Sequence[int], produced: Sequence[int]) -> float:
    """Least-squares slope of log(produced) on log(required), over pairs with both > 0; NaN if undefined.

    >>> round(log_slope([10, 20, 40], [30, 60, 120]), 6), log_slope([10, 20, 40], [50, 50, 50])
    (1.0, 0.0)
    """
    pairs = [(math.log(x), math.log(y)) for x, y in zip(required, produced) if x > 0 and y > 0]
    if len(pairs) < 2:
        return math.nan
    mx = sum(p[0] for p in pairs) / len(pairs)
    my = sum(p[1] for p in pairs) / len(pairs)
    sxx = sum((p[0] - mx) ** 2 for p in pairs)
    if sxx == 0:
        return math.nan
    return sum((p[0] - mx) * (p[1] - my) for p in pairs) / sxx


def length_blind_ceiling(required: Sequence[int]) -> tuple[float, int]:
    """(best mean S_l of any constant answer length, that length) over the required counts.

    Mean S_l of a constant c is piecewise smooth in c with its maximum at or next to one of the
    required counts, so searching every integer from 1 to 4 x the largest count is exact.
    >>> round(length_blind_ceiling([20, 25, 30, 35, 40])[0], 2), length_blind_ceiling([20, 25, 30, 35, 40])[1]
    (90.33, 30)
    """
    if not required:
        raise ValueError("length_blind_ceiling needs at least one required count")
    best, best_c = -1.0, 0
    for c in range(1, 4 * max(required) + 1):
        score = sum(length_score(x, c) for x in required) / len(required)
        if score > best + 1e-12:
            best, best_c = score, c
    return best, best_c


def following_figures(required: Sequence[int], produced: Sequence[int],
                      truncated: Sequence[bool] | None = None) -> dict[str, float]:
    """The following figures of one evaluation (names as logged: `eval/length_following/<name>`)."""
    if len(required) != len(produced):
        raise ValueError(f"{len(required)} required counts but {len(produced)} outputs")
    if not required:
        return {}
    ceiling, _ = length_blind_ceiling(required)
    figures = {
        "length_score": mean_length_score(required, produced),
        "spearman": spearman(required, produced),
        "log_slope": log_slope(required, produced),
        "blind_ceiling": ceiling,
        "median_words": sorted(produced)[len(produced) // 2],
    }
    if truncated is not None:
        figures["truncated_rate"] = sum(bool(t) for t in truncated) / len(truncated)
    return figures
