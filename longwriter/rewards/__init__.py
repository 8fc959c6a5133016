"""Reward components and recipes (DESIGN 3). Importing the package registers the built-in components."""

from longwriter.rewards import brpo, checklist, format, length, overlong, pairwise, quality  # noqa: F401  (registration)
from longwriter.rewards.base import (
    COMPONENTS,
    ComponentScores,
    RewardComponent,
    RolloutBatch,
    register_component,
)
from longwriter.rewards.recipe import Recipe, RecipeScores, WeightedComponent, build_recipe

__all__ = [
    "COMPONENTS",
    "ComponentScores",
    "Recipe",
    "RecipeScores",
    "RewardComponent",
    "RolloutBatch",
    "WeightedComponent",
    "build_recipe",
    "register_component",
]
