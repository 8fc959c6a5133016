"""Every `engine.*` key has one typed home (longwriter/engine_settings.py): a meaning, a check and what
each engine receives; the YAML holds values only, and the checks and the vocabulary come from there."""

from __future__ import annotations

import pytest
from longwriter.config_checks import ENGINE, config_problems
from longwriter.config_reference import leaves
from longwriter.engine_settings import BY_KEY, SETTINGS, EngineSetting, engine_rules
from longwriter.engines.vocabulary import SHARED_KEYS, TRL_ONLY, VERL_ONLY
from longwriter.paths import CONF_DIR

from conftest import compose

NOT_SETTINGS = ("name", "trl", "verl")  # the engine's name, and the raw engine-key passthrough nodes


def _yaml_keys(engine: str) -> set[str]:
    node = compose([f"engine={engine}"]).engine
    return {key for key, _ in leaves(node) if key.split(".")[0] not in NOT_SETTINGS}


@pytest.mark.parametrize("engine", ["trl", "verl"])
def test_every_yaml_key_has_a_setting_and_every_setting_a_yaml_value(engine: str) -> None:
    assert _yaml_keys(engine) == set(BY_KEY)


@pytest.mark.parametrize("engine", ["trl", "verl"])
def test_every_default_passes_its_own_check(engine: str) -> None:
    cfg = compose([f"engine={engine}"])
    bad = [p for p in config_problems(cfg, "train") if p.startswith("engine.")]
    assert bad == []


def test_the_checks_are_the_settings_rules() -> None:
    assert {k: v for k, v in ENGINE.items() if k != "engine.name"} == engine_rules()
    assert len(engine_rules()) == len(SETTINGS)


def test_the_vocabulary_comes_from_the_settings() -> None:
    both = {s.key for s in SETTINGS if s.scope == "both"}
    assert {k for k in SHARED_KEYS if k != "lora"} == {k for k in both if not k.startswith("lora.")}
    assert set(TRL_ONLY) == {s.key for s in SETTINGS if s.scope == "trl"}
    assert set(VERL_ONLY) == {s.key for s in SETTINGS if s.scope == "verl"}
    assert "gradient_accumulation_steps" in TRL_ONLY and "loss_agg_mode" in VERL_ONLY


def test_a_setting_without_a_mapping_or_a_meaning_is_refused() -> None:
    from longwriter.config_rules import FLAG

    with pytest.raises(ValueError, match="no engine reads it"):
        EngineSetting("new_key", FLAG, "a new switch", None, None)
    with pytest.raises(ValueError, match="say what it means"):
        EngineSetting("new_key", FLAG, " ", "new_key", None)


def test_the_keys_that_had_no_check_are_checked_now() -> None:
    """loss_agg_mode, kl_loss_type, curriculum_actor and judge_cache_dir drifted without a rule."""
    cfg = compose(["engine=verl", "engine.loss_agg_mode=token-sum", "engine.curriculum_actor=''"])
    problems = config_problems(cfg, "train")
    assert any(p.startswith("engine.loss_agg_mode='token-sum': must be one of token-mean") for p in problems)
    assert any(p.startswith("engine.curriculum_actor=''") for p in problems)


def test_the_shared_yaml_holds_values_only() -> None:
    text = (CONF_DIR / "engine" / "shared" / "grpo.yaml").read_text()
    body = text.split("defaults:", 1)[1]
    commented = [line for line in body.splitlines() if " #" in line and "passthrough" not in line]
    assert commented == []
