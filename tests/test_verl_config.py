"""engine=verl config building and validation, on the CPU: both presets, the dry-run CLI, verl's CLI.

verl's own `validate_config` runs on every built config (a Hub model that is not cached here is
validated with the offline tiny model standing in, which the report says).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import run_cli
from verl_support import HYBRID_RECIPE, project_cfg, require_verl

require_verl()
pytestmark = [pytest.mark.verl, pytest.mark.timeout(900)]


def _prepare(tmp_path: Path, overrides: list[str], reward: dict | None = None):
    from longwriter.engines.verl.launcher import prepare, stand_in_model
    from longwriter.engines.verl.validate import validate_verl

    cfg = project_cfg(tmp_path, overrides, reward)
    verl_cfg, inputs, _ = prepare(cfg, tmp_path / "run", dry_run=True)
    report = validate_verl(verl_cfg, strict_data=False, stand_in_model=stand_in_model(cfg))
    return cfg, verl_cfg, report


def _get(verl_cfg, key: str):
    return OmegaConf.select(verl_cfg, key)


def test_writing_rl_preset_builds_and_passes_verl_validation(tmp_path) -> None:
    cfg, verl_cfg, report = _prepare(tmp_path, ["experiment=writing_rl_repro"])
    assert report.errors == []
    expected = {
        "algorithm.adv_estimator": "gae", "critic.enable": True, "actor_rollout_ref.rollout.n": 1,
        "actor_rollout_ref.actor.optim.lr": 1e-6, "critic.optim.lr": 1e-5, "trainer.total_training_steps": 405,
        "trainer.n_gpus_per_node": 8, "trainer.nnodes": 1, "algorithm.use_kl_in_reward": True,
        "actor_rollout_ref.actor.use_kl_loss": False, "data.max_response_length": 10000,
        "actor_rollout_ref.model.path": "Qwen/Qwen2.5-7B-Instruct", "critic.model.path": "Qwen/Qwen2.5-7B-Instruct",
        "actor_rollout_ref.actor.fsdp_config.param_offload": True,
    }
    assert {k: _get(verl_cfg, k) for k in expected} == expected
    settings = verl_cfg.reward.reward_kwargs.longwriter
    assert settings.judge.model == "qwen-plus" and "dashscope" in settings.judge.base_url
    assert settings.judge.api_key_env == "DASHSCOPE_API_KEY"
    assert settings.reward.components.pairwise.position == "disadvantage"
    assert settings.curriculum.actor == "longwriter_curriculum"
    assert any("stand-in" in w for w in report.warnings), "the offline substitution is reported"


def test_longwriter_zero_preset_builds_and_passes_verl_validation(tmp_path) -> None:
    cfg, verl_cfg, report = _prepare(tmp_path, ["experiment=longwriter_zero_repro"])
    assert report.errors == []
    expected = {
        "algorithm.adv_estimator": "longwriter", "critic.enable": False, "actor_rollout_ref.rollout.n": 32,
        "actor_rollout_ref.actor.clip_ratio_low": 0.2, "actor_rollout_ref.actor.clip_ratio_high": 0.2,
        "actor_rollout_ref.actor.use_kl_loss": False, "algorithm.use_kl_in_reward": False,
        "actor_rollout_ref.rollout.temperature": 0.8, "data.max_response_length": 14000,
        "trainer.v1.trainer_mode": "longwriter_sync", "reward.reward_manager.name": "longwriter",
    }
    assert {k: _get(verl_cfg, k) for k in expected} == expected
    recipe = verl_cfg.reward.reward_kwargs.longwriter.reward
    assert recipe.combine == "mean_advantage" and set(recipe.components) == {"length", "quality", "format"}
    assert verl_cfg.reward.reward_kwargs.longwriter.curriculum is None  # no pairwise component


def test_tracking_points_verl_mlflow_at_the_project_store(tmp_path) -> None:
    cfg, verl_cfg, _ = _prepare(tmp_path, [])
    assert "mlflow" in verl_cfg.trainer.logger
    assert verl_cfg.ray_kwargs.ray_init.runtime_env.env_vars.MLFLOW_TRACKING_URI == cfg.tracking.tracking_uri
    assert verl_cfg.trainer.project_name == cfg.tracking.experiment_name
    assert verl_cfg.trainer.default_local_dir == str(tmp_path / "run" / "checkpoints")


def test_judge_limits_are_split_across_reward_workers(tmp_path) -> None:
    _, verl_cfg, _ = _prepare(tmp_path, ["judge=openai", "judge.concurrency=16", "judge.rpm=500",
                                         "engine.reward_workers=4", "data=builtin"], reward=HYBRID_RECIPE)
    judge = verl_cfg.reward.reward_kwargs.longwriter.judge
    assert (judge.concurrency, judge.rpm) == (4, 125.0)


@pytest.mark.parametrize("overrides,needle", [
    (["engine.num_generations=1"], "group-relative advantages need >= 2"),
    (["engine.prompts_per_step=3", "engine.num_generations=3"], "must be divisible by"),
    (["+reward.components.length.bogus=1"], "reward recipe"),
])
def test_validation_reports_what_would_fail_on_the_cluster(tmp_path, overrides, needle) -> None:
    _, _, report = _prepare(tmp_path, ["reward=length", *overrides])
    assert any(needle in e for e in report.errors), report.errors


def test_unknown_raw_override_is_refused(tmp_path) -> None:
    from longwriter.errors import ConfigError

    with pytest.raises(ConfigError, match="no key 'trainer.no_such_key'"):
        _prepare(tmp_path, ["engine.verl.trainer.no_such_key=1"])


def test_raw_verl_keys_win_over_the_vocabulary_and_open_mappings_accept_new_keys(tmp_path) -> None:
    _, verl_cfg, report = _prepare(tmp_path, ["engine.verl.data.train_batch_size=8", "engine.verl.actor_rollout_ref.rollout.n=4",
                                              "engine.verl.actor_rollout_ref.model.override_config.rope_theta=1000"])
    assert report.errors == []
    assert (verl_cfg.data.train_batch_size, verl_cfg.actor_rollout_ref.rollout.n) == (8, 4)
    assert verl_cfg.actor_rollout_ref.actor.ppo_mini_batch_size == 8  # follows data.train_batch_size
    assert verl_cfg.actor_rollout_ref.model.override_config.rope_theta == 1000


def test_plugin_entry_point_is_installed() -> None:
    from longwriter.engines.verl.validate import plugin_entry_point_installed

    assert plugin_entry_point_installed(), "setup.cfg must declare verl.plugins: longwriter = longwriter.engines.verl.plugin"


@pytest.mark.parametrize("reward,precision", [("pairwise", "auto"), ("longwriter_zero", "fp32")])
def test_dry_run_cli_writes_and_validates_the_verl_config(tmp_path, reward, precision) -> None:
    out = tmp_path / "run"
    run_cli("longwriter.train", ["engine=verl", "engine.dry_run=true", f"reward={reward}",
                                 f"engine.precision={precision}", f"paths.output_root={tmp_path}",
                                 f"hydra.run.dir={out}"], timeout=600)
    verl_dir = out / "verl"
    for name in ("ppo_trainer.yaml", "train.parquet", "val.parquet", "validation.json"):
        assert (verl_dir / name).is_file(), name
    # verl's own CLI accepts the written config as its primary config
    proc = subprocess.run([sys.executable, "-m", "verl.trainer.main_ppo", f"--config-path={verl_dir}",
                           "--config-name=ppo_trainer", "--cfg", "job"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = OmegaConf.create(proc.stdout[proc.stdout.index("actor_rollout_ref:"):])
    assert printed.reward.reward_manager.name == "longwriter"
    assert printed.data.train_files == str(verl_dir / "train.parquet")
    # engine.precision reached the keys verl's FSDP engine and rollout read (auto is bf16 under verl)
    fsdp_name, torch_name = {"auto": ("bf16", "bfloat16"), "fp32": ("fp32", "float32")}[precision]
    for role in ("actor", "ref"):
        assert printed.actor_rollout_ref[role].fsdp_config.mixed_precision.param_dtype == fsdp_name
    assert printed.actor_rollout_ref.rollout.dtype == torch_name


@pytest.mark.parametrize("precision,expected", [("auto", "bfloat16"), ("bf16", "bfloat16"), ("fp32", "float32")])
def test_precision_sets_the_dtypes_verl_reads(tmp_path, precision, expected) -> None:
    import torch
    from verl.utils.config import omega_conf_to_dataclass
    from verl.utils.torch_dtypes import PrecisionType

    # ppo: the critic trains too, so its FSDP block must follow as well.
    _, verl_cfg, report = _prepare(tmp_path, ["model=tiny_random", f"engine.precision={precision}",
                                              "engine.algorithm=ppo"])
    assert report.errors == []
    compute = getattr(torch, expected)
    for block in ("actor_rollout_ref.actor.fsdp_config", "actor_rollout_ref.ref.fsdp_config", "critic.fsdp"):
        engine = omega_conf_to_dataclass(_get(verl_cfg, block))   # verl's FSDPEngineConfig, as its workers build it
        precision_of = {k: PrecisionType.to_dtype(v) for k, v in engine.mixed_precision.items()}
        assert precision_of == {"param_dtype": compute, "reduce_dtype": torch.float32,
                                "buffer_dtype": torch.float32}, block
        assert PrecisionType.to_dtype(engine.model_dtype) == torch.float32, block  # fp32 master weights
    assert _get(verl_cfg, "actor_rollout_ref.rollout.dtype") == expected


def test_megatron_keeps_verl_dtype_and_refuses_fp32(tmp_path) -> None:
    from longwriter.engines.verl.precision import precision_keys
    from longwriter.errors import ConfigError

    engine = project_cfg(tmp_path, ["engine.strategy=megatron"]).engine
    keys = precision_keys(engine, use_critic=False)
    assert keys["actor_rollout_ref"]["actor"] == {"megatron": {"dtype": "bfloat16"}}
    assert "critic" not in keys
    engine.precision = "fp32"
    with pytest.raises(ConfigError, match="megatron engine trains in bfloat16 or float16 only; use engine.strategy=fsdp"):
        precision_keys(engine, use_critic=False)
    engine.precision = "fp16"
    with pytest.raises(ConfigError, match="engine.precision='fp16' is not one of auto, bf16, fp32"):
        precision_keys(engine, use_critic=False)


def test_launch_hands_run_ppo_the_validated_config_and_the_mlflow_run(tmp_path, monkeypatch) -> None:
    """Everything up to verl's run_ppo (which needs GPUs) runs; run_ppo itself is replaced by a stand-in
    that logs like verl's MLflow logger would, through the run id and store it was handed."""
    import verl.trainer.main_ppo as main_ppo
    from mlflow.tracking import MlflowClient

    from longwriter.engines.verl.launcher import run

    seen = {}

    def fake_run_ppo(config, task_runner_class):
        env = config.ray_kwargs.ray_init.runtime_env.env_vars
        seen.update(config=config, runner=task_runner_class, env=dict(env))
        client = MlflowClient(env.MLFLOW_TRACKING_URI)
        for step, value in enumerate([0.1, 0.2, 0.3, 0.4], start=1):
            client.log_metric(env.MLFLOW_RUN_ID, "reward/total/mean", value, step=step)

    monkeypatch.setattr(main_ppo, "run_ppo", fake_run_ppo)
    cfg = project_cfg(tmp_path, ["reward=pairwise", "engine.allow_local_judge=true", "engine.curriculum_actor=lw_launch_test"])
    import ray

    try:  # the launcher starts Ray as run_ppo would and probes the plugin in a worker first
        objective = run(cfg, tmp_path / "run")
        assert ray.is_initialized()
    finally:
        ray.shutdown()
    assert seen["runner"] is main_ppo.TaskRunnerV1
    assert seen["env"]["MLFLOW_TRACKING_URI"] == cfg.tracking.tracking_uri and seen["env"]["MLFLOW_RUN_ID"]
    assert objective == pytest.approx(0.4)  # the last quarter of the logged steps, as the TRL engine
    run_info = MlflowClient(cfg.tracking.tracking_uri).get_run(seen["env"]["MLFLOW_RUN_ID"])
    assert run_info.data.tags["engine"] == "verl" and run_info.data.metrics["objective"] == pytest.approx(0.4)
    # the curriculum store holds every training sample from step 0 (the histogram covers them)
    from longwriter.curriculum import CurriculumState

    assert sum(CurriculumState(tmp_path / "run" / "curriculum.sqlite").histogram().values()) > 0


