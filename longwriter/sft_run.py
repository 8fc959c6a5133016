"""The SFT run behind `python -m longwriter.sft`: TRL's SFTTrainer on `longwriter.sft_data`'s examples.

Order (as in training): the config values (`config_checks`, entry `sft`), then the data (its file, its
responses, the template, the held-out RL evaluation prompts) are checked before a model loads or an
MLflow run opens; then the run folder (`outputs/sft/<run_name>`, refused when taken; `resume_from=`
restores the run's own config, its last checkpoint and its MLflow run), the model, and one MLflow
run of kind `sft` in the training experiment (left out of `longwriter.compare` unless --include-sft).

Logged: the resolved config (params), `train/loss`, `train/grad_norm`, `train/learning_rate`,
`train/mean_token_accuracy`, ... per step, `plots/loss.png`, the examples trained on
(`sft/dataset.jsonl`) and what was dropped (`sft/data_summary.json`), and greedy completions of the
final model on a few training prompts (`samples/samples.json`; with the think_answer template also
`sft/samples/well_formed_rate`, the format reward's own test).

Saved: `<run>/final_model`, a full model (LoRA merged) with its tokenizer and `longwriter_origin.json`,
which `python -m longwriter.train model.path=<run>/final_model` starts from and tags its run with.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig

from longwriter.errors import ConfigError

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
FINAL_MODEL_DIR = "final_model"
DATASET_ARTIFACT = "sft/dataset.jsonl"
SUMMARY_ARTIFACT = "sft/data_summary.json"
SAMPLES_TABLE = "samples/samples.json"
MAX_DATASET_ARTIFACT_BYTES = 20_000_000


def _tokens(tokenizer: Any, messages: Sequence[dict[str, str]]) -> int:
    return len(tokenizer.apply_chat_template(list(messages), tokenize=True, return_dict=True)["input_ids"])


def fit_length(examples: Sequence[Any], tokenizer: Any, max_length: int) -> tuple[list[Any], list[dict[str, Any]]]:
    """The examples whose prompt + completion fit `sft.max_length` tokens (chat template applied), and
    one row per dropped one: truncation would cut the end of the response (and </answer>)."""
    kept, dropped = [], []
    for example in examples:
        row = example.row()
        n = _tokens(tokenizer, row["prompt"] + row["completion"])
        if n <= max_length:
            kept.append(example)
        else:
            dropped.append({"id": example.sample_id, "reference_index": example.reference_index, "tokens": n})
    if dropped:
        logger.warning("dropped %d of %d SFT examples longer than sft.max_length=%d tokens: %s", len(dropped),
                       len(examples), max_length, ", ".join(d["id"] for d in dropped[:5]))
    if not kept:
        raise ConfigError(f"every SFT example is longer than sft.max_length={max_length} tokens (prompt + response, "
                          f"chat template applied); raise sft.max_length or choose shorter responses")
    return kept, dropped


def _batch(sft_cfg: DictConfig) -> tuple[int, int]:
    size, accumulation = int(sft_cfg.batch_size), int(sft_cfg.gradient_accumulation_steps)
    if size % accumulation:
        raise ConfigError(f"sft.gradient_accumulation_steps={accumulation} must divide sft.batch_size={size}")
    return size // accumulation, accumulation


def sft_config(cfg: DictConfig, output_dir: Path, precision: str, cuda: bool):
    """TRL's SFTConfig from the `sft` group (prompt-completion rows: the loss is on the completion only)."""
    from trl import SFTConfig

    from longwriter.engines.trl_engine.run import attn_implementation

    s = cfg.sft
    per_device, accumulation = _batch(s)
    steps = s.get("max_steps")
    warmup = float(s.warmup_ratio)
    return SFTConfig(
        output_dir=str(output_dir / CHECKPOINT_DIR),
        max_steps=-1 if steps is None else int(steps),
        num_train_epochs=float(s.num_train_epochs),
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        learning_rate=float(s.learning_rate),
        lr_scheduler_type=str(s.lr_scheduler_type),
        warmup_steps=warmup,  # transformers 5: a float in [0, 1) is a ratio of the steps
        max_length=int(s.max_length),
        completion_only_loss=True,
        packing=False,
        gradient_checkpointing=bool(s.gradient_checkpointing),
        save_strategy="steps",
        save_steps=int(s.save_steps),
        save_total_limit=None if s.get("save_total_limit") is None else int(s.save_total_limit),
        logging_steps=int(s.logging_steps),
        seed=int(cfg.seed),
        report_to="none",
        dataloader_num_workers=0,
        use_cpu=not cuda,
        bf16=precision == "bf16",
        model_init_kwargs={"dtype": str(cfg.model.get("dtype", "float32")),
                           "attn_implementation": attn_implementation("auto", cuda)},
    )


