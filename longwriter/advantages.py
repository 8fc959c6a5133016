"""Group-relative advantages (GRPO) and the ways to combine several reward components.

This module is THE advantage formula of the project: the TRL and verl adapters both call
`combine_advantages`, so nothing algorithmic is written twice (DESIGN 3.4).

Conventions (all arrays are numpy, N = number of completions in the batch):
  rewards      [N] float, NaN = unknown / not applicable (e.g. an unparsable judge verdict)
  group_index  [N] int, completions answering the same prompt share a group id
  advantages   [N] float, never NaN: an unknown reward is *neutral* (advantage 0)

References:
  GRPO: Shao et al. 2024, "DeepSeekMath", eq. for outcome supervision: A_i = (r_i - mean(r)) / std(r).
  The std is the sample std (ddof=1), as TRL's GRPOTrainer (`torch.std`) and verl's
  `compute_grpo_outcome_advantage` (`torch.std`) compute it.
  LongWriter-Zero: Wu et al. 2025 (arXiv 2506.18841), A = (A_length + A_quality + A_format) / 3.
  GDPO: Liu et al. 2026 (arXiv 2601.05242), as TRL defines it (`multi_objective_aggregation=
  "normalize_then_sum"`): per-component group normalisation, weighted sum, then batch normalisation.
"""

from __future__ import annotations

import logging
from typing import Mapping, Protocol

import numpy as np

from longwriter.registry import Registry

logger = logging.getLogger(__name__)

# The defaults of a reward config's `combine` and `eps` (conf/reward/*.yaml always set `combine`).
# "sum_reward" won over "mean_advantage" (advantages.py and the verl adapter said the latter) because it
# is what both engines applied to a config without `combine`: GRPO on the summed reward, the plain
# Writing-RL/length behaviour; LongWriter-Zero's average of advantages is asked for by name.
DEFAULT_COMBINE = "sum_reward"
DEFAULT_EPS = 1e-6


class Combiner(Protocol):
    def __call__(
        self,
        component_rewards: Mapping[str, np.ndarray],
        weights: Mapping[str, float],
        group_index: np.ndarray,
        eps: float,
    ) -> np.ndarray: ...


COMBINERS: Registry[Combiner] = Registry("advantage combine mode")
register_combiner = COMBINERS.register  # `@register_combiner("<mode>")`: a value of `reward.combine`


def get_combiner(name: str) -> Combiner:
    return COMBINERS.lookup(name)


