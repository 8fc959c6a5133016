"""Data-selection strategies (`data_selection=` group), chosen by name from a registry.

A strategy takes the loaded samples and the full config (it may need a judge or the policy) and
returns the samples to train on, possibly with their starting curriculum level set.
"""

from __future__ import annotations

import logging
import random
from typing import Callable

from omegaconf import DictConfig

from longwriter.data.schema import Sample
from longwriter.registry import Registry

logger = logging.getLogger(__name__)

Strategy = Callable[[list[Sample], DictConfig], list[Sample]]
_STRATEGIES: Registry[Strategy] = Registry("data-selection strategy")
register_strategy = _STRATEGIES.register  # `@register_strategy("<name>")`: a value of `data_selection.name`


def select_samples(samples: list[Sample], cfg: DictConfig) -> list[Sample]:
    _load_builtin_strategies()
    name = str(cfg.data_selection.name)
    if name not in _STRATEGIES:
        raise ValueError(f"data_selection={name!r} is unknown; choose one of {sorted(_STRATEGIES)}")
    return _STRATEGIES[name](samples, cfg)


def _load_builtin_strategies() -> None:
    """Import the modules that register strategies (imported lazily: some need judges/models)."""
    import importlib

    for module in ("longwriter.selection.margin_aware", "longwriter.selection.length_range"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


@register_strategy("all")
def select_all(samples: list[Sample], cfg: DictConfig) -> list[Sample]:
    return list(samples)


@register_strategy("random")
def select_random(samples: list[Sample], cfg: DictConfig) -> list[Sample]:
    """A random subset of `data_selection.k` samples (the baseline for margin-aware selection)."""
    k = int(cfg.data_selection.get("k", len(samples)))
    rng = random.Random(int(cfg.data_selection.get("seed", 0)))
    return rng.sample(list(samples), min(k, len(samples)))
