"""Advantage estimator "longwriter" for verl: the project's `combine_advantages`, nothing else.

Why a side channel: verl's `compute_advantage` calls a registered estimator with the token-level
*total* reward, the response mask, the group `index` (uid) and `config` only; the per-component
rewards reach no estimator but verl's own "gdpo" (and in the v1 trainer not even that one: its
`_compute_advantage` reads only uid/masks/scores from TransferQueue). The components are what the
LongWriter-Zero average of per-component advantages needs, and verl's gdpo would additionally
whiten the batch, which that recipe does not do. So the v1 trainer mode "longwriter_sync"
(trainer.py) reads the components that our reward manager stored in each trajectory's
`reward_extra_info`, and hands them to this estimator for the duration of one
`compute_advantage` call through `provide()`. The estimator refuses to run without them; it leaves
the step's per-component group metrics (`group_signal_metrics`) in `AdvantageInputs.metrics`, where the
trainer, which knows no group ids, picks them up.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from longwriter.advantages import DEFAULT_COMBINE, DEFAULT_EPS, combine_advantages, group_signal_metrics
from longwriter.engines.verl.config_builder import ADV_ESTIMATOR
from longwriter.rewards.recipe import RecipeSpec, parse_recipe


@dataclass(frozen=True)
class AdvantageInputs:
    """Per-row component rewards [N] (NaN = unknown) and how to combine them (the recipe's);
    `metrics`: filled by the estimator (advantage/<component>/zero_std_group_frac, ...)."""

    rewards: Mapping[str, np.ndarray]
    weights: Mapping[str, float]
    mode: str = DEFAULT_COMBINE
    eps: float = DEFAULT_EPS
    metrics: dict[str, float] = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return len(next(iter(self.rewards.values()))) if self.rewards else 0

    def select(self, rows: list[int]) -> "AdvantageInputs":
        """The same inputs restricted to `rows` (e.g. without verl's padding rows)."""
        index = np.asarray(rows, dtype=np.int64)
        return AdvantageInputs({name: values[index] for name, values in self.rewards.items()}, self.weights,
                               self.mode, self.eps)

    @classmethod
    def from_extra_infos(cls, infos: list[Mapping[str, Any] | None],
                         recipe: "RecipeSpec | Mapping[str, Any]") -> "AdvantageInputs":
        """From one `reward_extra_info` dict per row; a row or key that is missing counts as unknown.
        `recipe`: the reward config or its `RecipeSpec` (parsed as the reward workers parse it)."""
        spec = parse_recipe(recipe)
        rewards = {name: np.array([_number((info or {}).get(name)) for info in infos], dtype=np.float64)
                   for name in spec.weights}
        return cls(rewards, spec.weights, spec.combine, spec.eps)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


_CURRENT: ContextVar[AdvantageInputs | None] = ContextVar("longwriter_advantage_inputs", default=None)


@contextmanager
def provide(inputs: AdvantageInputs) -> Iterator[None]:
    """Make `inputs` the component rewards of the next `compute_advantage` call(s) in this context."""
    token = _CURRENT.set(inputs)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def group_ids(index: Any) -> np.ndarray:
    """verl's per-row uid strings -> int group ids (rows answering one prompt share a uid)."""
    _, inverse = np.unique(np.asarray(index, dtype=object).astype(str), return_inverse=True)
    return inverse.astype(np.int64)


def longwriter_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Any = None,
    config: Any = None,
    **_: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl estimator signature: token_level_rewards [B, T], response_mask [B, T], index [B] uid
    -> (advantages, returns), both [B, T]: the project's per-sequence advantage broadcast over the
    response tokens. `token_level_rewards` is not used: the components come from `provide()`."""
    inputs = _CURRENT.get()
    if inputs is None:
        raise RuntimeError(
            f"adv_estimator={ADV_ESTIMATOR!r} needs the per-component rewards, which only the v1 trainer "
            f"mode 'longwriter_sync' provides (trainer.v1.trainer_mode); see longwriter/engines/verl/trainer.py"
        )
    rows = token_level_rewards.shape[0]
    if len(inputs) != rows:
        raise ValueError(f"{len(inputs)} rows of component rewards for a batch of {rows}")
    if index is None:
        raise ValueError("the longwriter estimator needs verl's uid index to form groups")
    groups = group_ids(index)
    advantages = combine_advantages(inputs.rewards, inputs.weights, groups, inputs.mode, inputs.eps)
    inputs.metrics.update(group_signal_metrics(inputs.rewards, inputs.weights, groups))
    per_token = torch.as_tensor(advantages, dtype=torch.float32, device=response_mask.device).unsqueeze(-1)
    scores = per_token * response_mask
    return scores, scores


def register() -> None:
    """Register the estimator in verl's registry (idempotent: the registry accepts the same function)."""
    from verl.trainer.ppo.core_algos import register_adv_est

    register_adv_est(ADV_ESTIMATOR)(longwriter_advantage)