def _peft_config(sft_cfg: DictConfig):
    lora = sft_cfg.lora
    if not lora.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(r=int(lora.r), lora_alpha=int(lora.alpha), lora_dropout=float(lora.dropout),
                      target_modules=list(lora.target_modules), task_type="CAUSAL_LM")


def _make_callback():
    from transformers import TrainerCallback

    from longwriter.engines.trl_engine.callbacks import log_summary_tags
    from longwriter.tracking.metric_names import rename_trl_metrics
    from longwriter.tracking.mlflow_run import log_metrics

    class SftProgress(TrainerCallback):
        """Every SFT log event to MLflow under the training names (train/loss, ...), one line per log."""

        def on_train_begin(self, args, state, control, **kwargs):
            self._start, self._first = time.perf_counter(), state.global_step

        def on_step_begin(self, args, state, control, **kwargs):
            optimizer = kwargs.get("optimizer")
            self._lr = float(optimizer.param_groups[0]["lr"]) if optimizer is not None else None

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            if "train_runtime" in logs:
                log_summary_tags(logs)
                return
            metrics = rename_trl_metrics(logs)
            if "mean_token_accuracy" in metrics:
                metrics["train/mean_token_accuracy"] = metrics.pop("mean_token_accuracy")
            if getattr(self, "_lr", None) is not None:  # the rate this step used
                metrics["train/learning_rate"] = self._lr
            log_metrics(metrics, step=state.global_step)
            done = max(1, state.global_step - self._first)
            eta = (time.perf_counter() - self._start) / done * max(0, state.max_steps - state.global_step)
            logger.info("sft step %d/%d | loss %.4f | token accuracy %s | ETA %s", state.global_step,
                        state.max_steps, float(metrics.get("train/loss", math.nan)),
                        f"{metrics['train/mean_token_accuracy']:.3f}" if "train/mean_token_accuracy" in metrics
                        else "n/a", time.strftime("%H:%M:%S", time.gmtime(eta)))

    return SftProgress()


def save_final_model(trainer: Any, tokenizer: Any, folder: Path) -> Any:
    """The trained model as a plain folder (LoRA merged), generation stopping at the tokenizer's eos."""
    model = trainer.model
    if hasattr(model, "merge_and_unload"):  # a PEFT model: RL loads a full model folder
        model = model.merge_and_unload()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return model


def sample_rows(model: Any, tokenizer: Any, examples: Sequence[Any], template: str, n: int,
                max_new_tokens: int) -> list[dict[str, Any]]:
    """Greedy completions of the model on the first `n` examples' prompts (one per sample)."""
    import torch

    from longwriter.rewards.format import parse_format
    from longwriter.text import count_words

    seen, prompts = set(), []
    for example in examples:
        if example.sample_id not in seen:
            seen.add(example.sample_id)
            prompts.append(example)
    rows = []
    model.eval()
    device = next(model.parameters()).device
    for example in prompts[:n]:
        text = tokenizer.apply_chat_template(example.prompt, tokenize=False, add_generation_prompt=True)
        inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(device)
        with torch.no_grad():
            out = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens,
                                 pad_token_id=tokenizer.pad_token_id)
        new = out[0][inputs["input_ids"].shape[1]:]
        completion = tokenizer.decode(new, skip_special_tokens=True)
        row: dict[str, Any] = {"sample_id": example.sample_id, "tokens": int(len(new))}
        if template == "think_answer":
            answer, well_formed = parse_format(completion, "think")
            row.update(well_formed=bool(well_formed), words=count_words(answer))
        else:
            row["words"] = count_words(completion)
        row.update(prompt=example.prompt[-1]["content"], completion=completion)
        rows.append(row)
    return rows


