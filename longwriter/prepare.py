"""Entry point: `python -m longwriter.prepare [overrides]` (a Hydra app sharing train's config groups).

Builds a training file once, so that a selection that needs a policy and a judge is not redone by
every training run: load `data=`, write and order references (`prepare.references`), apply
`data_selection=`, save to `prepare.output` (and optionally verl parquet). Each run is one MLflow
run: kept / dropped counts by reason, the strategy's numbers (margin stats, judge usage), a margin
histogram, the per-sample table, and the output file (or its path when large).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Sequence

import hydra
from omegaconf import DictConfig

from longwriter.cli import quiet_request_logs, user_errors_exit_cleanly
from longwriter.config_tools import job_output_dir
from longwriter.errors import ConfigError
from longwriter.paths import register_resolvers

register_resolvers()
logger = logging.getLogger(__name__)

OUTPUT_SUFFIXES = (".jsonl", ".parquet")


def output_path(cfg: DictConfig) -> Path:
    path = Path(str(cfg.prepare.output)).expanduser()
    path = path if path.is_absolute() else Path.cwd() / path
    if path.suffix not in OUTPUT_SUFFIXES:
        raise ConfigError(f"prepare.output={cfg.prepare.output!r}: use a {' or '.join(OUTPUT_SUFFIXES)} file name")
    return path


def drop_long_prompts(samples: list[Any], cfg: DictConfig) -> tuple[list[Any], list[dict[str, Any]]]:
    """Samples whose chat-rendered prompt fits `prepare.max_prompt_tokens` (the policy's tokenizer),
    and a row per dropped one. WritingBench has prompts of up to ~46k tokens: beyond the small
    models' context and minutes of CPU time per rollout."""
    limit = cfg.prepare.get("max_prompt_tokens")
    if not limit:
        return samples, []
    from transformers import AutoTokenizer

    from longwriter.models import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(cfg.model, cfg.paths.cache_dir))
    kept, rows = [], []
    for sample in samples:
        text = tokenizer.apply_chat_template(sample.prompt, tokenize=False, add_generation_prompt=True)
        n_tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        if n_tokens <= int(limit):
            kept.append(sample)
        else:
            rows.append({"id": sample.id, "kept": False, "reason": "prompt_too_long", "prompt_tokens": n_tokens})
    logger.info("prepare: %d of %d prompts longer than %d tokens dropped", len(rows), len(samples), limit)
    return kept, rows


