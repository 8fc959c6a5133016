"""`engine=trl`: a GRPO run with TRL on the project's data, rewards and advantages.

Returns the sweep objective (`longwriter.tracking.objective`: by default the mean of `reward/total/mean`
over the last quarter of the steps).
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from longwriter.curriculum import CURRICULUM_FILE

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
FINAL_MODEL_DIR = "final_model"
LENGTHS_FILE = "rollout_lengths.jsonl"  # per-step word counts and targets, drawn by longwriter.tracking.plots


def _grpo_config(cfg: DictConfig, output_dir: Path, precision: str = "fp32"):
    """TRL's arguments; `precision` is the resolved `engine.precision` (bf16: autocast, fp32 master weights)."""
    from trl import GRPOConfig

    e = cfg.engine
    return GRPOConfig(
        output_dir=str(output_dir / CHECKPOINT_DIR),
        max_steps=int(e.max_steps),
        per_device_train_batch_size=int(e.prompts_per_step) * int(e.num_generations),
        num_generations=int(e.num_generations),
        max_completion_length=int(e.max_completion_length),
        temperature=float(e.temperature),
        top_p=float(e.top_p),
        learning_rate=float(e.learning_rate),
        beta=float(e.beta),
        lr_scheduler_type=str(e.lr_scheduler_type),
        gradient_accumulation_steps=int(e.gradient_accumulation_steps),
        gradient_checkpointing=bool(e.gradient_checkpointing),
        save_strategy="steps",
        save_steps=int(e.save_steps),
        save_total_limit=int(e.save_total_limit),
        logging_steps=int(e.logging_steps),
        seed=int(cfg.seed),
        report_to="none",
        remove_unused_columns=False,  # keep `sample_id` for the reward step
        # The trainer hands TRL final advantages as its single reward (see trainer.py).
        scale_rewards="none",
        multi_objective_aggregation="sum_then_normalize",
        log_completions=False,
        dataloader_num_workers=0,
        use_cpu=not _has_accelerator(),
        bf16=precision == "bf16",
    )


def _has_accelerator() -> bool:
    import torch

    return torch.cuda.is_available()


def _peft_config(cfg: DictConfig):
    lora = cfg.engine.lora
    if not lora.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=int(lora.r), lora_alpha=int(lora.alpha), lora_dropout=float(lora.dropout),
        target_modules=list(lora.target_modules), task_type="CAUSAL_LM",
    )


def _train_dataset(samples, recipe, tokenizer, max_prompt_length: int | None):
    """The prompts TRL samples from; prompts longer than `engine.max_prompt_length` tokens are dropped
    (TRL 1.16 has no prompt cap of its own, and one 26k-token prompt stalls a CPU run)."""
    from datasets import Dataset

    from longwriter.errors import ConfigError

    rows, too_long = [], []
    for sample in samples:
        messages = recipe.apply_prompt(sample.prompt)
        if max_prompt_length:
            ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                return_dict=True)["input_ids"]
            if len(ids) > max_prompt_length:
                too_long.append(sample.id)
                continue
        rows.append({"prompt": messages, "sample_id": sample.id})
    if too_long:
        logger.warning("dropped %d of %d prompts longer than engine.max_prompt_length=%s tokens: %s",
                       len(too_long), len(samples), max_prompt_length, ", ".join(too_long[:5]))
    if not rows:
        raise ConfigError(f"every prompt is longer than engine.max_prompt_length={max_prompt_length} tokens; "
                          f"raise it or choose shorter data")
    return Dataset.from_list(rows)


def _restore_curriculum(curriculum, checkpoint: str | None) -> None:
    if curriculum is None or checkpoint is None:
        return
    saved = Path(checkpoint) / CURRICULUM_FILE
    if saved.exists():
        curriculum.import_json(saved)
        logger.info("curriculum levels restored from %s", saved)


def _log_plots(lengths_file: Path) -> None:
    """The run's pictures (rewards, lengths over targets, monitors, curriculum, verdicts) as PNGs."""
    import mlflow

    from longwriter.tracking.plots import LENGTHS_ARTIFACT, log_run_plots, read_lengths

    lengths = None
    if lengths_file.exists():
        text = lengths_file.read_text(encoding="utf-8")
        mlflow.log_text(text, LENGTHS_ARTIFACT)
        lengths = read_lengths(text)
    log_run_plots(mlflow.active_run().info.run_id, lengths)


def build_trainer(cfg: DictConfig, output_dir: Path, model_path: str, samples, setup, loop, callbacks=()):
    """The configured `LongwriterGRPOTrainer` (shared by `run` and benchmarks/step_time.py)."""
    from transformers import AutoTokenizer

    from longwriter.engines.precision import cpu_summary, resolve_precision
    from longwriter.engines.trl_engine.trainer import LongwriterGRPOTrainer, RecipeReward

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    precision = resolve_precision(cfg.engine.get("precision"), "cuda" if _has_accelerator() else "cpu")
    logger.info("engine.precision=%s -> %s (%s)", cfg.engine.get("precision", "auto"), precision, cpu_summary())
    args = _grpo_config(cfg, output_dir, precision)
    args.model_init_kwargs = {"dtype": str(cfg.model.get("dtype", "float32"))}
    samples_by_id = {s.id: s for s in samples}
    return LongwriterGRPOTrainer(
        model=model_path,
        reward_funcs=[RecipeReward(setup.recipe, samples_by_id, loop)],
        args=args,
        train_dataset=_train_dataset(samples, setup.recipe, tokenizer, cfg.engine.get("max_prompt_length")),
        processing_class=tokenizer,
        peft_config=_peft_config(cfg),
        callbacks=list(callbacks),
        recipe=setup.recipe,
        samples_by_id=samples_by_id,
        loop=loop,
        judge_backend=setup.judge_backend,
        precision=precision,
        lengths_path=output_dir / LENGTHS_FILE,
    )


