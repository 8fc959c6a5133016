"""One evaluation: load the data, generate (or read cached) responses, score them, log to MLflow.

`evaluate_model` works inside an active MLflow run, so the same function serves the standalone
`python -m longwriter.evaluate` (its own run, `run_evaluate`) and a training run that evaluates
its initial or final model into its own run (`evaluate_in_training`, `eval.at_start/at_end`).
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass, fields
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from longwriter.data.schema import Sample
from longwriter.errors import ConfigError
from longwriter.text import WORD_COUNTS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalSettings:
    """`cfg.eval` as typed values; the defaults live in conf/eval/default.yaml only."""

    metrics: list[str]
    checkpoint: str | None
    data: str | None
    limit: int | None
    prompt_template: str
    max_new_tokens: int
    batch_size: int
    temperature: float
    top_p: float
    seed: int
    generation_cache: str | None
    pairwise_position: str
    pairwise_reference: int
    word_count: str
    at_start: bool
    at_end: bool

    @classmethod
    def from_config(cls, eval_cfg: DictConfig) -> "EvalSettings":
        plain = OmegaConf.to_container(eval_cfg, resolve=True)
        names = {f.name for f in fields(cls)}
        unknown, missing = sorted(set(plain) - names), sorted(names - set(plain))
        if unknown or missing:
            raise ConfigError(f"eval config: unknown keys {unknown}, missing keys {missing} (see conf/eval/default.yaml)")
        settings = cls(**plain)
        if settings.limit is not None and settings.limit < 0:
            raise ConfigError(f"eval.limit must be >= 0 or null, got {settings.limit}")
        if settings.word_count not in WORD_COUNTS:
            raise ConfigError(f"eval.word_count must be one of {sorted(WORD_COUNTS)}, got {settings.word_count!r}")
        return settings


def _data_config(cfg: DictConfig, settings: EvalSettings) -> DictConfig:
    """`data=` of this run, or the conf/data preset named by eval.data (resolved against cfg.paths)."""
    if settings.data is None:
        return cfg.data
    from longwriter.config_tools import load_preset

    return load_preset("data", str(settings.data), cfg.paths, what="eval.data")


def eval_samples(cfg: DictConfig, settings: EvalSettings) -> tuple[list[Sample], DictConfig]:
    from longwriter.data.loaders import load_samples

    data_cfg = _data_config(cfg, settings)
    samples = load_samples(data_cfg)
    if settings.limit is not None:
        samples = samples[: settings.limit]
    if not samples:
        raise ConfigError(f"evaluation data {data_cfg.name!r} gave no samples (check data.limit / eval.limit)")
    return samples, data_cfg


def resolve_checkpoint(path: str) -> str:
    """A model folder from eval.checkpoint: the folder itself, or a training run's final_model/."""
    folder = Path(path).expanduser().resolve()
    for candidate in (folder, folder / "final_model"):
        if (candidate / "config.json").exists() or (candidate / "adapter_config.json").exists():
            return str(candidate)
    raise ConfigError(f"eval.checkpoint={path}: no model there (expected config.json or adapter_config.json in it "
                      f"or in its final_model/)")


