"""Validate a verl config and its parquet files without a GPU.

First verl's own `validate_config` (batch-size arithmetic, micro batches, dataclass checks of
actor/critic), exactly as `verl.trainer.main_ppo` calls it; then what verl cannot know about
this project: our registrations resolve, the plugin entry point is installed (Ray workers import
it on `import verl`), the recipe config builds, the estimator has groups to compare, and the
parquet files read back into the project's samples.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from longwriter.engines.verl.config_builder import ADV_ESTIMATOR, REWARD_MANAGER, TRAINER_MODE, VerlConfigError

logger = logging.getLogger(__name__)

PLUGIN_MODULE = "longwriter.engines.verl.plugin"
PARQUET_COLUMNS = ("data_source", "prompt", "ability", "reward_model", "extra_info")


@dataclass
class ValidationReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def raise_if_failed(self) -> None:
        if self.errors:
            raise VerlConfigError("verl config invalid:\n  - " + "\n  - ".join(self.errors))


def plugin_entry_point_installed() -> bool:
    return any(ep.value.split(":")[0] == PLUGIN_MODULE for ep in entry_points(group="verl.plugins"))


MODEL_PATH_KEYS = ("actor_rollout_ref.model.path", "critic.model.path")


def locally_available(model_path: str) -> bool:
    """A checkpoint folder, or a Hub id whose config is already in the local HF cache."""
    if Path(model_path).expanduser().is_dir():
        return True
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(model_path, local_files_only=True)
        return True
    except (OSError, ValueError):
        return False


def run_verl_validate_config(verl_cfg: DictConfig, report: ValidationReport, stand_in_model: str | None = None) -> None:
    """verl's validate_config on a copy (verl resolves and may touch the config).

    verl's model dataclasses read the model's HF config. A Hub model that is not cached here (a
    dry run offline) is replaced in the copy by `stand_in_model`: every batch-size, parallelism and
    dataclass check still runs; only the architecture-specific ones see the stand-in (a warning)."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    copy = OmegaConf.create(OmegaConf.to_container(verl_cfg, resolve=False))
    for key in MODEL_PATH_KEYS if need_critic(copy) else MODEL_PATH_KEYS[:1]:
        path = str(OmegaConf.select(copy, key))
        if not locally_available(path):
            if stand_in_model is None:
                report.errors.append(f"{key}={path}: not a local checkpoint nor in the local HF cache")
                return
            OmegaConf.update(copy, key, stand_in_model)
            report.warnings.append(f"{key}={path} is not available here: verl's checks ran with the stand-in "
                                   f"{stand_in_model} (architecture-specific checks happen on the cluster)")
    validate_config(config=copy, use_reference_policy=need_reference_policy(copy), use_critic=need_critic(copy))


def _check_registrations(verl_cfg: DictConfig, report: ValidationReport) -> None:
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn
    from verl.trainer.ppo.v1 import get_trainer_cls

    import longwriter.engines.verl.plugin  # noqa: F401  (what the entry point does in each Ray process)

    checks = (("reward.reward_manager.name", get_reward_manager_cls),
              ("trainer.v1.trainer_mode", get_trainer_cls))
    for key, lookup in checks:
        try:
            lookup(str(OmegaConf.select(verl_cfg, key)))
        except ValueError as error:
            report.errors.append(f"{key}: {error}")
    estimator = str(verl_cfg.algorithm.adv_estimator)
    if estimator != "gae":
        try:
            get_adv_estimator_fn(estimator)
        except ValueError as error:
            report.errors.append(f"algorithm.adv_estimator: {error}")
    if str(verl_cfg.trainer.v1.trainer_mode) != TRAINER_MODE:
        report.errors.append(f"trainer.v1.trainer_mode must be {TRAINER_MODE!r}: only it delivers the reward "
                             f"components and the curriculum commits (got {verl_cfg.trainer.v1.trainer_mode!r})")
    if str(verl_cfg.reward.reward_manager.name) != REWARD_MANAGER:
        report.warnings.append(f"reward.reward_manager.name is not {REWARD_MANAGER!r}: the project's recipe is not used")
    if not plugin_entry_point_installed():
        report.errors.append(f"no 'verl.plugins' entry point for {PLUGIN_MODULE}: Ray workers would not register "
                             f"longwriter's reward manager/estimator/trainer (reinstall: pip install -e '.[verl]')")


