"""`engine=verl`: prepare verl's inputs from our config, then validate (dry run) or launch run_ppo.

Prepared in `<output_dir>/verl/`: train.parquet and val.parquet (the recipe's prompt template
applied; validation rows never move the curriculum), ppo_trainer.yaml (the complete verl config,
launchable as is with `python -m verl.trainer.main_ppo --config-path <dir> --config-name ppo_trainer`)
and validation.json. A real launch logs into this run's MLflow run: verl's MLflow logger is
pointed at the same store and run id through the Ray runtime environment. Everything around verl's
loop (samples and guards, the MLflow run, evaluation, objective, summary) is `longwriter.training_run`,
as for the TRL engine.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

from omegaconf import DictConfig, open_dict

from longwriter.engines.verl.config_builder import VerlInputs, build_verl_config, save_verl_config
from longwriter.errors import LongwriterError

logger = logging.getLogger(__name__)

VERL_DIR = "verl"
CONFIG_FILE = "ppo_trainer.yaml"


class VerlNotInstalled(LongwriterError, ImportError):
    """engine=verl was chosen in an environment without the verl extra."""


def _require_verl() -> None:
    try:
        import verl  # noqa: F401
    except ImportError as error:
        raise VerlNotInstalled(
            f"engine=verl needs the verl extra ({error}); install it with pip install -e '.[verl]' "
            f"(GPU clusters: see docs/verl.md)") from None


def _prompt_template(cfg: DictConfig) -> str:
    return str(cfg.reward.get("prompt_template", "plain"))


def export_parquet(samples, path: Path, split: str, template: str) -> Path:
    """verl parquet with the recipe's template in the chat prompt (verl applies the chat template)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from longwriter.data.verl_parquet import to_verl_rows, verl_schema
    from longwriter.prompting import apply_prompt_template

    rows = to_verl_rows(samples, split=split)
    for row, sample in zip(rows, samples):
        row["prompt"] = apply_prompt_template(sample.prompt, template)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=verl_schema()), path)
    return path


def model_path(cfg: DictConfig, dry_run: bool) -> str:
    """A local checkpoint folder or Hub id; a dry run does not contact the Hub (cluster nodes will)."""
    from longwriter.models import resolve_model_path

    model = cfg.model
    if dry_run and str(model.get("source")) == "hub" and not Path(str(model.hub_id)).is_dir():
        return str(model.hub_id)
    return resolve_model_path(model, cfg.paths.cache_dir)


def stand_in_model(cfg: DictConfig) -> str:
    """The offline tiny model (conf/model/tiny_random.yaml), for validating a Hub model's config offline."""
    from longwriter.config_tools import load_preset
    from longwriter.models import resolve_model_path

    return resolve_model_path(load_preset("model", "tiny_random"), cfg.paths.cache_dir)


def prepare(cfg: DictConfig, output_dir: Path, dry_run: bool) -> tuple[DictConfig, VerlInputs, list]:
    from longwriter.rewards import parse_recipe
    from longwriter.training_run import checked_training_samples

    spec = parse_recipe(cfg.reward)
    samples = checked_training_samples(cfg, spec)
    val_size = min(int(cfg.engine.val_size), max(len(samples) - 1, 0))
    val, train = samples[:val_size], samples[val_size:]
    if not val:
        val = train[:1]
    verl_dir = output_dir / VERL_DIR
    template = _prompt_template(cfg)
    needs_curriculum = spec.needs.curriculum
    inputs = VerlInputs(
        train_file=export_parquet(train, verl_dir / "train.parquet", "train", template),
        val_file=export_parquet(val, verl_dir / "val.parquet", "val", template),
        model_path=model_path(cfg, dry_run),
        output_dir=output_dir,
        curriculum_path=output_dir / "curriculum.sqlite" if needs_curriculum else None,
    )
    verl_cfg = build_verl_config(cfg, inputs)
    save_verl_config(verl_cfg, verl_dir / CONFIG_FILE)
    return verl_cfg, inputs, train


def run(cfg: DictConfig, output_dir: Path) -> float | None:
    """Dispatcher entry (longwriter.engines.run_training). Returns the sweep objective, or None."""
    from longwriter.engines.verl.validate import validate_verl

    _require_verl()
    dry_run = bool(cfg.engine.dry_run)
    output_dir.mkdir(parents=True, exist_ok=True)
    verl_cfg, inputs, train = prepare(cfg, output_dir, dry_run)
    report = validate_verl(verl_cfg, strict_data=not dry_run, stand_in_model=stand_in_model(cfg) if dry_run else None)
    _check_in_training_eval(cfg, verl_cfg, report)
    verl_dir = output_dir / VERL_DIR
    (verl_dir / "validation.json").write_text(json.dumps(asdict(report), indent=1))
    for warning in report.warnings:
        logger.warning("verl: %s", warning)
    report.raise_if_failed()
    logger.info("verl config valid: %s (%s)", verl_dir / CONFIG_FILE, report.facts)
    if dry_run:
        print(f"verl dry run: config {verl_dir / CONFIG_FILE}, data {inputs.train_file} / {inputs.val_file}; "
              f"validated ({report.facts})")
        return None
    return _launch(cfg, verl_cfg, inputs, train, output_dir)


