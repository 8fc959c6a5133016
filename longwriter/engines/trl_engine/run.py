"""`engine=trl`: a GRPO run with TRL on the project's data, rewards and advantages.

Returns the sweep objective (`longwriter.tracking.objective`: by default the mean of `reward/total/mean`
over the last quarter of the steps).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from longwriter.engines import is_main_process
from longwriter.engines.vocabulary import VLLM_MODES, max_steps, rollout_backend
from longwriter.errors import ConfigError

from longwriter.curriculum import CURRICULUM_FILE

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
FINAL_MODEL_DIR = "final_model"
LENGTHS_FILE = "rollout_lengths.jsonl"  # per-step word counts and targets, drawn by longwriter.tracking.plots


# GRPOConfig fields the adapter owns: the project's reward integration depends on them (trainer.py).
_ADAPTER_FIELDS = ("output_dir", "remove_unused_columns", "scale_rewards", "multi_objective_aggregation",
                   "report_to", "per_device_train_batch_size", "steps_per_generation", "generation_batch_size")


def world_size() -> int:
    """Processes of this run: accelerate and torchrun set WORLD_SIZE before Python starts."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


# engine.gradient_accumulation_steps=auto on CPU: micro batches of this many completions. Measured on a
# 2-core Xeon (fp32, SmolLM2-135M, 16 completions of up to 144 tokens): update 9.4 s and peak RSS 4.3 GB
# in 4 micro batches of 4, against 13.8 s and 7.9 GB for the 16 at once (the logits of a micro batch,
# completions x tokens x 49k vocabulary in fp32, then stay in the caches and out of the allocator's peak).
CPU_MICRO_BATCH = 4


def auto_accumulation(per_process: int, on_gpu: bool) -> int:
    """`gradient_accumulation_steps=auto`: on CPU the most micro batches that keep each one at least
    CPU_MICRO_BATCH completions and divide the step's batch; on a GPU one (the whole batch at once)."""
    if on_gpu:
        return 1
    return max(a for a in range(1, per_process + 1) if per_process % a == 0 and per_process // a >= min(
        CPU_MICRO_BATCH, per_process))


def batch_layout(engine_cfg: DictConfig, processes: int, on_gpu: bool | None = None) -> tuple[int, int]:
    """(per_device_train_batch_size, gradient_accumulation_steps) for TRL.

    One optimisation step = `prompts_per_step` prompts x `num_generations` completions over all
    processes (TRL's generation batch = per_device * processes * steps_per_generation, where
    steps_per_generation = gradient_accumulation_steps). Each process gets prompts_per_step / processes
    whole groups, so the rewards, the advantages' groups and the curriculum never see a split group;
    gradient accumulation splits a process's share into micro batches, it does not add rollouts
    (`auto`: auto_accumulation; `on_gpu` None asks torch)."""
    prompts, group = int(engine_cfg.prompts_per_step), int(engine_cfg.num_generations)
    setting = engine_cfg.gradient_accumulation_steps
    if min(prompts, group) < 1 or (setting != "auto" and int(setting) < 1):
        raise ConfigError("engine.prompts_per_step, engine.num_generations and engine.gradient_accumulation_steps "
                          "must be >= 1 (gradient_accumulation_steps: or auto)")
    if group < 2:
        raise ConfigError(f"engine.num_generations={group}: GRPO compares >= 2 completions per prompt "
                          f"(one response per prompt is PPO with a critic: engine=verl engine.algorithm=ppo)")
    if prompts % processes:
        raise ConfigError(f"engine.prompts_per_step={prompts} must be a multiple of the number of processes "
                          f"({processes}): each process then holds whole groups of {group} completions")
    per_process = prompts // processes * group
    if setting == "auto":
        if on_gpu is None:
            import torch

            on_gpu = torch.cuda.is_available()
        accumulation = auto_accumulation(per_process, on_gpu)
    else:
        accumulation = int(setting)
    if per_process % accumulation:
        raise ConfigError(f"engine.gradient_accumulation_steps={accumulation} must divide the completions per "
                          f"process and step ({per_process} = prompts_per_step / processes * num_generations); "
                          f"auto picks a divisor")
    return per_process // accumulation, accumulation


def refuse_verl_only(engine_cfg: DictConfig) -> None:
    """verl-only settings the TRL engine cannot honour (the rest of the verl-only keys are ignored)."""
    if str(engine_cfg.algorithm) != "grpo":
        raise ConfigError(f"engine.algorithm={engine_cfg.algorithm}: the TRL engine trains GRPO only; PPO with a "
                          f"critic needs engine=verl")
    if bool(engine_cfg.kl_in_reward):
        raise ConfigError("engine.kl_in_reward=true: TRL's GRPO puts the KL term (engine.beta) in the loss; "
                          "a KL penalty inside the reward needs engine=verl")
    if engine_cfg.get("eval_steps") is not None:
        raise ConfigError(f"engine.eval_steps={engine_cfg.eval_steps}: the TRL engine validates with "
                          f"eval.at_start / eval.at_end (periodic validation is verl's trainer.test_freq)")