def _log_data(data: Any, examples: Sequence[Any], too_long: list[dict[str, Any]], cfg: DictConfig) -> None:
    import mlflow

    from longwriter.tracking.mlflow_run import log_metrics

    lines, size = [], 0
    for example in examples:
        line = json.dumps(example.record(), ensure_ascii=False)
        size += len(line) + 1
        if size > MAX_DATASET_ARTIFACT_BYTES:
            break
        lines.append(line)
    mlflow.log_text("\n".join(lines) + "\n", DATASET_ARTIFACT)
    summary = {**data.summary(), "examples_trained": len(examples), "dropped_too_long": too_long,
               "template": str(cfg.sft.template), "data": str(cfg.data.name),
               "data_path": str(cfg.data.get("path") or ""), "dataset_artifact_rows": len(lines)}
    mlflow.log_text(json.dumps(summary, indent=1, ensure_ascii=False), SUMMARY_ARTIFACT)
    log_metrics({"sft/data/samples_loaded": data.loaded, "sft/data/examples": len(examples),
                 "sft/data/dropped_holdout": len(data.dropped_holdout), "sft/data/dropped_too_long": len(too_long)},
                step=0)


def _log_loss_plot(run_id: str) -> None:
    import mlflow

    from longwriter.tracking.plots import _pyplot, metric_history

    history = metric_history(run_id)
    points = history.get("train/loss", [])
    if not points:
        return
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([s for s, _ in points], [v for _, v in points], marker="o", markersize=3)
    ax.set(title="SFT loss (completion tokens)", xlabel="step", ylabel="train/loss")
    mlflow.log_figure(fig, "plots/loss.png")
    plt.close(fig)


def _summary_lines(run: Any, steps: int, final_dir: Path, well_formed: float | None) -> list[str]:
    import mlflow

    from longwriter.tracking.objective import logged_history
    from longwriter.tracking.run_summary import quarter_means, ui_pointer

    losses = [row["train/loss"] for row in logged_history(run.info.run_id, ["train/loss"]) if "train/loss" in row]
    first, last = quarter_means(losses)
    uri = str(mlflow.get_tracking_uri())
    out = [f"== SFT run summary ({steps} steps) ==",
           f"          loss: first quarter {first:.3f} -> last quarter {last:.3f} ({last - first:+.3f})"]
    if well_formed is not None:
        out.append(f"   well formed: {well_formed:.2f} of the logged greedy samples (think/answer tags)")
    out += [f"    MLflow run: {run.info.run_id} (experiment {run.info.experiment_id}, kind=sft)",
            f"     MLflow UI: {ui_pointer(uri, run.info.experiment_id, run.info.run_id)}",
            f"   final model: {final_dir}",
            f"      start RL: python -m longwriter.train model.path={final_dir}"]
    return out


def _prepare(cfg: DictConfig):
    """(config, run folder, data): the data is checked before the folder is touched (a new run), or
    from the run's own config (a resume)."""
    from longwriter.engines import prepare_run
    from longwriter.sft_data import build_sft_data

    if cfg.get("resume_from"):
        cfg, output_dir = prepare_run(cfg, "sft")
        return cfg, output_dir, build_sft_data(cfg)
    data = build_sft_data(cfg)
    cfg, output_dir = prepare_run(cfg, "sft")
    return cfg, output_dir, data


