"""What a training run builds from the config before its first step: the samples, the judge, the
curriculum and the reward recipe.

Both engines (TRL and verl) call this, so that nothing algorithmic is assembled twice. The judge's
life (check, close) is `judges/lifecycle.py`'s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from longwriter.data.schema import DataError, Sample

logger = logging.getLogger(__name__)

@dataclass
class RewardSetup:
    recipe: Any
    curriculum: Any | None
    judge_backend: Any | None


def needs_judge(reward_cfg: Any) -> bool:
    """Whether a component of `reward=` declares it needs a judge (`longwriter.rewards.Needs`)."""
    from longwriter.rewards import recipe_needs

    return recipe_needs(reward_cfg).judge


def load_training_samples(cfg: DictConfig) -> list[Sample]:
    """Load the configured data and apply the configured data selection."""
    from longwriter.data.loaders import load_samples
    from longwriter.selection import select_samples

    samples = load_samples(cfg.data)
    if not samples:
        where = f" ({cfg.data.path})" if cfg.data.get("path") else ""
        limit = " data.limit=0 keeps none;" if cfg.data.get("limit") == 0 else ""
        raise DataError(f"data={cfg.data.name}{where} has no samples:{limit} give a file with one sample (a JSON "
                        f"object with at least `prompt`) per line, or choose another data=")
    selected = select_samples(samples, cfg)
    if not selected:
        raise ValueError(
            f"data selection '{cfg.data_selection.name}' kept no samples out of {len(samples)}; "
            f"loosen its settings or choose data_selection=all"
        )
    logger.info("data: %d samples loaded, %d selected (%s)", len(samples), len(selected), cfg.data_selection.name)
    return selected


def judged_recipe(reward_cfg: Any, backend: Any | None, curriculum: Any | None,
                  max_completion_tokens: int | None = None) -> Any:
    """`reward=`'s recipe (its config or `RecipeSpec`) whose judged components (those that declare a judge)
    ask `backend` (None: a recipe without a judge); `max_completion_tokens`: engine.max_completion_length
    (soft_overlong's default L_max). The TRL run and verl's reward workers both build their recipe here."""
    from longwriter.rewards import build_recipe

    judges = {}
    if backend is not None:
        from longwriter.judges import ChecklistTask, PairwiseTask, PointwiseTask

        judges = {"pairwise_judge": PairwiseTask(backend), "pointwise_judge": PointwiseTask(backend),
                  "checklist_judge": ChecklistTask(backend)}
    return build_recipe(reward_cfg, curriculum=curriculum, max_completion_tokens=max_completion_tokens, **judges)


def completion_budget(cfg: DictConfig) -> int | None:
    """engine.max_completion_length (tokens per completion), None when the config has none."""
    value = OmegaConf.select(cfg, "engine.max_completion_length")
    return None if value is None else int(value)


def build_reward_setup(cfg: DictConfig, output_dir: Path, curriculum_path: Path | None = None,
                       spec: Any = None) -> RewardSetup:
    """The reward recipe with its judge (built, not yet checked) and curriculum, as configured by
    `reward=` and `judge=`; `spec`: `reward=` already parsed (`longwriter.rewards.parse_recipe`)."""
    from longwriter.curriculum import CurriculumState
    from longwriter.judges.lifecycle import build_judge
    from longwriter.rewards import parse_recipe

    spec = parse_recipe(cfg.reward if spec is None else spec)
    backend = build_judge(cfg.judge, cfg.paths.cache_dir) if spec.needs.judge else None
    curriculum = None
    if spec.needs.curriculum:
        curriculum = CurriculumState(curriculum_path or output_dir / "curriculum.sqlite")
    return RewardSetup(
        recipe=judged_recipe(spec, backend, curriculum, completion_budget(cfg)),
        curriculum=curriculum,
        judge_backend=backend,
    )