def attn_implementation(setting: str, cuda: bool) -> str:
    """auto: flash_attention_2 on a GPU where flash-attn is installed, else PyTorch's sdpa."""
    if setting != "auto":
        return setting
    if cuda:
        import importlib.util

        if importlib.util.find_spec("flash_attn") is not None:
            return "flash_attention_2"
    return "sdpa"


def _vllm_args(engine_cfg: DictConfig) -> dict:
    rollout = engine_cfg.rollout
    if rollout_backend(engine_cfg, "trl") != "vllm":
        return {"use_vllm": False}
    mode = str(rollout.vllm_mode)
    if mode not in VLLM_MODES:
        raise ConfigError(f"engine.rollout.vllm_mode={mode!r}: choose one of {', '.join(VLLM_MODES)}")
    args = {"use_vllm": True, "vllm_mode": mode,
            "vllm_gpu_memory_utilization": float(rollout.gpu_memory_utilization),
            "vllm_tensor_parallel_size": int(rollout.tensor_parallel_size)}
    if rollout.server_base_url:
        args["vllm_server_base_url"] = str(rollout.server_base_url)
    return args


def _raw_trl_args(engine_cfg: DictConfig) -> dict:
    """`engine.trl.<GRPOConfig field>`: any other TRL setting, by TRL's own name."""
    import dataclasses

    from trl import GRPOConfig

    raw = OmegaConf.to_container(engine_cfg.get("trl") or OmegaConf.create({}), resolve=True)
    known = {f.name for f in dataclasses.fields(GRPOConfig)}
    for key in raw:
        if key not in known:
            raise ConfigError(f"engine.trl.{key}: TRL {_trl_version()}'s GRPOConfig has no field {key!r}")
        if key in _ADAPTER_FIELDS:
            raise ConfigError(f"engine.trl.{key}: set by the TRL adapter (the project's rewards depend on it); "
                              f"see docs/engines.md")
    return raw


def _trl_version() -> str:
    import trl

    return trl.__version__


def _grpo_config(cfg: DictConfig, output_dir: Path, precision: str = "fp32"):
    """TRL's arguments from the engine vocabulary (table: longwriter/engines/vocabulary.py)."""
    from trl import GRPOConfig

    e = cfg.engine
    refuse_verl_only(e)
    per_device, accumulation = batch_layout(e, world_size())
    steps = max_steps(e)
    return GRPOConfig(
        output_dir=str(output_dir / CHECKPOINT_DIR),
        max_steps=-1 if steps is None else steps,
        num_train_epochs=float(e.num_train_epochs),
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        num_generations=int(e.num_generations),
        max_completion_length=int(e.max_completion_length),
        temperature=float(e.temperature),
        top_p=float(e.top_p),
        learning_rate=float(e.learning_rate),
        lr_scheduler_type=str(e.lr_scheduler_type),
        warmup_steps=_warmup_fraction(e),  # transformers 5: a float in [0, 1) is a ratio of the steps
        beta=float(e.beta),
        epsilon=float(e.clip_ratio_low),
        epsilon_high=float(e.clip_ratio_high),
        loss_type=str(e.loss_type),
        mask_truncated_completions=bool(e.mask_truncated_completions),
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
        **_vllm_args(e),
        **_raw_trl_args(e),
    )


def _warmup_fraction(engine_cfg: DictConfig) -> float:
    ratio = float(engine_cfg.warmup_ratio)
    if not 0.0 <= ratio < 1.0:
        raise ConfigError(f"engine.warmup_ratio={ratio}: a fraction of the steps in [0, 1)")
    return ratio


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


def _num_levels(samples) -> int:
    return max((len(s.references) for s in samples), default=0)


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
    logger.info("batch: %d prompts x %d completions a step, %d micro batch(es) of %d (engine.gradient_accumulation_steps=%s)",
                int(cfg.engine.prompts_per_step), int(cfg.engine.num_generations), args.gradient_accumulation_steps,
                args.per_device_train_batch_size, cfg.engine.gradient_accumulation_steps)
    args.model_init_kwargs = {"dtype": str(cfg.model.get("dtype", "float32")),
                              "attn_implementation": attn_implementation(str(cfg.engine.attn_implementation),
                                                                         _has_accelerator())}
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
        drop_finished_rows=bool(cfg.engine.rollout.get("drop_finished_rows", True)),
        lengths_path=output_dir / LENGTHS_FILE,
    )