def evaluate_model(cfg: DictConfig, model_path: str, *, model_label: str, label: str = "eval",
                   step: int = 0) -> dict[str, float]:
    """Evaluate the model in `model_path` on the configured data into the active MLflow run."""
    from tqdm.auto import tqdm

    from longwriter.generation import GenerationCache, GenerationSettings, generate_responses
    from longwriter.evaluation.report import log_evaluation
    from longwriter.evaluation.scoring import ScoringContext, check_metrics, needs_judge, score_all
    from longwriter.judges.lifecycle import open_judge, run_with_judge
    from longwriter.prompting import answer_part, check_template

    started = time.perf_counter()
    settings = EvalSettings.from_config(cfg.eval)
    metrics = check_metrics(settings.metrics)
    check_template(settings.prompt_template)
    samples, data_cfg = eval_samples(cfg, settings)
    # an API judge is checked here: it fails before generating
    backend = open_judge(cfg.judge, cfg.paths.cache_dir) if needs_judge(metrics) else None

    cache = GenerationCache(settings.generation_cache) if settings.generation_cache else None
    generation_settings = GenerationSettings(settings.max_new_tokens, settings.temperature, settings.top_p,
                                             settings.prompt_template, settings.seed)
    try:
        generations, gen_stats = generate_responses(samples, model_path, generation_settings,
                                                    batch_size=settings.batch_size, cache=cache,
                                                    dtype=str(cfg.model.get("dtype", "float32")))
    finally:
        if cache is not None:
            cache.close()
    gc.collect()  # free the policy before a local judge loads
    completions = [g.text for g in generations]
    rows = [{"sample_id": s.id, "source": s.source, "type": s.meta.get("type"), "prompt": s.user_prompt,
             "completion": g.text, "answer": answer_part(g.text, settings.prompt_template), "tokens": g.n_tokens,
             "truncated": g.truncated, "cached": g.cached} for s, g in zip(samples, generations)]

    judging = time.perf_counter()
    with tqdm(total=0, desc="judging", unit="call", disable=backend is None) as bar:
        ctx = ScoringContext(samples, completions, [r["answer"] for r in rows], rows,
                             prompt_template=settings.prompt_template, pairwise_position=settings.pairwise_position,
                             pairwise_reference=settings.pairwise_reference,
                             word_count=settings.word_count, backend=backend, progress=bar)
        scores = run_with_judge(ctx.backend, lambda: score_all(ctx, metrics))
    n = len(samples)
    scores.update({
        "eval/n_samples": n,
        "eval/generation/cache_hits": gen_stats["cache_hits"],
        "eval/generation/generated": gen_stats["generated"],
        "eval/generation/truncated_rate": sum(g.truncated for g in generations) / n,
        "eval/response_length/tokens/mean": sum(g.n_tokens for g in generations) / n,
        "eval/timing/generation_s": gen_stats["seconds"],
        "eval/timing/scoring_s": time.perf_counter() - judging,
        "eval/timing/total_s": time.perf_counter() - started,
    })
    if backend is not None:
        from longwriter.tracking.judge_usage import usage_metrics

        scores.update(usage_metrics(backend, "eval/judge"))
    params = {
        "model": model_label, "model_path": model_path, "n_samples": n, "metrics": ",".join(metrics),
        "dataset": data_cfg.name, "dataset_path": str(Path(data_cfg.path).resolve()) if data_cfg.get("path") else "",
        "judge": backend.identity if backend is not None else "none", "word_count": settings.word_count,
    }
    return log_evaluation(rows, scores, params, label=label, step=step)


def run_evaluate(cfg: DictConfig) -> dict[str, float]:
    """`python -m longwriter.evaluate`: one MLflow run for one evaluation."""
    import mlflow

    from longwriter.models import resolve_model_path
    from longwriter.config_checks import check_config
    from longwriter.tracking.mlflow_run import mlflow_run

    check_config(cfg, "evaluate")  # every value's type and range, before a model or a run
    settings = EvalSettings.from_config(cfg.eval)
    if settings.checkpoint:
        model_path = resolve_checkpoint(settings.checkpoint)
        model_label = model_path
    else:
        model_path = resolve_model_path(cfg.model, cfg.paths.cache_dir)
        model_label = str(cfg.model.name)
    eval_samples(cfg, settings)  # a bad data path or an empty file stops here, before an MLflow run exists
    from longwriter.config_tools import job_output_dir

    output_dir = job_output_dir(cfg, "evaluate")
    with mlflow_run(cfg, output_dir, run_name=str(cfg.run_name), tags={"kind": "evaluate"}):
        from longwriter.models.origin import origin_tags

        mlflow.set_tags({"model": model_label, "dataset": str(cfg.data.name), **origin_tags(model_path)})
        return evaluate_model(cfg, model_path, model_label=model_label)


def evaluate_in_training(cfg: DictConfig, model_dir: str, *, step: int, label: str,
                         model_label: str | None = None) -> dict[str, float]:
    """Called by a training engine inside its MLflow run (eval.at_start / eval.at_end)."""
    logger.info("evaluating %s (%s, step %d)", model_dir, label, step)
    return evaluate_model(cfg, str(model_dir), model_label=model_label or str(model_dir), label=label, step=step)
