"""Helpers the judge-driven strategies share: one judge per call, concurrent calls with a progress
bar over samples, criteria-aware pointwise scores, and cached batched generation.

Each strategy call runs its judge calls inside one `asyncio.run` (async clients are bound to the
loop they were first used on, so the backend's client is closed before that loop ends).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Sequence, TypeVar

from omegaconf import DictConfig, OmegaConf

from longwriter.data.schema import Sample
from longwriter.errors import ConfigError

logger = logging.getLogger(__name__)
T = TypeVar("T")


def build_backend(cfg: DictConfig) -> Any:
    """The `judge=` backend (with its persistent cache when judge.cache is on), checked at once.

    An API judge that cannot serve (unreachable, key rejected) fails here with one message,
    before any policy generation is paid for.
    """
    from longwriter.judges import build_judge_backend, supports_probs

    backend = build_judge_backend(cfg.judge, cache_dir=Path(str(cfg.paths.cache_dir)))
    if not supports_probs(backend) and hasattr(backend, "check"):
        run_with_backend(backend, backend.check)
    return backend


def run_with_backend(backend: Any, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work()` in a fresh event loop and close the backend's HTTP client before it ends."""

    async def main() -> T:
        try:
            return await work()
        finally:
            if hasattr(backend, "aclose"):
                await backend.aclose()

    return asyncio.run(main())


async def gather_per_sample(calls: Sequence[Awaitable[T]], desc: str) -> list[T]:
    """Await one coroutine per sample concurrently, advancing a tqdm bar as each finishes."""
    from tqdm.auto import tqdm

    with tqdm(total=len(calls), desc=desc, unit="sample") as bar:
        async def tracked(call: Awaitable[T]) -> T:
            try:
                return await call
            finally:
                bar.update(1)

        return list(await asyncio.gather(*(tracked(c) for c in calls)))


async def score_texts(task: Any, sample: Sample, texts: Sequence[str]) -> list[float | None]:
    """Pointwise 1-10 score of each text for this sample's prompt and criteria (None = unknown)."""
    judgements = await asyncio.gather(*(task.score(sample.prompt, sample.criteria, t) for t in texts))
    for judgement in judgements:
        if judgement.score is None:
            logger.debug("unknown score for %s: %s", sample.id, judgement.error)
    return [j.score for j in judgements]


def order_by_score(texts: Sequence[str], scores: Sequence[float | None], labels: Sequence[str]
                   ) -> tuple[list[str], list[float], list[str], int]:
    """(texts, scores, labels) weakest -> strongest, and how many unknown-score texts were left out.

    A text the judge could not score has no place in an order, so it is dropped (and counted);
    equal scores keep their given order (a stable sort).
    """
    known = [(s, t, lab) for t, s, lab in zip(texts, scores, labels) if s is not None]
    known.sort(key=lambda item: item[0])
    return [t for _, t, _ in known], [s for s, _, _ in known], [lab for _, _, lab in known], len(texts) - len(known)


# -- generation -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GenerationOptions:
    """How a local model writes one response per prompt (the policy, or a local reference writer)."""

    max_new_tokens: int = 512
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    prompt_template: str = "plain"
    batch_size: int = 8
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | DictConfig, where: str) -> "GenerationOptions":
        plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(plain) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**plain)


def generate(samples: Sequence[Sample], model_path: str, options: GenerationOptions, *,
             cache_path: str | None, dtype: str = "float32") -> tuple[list[str], dict[str, float]]:
    """One response per sample, through the evaluation's batched generator and its cache.

    Returns the *answer part* of each response (what a judge should see under the template) and
    the generator's stats. The model is freed before returning so that a local judge can load.
    """
    from longwriter.evaluation.generation import GenerationCache, GenerationSettings, generate_responses
    from longwriter.prompting import answer_part, check_template

    check_template(options.prompt_template)
    settings = GenerationSettings(options.max_new_tokens, options.temperature, options.top_p,
                                  options.prompt_template, options.seed)
    cache = GenerationCache(cache_path) if cache_path else None
    try:
        generations, gen_stats = generate_responses(samples, model_path, settings, batch_size=options.batch_size,
                                                    cache=cache, dtype=dtype)
    finally:
        if cache is not None:
            cache.close()
    gc.collect()
    return [answer_part(g.text, options.prompt_template) for g in generations], gen_stats


def judge_usage_metrics(backend: Any, prefix: str = "judge") -> dict[str, float]:
    usage = backend.usage()
    return {f"{prefix}/requests": usage.requests, f"{prefix}/cache_hits": usage.cache_hits,
            f"{prefix}/failures": usage.failures, f"{prefix}/cost_usd": usage.cost_usd}