def test_eval_at_start_and_at_end_run_around_verl_into_the_same_run(tmp_path, monkeypatch) -> None:
    """eval.at_start evaluates the initial model before run_ppo; eval.at_end asks verl for hf_model in the
    checkpoints and evaluates the last one. run_ppo (GPUs) is the stand-in: it writes the checkpoint
    folder verl would write, with the tiny model as its Hugging Face weights."""
    import shutil

    import verl.trainer.main_ppo as main_ppo
    from mlflow.tracking import MlflowClient

    from longwriter.engines.verl.launcher import run

    seen = {}

    def fake_run_ppo(config, task_runner_class):
        seen["save_contents"] = list(config.actor_rollout_ref.actor.checkpoint.save_contents)
        seen["run_id"] = config.ray_kwargs.ray_init.runtime_env.env_vars.MLFLOW_RUN_ID
        target = Path(config.trainer.default_local_dir) / "global_step_3" / "actor" / "huggingface"
        shutil.copytree(config.actor_rollout_ref.model.path, target)

    monkeypatch.setattr(main_ppo, "run_ppo", fake_run_ppo)
    cfg = project_cfg(tmp_path, ["model=tiny_random", "reward=length", "eval.at_start=true", "eval.at_end=true",
                                 "eval.metrics=[length]", "eval.limit=2", "eval.max_new_tokens=8",
                                 "eval.generation_cache=null"])
    import ray

    try:  # the launcher starts Ray before run_ppo; later test modules start their own
        run(cfg, tmp_path / "run")
    finally:
        ray.shutdown()
    assert "hf_model" in seen["save_contents"]
    history = MlflowClient(cfg.tracking.tracking_uri).get_metric_history(seen["run_id"], "eval/length_score/mean")
    assert sorted(m.step for m in history) == [0, 3]  # the initial model, then the last checkpoint (step 3)


