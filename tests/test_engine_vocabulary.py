"""One engine vocabulary: every sweep and experiment preset composes with both engines and each
searched key exists; each adapter maps the shared keys onto its engine; raw engine keys pass
through (and unknown ones are refused); both engines log the same names for the same quantities."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from longwriter.engines.vocabulary import PASSTHROUGH, SHARED_KEYS, TRL_ONLY, VERL_ONLY
from longwriter.errors import ConfigError

from conftest import ROOT, compose

ENGINES = ["trl", "verl"]
SWEEPS = sorted(p.stem for p in (ROOT / "sweeps").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml"))


def _compose_sweep(preset: str, engine: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from longwriter.paths import CONF_DIR, register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose("train", overrides=[f"sweep={preset}", f"engine={engine}"], return_hydra_config=True)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("preset", SWEEPS)
def test_every_sweep_preset_composes_with_each_engine_and_every_searched_key_exists(preset, engine) -> None:
    cfg = _compose_sweep(preset, engine)
    assert cfg.engine.name == engine
    params = cfg.hydra.sweeper.params
    assert params, preset
    for key in params:
        if (Path(str(cfg.hydra.runtime.config_sources[0].path)) / key).is_dir() or key in cfg.hydra.runtime.choices:
            continue  # a config group (e.g. `reward: choice(...)`): its options are checked below
        assert OmegaConf.select(cfg, key, default="__missing__") != "__missing__", f"{preset}: {key} ({engine})"
    for key in params:
        if key in cfg.hydra.runtime.choices:  # every option of a searched group composes with this engine
            options = str(params[key]).removeprefix("choice(").removesuffix(")").split(",")
            for option in options:
                assert compose([f"sweep={preset}", f"engine={engine}", f"{key}={option.strip()}"])


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("preset", EXPERIMENTS)
def test_every_experiment_preset_composes_with_each_engine(preset, engine) -> None:
    cfg = compose([f"experiment={preset}", f"engine={engine}"])
    OmegaConf.to_container(cfg, resolve=True)
    assert cfg.engine.name == engine


def test_both_engines_share_one_schema() -> None:
    """Every key exists under both engines (one home: conf/engine/shared/grpo.yaml), so any preset or
    override composes with either; the engine files change values only."""
    trl, verl = compose(["engine=trl"]).engine, compose(["engine=verl"]).engine
    assert set(trl) == set(verl)
    documented = {k.split(".")[0] for k in SHARED_KEYS} | set(TRL_ONLY) | set(VERL_ONLY) | set(PASSTHROUGH) | {"name"}
    assert set(trl) == documented


def test_raw_engine_keys_need_no_plus_and_typos_in_the_vocabulary_are_refused() -> None:
    from hydra.errors import ConfigCompositionException

    cfg = compose(["engine=verl", "engine.verl.data.train_batch_size=8", "engine.verl.actor_rollout_ref.rollout.n=16",
                   "engine.trl.top_k=5"])
    assert cfg.engine.verl.data.train_batch_size == 8 and cfg.engine.verl.actor_rollout_ref.rollout.n == 16
    assert cfg.engine.trl.top_k == 5
    with pytest.raises(ConfigCompositionException):
        compose(["engine.learning_rat=1e-5"])


def _verl_map(overrides: list[str]):
    from longwriter.engines.verl.config_builder import VerlInputs, verl_overrides

    cfg = compose(["engine=verl", *overrides])
    inputs = VerlInputs(Path("/t.parquet"), Path("/v.parquet"), "/model", Path("/out"))
    return OmegaConf.create(verl_overrides(cfg, inputs))


def test_verl_adapter_maps_the_shared_keys() -> None:
    verl = _verl_map(["engine.max_steps=2", "engine.prompts_per_step=4", "engine.num_generations=6",
                      "engine.learning_rate=3e-6", "engine.beta=0.02", "engine.max_prompt_length=100",
                      "engine.max_completion_length=200", "engine.temperature=0.7", "engine.top_p=0.9",
                      "engine.save_steps=5", "engine.eval_steps=7",
                      "engine.lora.enabled=true", "engine.lora.r=8", "engine.gradient_checkpointing=false",
                      "engine.rollout.tensor_parallel_size=2", "engine.rollout.gpu_memory_utilization=0.5",
                      "engine.warmup_ratio=0.1", "engine.clip_ratio_high=0.28", "engine.attn_implementation=sdpa"])
    expected = {
        "trainer.total_training_steps": 2, "data.train_batch_size": 4, "actor_rollout_ref.rollout.n": 6,
        "actor_rollout_ref.actor.optim.lr": 3e-6, "actor_rollout_ref.actor.kl_loss_coef": 0.02,
        "actor_rollout_ref.actor.use_kl_loss": True, "data.max_prompt_length": 100,
        "data.max_response_length": 200, "actor_rollout_ref.rollout.temperature": 0.7,
        "actor_rollout_ref.rollout.top_p": 0.9, "trainer.save_freq": 5, "trainer.test_freq": 7,
        "actor_rollout_ref.model.lora_rank": 8, "actor_rollout_ref.model.enable_gradient_checkpointing": False,
        "actor_rollout_ref.rollout.tensor_model_parallel_size": 2,
        "actor_rollout_ref.rollout.gpu_memory_utilization": 0.5,
        "actor_rollout_ref.actor.optim.lr_warmup_steps_ratio": 0.1,
        "actor_rollout_ref.actor.clip_ratio_high": 0.28,
        "actor_rollout_ref.model.override_config.attn_implementation": "sdpa",
    }
    assert {k: OmegaConf.select(verl, k) for k in expected} == expected
    default = _verl_map([])
    assert default.trainer.total_training_steps is None and default.trainer.test_freq == -1
    assert OmegaConf.is_interpolation(default.actor_rollout_ref.actor, "ppo_mini_batch_size")  # follows train_batch_size


def test_verl_beta_zero_or_in_reward_moves_the_kl_term() -> None:
    no_kl = _verl_map(["engine.beta=0"])
    assert not no_kl.actor_rollout_ref.actor.use_kl_loss and not no_kl.algorithm.use_kl_in_reward
    in_reward = _verl_map(["engine.beta=0.003", "engine.kl_in_reward=true"])
    assert not in_reward.actor_rollout_ref.actor.use_kl_loss
    assert in_reward.algorithm.use_kl_in_reward and in_reward.algorithm.kl_ctrl.kl_coef == 0.003


def test_verl_refuses_a_rollout_backend_it_does_not_have() -> None:
    with pytest.raises(ConfigError, match="vllm or sglang"):
        _verl_map(["engine.rollout.backend=transformers"])


def _trl_args(overrides: list[str]):
    from longwriter.engines.trl_engine.run import _grpo_config

    cfg = compose(["engine=trl", "model=tiny_random", *overrides])
    return _grpo_config(cfg, Path("/tmp/lw-vocab-test"))


def test_trl_adapter_maps_the_shared_keys() -> None:
    args = _trl_args(["engine.max_steps=3", "engine.prompts_per_step=2", "engine.num_generations=4",
                      "engine.learning_rate=2e-5", "engine.beta=0.1", "engine.max_completion_length=64",
                      "engine.temperature=0.7", "engine.top_p=0.9", "engine.save_steps=2",
                      "engine.clip_ratio_low=0.1", "engine.clip_ratio_high=0.3", "engine.warmup_ratio=0.2",
                      "engine.loss_type=grpo", "engine.mask_truncated_completions=true",
                      "engine.gradient_checkpointing=true", "engine.rollout.backend=vllm",
                      "engine.rollout.vllm_mode=server", "engine.rollout.server_base_url=http://h:8000",
                      "engine.rollout.gpu_memory_utilization=0.5", "engine.rollout.tensor_parallel_size=2",
                      "engine.trl.top_k=7", "engine.gradient_accumulation_steps=2"])
    assert (args.max_steps, args.num_generations, args.learning_rate) == (3, 4, 2e-5)
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (4, 2)
    assert (args.beta, args.max_completion_length, args.temperature, args.top_p, args.save_steps) == \
        (0.1, 64, 0.7, 0.9, 2)
    assert (args.epsilon, args.epsilon_high, args.warmup_steps, args.loss_type) == (0.1, 0.3, 0.2, "grpo")
    assert args.mask_truncated_completions and args.gradient_checkpointing
    assert (args.use_vllm, args.vllm_mode, args.vllm_server_base_url) == (True, "server", "http://h:8000")
    assert (args.vllm_gpu_memory_utilization, args.vllm_tensor_parallel_size, args.top_k) == (0.5, 2, 7)
    assert args.generation_batch_size == 8  # prompts_per_step x num_generations


def test_trl_max_steps_null_trains_epochs() -> None:
    args = _trl_args(["engine.max_steps=null", "engine.num_train_epochs=2"])
    assert (args.max_steps, args.num_train_epochs) == (-1, 2)


def test_trl_batch_semantics_with_several_processes() -> None:
    """One step = prompts_per_step x num_generations completions over all processes; accumulation splits it."""
    from longwriter.engines.trl_engine.run import batch_layout

    engine = compose(["engine.prompts_per_step=4", "engine.num_generations=3",
                      "engine.gradient_accumulation_steps=2"]).engine
    per_device, accumulation = batch_layout(engine, processes=2)
    assert (per_device, accumulation) == (3, 2)
    assert per_device * 2 * accumulation == 4 * 3  # TRL's generation batch (steps_per_generation = accumulation)
    assert per_device * accumulation % 3 == 0       # each process holds whole groups
    with pytest.raises(ConfigError, match="multiple of the number of processes"):
        batch_layout(compose(["engine.prompts_per_step=3"]).engine, processes=2)
    with pytest.raises(ConfigError, match="must divide"):
        batch_layout(compose(["engine.prompts_per_step=2", "engine.num_generations=3",
                              "engine.gradient_accumulation_steps=2"]).engine, processes=2)


@pytest.mark.parametrize("prompts,group,processes,on_gpu,expected", [
    (4, 4, 1, False, (4, 4)),    # the default: 16 completions in 4 micro batches of 4 on CPU
    (4, 4, 1, True, (16, 1)),    # a GPU takes the whole batch at once
    (2, 4, 1, False, (4, 2)),
    (2, 3, 1, False, (6, 1)),    # 6 has no divisor that leaves >= 4 per micro batch but one pass
    (4, 3, 1, False, (4, 3)),
    (2, 2, 1, False, (4, 1)),
    (4, 4, 2, False, (4, 2)),    # per process: 2 prompts x 4
    (1, 2, 1, False, (2, 1)),    # fewer than 4 completions: one pass
])
def test_auto_accumulation_splits_into_micro_batches_of_four_on_cpu(prompts, group, processes, on_gpu, expected) -> None:
    from longwriter.engines.trl_engine.run import batch_layout

    engine = compose([f"engine.prompts_per_step={prompts}", f"engine.num_generations={group}"]).engine
    assert engine.gradient_accumulation_steps == "auto"  # the default
    assert batch_layout(engine, processes=processes, on_gpu=on_gpu) == expected


@pytest.mark.parametrize("overrides,needle", [
    (["engine.algorithm=ppo"], "GRPO only"),
    (["engine.kl_in_reward=true"], "inside the reward needs engine=verl"),
    (["engine.eval_steps=5"], "eval.at_start"),
    (["engine.num_generations=1"], ">= 2 completions"),
    (["engine.rollout.backend=sglang"], "transformers or vllm"),
    (["engine.rollout.backend=vllm", "engine.rollout.vllm_mode=remote"], "colocate, server"),
    (["engine.trl.no_such_field=1"], "no field 'no_such_field'"),
    (["engine.trl.scale_rewards=group"], "set by the TRL adapter"),
    (["engine.max_steps=0"], "positive number of steps"),
])
def test_trl_refuses_what_it_cannot_honour(overrides, needle) -> None:
    with pytest.raises(ConfigError, match=needle):
        _trl_args(overrides)


def test_mapping_table_covers_every_shared_key() -> None:
    cfg = compose([]).engine
    for key in SHARED_KEYS:
        assert OmegaConf.select(cfg, key, default="__missing__") != "__missing__", key


def test_both_engines_name_the_shared_quantities_alike() -> None:
    from longwriter.tracking.metric_names import TRL_TO_PROJECT, VERL_TO_PROJECT, add_project_names, rename_trl_metrics

    shared = {"train/loss", "train/grad_norm", "train/learning_rate", "train/kl", "train/entropy", "train/epoch",
              "response_length/tokens/mean", "response_length/tokens/min", "response_length/tokens/max",
              "response_length/clip_ratio"}
    assert shared <= set(TRL_TO_PROJECT.values()) and shared <= set(VERL_TO_PROJECT.values())
    trl = rename_trl_metrics({"kl": 0.1, "completions/mean_length": 12.0, "rewards/recipe/mean": 1.0})
    verl = add_project_names({"actor/kl_loss": 0.1, "response_length/mean": 12.0})
    assert trl == {"train/kl": 0.1, "response_length/tokens/mean": 12.0}
    assert {k: verl[k] for k in trl} == trl and verl["actor/kl_loss"] == 0.1  # verl's own names stay


def test_level_histogram_has_one_name_and_meaning_in_both_engines() -> None:
    """TRL logs the pairwise recipe's per-batch `curriculum/level_hist/<l>`; verl averages each response's
    one-hot copy of it, a response whose sample has fewer references counting 0 at the higher levels."""
    pytest.importorskip("verl")
    pytest.importorskip("transfer_queue")
    import numpy as np

    from longwriter.engines.verl.advantage import AdvantageInputs
    from longwriter.engines.verl.trainer import step_metrics

    infos = [{"pairwise": 1.0, "curriculum/level_hist/0": 1.0, "curriculum/level_hist/1": 0.0,
              "curriculum/level_hist/2": 0.0},
             {"pairwise": 0.0, "curriculum/level_hist/0": 0.0, "curriculum/level_hist/1": 1.0}]
    inputs = AdvantageInputs(rewards={"pairwise": np.array([1.0, 0.0])}, weights={"pairwise": 1.0})
    metrics = step_metrics(inputs, infos)
    assert (metrics["curriculum/level_hist/0"], metrics["curriculum/level_hist/1"],
            metrics["curriculum/level_hist/2"]) == (0.5, 0.5, 0.0)


@pytest.mark.slow
@pytest.mark.verl
@pytest.mark.timeout(900)
@pytest.mark.parametrize("preset", SWEEPS)
def test_every_sweep_preset_passes_the_verl_dry_run_validation(preset, tmp_path) -> None:
    """What `-m sweep=<preset> engine=verl engine.dry_run=true` validates, for a trial at the first
    value of each searched key (verl's validate_config, registrations, recipe, parquet)."""
    pytest.importorskip("verl")
    from longwriter.engines.verl.launcher import _check_in_training_eval, prepare, stand_in_model
    from longwriter.engines.verl.validate import validate_verl

    cfg = compose([f"sweep={preset}", "engine=verl", "engine.dry_run=true", f"paths.output_root={tmp_path}", "run_name=t"])
    verl_cfg, _, _ = prepare(cfg, tmp_path / "run", dry_run=True)
    report = validate_verl(verl_cfg, strict_data=False, stand_in_model=stand_in_model(cfg))
    _check_in_training_eval(cfg, verl_cfg, report)
    assert report.errors == [], report.errors


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("engine", ENGINES)
def test_sweep_dry_run_cli_composes_validates_and_leaves_the_real_study_alone(engine, tmp_path) -> None:
    if engine == "verl":
        pytest.importorskip("verl")
    from conftest import run_cli

    proc = run_cli("longwriter.train", ["-m", "sweep=pairwise_lr_beta", f"engine={engine}", "engine.dry_run=true",
                                        "model=tiny_random", f"paths.output_root={tmp_path}"], timeout=800)
    assert f"{engine} dry run:" in proc.stdout and "validated" in proc.stdout
    assert not (tmp_path / "optuna" / "studies.db").exists()  # an in-memory study: no real one touched