def _check_in_training_eval(cfg: DictConfig, verl_cfg: DictConfig, report) -> None:
    """eval.at_start / eval.at_end run the project's evaluation in the driver, around verl's training
    (the same function the TRL engine calls); a dry run checks their settings."""
    if not (cfg.get("eval") and (cfg.eval.at_start or cfg.eval.at_end)):
        return
    from longwriter.errors import ConfigError
    from longwriter.evaluation.runner import EvalSettings

    try:
        EvalSettings.from_config(cfg.eval)
    except ConfigError as error:
        report.errors.append(str(error))
    if cfg.eval.at_end and int(verl_cfg.trainer.save_freq) <= 0:
        report.errors.append(f"eval.at_end evaluates the last checkpoint, but trainer.save_freq="
                             f"{verl_cfg.trainer.save_freq} saves none: set engine.save_steps > 0")
    report.facts["eval"] = [k for k in ("at_start", "at_end") if cfg.eval[k]]


def final_hf_model(checkpoints: Path) -> tuple[str, int] | None:
    """The last `global_step_N/actor/huggingface` folder verl wrote with hf_model in save_contents."""
    found = []
    for folder in checkpoints.glob("global_step_*"):
        hf = folder / "actor" / "huggingface"
        step = folder.name.removeprefix("global_step_")
        if step.isdigit() and (hf / "config.json").exists():
            found.append((int(step), hf))
    if not found:
        return None
    step, path = max(found)
    return str(path), step


def start_ray(verl_cfg: DictConfig) -> None:
    """ray.init with the arguments verl's run_ppo would use (so that it reuses this instance), early
    enough to probe the plugin inside a worker before verl starts its own."""
    import ray
    from omegaconf import OmegaConf
    from verl.trainer.constants_ppo import get_ppo_ray_runtime_env

    if ray.is_initialized():
        return
    rollout = verl_cfg.actor_rollout_ref.rollout  # as run_ppo: before ray.init, so that workers inherit it
    if rollout.full_determinism or (verl_cfg.reward.reward_model.enable
                                    and verl_cfg.reward.reward_model.rollout.full_determinism):
        os.environ.update(VERL_FULL_DETERMINISM="1", VLLM_BATCH_INVARIANT="1", PYTHONHASHSEED=str(rollout.seed))
    init_kwargs = verl_cfg.ray_kwargs.get("ray_init", {})
    default_env = get_ppo_ray_runtime_env(verl_cfg)
    if verl_cfg.transfer_queue.enable:
        default_env.setdefault("env_vars", {})["TRANSFER_QUEUE_ENABLE"] = "1"
    runtime_env = OmegaConf.merge(default_env, init_kwargs.get("runtime_env", {}))
    ray.init(**OmegaConf.to_container(OmegaConf.create({**init_kwargs, "runtime_env": runtime_env})))


def _launch(cfg: DictConfig, verl_cfg: DictConfig, inputs: VerlInputs, train, output_dir: Path) -> float | None:
    import mlflow
    from verl.trainer.main_ppo import TaskRunnerV1, run_ppo
    from verl.utils.device import auto_set_device

    from longwriter.curriculum import CurriculumState
    from longwriter.engines.verl.cluster import check_plugin_in_ray_worker
    from longwriter.errors import LongwriterError
    from longwriter.training_run import evaluate_before, finish_run, tracked_run

    if inputs.curriculum_path is not None:  # the histogram covers every sample from step 0
        CurriculumState(inputs.curriculum_path).register(train)
    _check_judge(cfg)
    checkpoints = Path(str(verl_cfg.trainer.default_local_dir))

    def final_model() -> tuple[str, int]:
        final = final_hf_model(checkpoints)
        if final is None:
            raise LongwriterError(f"eval.at_end: no global_step_*/actor/huggingface under {checkpoints} "
                                  f"(verl saved no hf_model)")
        return final

    resume_point = _last_verl_checkpoint(verl_cfg) if cfg.get("resume_from") else None
    with tracked_run(cfg, output_dir, "verl", inputs.model_path, resume_point) as run:
        mlflow.log_artifact(str(output_dir / VERL_DIR / CONFIG_FILE), "verl")
        with open_dict(verl_cfg):
            verl_cfg.ray_kwargs.ray_init.runtime_env.env_vars.MLFLOW_RUN_ID = run.info.run_id
        auto_set_device(verl_cfg)
        start_ray(verl_cfg)
        check_plugin_in_ray_worker()
        evaluate_before(cfg, inputs.model_path, resumed=bool(cfg.get("resume_from")))
        run_ppo(verl_cfg, task_runner_class=TaskRunnerV1)
        return finish_run(cfg, run, str(checkpoints), final_model)


def _check_judge(cfg: DictConfig) -> None:
    """An API judge is asked once before Ray starts (the reward workers build their own clients)."""
    from longwriter.judges.lifecycle import open_judge
    from longwriter.training_setup import needs_judge

    if needs_judge(cfg.reward):
        open_judge(cfg.judge, cfg.paths.cache_dir)


def _last_verl_checkpoint(verl_cfg: DictConfig) -> str | None:
    """verl's `global_step_N` folder a resume continues from (its tracker file names N)."""
    folder = Path(str(verl_cfg.trainer.default_local_dir))
    tracker = folder / "latest_checkpointed_iteration.txt"
    if not tracker.exists():
        return None
    return str(folder / f"global_step_{int(tracker.read_text().strip())}")