def test_kl_in_reward_is_refused_with_the_longwriter_estimator(tmp_path) -> None:
    _, _, report = _prepare(tmp_path, ["reward=length", "engine.kl_in_reward=true"])
    assert any("use_kl_in_reward" in e and "silently dropped" in e for e in report.errors), report.errors
    _, _, report = _prepare(tmp_path, ["reward=length", "engine.kl_in_reward=true", "engine.algorithm=ppo"])
    assert not any("use_kl_in_reward" in e for e in report.errors)


def test_reference_free_pairwise_is_refused_and_soft_overlong_gets_the_budget(tmp_path) -> None:
    _, _, report = _prepare(tmp_path, ["reward=brpo", "judge=vllm_server"])
    assert any("bootstrap_pairwise (BRPO)" in e and "engine=trl" in e for e in report.errors), report.errors
    _, verl_cfg, report = _prepare(tmp_path, ["reward=length_overlong_gdpo", "engine.max_completion_length=256"])
    assert not report.errors, report.errors
    assert verl_cfg.reward.reward_kwargs.longwriter.max_completion_tokens == 256


def test_the_checklist_reward_passes_verl_validation_and_data_without_criteria_is_refused(tmp_path) -> None:
    from longwriter.errors import ConfigError

    _, verl_cfg, report = _prepare(tmp_path, ["reward=checklist", "judge=vllm_server"])
    assert not report.errors, report.errors
    assert verl_cfg.reward.reward_kwargs.longwriter.reward.components.checklist.weight == 1.0
    with pytest.raises(ConfigError, match=r"scores each sample's own criteria \(checklist\)"):
        _prepare(tmp_path / "bare", ["reward=checklist", "judge=vllm_server", "data=length_prompts"])


