"""Reward components and recipes (DESIGN 3). Importing the package registers the built-in components."""

from longwriter.rewards import brpo, checklist, format, length, overlong, pairwise, quality  # noqa: F401  (registration)
from longwriter.rewards.base import (
    COMPONENT_NEEDS,
    COMPONENTS,
    ComponentScores,
    Needs,
    RewardComponent,
    RolloutBatch,
    component_needs,
    register_component,
)
from longwriter.rewards.recipe import (
    ComponentSpec,
    Recipe,
    RecipeScores,
    RecipeSpec,
    WeightedComponent,
    build_recipe,
    parse_recipe,
    recipe_needs,
)

__all__ = [
    "COMPONENTS",
    "COMPONENT_NEEDS",
    "ComponentScores",
    "ComponentSpec",
    "Needs",
    "Recipe",
    "RecipeScores",
    "RecipeSpec",
    "RewardComponent",
    "RolloutBatch",
    "WeightedComponent",
    "build_recipe",
    "component_needs",
    "parse_recipe",
    "recipe_needs",
    "register_component",
]
