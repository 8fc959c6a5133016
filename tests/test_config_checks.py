"""Bad config values stop train / evaluate / prepare with one `error:` line (key, value, what is
allowed) and exit code 2, before a model loads or an MLflow run opens (longwriter/config_checks.py).

The CLI cases run the real entry points in-process (`main()` with `sys.argv` set, as
`python -m longwriter.<entry>` would), with the model loader and the MLflow run replaced by
tripwires that fail the test if reached."""

from __future__ import annotations

import importlib
import runpy
import sys
from pathlib import Path

import pytest

from longwriter.config_checks import RULES, check_config, config_problems
from longwriter.errors import ConfigError

from conftest import compose

# (entry point, override, the exact error line)
BAD_INPUTS = [
    ("train", "engine.max_steps=abc", "engine.max_steps='abc': must be a whole number of GRPO steps, at least 1 "
     "(e.g. engine.max_steps=50), or null for engine.num_train_epochs passes over the data"),
    ("train", "engine.max_steps=2.5", "engine.max_steps=2.5: must be a whole number of GRPO steps, at least 1 "
     "(e.g. engine.max_steps=50), or null for engine.num_train_epochs passes over the data"),
    ("train", "reward.combine=bogus", "reward.combine='bogus': must be one of gdpo, mean_advantage, sum_reward"),
    ("train", "reward=length_overlong reward.components.soft_overlong.l_cache=0", "reward.components.soft_overlong: "
     "l_cache must be a whole number of tokens > 0 (the buffer before l_max in which the penalty falls from 0 to "
     "-1), got 0"),
    ("train", "engine.max_completion_length=64 +reward.components.overlong={type:soft_overlong,l_cache:64}",
     "reward.components.overlong: l_cache=64 must be < l_max=64 (the penalty-free part L_max - L_cache must hold "
     "at least one token)"),
    ("train", "engine.max_completion_length=64 reward=length_overlong reward.components.soft_overlong.l_max=500",
     "reward.components.soft_overlong: l_max=500 exceeds engine.max_completion_length=64: completions stop at the "
     "budget, so the penalty could never reach -1; use l_max <= 64 (null: the budget)"),
    ("train", "engine.num_generations=1", "engine.num_generations=1: GRPO compares >= 2 completions per prompt "
     "(one response per prompt is PPO with a critic: engine=verl engine.algorithm=ppo)"),
    ("train", "engine.temperature=-1", "engine.temperature=-1: must be a number > 0"),
    ("train", "engine.temperature=hot", "engine.temperature='hot': must be a number > 0"),
    ("train", "engine.top_p=1.5", "engine.top_p=1.5: must be a number in (0, 1]"),
    ("train", "engine.learning_rate=0", "engine.learning_rate=0: must be a number > 0"),
    ("train", "engine.beta=-0.1", "engine.beta=-0.1: must be a number >= 0"),
    ("train", "engine.warmup_ratio=1", "engine.warmup_ratio=1: must be a number in [0, 1)"),
    ("train", "engine.dry_run=maybe", "engine.dry_run='maybe': must be true or false"),
    ("train", "engine.precision=fp16", "engine.precision='fp16': must be one of auto, bf16, fp32"),
    ("train", "engine.name=jax", "engine.name='jax': must be one of trl, verl"),
    ("train", "engine.prompts_per_step=0", "engine.prompts_per_step=0: must be a whole number >= 1"),
    ("train", "engine.gradient_accumulation_steps=many",
     "engine.gradient_accumulation_steps='many': must be a whole number >= 1 or auto"),
    ("train", "engine.gradient_accumulation_steps=0",
     "engine.gradient_accumulation_steps=0: must be a whole number >= 1 or auto"),
    ("train", "engine.lora.r=0", "engine.lora.r=0: must be a whole number >= 1"),
    ("train", "engine.rollout.backend=sglang",
     "engine.rollout.backend='sglang': engine=trl rolls out with transformers or vllm"),
    ("train", "reward.prompt_template=chat", "reward.prompt_template='chat': must be one of plain, think, no_think"),
    ("train", "reward.components.length.weight=-1", "reward.components.length.weight=-1: must be a number >= 0"),
    ("train", "stop_after_unknown_steps=-2", "stop_after_unknown_steps=-2: must be a whole number >= 0 or null"),
    ("train", "seed=one", "seed='one': must be a whole number"),
    ("train", "data.limit=0", "data.limit=0: must be a whole number >= 1 or null"),
    ("evaluate", "eval.metrics=[length,style]",
     "eval.metrics=['length', 'style']: must be a list of names from checklist, format, length, pairwise, quality"),
    ("evaluate", "eval.word_count=chars",
     "eval.word_count='chars': must be one of cjk_extended, longbench_write, unicode_words, whitespace"),
    ("evaluate", "eval.batch_size=0", "eval.batch_size=0: must be a whole number >= 1"),
    ("evaluate", "eval.pairwise_position=left", "eval.pairwise_position='left': must be one of swap, disadvantage, "
     "advantage"),
    ("evaluate", "eval.temperature=-0.5", "eval.temperature=-0.5: must be a number >= 0"),
    ("train", "data.format=csv", "data.format='csv': must be one of builtin, hf_hub, jsonl, "
     "longbench_write, pairs, parquet, verl_parquet, writingbench"),
    ("train", "model.path=/no/such/folder", "model.path=/no/such/folder: no folder there; pass the folder a run saved "
     "(an SFT run's model/ or a training run's final_model/), holding config.json, the weights and the tokenizer"),
    ("sft", "sft.template=poem", "sft.template='poem': must be one of plain, think_answer"),
    ("sft", "sft.max_steps=0", "sft.max_steps=0: must be a whole number of SFT steps, at least 1 (e.g. "
     "sft.max_steps=40), or null for sft.num_train_epochs passes over the data"),
    ("sft", "sft.precision=fp16", "sft.precision='fp16': must be one of auto, bf16, fp32"),
    ("sft", "sft.on_holdout_overlap=keep", "sft.on_holdout_overlap='keep': must be one of drop, error"),
    ("prepare", "prepare.verl_parquet=3", "prepare.verl_parquet=3: must be true or false"),
    ("prepare", "prepare.max_prompt_tokens=0", "prepare.max_prompt_tokens=0: must be a whole number >= 1 or null"),
    ("prepare", "prepare.log_dataset_max_mb=-5", "prepare.log_dataset_max_mb=-5: must be a number >= 0"),
    ("prepare", "data_selection=random data_selection.k=0", "data_selection.k=0: must be a whole number >= 1"),
]


