"""Tier 2: `combine=gdpo` equals TRL's multi_objective_aggregation="normalize_then_sum" on random batches.

TRL computes it inline, not in a function we could call: trl 1.16.0, trl/trainer/grpo_trainer.py, in
GRPOTrainer._generate_and_score_completions: `unscorable_mask` (line 2759), the `elif
self.multi_objective_aggregation == "normalize_then_sum"` branch (lines 2790-2799) and
`torch.nan_to_num(advantages, nan=0.0)` (line 2810). `trl_normalize_then_sum` below repeats those torch
ops as they are there, with TRL's own `nanstd` (trl/trainer/utils.py:1021), as the reference.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from longwriter.advantages import combine_advantages

trl_utils = pytest.importorskip("trl.trainer.utils")
TRL_EPS = 1e-4  # hard-coded in both of TRL's normalisations


def trl_normalize_then_sum(rewards_per_func: torch.Tensor, reward_weights: torch.Tensor,
                           num_generations: int) -> torch.Tensor:
    """rewards_per_func [N, K] (NaN: a reward function returned None), weights [K] -> advantages [N]."""
    nanstd = trl_utils.nanstd
    unscorable_mask = torch.isnan(rewards_per_func).all(dim=1)
    grouped = rewards_per_func.view(-1, num_generations, rewards_per_func.shape[1])
    mean_k = torch.nanmean(grouped, dim=1, keepdim=True)
    std_k = nanstd(grouped, dim=1, keepdim=True) if num_generations > 1 else torch.zeros_like(mean_k)
    reward_k = (grouped - mean_k) / (std_k + 1e-4)
    reward_k = reward_k.view(-1, rewards_per_func.shape[1])
    rewards = (reward_k * reward_weights.unsqueeze(0)).nansum(dim=1)
    rewards[unscorable_mask] = torch.nan
    std_rewards = nanstd(rewards).expand_as(rewards) if rewards.numel() > 1 else torch.zeros_like(rewards)
    advantages = (rewards - torch.nanmean(rewards)) / (std_rewards + 1e-4)
    return torch.nan_to_num(advantages, nan=0.0)


def random_batch(rng: np.random.Generator, groups: int, num_generations: int) -> dict[str, np.ndarray]:
    """Three components as recipes produce them: discrete (verdicts, format: many tied groups), continuous
    (length), with unknown values, rows where everything is unknown, and whole groups of one value."""
    n = groups * num_generations
    comps = {
        "pairwise": rng.choice([0.0, 0.5, 1.0], size=n),
        "length": rng.uniform(0.0, 1.0, size=n),
        "format": rng.choice([0.0, 1.0], size=n, p=[0.15, 0.85]),
    }
    comps["pairwise"][rng.random(n) < 0.2] = np.nan
    comps["length"][rng.random(n) < 0.05] = np.nan
    flat = rng.integers(0, groups)
    comps["length"][flat * num_generations:(flat + 1) * num_generations] = 0.3
    for row in np.flatnonzero(rng.random(n) < 0.08):
        for values in comps.values():
            values[row] = np.nan
    return comps


@pytest.mark.parametrize("num_generations", [1, 2, 4, 8])
@pytest.mark.parametrize("seed", range(8))
def test_gdpo_equals_trl_normalize_then_sum(seed: int, num_generations: int) -> None:
    rng = np.random.default_rng(seed)
    comps = random_batch(rng, groups=int(rng.integers(1, 9)), num_generations=num_generations)
    weights = {name: float(w) for name, w in zip(comps, rng.uniform(0.1, 3.0, size=len(comps)))}
    n = len(next(iter(comps.values())))
    ours = combine_advantages(comps, weights, np.arange(n) // num_generations, mode="gdpo", eps=TRL_EPS)
    table = torch.tensor(np.stack([comps[k] for k in weights], axis=1), dtype=torch.float64)
    theirs = trl_normalize_then_sum(table, torch.tensor(list(weights.values()), dtype=torch.float64),
                                    num_generations).numpy()
    # Not to float64 precision: TRL's nanstd computes Bessel's count / (count - 1) from integer counts, which
    # torch divides in float32 (~1e-8 of the batch scale); and TRL divides a tied group's ~1e-17 deviations by eps
    # where we write 0 (~1e-12).
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)


def test_the_random_batches_exercise_every_branch() -> None:
    """The comparison above covers unknowns, unscorable rows and tied groups, and has signal to compare."""
    rng = np.random.default_rng(0)
    comps = random_batch(rng, groups=8, num_generations=4)
    stacked = np.stack(list(comps.values()), axis=1)
    assert np.isnan(stacked).any() and np.isnan(stacked).all(axis=1).any()
    table = torch.tensor(stacked, dtype=torch.float64)
    theirs = trl_normalize_then_sum(table, torch.ones(3, dtype=torch.float64), 4).numpy()
    assert np.abs(theirs).max() > 0.5