def run(cfg: DictConfig, output_dir: Path) -> float | tuple[float, ...] | None:
    import mlflow
    from transformers import ProgressCallback
    from transformers.trainer_utils import get_last_checkpoint

    from longwriter.async_utils import BackgroundLoop
    from longwriter.engines.trl_engine.callbacks import (
        CurriculumCheckpointCallback,
        MlflowProgressCallback,
        QuietProgressBar,
    )
    from longwriter.models import resolve_model_path
    from longwriter.pipeline import build_reward_setup, component_types, load_training_samples
    from longwriter.resume import log_resume
    from longwriter.tracking.mlflow_run import mlflow_run
    from longwriter.tracking.objective import log_objective, run_objective
    from longwriter.tracking.run_summary import print_run_summary
    from longwriter.tracking.sweep_callback import sweep_parent_run_id
    from longwriter.training_guards import UnknownVerdictStreak, check_judge, judge_endpoint, require_references

    output_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = None
    if cfg.get("resume_from"):
        checkpoints = output_dir / CHECKPOINT_DIR
        checkpoint = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
        if checkpoint is None:
            logger.warning("resume_from=%s has no checkpoint yet: training starts from step 0", output_dir)

    model_path = resolve_model_path(cfg.model, cfg.paths.cache_dir)
    samples = load_training_samples(cfg)
    require_references(component_types(cfg.reward).values(), samples, str(cfg.data.name))
    setup = build_reward_setup(cfg, output_dir)
    _restore_curriculum(setup.curriculum, checkpoint)
    if setup.curriculum is not None:
        setup.curriculum.register(samples)  # so curriculum/level/mean_all covers every training sample

    loop = BackgroundLoop()
    trainer = None
    progress = MlflowProgressCallback(lambda: trainer, cfg.engine.sample_every, cfg.engine.num_samples_logged)
    try:
        check_judge(setup.judge_backend, loop)
        resuming = bool(cfg.get("resume_from"))
        with mlflow_run(cfg, output_dir, run_name=str(cfg.run_name), parent_run_id=sweep_parent_run_id(cfg),
                        resume=resuming) as run:
            if resuming:
                log_resume(cfg, run.info.run_id, output_dir, checkpoint)
            mlflow.set_tags({"engine": "trl", "reward": str(cfg.reward.name), "model": str(cfg.model.name)})
            trainer = build_trainer(cfg, output_dir, model_path, samples, setup, loop,
                                    callbacks=[progress, CurriculumCheckpointCallback(setup.curriculum)])
            trainer.unknown_streak = UnknownVerdictStreak(cfg.get("stop_after_unknown_steps"),
                                                          judge_endpoint(setup.judge_backend))
            # Keep the progress bar but not its dump of every raw TRL log dict: our callback prints
            # one readable line per step (time split and ETA).
            trainer.remove_callback(ProgressCallback)
            trainer.add_callback(QuietProgressBar)
            if cfg.get("eval") and cfg.eval.at_start and checkpoint is None:  # the "before" of before/after
                from longwriter.evaluation.runner import evaluate_in_training
                evaluate_in_training(cfg, model_path, step=0, label="eval/initial", model_label=str(cfg.model.name))
            trainer.train(resume_from_checkpoint=checkpoint)
            final_dir = output_dir / FINAL_MODEL_DIR
            trainer.save_model(str(final_dir))
            if setup.curriculum is not None:
                setup.curriculum.export_json(final_dir / CURRICULUM_FILE)
                mlflow.log_artifact(str(final_dir / CURRICULUM_FILE), "curriculum")
            mlflow.set_tag("final_model_path", str(final_dir))
            mlflow.log_text(str(final_dir) + "\n", "final_model_path.txt")
            if cfg.get("eval") and cfg.eval.at_end:  # evaluate the final model into this run
                from longwriter.evaluation.runner import evaluate_in_training
                evaluate_in_training(cfg, str(final_dir), step=trainer.state.global_step, label="eval/final")
            objective = run_objective(mlflow.active_run().info.run_id, cfg.get("objective"))
            log_objective(objective, cfg.get("objective"))
            _log_plots(output_dir / LENGTHS_FILE)
            logger.info("final model saved to %s; objective %s", final_dir, objective)
            if trainer.accelerator.is_main_process:
                print_run_summary(mlflow.active_run(), final_dir)
            return objective
    finally:
        # Close the judge's HTTP session on the loop that opened it (no "unclosed session" at exit).
        aclose = getattr(setup.judge_backend, "aclose", None)
        if aclose is not None:
            loop.run(aclose())
        loop.close()
