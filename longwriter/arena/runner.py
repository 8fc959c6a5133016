"""One arena: generate (or read cached) responses of every contestant, play the battles, fit the
ratings, print the table and log it, the battles and a plot to one MLflow run."""

from __future__ import annotations

import csv
import gc
import io
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from longwriter.config_tools import job_output_dir
from longwriter.errors import ConfigError

logger = logging.getLogger(__name__)

CONTESTANT_KEYS = {"name", "model", "checkpoint", "max_new_tokens", "temperature"}


@dataclass(frozen=True)
class Contestant:
    """A named model folder and how it generates."""

    name: str
    model_path: str
    max_new_tokens: int
    temperature: float
    dtype: str = "float32"


def contestants(cfg: DictConfig) -> list[Contestant]:
    """arena.contestants as model folders (model presets converted/built once, checkpoints resolved)."""
    from longwriter.evaluation.runner import resolve_checkpoint
    from longwriter.models import resolve_model_path
    from longwriter.config_tools import load_preset

    spec = [*(OmegaConf.to_container(cfg.arena.contestants, resolve=True) or []),
            *(OmegaConf.to_container(cfg.arena.add, resolve=True) or [])]
    names = [entry.get("name") if isinstance(entry, Mapping) else None for entry in spec]
    if len(spec) < 2:
        raise ConfigError("arena.contestants (+ arena.add) needs at least two entries "
                          "{name, model: <preset>} or {name, checkpoint: <folder>}")
    if None in names or len(set(names)) != len(names):
        raise ConfigError(f"arena contestants need unique names; got {names}")
    out = []
    for entry in spec:
        entry = dict(entry)
        name = entry["name"]
        unknown = sorted(set(entry) - CONTESTANT_KEYS)
        if unknown or ("model" in entry) == ("checkpoint" in entry):
            raise ConfigError(f"arena contestant {name!r}: give exactly one of model / checkpoint (and optionally "
                              f"max_new_tokens, temperature); got {sorted(entry)}")
        dtype = "float32"
        if "checkpoint" in entry:
            path = resolve_checkpoint(str(entry["checkpoint"]))
        else:
            model_cfg = load_preset("model", str(entry["model"]), what=f"arena contestant {name!r}: model")
            dtype = str(model_cfg.get("dtype", "float32"))
            path = resolve_model_path(model_cfg, cfg.paths.cache_dir)
        out.append(Contestant(str(name), path, int(entry.get("max_new_tokens", cfg.arena.max_new_tokens)),
                              float(entry.get("temperature", cfg.arena.temperature)), dtype))
    return out


def _answers(cfg: DictConfig, samples: list, players: list[Contestant]) -> tuple[dict[str, list[str]], dict]:
    from longwriter.generation import GenerationCache, GenerationSettings, generate_responses
    from longwriter.prompting import answer_part

    a = cfg.arena
    cache = GenerationCache(a.generation_cache) if a.generation_cache else None
    answers, stats = {}, {"generated": 0.0, "cache_hits": 0.0, "seconds": 0.0}
    try:
        for player in players:
            settings = GenerationSettings(player.max_new_tokens, player.temperature, float(a.top_p),
                                          str(a.prompt_template), int(a.seed))
            generations, gen_stats = generate_responses(samples, player.model_path, settings,
                                                        batch_size=int(a.batch_size), cache=cache, dtype=player.dtype)
            answers[player.name] = [answer_part(g.text, str(a.prompt_template)) for g in generations]
            for key in stats:
                stats[key] += gen_stats[key]
            gc.collect()
    finally:
        if cache is not None:
            cache.close()
    return answers, stats


def _battles(backend: Any, samples: list, answers: dict[str, list[str]]) -> list:
    """Every battle judged in one event loop that closes the judge's client at its end."""
    from longwriter.arena.battles import play
    from longwriter.judges import PairwiseTask
    from longwriter.judges.lifecycle import run_with_judge

    return run_with_judge(backend, lambda: play(PairwiseTask(backend), samples, answers))


def ratings_table(ratings: list) -> str:
    """The ranking as a fixed-width text table (printed, and logged as arena/ratings.txt)."""
    lines = [f"{'rank':<5}{'contestant':<22}{'rating':>8}{'95% CI':>18}{'W':>5}{'T':>5}{'L':>5}{'score':>8}"]
    for rank, r in enumerate(ratings, 1):
        ci = f"[{r.ci_low:.0f}, {r.ci_high:.0f}]"
        rate = "-" if r.score_rate is None else f"{r.score_rate:.2f}"
        lines.append(f"{rank:<5}{r.name:<22}{r.rating:>8.1f}{ci:>18}{r.wins:>5}{r.ties:>5}{r.losses:>5}{rate:>8}")
    return "\n".join(lines)


