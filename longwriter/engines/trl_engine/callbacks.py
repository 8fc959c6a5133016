"""Trainer callbacks: MLflow metrics with section/name/stat names, a progress line with ETA,
sample generations as an MLflow table, the curriculum state saved inside every checkpoint, and the
mark that publishes a finished checkpoint (`longwriter.resume.mark_checkpoint_complete`)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from transformers import ProgressCallback, TrainerCallback

from longwriter.curriculum import CURRICULUM_FILE
from longwriter.resume import mark_checkpoint_complete
from longwriter.tracking.metric_names import rename_trl_metrics
from longwriter.tracking.mlflow_run import log_metrics
from longwriter.tracking.tables import SAMPLES_TABLE, log_table, training_sample_rows

logger = logging.getLogger(__name__)

# Shown in the per-step progress line when the recipe produces them.
_PROGRESS_EXTRAS = [
    ("length/words/mean", "words", ".0f"),
    ("judge/win_rate", "win", ".2f"),
    ("curriculum/level/mean", "level", ".2f"),
    ("format/valid_rate", "format", ".2f"),
]


def _number(value, fmt: str) -> str:
    """A metric for the progress line; None or NaN (no verdict this step) reads `n/a`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if number != number else format(number, fmt)


SUMMARY_TAG_PREFIX = "summary."


def log_summary_tags(logs: dict) -> None:
    """TRL's end-of-training figures (runtime, samples per second, mean loss, ...) as run tags
    `summary.<name>`: one value per run, shown on the run's page and as runs-table columns; a resumed
    run overwrites them (params could not change)."""
    import mlflow

    tags = {}
    for key, value in logs.items():
        try:
            tags[SUMMARY_TAG_PREFIX + key] = f"{float(value):.6g}"
        except (TypeError, ValueError):
            continue
    if tags:
        mlflow.set_tags(tags)


class MlflowProgressCallback(TrainerCallback):
    """Logs every TRL log event to MLflow and prints one progress line per step."""

    def __init__(self, trainer_ref, sample_every: int, num_samples: int) -> None:
        self.trainer_ref = trainer_ref  # a callable returning the trainer (it is built after us)
        self.sample_every = max(1, int(sample_every))
        self.num_samples = int(num_samples)
        self.history: list[dict[str, float]] = []
        self._step_start = 0.0
        self._step_seconds = 0.0
        self._train_start = 0.0
        self._step_lr: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._train_start = time.perf_counter()
        self._first_step = state.global_step

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_start = time.perf_counter()
        optimizer = kwargs.get("optimizer")
        self._step_lr = float(optimizer.param_groups[0]["lr"]) if optimizer is not None else None

    def on_step_end(self, args, state, control, **kwargs):
        self._step_seconds = time.perf_counter() - self._step_start
        if state.global_step % self.sample_every == 0 or state.global_step == 1:
            self._log_samples(state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        metrics = rename_trl_metrics(logs)
        if "train_runtime" in logs:  # the end-of-training summary: one value per run, so tags, not charts
            log_summary_tags(logs)
            return
        if self._step_lr is not None:  # the rate this step used (TRL logs the next step's: 0 after a decay)
            metrics["train/learning_rate"] = self._step_lr
        rollout = metrics.get("timing/rollout_s", 0.0) or 0.0
        metrics["timing/step_s"] = self._step_seconds
        metrics["timing/update_s"] = max(0.0, self._step_seconds - rollout)
        gen, reward = metrics.get("timing/generation_s", 0.0) or 0.0, metrics.get("timing/reward_s", 0.0) or 0.0
        metrics["timing/scoring_s"] = max(0.0, rollout - gen - reward)
        log_metrics(metrics, step=state.global_step)
        self.history.append(metrics)
        done = state.global_step - self._first_step
        elapsed = time.perf_counter() - self._train_start
        eta = elapsed / max(done, 1) * max(0, state.max_steps - state.global_step)
        extras = "".join(
            f" | {label} {_number(metrics[key], fmt)}" for key, label, fmt in _PROGRESS_EXTRAS
            if metrics.get(key) is not None
        )
        logger.info(
            "step %d/%d | reward %s%s | gen %.1fs reward %.1fs update %.1fs | ETA %s",
            state.global_step, state.max_steps, _number(metrics.get("reward/total/mean"), ".3f"), extras,
            gen, reward, metrics["timing/update_s"], time.strftime("%H:%M:%S", time.gmtime(eta)),
        )

    def _log_samples(self, step: int) -> None:
        trainer = self.trainer_ref()
        rollout = getattr(trainer, "last_rollout", None)
        if not rollout or not trainer.accelerator.is_main_process:
            return
        log_table(training_sample_rows(step, rollout["samples"], rollout["completions"], rollout["answers"],
                                       rollout["rewards"], rollout["total"], rollout["advantages"],
                                       rollout["labels"], self.num_samples), SAMPLES_TABLE)


class QuietProgressBar(ProgressCallback):
    """The stock tqdm progress bar (with ETA) without printing raw log dicts."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        return


class CurriculumCheckpointCallback(TrainerCallback):
    """Writes the curriculum levels into each checkpoint folder, so a resume restores them."""

    def __init__(self, curriculum) -> None:
        self.curriculum = curriculum

    def on_save(self, args, state, control, **kwargs):
        if self.curriculum is None or not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        folder.mkdir(parents=True, exist_ok=True)
        self.curriculum.export_json(folder / CURRICULUM_FILE)


class CheckpointCompleteCallback(TrainerCallback):
    """Marks each checkpoint complete once everything in it is written (list it after every callback
    that writes into the checkpoint): a resume takes only marked checkpoints."""

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            mark_checkpoint_complete(folder)


class CurriculumHistogramCallback(TrainerCallback):
    """Adds `curriculum/dataset_level_hist/<level>` (share of all training samples per reference level)
    to each log event, under the name the verl engine logs it; listed before MlflowProgressCallback,
    which logs the same dict."""

    def __init__(self, curriculum, num_levels: int | None = None) -> None:
        self.curriculum = curriculum
        self.num_levels = num_levels  # every level 0..num_levels-1 logged, zeros included (continuous series)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.curriculum is None or not state.is_world_process_zero or logs is None or "train_runtime" in logs:
            return
        counts = self.curriculum.histogram(self.num_levels)
        total = sum(counts.values())
        for level, count in counts.items():
            logs[f"curriculum/dataset_level_hist/{level}"] = count / total if total else 0.0