def _check_inputs(rewards: np.ndarray, group_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rewards = np.asarray(rewards, dtype=np.float64)
    group_index = np.asarray(group_index)
    if rewards.ndim != 1 or group_index.shape != rewards.shape:
        raise ValueError(
            f"rewards and group_index must both have shape [N]; got {rewards.shape} and {group_index.shape}"
        )
    return rewards, group_index


def grpo_advantages(rewards: np.ndarray, group_index: np.ndarray, eps: float = DEFAULT_EPS) -> np.ndarray:
    """GRPO outcome advantages, group by group.

    rewards [N] float (NaN = unknown), group_index [N] int -> advantages [N] float.
    Within each group, mean and sample std (ddof=1) use the known (non-NaN) rewards only, and
    A_i = (r_i - mean) / (std + eps). A group with fewer than two known rewards, or whose known
    rewards are all equal, carries no preference signal and gets 0. Unknown entries get 0, so
    an unknown never acts as a win or a loss.
    """
    rewards, group_index = _check_inputs(rewards, group_index)
    advantages = np.zeros_like(rewards)
    for group in np.unique(group_index):
        rows = np.flatnonzero(group_index == group)
        known = rows[~np.isnan(rewards[rows])]
        values = rewards[known]
        if values.size < 2 or np.ptp(values) == 0.0:
            continue
        advantages[known] = (values - values.mean()) / (values.std(ddof=1) + eps)
    return advantages


def weighted_reward_sum(
    component_rewards: Mapping[str, np.ndarray], weights: Mapping[str, float]
) -> np.ndarray:
    """r = sum_k w_k r_k per row, skipping NaN components; a row with every component NaN is NaN.

    This is the *reported* total reward (a metric). For advantages, `sum_reward_advantages`
    first makes unknown components neutral within their group (see there).
    """
    names = _component_names(component_rewards, weights)
    stacked = np.stack([np.asarray(component_rewards[k], dtype=np.float64) for k in names])
    w = np.array([weights[k] for k in names], dtype=np.float64)[:, None]
    total = np.nansum(stacked * w, axis=0)
    total[np.all(np.isnan(stacked), axis=0)] = np.nan
    return total


def _component_names(component_rewards: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> list[str]:
    missing = sorted(set(weights) - set(component_rewards))
    if missing:
        raise KeyError(f"weights given for components without rewards: {missing}")
    unweighted = sorted(set(component_rewards) - set(weights))
    if unweighted:
        raise KeyError(f"rewards given for components without weights: {unweighted}")
    if not weights:
        raise ValueError("at least one reward component is needed")
    return list(weights)


def _fill_unknown_with_group_mean(rewards: np.ndarray, group_index: np.ndarray) -> np.ndarray:
    """Replace NaN by the mean of the known rewards of the same group (0 when none is known).

    A value equal to its group's mean contributes nothing to the group's preference signal, so
    this is how one component can be unknown for a row while the other components still count.
    """
    filled = rewards.copy()
    for group in np.unique(group_index):
        rows = np.flatnonzero(group_index == group)
        unknown = rows[np.isnan(rewards[rows])]
        if unknown.size:
            known = rewards[rows][~np.isnan(rewards[rows])]
            filled[unknown] = known.mean() if known.size else 0.0
    return filled


@register_combiner("sum_reward")
def sum_reward_advantages(
    component_rewards: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    group_index: np.ndarray,
    eps: float = DEFAULT_EPS,
) -> np.ndarray:
    """GRPO on the weighted sum of the component rewards: r = sum_k w_k r_k, A = grpo(r).

    component_rewards {name: [N]}, weights {name: float}, group_index [N] -> [N].
    Unknown (NaN) components are neutral: before summing, a NaN r_k is replaced by the mean of
    r_k over the known rows of its group. (Simply dropping the term would make an unknown
    judge verdict act like a loss in a hybrid recipe, which DESIGN 3.1 forbids.) A row whose
    components are all unknown stays NaN and gets advantage 0. With a single component this is
    exactly `grpo_advantages(w * r)`.
    """
    names = _component_names(component_rewards, weights)
    group_index = np.asarray(group_index)
    raw = {k: _check_inputs(component_rewards[k], group_index)[0] for k in names}
    all_unknown = np.all(np.stack([np.isnan(raw[k]) for k in names]), axis=0)
    total = sum(weights[k] * _fill_unknown_with_group_mean(raw[k], group_index) for k in names)
    total = np.where(all_unknown, np.nan, total)
    return grpo_advantages(total, group_index, eps)


@register_combiner("mean_advantage")
def mean_advantage_advantages(
    component_rewards: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    group_index: np.ndarray,
    eps: float = DEFAULT_EPS,
) -> np.ndarray:
    """LongWriter-Zero: a weighted mean of per-component GRPO advantages.

    component_rewards {name: [N]}, weights {name: float}, group_index [N] -> [N].
    A = sum_k w_k A_k / sum_k w_k with A_k = grpo_advantages(r_k); with three equal weights,
    A = (A_length + A_quality + A_format) / 3.

    This is not GRPO on the summed reward: each component is normalised by its own group std
    first, so a component with a small spread (e.g. format, almost always 1) weighs as much as
    one with a large spread. It is not TRL's `multi_objective_aggregation="normalize_then_sum"`
    either (`gdpo` below), which z-scores the weighted sum once more over the whole batch. The denominator is
    the sum of all weights, also for rows where a component is unknown (its A_k is 0, neutral).
    """
    names = _component_names(component_rewards, weights)
    total_weight = float(sum(weights[k] for k in names))
    if total_weight == 0.0:
        raise ValueError("mean_advantage needs weights with a non-zero sum")
    combined = sum(weights[k] * grpo_advantages(component_rewards[k], group_index, eps) for k in names)
    return np.asarray(combined, dtype=np.float64) / total_weight


def _batch_whiten(values: np.ndarray, eps: float) -> np.ndarray:
    """(v - mean) / (std + eps) over the known (non-NaN) rows of the whole batch, std with ddof=1;
    NaN rows, and every row when fewer than two are known or all are equal, get 0."""
    out = np.zeros_like(values)
    known = ~np.isnan(values)
    if known.sum() < 2 or np.ptp(values[known]) == 0.0:
        return out
    out[known] = (values[known] - values[known].mean()) / (values[known].std(ddof=1) + eps)
    return out


@register_combiner("gdpo")
def gdpo_advantages(
    component_rewards: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    group_index: np.ndarray,
    eps: float = DEFAULT_EPS,
) -> np.ndarray:
    """GDPO (arXiv 2601.05242), exactly TRL's `multi_objective_aggregation="normalize_then_sum"`.

    component_rewards {name: [N]}, weights {name: float}, group_index [N] -> [N].
        A_k = grpo_advantages(r_k)                 each component normalised within its group
        s   = sum_k w_k A_k                        weighted sum (no division by the weights' sum)
        A   = (s - mean_batch(s)) / (std_batch(s) + eps)   then normalised over the whole batch
    Means and stds are over known values, std with ddof=1, as TRL's `nanstd`. Unknown (NaN) rewards are
    neutral: an unknown r_k gives A_k = 0 (TRL: NaN, dropped by its `nansum`); a row whose components are
    all unknown is left out of the batch statistics and gets 0 (TRL's `unscorable_mask`). Groups with all
    equal values or fewer than two known ones give A_k = 0 (TRL divides 0 by eps: the same to ~1e-12).
    TRL's eps is 1e-4 in both places; here it is the recipe's `eps`.

    Unlike `mean_advantage`, the batch step rescales every step's advantages to unit std, so the
    weights set the components' relative share, not the advantage scale. verl's own `gdpo` estimator
    whitens per token (response-length weighted); the project's verl path uses this function instead.
    """
    names = _component_names(component_rewards, weights)
    group_index = np.asarray(group_index)
    raw = {k: _check_inputs(component_rewards[k], group_index)[0] for k in names}
    summed = sum(weights[k] * grpo_advantages(raw[k], group_index, eps) for k in names)
    all_unknown = np.all(np.stack([np.isnan(raw[k]) for k in names]), axis=0)
    return _batch_whiten(np.where(all_unknown, np.nan, np.asarray(summed, dtype=np.float64)), eps)


def group_signal_metrics(
    component_rewards: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    group_index: np.ndarray,
) -> dict[str, float]:
    """Where the groups' preference signal is, per component and for the total (per-step metrics).

    advantage/<component>/zero_std_group_frac: share of groups whose known values of that component
        are all equal (or fewer than two are known): the component gives those groups no GRPO signal.
    advantage/total/tie_component_spread_frac: share of groups whose weighted total (unknowns neutral,
        as `sum_reward` computes it) ties across the group although some component differs: GRPO on
        the sum sees nothing there, GDPO and `mean_advantage` still see the components (GDPO's
        motivating case: rewards (1, 0) and (0, 1) sum to the same total). Ties within 1e-9 relative.
    """
    names = _component_names(component_rewards, weights)
    group_index = np.asarray(group_index)
    raw = {k: _check_inputs(component_rewards[k], group_index)[0] for k in names}
    all_unknown = np.all(np.stack([np.isnan(raw[k]) for k in names]), axis=0)
    total = sum(weights[k] * _fill_unknown_with_group_mean(raw[k], group_index) for k in names)
    total = np.where(all_unknown, np.nan, total)
    groups = np.unique(group_index)
    flat = {k: 0 for k in names}
    hidden_ties = 0
    for group in groups:
        rows = group_index == group
        spread = {k: _has_spread(raw[k][rows]) for k in names}
        for k in names:
            flat[k] += not spread[k]
        if any(spread.values()) and not _has_spread(total[rows], rtol=1e-9):
            hidden_ties += 1
    count = len(groups)
    metrics = {f"advantage/{k}/zero_std_group_frac": flat[k] / count if count else float("nan") for k in names}
    metrics["advantage/total/tie_component_spread_frac"] = hidden_ties / count if count else float("nan")
    return metrics


def _has_spread(values: np.ndarray, rtol: float = 0.0) -> bool:
    """True when at least two known values differ (by more than rtol of their magnitude)."""
    known = values[~np.isnan(values)]
    if known.size < 2:
        return False
    return bool(np.ptp(known) > rtol * max(1.0, float(np.abs(known).max())))


def combine_advantages(
    component_rewards: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    group_index: np.ndarray,
    mode: str = DEFAULT_COMBINE,
    eps: float = DEFAULT_EPS,
) -> np.ndarray:
    """Advantages [N] for a recipe: `mode` is a registered combiner ("sum_reward", "mean_advantage", "gdpo")."""
    return get_combiner(mode)(component_rewards, weights, group_index, eps)