def run_sft(cfg: DictConfig) -> float:
    """One SFT run; returns the mean training loss."""
    from longwriter.config_checks import check_config

    check_config(cfg, "sft")  # the CLI's callback has already; a caller in code gets the same checks
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        raise ConfigError("python -m longwriter.sft runs in one process (no accelerate launch / torchrun)")
    cfg, output_dir, data = _prepare(cfg)

    import mlflow
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, ProgressCallback
    from trl import SFTTrainer

    from longwriter.engines.precision import cpu_summary, resolve_precision
    from longwriter.engines.trl_engine.callbacks import CheckpointCompleteCallback, QuietProgressBar
    from longwriter.models import resolve_model_path
    from longwriter.models.origin import origin_tags, write_origin
    from longwriter.resume import log_resume, newest_intact_checkpoint
    from longwriter.tracking.mlflow_run import log_metrics, mlflow_run
    from longwriter.tracking.tables import log_table

    resuming = bool(cfg.get("resume_from"))
    checkpoint = (newest_intact_checkpoint(output_dir / CHECKPOINT_DIR, f"resume_from={output_dir}")
                  if resuming else None)
    if resuming and checkpoint is None:
        logger.warning("resume_from=%s has no checkpoint yet: SFT starts from step 0", output_dir)
    model_path = resolve_model_path(cfg.model, cfg.paths.cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    examples, too_long = fit_length(data.examples, tokenizer, int(cfg.sft.max_length))
    cuda = torch.cuda.is_available()
    precision = resolve_precision(cfg.sft.get("precision"), "cuda" if cuda else "cpu")
    logger.info("sft.precision=%s -> %s (%s)", cfg.sft.get("precision", "auto"), precision, cpu_summary())
    template = str(cfg.sft.template)

    with mlflow_run(cfg, output_dir, run_name=str(cfg.run_name), tags={"kind": "sft"}, resume=resuming) as run:
        if resuming:
            log_resume(cfg, run.info.run_id, output_dir, checkpoint)
        mlflow.set_tags({"model": str(cfg.model.name), "dataset": str(cfg.data.name), "sft.template": template,
                         **origin_tags(model_path)})
        _log_data(data, examples, too_long, cfg)
        trainer = SFTTrainer(model=model_path, args=sft_config(cfg, output_dir, precision, cuda),
                             train_dataset=Dataset.from_list([e.row() for e in examples]),
                             processing_class=tokenizer, peft_config=_peft_config(cfg.sft),
                             callbacks=[_make_callback(), CheckpointCompleteCallback()])
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(QuietProgressBar)
        result = trainer.train(resume_from_checkpoint=checkpoint)
        steps = int(trainer.state.global_step)
        final_dir = output_dir / FINAL_MODEL_DIR
        model = save_final_model(trainer, tokenizer, final_dir)
        write_origin(final_dir, {
            "kind": "sft", "run_id": run.info.run_id, "run_name": str(run.info.run_name),
            "experiment_id": run.info.experiment_id, "tracking_uri": mlflow.get_tracking_uri(),
            "run_dir": str(output_dir), "base_model": str(cfg.model.name), "base_model_path": model_path,
            "template": template, "data": str(cfg.data.name), "data_path": str(cfg.data.get("path") or ""),
            "examples": len(examples), "steps": steps, "learning_rate": float(cfg.sft.learning_rate),
            "lora": bool(cfg.sft.lora.enabled), "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
        mlflow.set_tag("final_model_path", str(final_dir))
        mlflow.log_text(str(final_dir) + "\n", "final_model_path.txt")
        well_formed = None
        if int(cfg.sft.num_samples_logged) > 0:
            rows = sample_rows(model, tokenizer, examples, template, int(cfg.sft.num_samples_logged),
                               int(cfg.sft.sample_max_new_tokens))
            for row in rows:
                row["step"] = steps
            log_table(rows, SAMPLES_TABLE)
            if template == "think_answer" and rows:
                well_formed = sum(r["well_formed"] for r in rows) / len(rows)
                log_metrics({"sft/samples/well_formed_rate": well_formed}, step=steps)
        _log_loss_plot(run.info.run_id)
        for line in _summary_lines(run, steps, final_dir, well_formed):
            print(line, flush=True)
    return float(result.training_loss)
