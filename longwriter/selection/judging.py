"""Judging helpers the judge-driven strategies and reference writing share: one judge per call,
concurrent calls with a progress bar over samples, criteria-aware pointwise scores, ordering by score.

Each strategy call runs its judge calls inside one `longwriter.judges.lifecycle.run_with_judge` (async clients are bound to the
loop they were first used on, so the backend's client is closed before that loop ends).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Awaitable, Sequence, TypeVar

from omegaconf import DictConfig

from longwriter.data.schema import Sample
from longwriter.judges.lifecycle import open_judge

logger = logging.getLogger(__name__)
T = TypeVar("T")


def build_backend(cfg: DictConfig) -> Any:
    """The run's `judge=` backend, checked at once (`longwriter.judges.lifecycle.open_judge`)."""
    return open_judge(cfg.judge, Path(str(cfg.paths.cache_dir)))


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