def _ratings_plot(ratings: list, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.6 * len(ratings) + 1.5))
    names = [r.name for r in reversed(ratings)]
    values = [r.rating for r in reversed(ratings)]
    errors = [[r.rating - r.ci_low for r in reversed(ratings)], [r.ci_high - r.rating for r in reversed(ratings)]]
    ax.errorbar(values, names, xerr=errors, fmt="o", capsize=4, color="tab:blue")
    ax.axvline(1000, color="grey", lw=1, ls="--")
    ax.set(xlabel="Bradley-Terry rating (Elo scale)", title=title)
    fig.tight_layout()
    return fig


def _log(cfg: DictConfig, players: list[Contestant], ratings: list, records: list, extra: dict[str, float]) -> None:
    import matplotlib.pyplot as plt
    import mlflow

    from longwriter.tracking.mlflow_run import log_metrics

    metrics: dict[str, float] = dict(extra)
    for rank, r in enumerate(ratings, 1):
        metrics.update({f"arena/{r.name}/rating": r.rating, f"arena/{r.name}/ci_low": r.ci_low,
                        f"arena/{r.name}/ci_high": r.ci_high, f"arena/{r.name}/rank": rank})
        if r.score_rate is not None:
            metrics[f"arena/{r.name}/score_rate"] = r.score_rate
    log_metrics(metrics, step=0)
    mlflow.log_params({f"arena/contestant/{p.name}": f"{p.model_path} (max_new_tokens={p.max_new_tokens}, "
                       f"temperature={p.temperature})" for p in players})
    mlflow.log_text(ratings_table(ratings), "arena/ratings.txt")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["rank", "contestant", "rating", "ci_low", "ci_high", "wins", "ties", "losses", "score_rate"])
    for rank, r in enumerate(ratings, 1):
        writer.writerow([rank, r.name, f"{r.rating:.2f}", f"{r.ci_low:.2f}", f"{r.ci_high:.2f}", r.wins, r.ties,
                         r.losses, "" if r.score_rate is None else f"{r.score_rate:.4f}"])
    mlflow.log_text(buffer.getvalue(), "arena/ratings.csv")
    mlflow.log_text("\n".join(json.dumps(asdict(rec), ensure_ascii=False) for rec in records), "arena/battles.jsonl")
    fig = _ratings_plot(ratings, f"Arena: {len(records)} battles, judge {cfg.judge.name}")
    mlflow.log_figure(fig, "arena/plots/ratings.png")
    plt.close(fig)


def run_arena(cfg: DictConfig) -> list:
    """`python -m longwriter.arena`: returns the ratings, best first."""
    import mlflow

    from longwriter.arena.ratings import rate
    from longwriter.data.loaders import load_samples
    from longwriter.judges.lifecycle import open_judge
    from longwriter.tracking.judge_usage import usage_metrics
    from longwriter.prompting import check_template
    from longwriter.tracking.mlflow_run import mlflow_run

    check_template(str(cfg.arena.prompt_template))
    samples = load_samples(cfg.data)
    if cfg.arena.limit is not None:
        samples = samples[: int(cfg.arena.limit)]
    if not samples:
        raise ConfigError(f"arena data {cfg.data.name!r} gave no samples")
    players = contestants(cfg)
    backend = open_judge(cfg.judge, cfg.paths.cache_dir)  # an API judge fails here, before any generation
    output_dir = job_output_dir(cfg, "arena")
    with mlflow_run(cfg, output_dir, run_name=str(cfg.run_name), tags={"kind": "arena"}):
        mlflow.set_tags({"dataset": str(cfg.data.name), "judge": backend.identity})
        answers, gen_stats = _answers(cfg, samples, players)
        records = _battles(backend, samples, answers)
        battles = [b for b in (rec.battle() for rec in records) if b is not None]
        ratings = rate(battles, [p.name for p in players], prior=float(cfg.arena.prior),
                       bootstrap=int(cfg.arena.bootstrap), seed=int(cfg.arena.seed),
                       confidence=float(cfg.arena.confidence))
        both_known = [r for r in records if r.a_first is not None and r.b_first is not None]
        extra = {"arena/prompts": len(samples), "arena/battles": len(records),
                 "arena/unknown": len(records) - len(battles),
                 "arena/position_disagreement": (sum(r.disagreed for r in both_known) / len(both_known)
                                                 if both_known else float("nan")),
                 **usage_metrics(backend, "arena/judge"),
                 "arena/generation/generated": gen_stats["generated"],
                 "arena/generation/cache_hits": gen_stats["cache_hits"]}
        _log(cfg, players, ratings, records, extra)
        run_id = mlflow.active_run().info.run_id
    print(ratings_table(ratings))
    print(f"{len(records)} battles on {len(samples)} prompts ({extra['arena/unknown']} unknown), judge calls: "
          f"{extra['arena/judge/cache_hits']:.0f} from the cache, {extra['arena/judge/cache_misses']:.0f} new; "
          f"MLflow run {run_id}")
    return ratings
