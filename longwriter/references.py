"""Reference lists for the pairwise recipe: write them with a set of writers, order them by a judge.

`prepare.references.writers` names the writers, each one of
  {name, kind: openai, base_url, model, api_key_env, max_tokens, temperature, ...}
      any OpenAI-compatible endpoint; every key but name/kind is an `OpenAISettings` field
      (retries, rate limits and the persistent cache come with it; the key stays in the env)
  {name, kind: local_hf, model: <conf/model preset name or a model config>, max_new_tokens, ...}
      an in-process transformers model through `longwriter.generation` (batched, cached)
Each writer answers every prompt once; with `keep_existing` the sample's current references join
the pool. The judge (`judge=`, pointwise and criteria-aware) scores each candidate and the list
is ordered weakest -> strongest; a candidate it cannot score is left out and counted, because it
has no place in an order. `meta.reference_sources` / `meta.reference_scores` say who wrote which
reference and what it scored. An empty writer list leaves the samples untouched.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from longwriter.data.schema import Sample
from longwriter.errors import ConfigError
from longwriter.generation import GenerationOptions, generate_answers
from longwriter.judges.lifecycle import run_with_judge
from longwriter.selection.judging import build_backend, gather_per_sample, order_by_score, score_texts
from longwriter.selection.report import stats
from longwriter.tracking.judge_usage import usage_metrics

logger = logging.getLogger(__name__)

KINDS = ("openai", "local_hf")


def _plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


def _check_writers(writers: list[dict]) -> None:
    names = [w.get("name") for w in writers]
    for i, writer in enumerate(writers):
        if not isinstance(writer, Mapping) or not writer.get("name") or writer.get("kind") not in KINDS:
            raise ConfigError(f"prepare.references.writers[{i}] needs a name and kind in {list(KINDS)}, got {writer!r}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"prepare.references.writers: duplicate names {duplicates}")


def _model_config(value: Any, root: DictConfig) -> dict:
    """A local writer's model: a conf/model preset by name, or a model config mapping."""
    if isinstance(value, Mapping):
        return dict(value)
    from longwriter.config_tools import load_preset, plain

    return plain(load_preset("model", str(value), root.paths, what="reference writer model"))


def _write_local(writer: dict, samples: list[Sample], cfg: DictConfig, cache_path: str | None) -> list[str | None]:
    from longwriter.models import resolve_model_path

    options = {k: v for k, v in writer.items() if k not in ("name", "kind", "model")}
    gen = GenerationOptions.from_config(options, f"reference writer {writer['name']!r}")
    model_cfg = _model_config(writer.get("model") or cfg.model, cfg)
    path = resolve_model_path(model_cfg, cfg.paths.cache_dir)
    texts, _ = generate_answers(samples, path, gen, cache_path=cache_path, dtype=str(model_cfg.get("dtype", "float32")))
    return [t if t.strip() else None for t in texts]


def _write_api(writer: dict, samples: list[Sample], cfg: DictConfig) -> list[str | None]:
    from longwriter.judges.lifecycle import open_judge

    settings = {k: v for k, v in writer.items() if k not in ("name", "kind")}
    # A writer uses the same OpenAI-compatible chat backend as an API judge (retries, limits, persistent
    # cache) and is checked the same way: an unreachable endpoint or a rejected key fails here.
    backend = open_judge({"cache": True, **settings, "name": writer["name"], "backend": "openai"},
                         Path(str(cfg.paths.cache_dir)))
    max_tokens = int(settings.get("max_tokens", 1024))

    async def work():
        results = await gather_per_sample([backend.chat(s.prompt, max_tokens) for s in samples],
                                          desc=f"writing ({writer['name']})")
        return [r.text.strip() if r.text and r.text.strip() else None for r in results]

    return run_with_judge(backend, work)


def build_references(samples: list[Sample], cfg: DictConfig) -> tuple[list[Sample], dict[str, float]]:
    """Samples with written, judged and ordered references (`prepare.references`), and counts."""
    ref_cfg = cfg.prepare.references
    writers = _plain(ref_cfg.get("writers")) or []
    if not writers or not samples:
        return samples, {}
    _check_writers(writers)
    keep_existing = bool(ref_cfg.get("keep_existing", True))
    pools: list[list[tuple[str, str]]] = [
        [(f"existing:{i}", r) for i, r in enumerate(s.references)] if keep_existing else [] for s in samples]
    metrics: dict[str, float] = {}
    backend = build_backend(cfg)  # the judge is checked before any writer is paid for
    for writer in writers:
        logger.info("references: writer %s (%s) answers %d prompts", writer["name"], writer["kind"], len(samples))
        if writer["kind"] == "local_hf":
            texts = _write_local(writer, samples, cfg, ref_cfg.get("generation_cache"))
        else:
            texts = _write_api(writer, samples, cfg)
        metrics[f"references/writer_failures/{writer['name']}"] = float(sum(t is None for t in texts))
        for pool, text in zip(pools, texts):
            if text is not None:
                pool.append((str(writer["name"]), text))

    from longwriter.judges import PointwiseTask

    task = PointwiseTask(backend)

    async def work():
        calls = [score_texts(task, s, [t for _, t in pool]) for s, pool in zip(samples, pools)]
        return await gather_per_sample(calls, desc="judging (references)")

    all_scores = run_with_judge(backend, work)
    out, unknown, sizes, winners = [], 0, [], Counter()
    for sample, pool, scores in zip(samples, pools, all_scores):
        refs, ordered, sources, n_unknown = order_by_score([t for _, t in pool], scores, [n for n, _ in pool])
        unknown += n_unknown
        sizes.append(len(refs))
        if sources:
            winners[sources[-1].split(":")[0]] += 1
        meta = {**sample.meta, "reference_sources": sources, "reference_scores": ordered}
        out.append(dataclasses.replace(sample, references=refs, start_level=0, meta=meta))
    metrics.update({"references/unknown_score_dropped": float(unknown), **stats("references/per_sample", sizes),
                    **stats("references/score", [x for row in all_scores for x in row]),
                    **{f"references/strongest/{name}": float(n) for name, n in winners.items()},
                    **usage_metrics(backend, "references/judge")})
    return out, metrics
