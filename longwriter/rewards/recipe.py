"""A reward recipe: weighted components plus a combination mode (DESIGN 3.5).

Pairwise alone (Writing-RL), LongWriter-Zero (length + quality + format, mean of advantages) and
hybrids are all configs of this one class:

    {name: longwriter_zero, combine: mean_advantage, prompt_template: think,
     components: {length: {weight: 1.0}, quality: {weight: 1.0, source: judge}, format: {weight: 1.0}}}

A component config may carry `type:` to reuse a registered component under another name
(e.g. two pairwise components with different positions); such a component's metrics are
prefixed with its name so that they do not collide.

The config is parsed once, by `parse_recipe`, into a `RecipeSpec` (names, types, weights, options,
combination and each component's declared `Needs`): training setup, the guards and both engines
(TRL, and verl's driver and reward workers) take that, so none re-reads the config with defaults
of its own.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

# The built-in components register themselves when imported (build_recipe looks them up by name).
import longwriter.rewards.brpo  # noqa: F401
import longwriter.rewards.checklist  # noqa: F401
import longwriter.rewards.format  # noqa: F401
import longwriter.rewards.length  # noqa: F401
import longwriter.rewards.overlong  # noqa: F401
import longwriter.rewards.pairwise  # noqa: F401
import longwriter.rewards.quality  # noqa: F401
from longwriter.advantages import COMBINERS, DEFAULT_COMBINE, DEFAULT_EPS, weighted_reward_sum
from longwriter.config_tools import plain
from longwriter.prompting import answer_part, apply_prompt_template, check_template
from longwriter.rewards.base import NO_NEEDS, BuildContext, Needs, RewardComponent, RolloutBatch, component_needs, \
    get_component_factory, nanmean, rate
from longwriter.rewards.monitors import batch_monitors

logger = logging.getLogger(__name__)

_RECIPE_KEYS = {"name", "combine", "prompt_template", "components", "eps"}


class _RecipeShape:
    """What a parsed spec and a built recipe share: their checks (a known template and combine mode, a
    component) and the weights by component name."""

    name: str
    components: Sequence[Any]
    combine: str
    prompt_template: str

    def __post_init__(self) -> None:
        check_template(self.prompt_template)
        if self.combine not in COMBINERS:
            raise ValueError(f"recipe '{self.name}': unknown combine mode '{self.combine}'; "
                             f"available: {sorted(COMBINERS)}")
        if not self.components:
            raise ValueError(f"recipe '{self.name}' has no components")

    @property
    def weights(self) -> dict[str, float]:
        return {c.name: c.weight for c in self.components}


@dataclass(frozen=True)
class ComponentSpec:
    """One component of a recipe config: name (the key in the recipe), kind (the registered type),
    weight, its own options (type and weight removed) and what it declares it needs."""

    name: str
    kind: str
    weight: float = 1.0
    options: Mapping[str, Any] = field(default_factory=dict)
    needs: Needs = NO_NEEDS


@dataclass(frozen=True)
class RecipeSpec(_RecipeShape):
    """A parsed reward config (module doc): what `build_recipe` builds and what the run needs for it."""

    name: str
    components: Sequence[ComponentSpec]
    combine: str = DEFAULT_COMBINE
    prompt_template: str = "plain"
    eps: float = DEFAULT_EPS

    @property
    def needs(self) -> Needs:
        """The union of the components' declared needs."""
        needs = NO_NEEDS
        for component in self.components:
            needs = needs | component.needs
        return needs

    def needing(self, need: str) -> list[ComponentSpec]:
        """The components that declare `need` (a `Needs` field name), e.g. for an error that names them."""
        return [c for c in self.components if getattr(c.needs, need)]


def parse_recipe(reward_cfg: Mapping[str, Any] | RecipeSpec) -> RecipeSpec:
    """The reward config's `RecipeSpec` (a spec is returned as it is): unknown keys, an empty or
    malformed `components`, an unknown template, component type or combine mode are ValueErrors
    (KeyError for the type); a component's own options are checked when it is built."""
    if isinstance(reward_cfg, RecipeSpec):
        return reward_cfg
    cfg = plain(reward_cfg)
    name = str(cfg.get("name", "recipe"))
    unknown = sorted(set(cfg) - _RECIPE_KEYS)
    if unknown:
        raise ValueError(f"reward config '{name}': unknown key(s) {unknown}; valid: {sorted(_RECIPE_KEYS)}")
    components_cfg = cfg.get("components") or {}
    if not isinstance(components_cfg, Mapping) or not components_cfg:
        raise ValueError(f"reward config '{name}': 'components' must be a non-empty mapping name -> options")
    template = check_template(str(cfg.get("prompt_template", "plain")))
    components = []
    for component_name, options in components_cfg.items():
        options = dict(options or {})
        kind = str(options.pop("type", component_name))
        weight = float(options.pop("weight", 1.0))
        components.append(ComponentSpec(str(component_name), kind, weight, options, component_needs(kind, options)))
    return RecipeSpec(name, tuple(components), str(cfg.get("combine", DEFAULT_COMBINE)), template,
                      float(cfg.get("eps", DEFAULT_EPS)))