@pytest.fixture
def tripwires(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model load or an MLflow run fails the test (the checks must come first)."""
    import longwriter.models
    import longwriter.tracking.mlflow_run

    def reached(*args, **kwargs):
        raise AssertionError("a model was loaded or an MLflow run opened before the config was checked")

    monkeypatch.setattr(longwriter.models, "resolve_model_path", reached)
    monkeypatch.setattr(longwriter.tracking.mlflow_run, "mlflow_run", reached)


def run_main(entry: str, overrides: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """`python -m longwriter.<entry> <overrides>`, in this process; returns the exit code."""
    monkeypatch.setattr(sys, "argv", [f"longwriter.{entry}", *overrides])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module(f"longwriter.{entry}", run_name="__main__")
    return exit_info.value.code


@pytest.mark.parametrize("entry,override,message", BAD_INPUTS, ids=[f"{e}:{o}" for e, o, _ in BAD_INPUTS])
def test_a_bad_value_stops_the_cli_with_one_line(entry: str, override: str, message: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch, capsys, tripwires) -> None:
    out = tmp_path / "outputs"
    code = run_main(entry, ["model=tiny_random", f"paths.output_root={out}", *override.split()], monkeypatch)
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.strip()] == [f"error: {message}"]
    assert not out.exists()  # no run folder, no MLflow store


def test_every_mistake_is_named_in_the_same_line() -> None:
    problems = config_problems(compose(["engine.max_steps=abc", "engine.top_p=0"]), "train")
    assert [p.split(":")[0] for p in problems] == ["engine.max_steps='abc'", "engine.top_p=0"]


@pytest.mark.parametrize("entry,run", [("train", "longwriter.engines:run_training"),
                                       ("evaluate", "longwriter.evaluation.runner:run_evaluate"),
                                       ("prepare", "longwriter.prepare:run_prepare"),
                                       ("sft", "longwriter.sft_run:run_sft")])
def test_the_run_functions_check_before_starting(entry: str, run: str, tmp_path: Path, tripwires) -> None:
    """A sweep trial (or code) calls these without the CLI's callback: they check first too."""
    module, name = run.split(":")
    fn = getattr(importlib.import_module(module), name)
    out = tmp_path / "outputs"
    cfg = compose([f"paths.output_root={out}", "data.limit=-3"], config_name=entry)
    with pytest.raises(ConfigError, match=r"^data.limit=-3: must be a whole number >= 1 or null$"):
        fn(cfg)
    assert not out.exists()


@pytest.mark.parametrize("preset", sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "experiment").glob("*.yaml")))
def test_every_experiment_preset_passes(preset: str) -> None:
    check_config(compose([f"experiment={preset}"]), "train")


@pytest.mark.parametrize("overrides", [["engine=verl"], ["reward=longwriter_zero"], ["reward=hybrid"],
                                       ["reward=length_overlong"], ["reward=length_overlong_gdpo"],
                                       ["reward=longwriter_zero_gdpo"], ["engine=verl", "reward=length_overlong"],
                                       ["reward=checklist"], ["engine=verl", "reward=checklist"],
                                       ["reward=pairwise", "data_selection=margin_aware"], ["engine.max_steps=null"]])
def test_the_shipped_choices_pass(overrides: list[str]) -> None:
    check_config(compose(overrides), "train")


@pytest.mark.parametrize("entry", ["evaluate", "prepare", "sft"])
def test_the_other_defaults_pass(entry: str) -> None:
    check_config(compose([], config_name=entry), entry)


def test_every_rule_names_a_key_of_the_composed_configs() -> None:
    """A renamed key must not leave its rule checking nothing."""
    from longwriter.config_checks import _get, _ABSENT

    configs = {"train": [compose(o) for o in ([], ["engine=verl"], ["data_selection=margin_aware"],
                                              ["data_selection=random"], ["data_selection=length_range"])],
               "evaluate": [compose(o, config_name="evaluate") for o in ([], ["data=length_prompts"])],
               "prepare": [compose(o, config_name="prepare") for o in ([], ["data_selection=random"],
                                                                        ["data_selection=margin_aware"],
                                                                        ["data_selection=length_range"],
                                                                        ["data=length_prompts"])],
               "sft": [compose(o, config_name="sft") for o in ([], ["data=length_prompts"])]}
    for entry, rules in RULES.items():
        for key in rules:
            probe = key.replace("*", "length")
            assert any(_get(cfg, probe) is not _ABSENT for cfg in configs[entry]), f"{entry}: {key}"