def dry_run(cfg: DictConfig, output_dir: Path) -> None:
    """`engine.dry_run=true`: map the vocabulary onto GRPOConfig (TRL's own checks run), load the data,
    build the reward recipe and check the in-training evaluation settings; no model, no training."""
    from longwriter.rewards import build_recipe, parse_recipe
    from longwriter.training_run import checked_training_samples

    args = _grpo_config(cfg, output_dir)
    spec = parse_recipe(OmegaConf.to_container(cfg.reward, resolve=True))
    samples = checked_training_samples(cfg, spec)
    # Option typos and unknown components fail here (placeholder judges: nothing is called).
    build_recipe(spec, pairwise_judge=object(), pointwise_judge=object(), checklist_judge=object(), curriculum=None,
                 max_completion_tokens=int(cfg.engine.max_completion_length))
    if cfg.get("eval") and (cfg.eval.at_start or cfg.eval.at_end):
        from longwriter.evaluation.runner import EvalSettings

        EvalSettings.from_config(cfg.eval)
    folder = output_dir / "trl"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "grpo_config.json").write_text(args.to_json_string())
    print(f"trl dry run: GRPOConfig {folder / 'grpo_config.json'}; {len(samples)} samples; "
          f"{world_size()} process(es) x {args.per_device_train_batch_size} completions x "
          f"{args.gradient_accumulation_steps} accumulation steps per step; validated")


def run(cfg: DictConfig, output_dir: Path) -> float | tuple[float, ...] | None:
    if bool(cfg.engine.get("dry_run")):
        return dry_run(cfg, output_dir)
    return train(cfg, output_dir)


def train(cfg: DictConfig, output_dir: Path) -> float | tuple[float, ...] | None:
    """One GRPO run. With several processes (accelerate launch), only the main process opens the MLflow
    run, logs and evaluates; every process trains its share of each step's groups."""
    import mlflow
    from transformers import ProgressCallback

    from longwriter.async_utils import BackgroundLoop
    from longwriter.engines.trl_engine.callbacks import (
        CheckpointCompleteCallback,
        CurriculumCheckpointCallback,
        CurriculumHistogramCallback,
        MlflowProgressCallback,
        QuietProgressBar,
    )
    from longwriter.judges.lifecycle import judge_on_loop
    from longwriter.models import resolve_model_path
    from longwriter.resume import newest_intact_checkpoint
    from longwriter.rewards import parse_recipe
    from longwriter.training_guards import UnknownVerdictStreak, judge_endpoint
    from longwriter.training_run import checked_training_samples, evaluate_before, finish_run, tracked_run
    from longwriter.training_setup import build_reward_setup

    output_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = None
    if cfg.get("resume_from"):
        checkpoints = output_dir / CHECKPOINT_DIR
        checkpoint = newest_intact_checkpoint(checkpoints, f"resume_from={output_dir}")  # before MLflow opens
        if checkpoint is None:
            logger.warning("resume_from=%s has no checkpoint yet: training starts from step 0", output_dir)

    model_path = resolve_model_path(cfg.model, cfg.paths.cache_dir)
    spec = parse_recipe(cfg.reward)
    samples = checked_training_samples(cfg, spec)
    setup = build_reward_setup(cfg, output_dir, spec=spec)
    _restore_curriculum(setup.curriculum, checkpoint)
    if setup.curriculum is not None:  # so curriculum/level/mean_all and the level histogram cover every sample
        setup.curriculum.register(samples)

    loop = BackgroundLoop()
    trainer = None
    main = is_main_process()
    progress = MlflowProgressCallback(lambda: trainer, cfg.engine.sample_every, cfg.engine.num_samples_logged)
    # One MLflow run, opened by the main process; the others train without tracking.
    tracking = tracked_run(cfg, output_dir, "trl", model_path, checkpoint, tags={"processes": str(world_size())},
                           enabled=main)
    try:
        # The judge is checked before the first step and closed at the end, on the loop it serves on.
        with judge_on_loop(setup.judge_backend, loop), tracking as run:
            trainer = build_trainer(cfg, output_dir, model_path, samples, setup, loop,
                                    callbacks=[CurriculumHistogramCallback(setup.curriculum, _num_levels(samples)),
                                               progress, CurriculumCheckpointCallback(setup.curriculum),
                                               CheckpointCompleteCallback()])  # last: after every write
            trainer.unknown_streak = UnknownVerdictStreak(cfg.get("stop_after_unknown_steps"),
                                                          judge_endpoint(setup.judge_backend))
            # Keep the progress bar but not its dump of every raw TRL log dict: our callback prints
            # one readable line per step (time split and ETA).
            trainer.remove_callback(ProgressCallback)
            trainer.add_callback(QuietProgressBar)
            if main:
                evaluate_before(cfg, model_path, resumed=checkpoint is not None)
            trainer.train(resume_from_checkpoint=checkpoint)
            final_dir = output_dir / FINAL_MODEL_DIR
            trainer.save_model(str(final_dir))  # every process calls it; the main one writes
            if not main:
                return None
            if setup.curriculum is not None:
                setup.curriculum.export_json(final_dir / CURRICULUM_FILE)
                mlflow.log_artifact(str(final_dir / CURRICULUM_FILE), "curriculum")
            _log_plots(output_dir / LENGTHS_FILE)
            return finish_run(cfg, run, str(final_dir), lambda: (str(final_dir), trainer.state.global_step))
    finally:
        loop.close()
