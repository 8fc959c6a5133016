"""What a training run does around the optimiser loop, the same for every engine.

Both engine adapters (`engines/trl_engine/run.py`, `engines/verl/launcher.py`) call these, so that
switching `engine=` keeps the same run: the same samples and guards before anything expensive starts,
one MLflow run with the same tags and resume record, the same evaluation before the first step and
after the last, the same objective and end-of-run summary. The adapters keep only what is theirs: the
engine's config, its optimiser loop and where it writes the final model.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Callable, Iterator

from omegaconf import DictConfig

logger = logging.getLogger(__name__)


def checked_training_samples(cfg: DictConfig, spec: Any) -> list:
    """The configured data and selection, refused at start where the recipe cannot score it
    (`spec`: the parsed recipe): references missing for a recipe that needs them, criteria missing for
    one that needs criteria; samples marked infeasible (length range [0, 0], DESIGN 3.3) are dropped
    when a component scores length ranges."""
    from longwriter.training_guards import require_criteria, require_references
    from longwriter.training_setup import load_training_samples

    samples = load_training_samples(cfg)
    data = str(cfg.data.name)
    require_references(spec.needs, samples, data)
    require_criteria(spec.needs, samples, data)
    if spec.needs.length_ranges:
        kept = [s for s in samples if tuple(s.length_range or ()) != (0, 0)]
        if len(kept) < len(samples):
            logger.info("dropped %d sample(s) with the infeasible length range [0, 0]", len(samples) - len(kept))
        samples = kept
    return samples


@contextlib.contextmanager
def tracked_run(cfg: DictConfig, output_dir: Path, engine: str, model_path: str, checkpoint: str | None,
                tags: dict[str, str] | None = None, enabled: bool = True) -> Iterator[Any]:
    """The run's one MLflow run (a sweep trial's parent, a resume's own run), tagged alike by every
    engine, with the resume recorded; `enabled` False (a non-main process) yields None and tracks nothing."""
    if not enabled:
        yield None
        return
    import mlflow

    from longwriter.models.origin import origin_tags
    from longwriter.resume import log_resume
    from longwriter.tracking.mlflow_run import mlflow_run
    from longwriter.tracking.sweep_callback import sweep_parent_run_id

    resuming = bool(cfg.get("resume_from"))
    with mlflow_run(cfg, output_dir, run_name=str(cfg.run_name), parent_run_id=sweep_parent_run_id(cfg),
                    resume=resuming) as run:
        if resuming:
            log_resume(cfg, run.info.run_id, output_dir, checkpoint)
        # A policy from a saved folder (model.path) names the run that made it: policy_origin=<run id>.
        mlflow.set_tags({"engine": engine, "reward": str(cfg.reward.name), "model": str(cfg.model.name),
                         **(tags or {}), **origin_tags(model_path)})
        yield run


def evaluate_before(cfg: DictConfig, model_path: str, resumed: bool) -> None:
    """eval.at_start: the "before" of before/after, on the initial model (not again on a resume)."""
    if cfg.get("eval") and cfg.eval.at_start and not resumed:
        from longwriter.evaluation.runner import evaluate_in_training

        evaluate_in_training(cfg, model_path, step=0, label="eval/initial", model_label=str(cfg.model.name))


def finish_run(cfg: DictConfig, run: Any, final_model: str,
               eval_model: Callable[[], tuple[str, int]]) -> float | tuple[float, ...] | None:
    """After the last step: record where the final model is, evaluate it (eval.at_end; `eval_model`
    gives the (Hugging Face folder, step) to evaluate, called only then), compute and log the sweep
    objective, print the summary. Returns the objective."""
    import mlflow

    from longwriter.tracking.objective import log_objective, run_objective
    from longwriter.tracking.run_summary import print_run_summary

    mlflow.set_tag("final_model_path", final_model)
    mlflow.log_text(final_model + "\n", "final_model_path.txt")
    if cfg.get("eval") and cfg.eval.at_end:
        from longwriter.evaluation.runner import evaluate_in_training

        folder, step = eval_model()
        evaluate_in_training(cfg, folder, step=step, label="eval/final")
    objective = run_objective(run.info.run_id, cfg.get("objective"))
    log_objective(objective, cfg.get("objective"))
    logger.info("final model at %s; objective %s", final_model, objective)
    print_run_summary(run, final_model)
    return objective
