"""LLM judges: backends (API or in-process model), a persistent cache, and judge tasks.

    backend = build_judge_backend(cfg.judge, cache_dir=cfg.paths.cache_dir)
    verdict = await PairwiseTask(backend).compare(prompt, criteria, first=reference, second=response)

See base.py for the records and protocols, tasks.py for what each judge asks and how it reads
the answer, lifecycle.py for when a judge is checked and closed (callers outside this package go
through it).
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from longwriter.judges.base import (
    Backend,
    ChatResult,
    ChoiceResult,
    JudgeError,
    Message,
    PairwiseJudge,
    PairwiseJudgement,
    PointwiseJudge,
    PointwiseJudgement,
    Usage,
    Verdict,
    supports_probs,
)
from longwriter.judges.settings import LocalHFSettings
from longwriter.registry import Registry

if TYPE_CHECKING:  # for type checkers and IDEs; at run time see __getattr__ below
    from longwriter.judges.cache import CachedBackend, JudgeCache, cache_key
    from longwriter.judges.local_hf import LocalHFBackend
    from longwriter.judges.openai_backend import OpenAIBackend
    from longwriter.judges.settings import OpenAISettings
    from longwriter.judges.parsers import LengthRangePrediction
    from longwriter.judges.ratelimit import RateLimiter, TokenBucket
    from longwriter.judges.tasks import (ChecklistTask, LengthRangeTask, PairwiseTask, PointwiseTask,
                                         QualityDimensionsTask)

# Everything else is imported on first use (PEP 562), so that `import longwriter.judges.cache`
# in a reward worker does not pay for the openai client, and nothing here imports torch.
_LAZY = {
    "CachedBackend": "cache", "JudgeCache": "cache", "cache_key": "cache",
    "LocalHFBackend": "local_hf",
    "OpenAIBackend": "openai_backend", "OpenAISettings": "settings",
    "LengthRangePrediction": "parsers",
    "RateLimiter": "ratelimit", "TokenBucket": "ratelimit",
    "ChecklistTask": "tasks", "LengthRangeTask": "tasks", "PairwiseTask": "tasks", "PointwiseTask": "tasks",
    "QualityDimensionsTask": "tasks",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


logger = logging.getLogger(__name__)

CACHE_FILE = "judges/judge_cache.sqlite"

BackendBuilder = Callable[[dict, "Path | None", "Callable | None"], Backend]
_BUILDERS: Registry[BackendBuilder] = Registry("judge backend")
register_backend = _BUILDERS.register  # `@register_backend("<kind>")` builds judges for `judge.backend: <kind>`


@register_backend("openai")
def _build_openai(cfg: dict, cache_dir: Path | None, loader: Callable | None) -> Backend:
    from longwriter.judges.openai_backend import OpenAIBackend

    return OpenAIBackend.from_config(cfg)


@register_backend("local_hf")
def _build_local_hf(cfg: dict, cache_dir: Path | None, loader: Callable | None) -> Backend:
    model_cfg = cfg.get("model")
    if not isinstance(model_cfg, Mapping) or "name" not in model_cfg:
        raise JudgeError("judge.backend=local_hf needs judge.model (a model config with a name)")
    if loader is None:
        def loader() -> tuple[Any, Any]:
            from longwriter.models.loading import load_model_and_tokenizer  # heavy: only when used

            return load_model_and_tokenizer(model_cfg, cache_dir if cache_dir is not None else ".cache")
    from longwriter.judges.local_hf import LocalHFBackend

    return LocalHFBackend(loader=loader, name=str(model_cfg["name"]),
                          max_new_tokens=int(cfg.get("max_new_tokens", LocalHFSettings.max_new_tokens)))


def build_judge_backend(cfg: Any, cache_dir: str | os.PathLike | None = None, *,
                        loader: Callable[[], tuple[Any, Any]] | None = None) -> Backend:
    """The backend described by a judge config (dict or DictConfig), cached when `cache: true`.

    cfg.backend selects the builder (openai | local_hf). The cache file is
    `<cache_dir>/judges/judge_cache.sqlite`; without a cache_dir there is no cache. `loader`
    overrides how a local_hf judge loads its (model, tokenizer) (default: longwriter.models.loading).
    """
    from longwriter.config_tools import plain

    cfg = plain(cfg)
    kind = cfg.get("backend")
    if kind not in _BUILDERS:
        raise JudgeError(f"unknown judge.backend {kind!r}; known: {sorted(_BUILDERS)}")
    cache_root = Path(cache_dir) if cache_dir is not None else None
    backend = _BUILDERS[kind](cfg, cache_root, loader)
    if cfg.get("cache", False):
        if cache_root is None:
            logger.warning("judge.cache is true but no cache_dir was given: judging without a cache")
        else:
            from longwriter.judges.cache import CachedBackend, JudgeCache

            backend = CachedBackend(backend, JudgeCache(cache_root / CACHE_FILE))
    logger.info("judge backend: %r", backend)
    return backend


__all__ = [
    "Backend", "BackendBuilder", "CACHE_FILE", "CachedBackend", "ChatResult", "ChecklistTask", "ChoiceResult",
    "JudgeCache", "JudgeError", "LengthRangePrediction", "LengthRangeTask", "LocalHFBackend", "Message",
    "OpenAIBackend", "OpenAISettings", "PairwiseJudge", "PairwiseJudgement", "PairwiseTask", "PointwiseJudge",
    "PointwiseJudgement", "PointwiseTask", "QualityDimensionsTask", "RateLimiter", "TokenBucket", "Usage",
    "Verdict", "build_judge_backend", "cache_key", "register_backend", "supports_probs",
]
