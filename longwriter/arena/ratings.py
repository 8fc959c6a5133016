"""Bradley-Terry ratings on the Elo scale, with bootstrap confidence intervals.

Model: P(i beats j) = p_i / (p_i + p_j). A battle scores 1 (win), 0.5 (tie) or 0 (loss) for its
first-named model; a tie counts as half a win for each side (as LMSYS / Arena-Write tables do).
The maximum-likelihood strengths come from Hunter's (2004) MM iteration

    p_i <- W_i / sum_j n_ij / (p_i + p_j)      (W_i: total score of i, n_ij: battles of i and j)

which increases the likelihood at every step. `prior` adds that many virtual ties to every pair
of contestants: it keeps a model that wins (or loses) everything finite and the comparison graph
connected; 0 gives the plain maximum-likelihood fit.

Elo scale: rating_i = 1000 + 400 * log10(p_i / geometric mean of p), so a 400-point gap is 10:1
odds and the contestants' mean rating is 1000. Confidence intervals: refit on battles resampled
with replacement (`bootstrap` times), the 2.5th and 97.5th percentiles of each rating.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

ELO_BASE = 1000.0
ELO_SCALE = 400.0


@dataclass(frozen=True)
class Battle:
    """One swap-debiased comparison on one prompt: `score` is model_a's (1 win, 0.5 tie, 0 loss)."""

    model_a: str
    model_b: str
    score: float


@dataclass(frozen=True)
class Rating:
    name: str
    rating: float
    ci_low: float
    ci_high: float
    wins: int
    ties: int
    losses: int

    @property
    def battles(self) -> int:
        return self.wins + self.ties + self.losses

    @property
    def score_rate(self) -> float | None:
        """(wins + ties / 2) / battles: the share of points taken; None without battles."""
        return (self.wins + 0.5 * self.ties) / self.battles if self.battles else None


def _counts(battles: Sequence[Battle], names: Sequence[str], prior: float) -> tuple[np.ndarray, np.ndarray]:
    """(W, N): total score per model and battle count per pair, virtual ties included."""
    index = {n: i for i, n in enumerate(names)}
    k = len(names)
    wins = np.zeros(k)
    games = np.zeros((k, k))
    for battle in battles:
        a, b = index[battle.model_a], index[battle.model_b]
        if a == b:
            raise ValueError(f"a model cannot battle itself: {battle.model_a}")
        if battle.score not in (0.0, 0.5, 1.0):
            raise ValueError(f"battle score must be 0, 0.5 or 1, got {battle.score}")
        wins[a] += battle.score
        wins[b] += 1.0 - battle.score
        games[a, b] += 1
        games[b, a] += 1
    if prior:
        off_diagonal = 1.0 - np.eye(k)
        games += prior * off_diagonal
        wins += 0.5 * prior * (k - 1)
    return wins, games


def fit_bradley_terry(battles: Sequence[Battle], names: Sequence[str], *, prior: float = 1.0,
                      tol: float = 1e-10, max_iter: int = 10000) -> dict[str, float]:
    """Elo-scale ratings {name: rating} maximising the Bradley-Terry likelihood (module doc)."""
    names = list(names)
    if len(set(names)) != len(names):
        raise ValueError(f"contestant names must be unique: {names}")
    if len(names) < 2:
        raise ValueError("a Bradley-Terry fit needs at least two contestants")
    wins, games = _counts(battles, names, prior)
    if np.any(wins <= 0) or np.any(wins >= games.sum(axis=1)):
        raise ValueError("every contestant needs a point won and a point lost (use prior > 0)")
    p = np.ones(len(names))
    for _ in range(max_iter):
        denom = (games / (p[:, None] + p[None, :])).sum(axis=1)
        new = wins / denom
        new /= math.exp(np.log(new).mean())  # geometric mean 1: fixes the free scale
        if np.max(np.abs(np.log(new) - np.log(p))) < tol:
            p = new
            break
        p = new
    return {n: ELO_BASE + ELO_SCALE * math.log10(v) for n, v in zip(names, p)}


def rate(battles: Sequence[Battle], names: Sequence[str], *, prior: float = 1.0, bootstrap: int = 200,
         seed: int = 0, confidence: float = 0.95) -> list[Rating]:
    """Ratings with bootstrap intervals and win/tie/loss counts, best first."""
    names = list(names)
    point = fit_bradley_terry(battles, names, prior=prior)
    samples = {n: [] for n in names}
    rng = np.random.default_rng(seed)
    battles = list(battles)
    for _ in range(bootstrap if battles else 0):
        drawn = [battles[i] for i in rng.integers(0, len(battles), len(battles))]
        try:
            fitted = fit_bradley_terry(drawn, names, prior=prior)
        except ValueError:  # prior = 0 and a resample where someone never scores: skip it
            continue
        for n in names:
            samples[n].append(fitted[n])
    tail = (1.0 - confidence) / 2 * 100
    out = []
    for n in names:
        w = sum(1 for b in battles if (b.model_a == n and b.score == 1) or (b.model_b == n and b.score == 0))
        t = sum(1 for b in battles if n in (b.model_a, b.model_b) and b.score == 0.5)
        played = sum(1 for b in battles if n in (b.model_a, b.model_b))
        low, high = (np.percentile(samples[n], [tail, 100 - tail]) if samples[n] else (point[n], point[n]))
        out.append(Rating(n, point[n], float(low), float(high), w, t, played - w - t))
    return sorted(out, key=lambda r: -r.rating)