def _check_algorithm(verl_cfg: DictConfig, report: ValidationReport) -> None:
    from longwriter.rewards import build_recipe, parse_recipe

    settings = OmegaConf.to_container(verl_cfg.reward.reward_kwargs.longwriter, resolve=True)
    spec = None
    try:  # option typos and unknown components fail here, not inside a Ray worker
        spec = parse_recipe(settings["reward"])
        build_recipe(spec, pairwise_judge=object(), pointwise_judge=object(), checklist_judge=object(),
                     curriculum=None, max_completion_tokens=settings.get("max_completion_tokens"))
    except (KeyError, TypeError, ValueError) as error:
        report.errors.append(f"reward recipe: {error}")
    for component in spec.needing("whole_group") if spec is not None else ():
        report.errors.append(f"reward.components.{component.name}: {component.kind} judges each completion against "
                             f"another of its group (as bootstrap_pairwise (BRPO) does), but verl's reward loop "
                             f"scores one trajectory at a time; train it with engine=trl")
    if verl_cfg.algorithm.adv_estimator == ADV_ESTIMATOR and bool(verl_cfg.algorithm.use_kl_in_reward):
        report.errors.append("algorithm.use_kl_in_reward=true (engine.kl_in_reward) with the longwriter "
                             "estimator: it combines the reward components, never verl's KL-penalised token "
                             "rewards, so the penalty would be silently dropped; use the KL loss (engine.kl_in_reward=false, engine.beta > 0) "
                             "(GRPO) or engine.algorithm=ppo")
    n = int(verl_cfg.actor_rollout_ref.rollout.n)
    if verl_cfg.algorithm.adv_estimator == ADV_ESTIMATOR and n < 2:
        report.errors.append(f"actor_rollout_ref.rollout.n={n}: group-relative advantages need >= 2 responses "
                             f"per prompt (use engine.algorithm=ppo for one)")
    if not verl_cfg.trainer.use_v1:
        report.errors.append("trainer.use_v1 must be true (the legacy trainer is not supported)")


def check_parquet(path: Path, split: str, report: ValidationReport) -> int:
    """Columns verl's RLHFDataset reads, and a lossless round trip into the project's samples."""
    import pyarrow.parquet as pq

    from longwriter.data.verl_parquet import import_verl_parquet

    if not path.is_file():
        report.errors.append(f"data.{split}_files: {path} does not exist")
        return 0
    missing = [c for c in PARQUET_COLUMNS if c not in pq.read_schema(path).names]
    if missing:
        report.errors.append(f"{path}: missing verl columns {missing}")
        return 0
    samples = import_verl_parquet(path)
    bad = [s.id for s in samples if not s.prompt]
    if bad:
        report.errors.append(f"{path}: rows without a prompt: {bad[:5]}")
    return len(samples)


def _check_cluster(verl_cfg: DictConfig, report: ValidationReport, launching: bool) -> None:
    """The judge can serve the reward workers (refused at launch, reported by a dry run); SQLite placement."""
    from longwriter.engines.verl.cluster import judge_problem, sqlite_warnings

    settings = OmegaConf.to_container(verl_cfg.reward.reward_kwargs.longwriter, resolve=True)
    problem = judge_problem(settings, bool(settings.get("allow_local_judge", False)))
    if problem:
        (report.errors if launching else report.warnings).append(
            problem if launching else f"a launch would be refused: {problem}")
    report.warnings.extend(sqlite_warnings(settings))


def validate_verl(verl_cfg: DictConfig, *, strict_data: bool = True,
                  stand_in_model: str | None = None) -> ValidationReport:
    """All checks; errors are collected (not raised) so a dry run can report every problem at once.
    strict_data=True (a launch): an epoch without a step and a judge that cannot serve the
    cluster are errors; a dry run reports them as warnings."""
    report = ValidationReport()
    try:
        run_verl_validate_config(verl_cfg, report, stand_in_model)
    except Exception as error:  # noqa: BLE001 - verl raises AssertionError, ValueError, Hydra errors
        report.errors.append(f"verl validate_config: {type(error).__name__}: {error}")
    _check_registrations(verl_cfg, report)
    _check_algorithm(verl_cfg, report)
    _check_cluster(verl_cfg, report, launching=strict_data)
    train = check_parquet(Path(str(verl_cfg.data.train_files)), "train", report)
    val = check_parquet(Path(str(verl_cfg.data.val_files)), "val", report)
    batch = int(verl_cfg.data.train_batch_size)
    report.facts.update({"train_samples": train, "val_samples": val, "train_batch_size": batch,
                         "steps_per_epoch": train // batch if batch else 0})
    if train and train < batch:
        message = (f"data.train_batch_size={batch} but the training parquet has {train} samples: verl drops the "
                   f"incomplete batch, so an epoch has no step")
        (report.errors if strict_data else report.warnings).append(message)
    return report