def recipe_needs(reward_cfg: Mapping[str, Any] | RecipeSpec) -> Needs:
    """What the recipe's components declare they need, together (see `Needs`)."""
    return parse_recipe(reward_cfg).needs


@dataclass
class WeightedComponent:
    """name: the key in the recipe (metrics use it); kind: the registered component type."""

    name: str
    component: RewardComponent
    weight: float = 1.0
    kind: str = ""


@dataclass
class RecipeScores:
    """rewards: {component name: [N], NaN = unknown}; total: [N] weighted sum (NaN components
    skipped per row, NaN when all are unknown); metrics: {"section/name/stat": value};
    labels: {"<component>_<label>": [N]} (the components' per-completion labels, e.g. verdicts)."""

    rewards: dict[str, np.ndarray]
    total: np.ndarray
    metrics: dict[str, float] = field(default_factory=dict)
    labels: dict[str, list[str | None]] = field(default_factory=dict)


@dataclass
class Recipe(_RecipeShape):
    name: str
    components: list[WeightedComponent]
    combine: str = DEFAULT_COMBINE
    prompt_template: str = "plain"
    eps: float = DEFAULT_EPS

    def apply_prompt(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        """The sample's messages with this recipe's prompt template applied."""
        return apply_prompt_template(messages, self.prompt_template)

    def answers(self, completions: list[str]) -> list[str]:
        """The answer part of each completion under this recipe's template (what is measured)."""
        return [answer_part(c, self.prompt_template) for c in completions]

    async def score(self, batch: RolloutBatch) -> RecipeScores:
        """Score a batch with every component concurrently (judge calls of all components overlap)."""
        results = await asyncio.gather(*(c.component.score(batch) for c in self.components))
        rewards: dict[str, np.ndarray] = {}
        metrics: dict[str, float] = {}
        labels: dict[str, list[str | None]] = {}
        for entry, result in zip(self.components, results):
            values = np.asarray(result.rewards, dtype=np.float64)
            if values.shape != (len(batch),):
                raise ValueError(f"component '{entry.name}' returned shape {values.shape}, expected ({len(batch)},)")
            rewards[entry.name] = values
            prefix = "" if entry.kind in ("", entry.name) else f"{entry.name}/"
            metrics.update({f"{prefix}{key}": value for key, value in result.metrics.items()})
            metrics[f"reward/{entry.name}/mean"] = nanmean(values)
            metrics[f"reward/{entry.name}/unknown_rate"] = rate(np.isnan(values))
            labels.update({f"{entry.name}_{key}": list(value) for key, value in result.labels.items()})
        total = weighted_reward_sum(rewards, self.weights)
        metrics["reward/total/mean"] = nanmean(total)
        metrics.update(batch_monitors(batch.samples, self.answers(batch.completions)))
        return RecipeScores(rewards, total, metrics, labels)


def build_recipe(reward_cfg: Mapping[str, Any] | RecipeSpec, *, pairwise_judge: Any = None,
                 pointwise_judge: Any = None, curriculum: Any = None, reward_model: Any = None,
                 max_completion_tokens: int | None = None, checklist_judge: Any = None) -> Recipe:
    """Build a `Recipe` from a reward config or its `RecipeSpec` (see module doc); judges (pairwise,
    pointwise, per-criterion), curriculum and RM are passed in, and the engine's token budget per
    completion (`engine.max_completion_length`) where known."""
    spec = parse_recipe(reward_cfg)
    ctx = BuildContext(spec.prompt_template, pairwise_judge, pointwise_judge, curriculum, reward_model,
                       max_completion_tokens, checklist_judge)
    components = [WeightedComponent(c.name, get_component_factory(c.kind)(dict(c.options), ctx), c.weight, c.kind)
                  for c in spec.components]
    recipe = Recipe(spec.name, components, spec.combine, spec.prompt_template, spec.eps)
    logger.info("reward recipe '%s': %s, combine=%s, template=%s", spec.name,
                {c.name: c.weight for c in components}, recipe.combine, spec.prompt_template)
    return recipe