def _figures(rows: Sequence[dict[str, Any]], threshold: Any) -> dict[str, Any]:
    """Margin histogram (kept vs dropped, with the threshold) and predicted length ranges."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    figures = {}
    scored = [r for r in rows if r.get("margin") is not None]
    if scored:
        fig, ax = plt.subplots(figsize=(6, 4))
        kept = [r["margin"] for r in scored if r["kept"]]
        dropped = [r["margin"] for r in scored if not r["kept"]]
        low, high = min(r["margin"] for r in scored), max(r["margin"] for r in scored)
        bins = [low + (high - low) * i / 20 for i in range(21)] if high > low else 10
        ax.hist([kept, dropped], bins=bins, stacked=True, color=["tab:green", "tab:grey"],
                label=[f"kept ({len(kept)})", f"dropped ({len(dropped)})"])
        if threshold is not None:
            ax.axvline(float(threshold), color="tab:red", ls="--", lw=1, label=f"threshold {float(threshold):g}")
        ax.set(xlabel="margin = best reference score - policy score", ylabel="samples",
               title=f"Margins of {len(scored)} judged samples")
        ax.legend()
        figures["margin_hist.png"] = fig
    ranges = [r["length_range"] for r in rows if r.get("kept") and r.get("length_range")]
    if ranges:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.hist([(lo + hi) / 2 for lo, hi in ranges], bins=20, color="tab:blue")
        ax.set(xlabel="middle of the word range", ylabel="samples", title=f"Length ranges of {len(ranges)} kept samples")
        figures["length_range_hist.png"] = fig
    return figures


def _log_run(cfg: DictConfig, rows: list[dict[str, Any]], metrics: dict[str, float], path: Path,
             extra_files: list[Path]) -> None:
    import json

    import matplotlib.pyplot as plt
    import mlflow

    from longwriter.tracking.tables import log_table
    from longwriter.tracking.mlflow_run import log_metrics

    log_metrics(metrics, step=0)
    mlflow.set_tags({"prepare.output_path": str(path), "dataset": str(cfg.data.name),
                     "data_selection": str(cfg.data_selection.name)})
    if rows:
        log_table(rows, "prepare/samples.json")
    for name, fig in _figures(rows, cfg.data_selection.get("threshold")).items():
        mlflow.log_figure(fig, f"prepare/{name}")
        plt.close(fig)
    summary = {"output": str(path), "extra_files": [str(p) for p in extra_files],
               **{k: v for k, v in metrics.items() if k.startswith(("prepare/kept", "prepare/dropped", "prepare/loaded"))}}
    mlflow.log_text(json.dumps(summary, indent=2), "prepare/summary.json")
    limit = float(cfg.prepare.get("log_dataset_max_mb", 0) or 0) * 1e6
    for file in [path, *extra_files]:
        if file.stat().st_size <= limit:
            mlflow.log_artifact(str(file), "prepare/dataset")
        else:
            logger.info("%s is larger than prepare.log_dataset_max_mb: logged its path only", file)


def run_prepare(cfg: DictConfig) -> dict[str, float]:
    """Load, (re)build references, select, save, log. Returns the metrics logged."""
    from longwriter.data.loaders import load_samples, save_samples
    from longwriter.data.verl_parquet import export_verl_parquet
    from longwriter.references import build_references
    from longwriter.selection.report import select_with_report
    from longwriter.tracking.mlflow_run import mlflow_run

    from longwriter.config_checks import check_config

    check_config(cfg, "prepare")  # every value's type and range, before a model or a run
    started = time.perf_counter()
    path = output_path(cfg)
    with mlflow_run(cfg, job_output_dir(cfg, "prepare"), run_name=str(cfg.run_name), tags={"kind": "prepare"}):
        loaded = load_samples(cfg.data)
        samples, too_long = drop_long_prompts(loaded, cfg)
        references_start = time.perf_counter()
        samples, reference_metrics = build_references(samples, cfg)
        selection_start = time.perf_counter()
        report = select_with_report(samples, cfg)
        if too_long:  # one row per loaded sample, in input order
            by_id = {r["id"]: r for r in [*report.rows, *too_long]}
            report.rows = [by_id[s.id] for s in loaded if s.id in by_id]
            report.dropped["prompt_too_long"] += len(too_long)
        save_samples(report.samples, path)
        extra = []
        if cfg.prepare.get("verl_parquet"):
            verl_path = path.with_name(f"{path.stem}.verl.parquet")
            extra.append(export_verl_parquet(report.samples, verl_path, split=str(cfg.prepare.verl_split)))
        metrics = {
            "prepare/loaded": float(len(loaded)),
            "prepare/kept": float(len(report.samples)),
            "prepare/dropped/total": float(sum(report.dropped.values())),
            **{f"prepare/dropped/{reason}": float(n) for reason, n in report.dropped.items()},
            **{f"prepare/{k}": v for k, v in {**reference_metrics, **report.metrics}.items()},
            "prepare/timing/references_s": selection_start - references_start,
            "prepare/timing/selection_s": time.perf_counter() - selection_start,
            "prepare/timing/total_s": time.perf_counter() - started,
        }
        _log_run(cfg, report.rows, metrics, path, extra)
    logger.info("prepare: %d loaded, %s -> %s (%.1f s)", len(loaded), report.summary(), path,
                metrics["prepare/timing/total_s"])
    if not report.samples:
        logger.warning("data_selection=%s kept no samples: %s is empty", cfg.data_selection.name, path)
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="prepare")
@user_errors_exit_cleanly
def main(cfg: DictConfig) -> dict[str, float]:
    # Heavy imports live inside run_prepare so that `--cfg job` and `--help` stay fast.
    quiet_request_logs()
    return run_prepare(cfg)


if __name__ == "__main__":
    main()