def test_a_local_judge_is_refused_at_launch_and_reported_by_a_dry_run(tmp_path) -> None:
    from longwriter.engines.verl.launcher import prepare
    from longwriter.engines.verl.validate import validate_verl

    def report(overrides, launching):
        cfg = project_cfg(tmp_path, ["model=tiny_random", "reward=pairwise", *overrides])
        verl_cfg, _, _ = prepare(cfg, tmp_path / "run", dry_run=True)
        return validate_verl(verl_cfg, strict_data=launching)

    launch = report([], launching=True)
    assert [e for e in launch.errors if "judge=local_hf cannot serve a verl cluster" in e], launch.errors
    dry = report([], launching=False)
    assert not any("local_hf" in e for e in dry.errors)
    assert any(w.startswith("a launch would be refused: judge=local_hf") for w in dry.warnings)
    assert not any("local_hf" in e for e in report(["engine.allow_local_judge=true"], launching=True).errors)
    assert not any("local_hf" in e for e in report(["judge=vllm_server"], launching=True).errors)


def test_judge_cache_is_node_local_and_network_filesystems_are_detected(tmp_path) -> None:
    from longwriter.engines.verl.cluster import filesystem_type, on_network_filesystem

    # data=builtin: the recipe's pairwise component needs references (refused at start without them)
    _, verl_cfg, _ = _prepare(tmp_path, ["judge=openai", "data=builtin"], reward=HYBRID_RECIPE)
    assert verl_cfg.reward.reward_kwargs.longwriter.cache_dir.endswith("longwriter_judge_cache")
    mounts = tmp_path / "mounts"
    mounts.write_text("rootfs / ext4 rw 0 0\nserver:/export /shared nfs4 rw 0 0\n")
    assert filesystem_type("/shared/runs/x/curriculum.sqlite", mounts) == "nfs4"
    assert on_network_filesystem("/shared/runs", mounts) and not on_network_filesystem("/tmp/x", mounts)
