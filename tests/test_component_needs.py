"""Components declare what they need (judge, references, criteria, curriculum, ...) at registration,
and the run's decisions follow those declarations, never a component's name (issue 22, item 3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from conftest import compose
from longwriter.errors import ConfigError
from longwriter.rewards import COMPONENTS, ComponentScores, Needs, component_needs, parse_recipe, recipe_needs

CONF_REWARD = Path(__file__).resolve().parents[1] / "conf" / "reward"

# What each built-in component declares with its default options (written by hand: a change is deliberate).
DECLARED = {
    "pairwise": Needs(pairwise_judge=True, references=True, curriculum=True),
    "bootstrap_pairwise": Needs(pairwise_judge=True, whole_group=True),
    "checklist": Needs(checklist_judge=True, criteria=True),
    "quality": Needs(pointwise_judge=True),  # source: auto without a model -> the judge scores
    "length": Needs(length_ranges=True),
    "format": Needs(),
    "soft_overlong": Needs(),
}

# The union over each conf/reward preset's components.
PRESETS = {
    "brpo": Needs(pairwise_judge=True, whole_group=True),
    "checklist": Needs(checklist_judge=True, criteria=True),
    "hybrid": Needs(pairwise_judge=True, references=True, curriculum=True, length_ranges=True),
    "length": Needs(length_ranges=True),
    "length_overlong": Needs(length_ranges=True),
    "length_overlong_gdpo": Needs(length_ranges=True),
    "longwriter_zero": Needs(pointwise_judge=True, length_ranges=True),
    "longwriter_zero_gdpo": Needs(pointwise_judge=True, length_ranges=True),
    "pairwise": Needs(pairwise_judge=True, references=True, curriculum=True),
}


def test_every_registered_component_declares_the_expected_needs() -> None:
    assert set(COMPONENTS) == set(DECLARED), "a new component needs a row in DECLARED"
    for kind, expected in DECLARED.items():
        assert component_needs(kind) == expected, kind


@pytest.mark.parametrize(("options", "judged"), [
    ({}, True), ({"source": "judge"}, True), ({"source": "auto", "model": "/some/rm"}, False),
    ({"source": "reward_model"}, False), ({"source": "judge", "model": "/some/rm"}, True),
])
def test_quality_needs_a_judge_only_when_one_scores(options: dict, judged: bool) -> None:
    assert component_needs("quality", options) == Needs(pointwise_judge=judged)


def test_needs_of_an_unknown_type_or_option_are_the_usual_errors() -> None:
    with pytest.raises(KeyError, match="unknown reward component 'nope'"):
        component_needs("nope")
    with pytest.raises(ValueError, match=r"reward component 'quality': unknown option\(s\) \['sorce'\]"):
        recipe_needs({"components": {"quality": {"sorce": "judge"}}})


def test_presets_need_the_union_of_their_components() -> None:
    assert {p.stem for p in CONF_REWARD.glob("*.yaml")} == set(PRESETS), "a new preset needs a row in PRESETS"
    for name, expected in PRESETS.items():
        reward = compose([f"reward={name}"]).reward
        assert recipe_needs(reward) == expected, name
        assert parse_recipe(reward).needs.judge == expected.judge


def test_a_renamed_component_keeps_its_types_needs() -> None:
    spec = parse_recipe({"components": {"ref_free": {"type": "bootstrap_pairwise", "weight": 2.0},
                                        "words": {"type": "length"}}})
    assert [(c.name, c.kind, c.weight) for c in spec.components] == [("ref_free", "bootstrap_pairwise", 2.0),
                                                                    ("words", "length", 1.0)]
    assert spec.needs == Needs(pairwise_judge=True, whole_group=True, length_ranges=True)
    assert [c.name for c in spec.needing("whole_group")] == ["ref_free"]


def test_the_verl_advantage_inputs_take_the_parsed_recipe() -> None:
    """The driver reads weights, combine and eps through `parse_recipe`, with its checks."""
    from longwriter.engines.verl.advantage import AdvantageInputs

    cfg = {"combine": "mean_advantage", "eps": 0.5, "components": {"p": {"type": "pairwise", "weight": 2}, "length": {}}}
    spec = parse_recipe(cfg)
    inputs = AdvantageInputs.from_extra_infos([{"p": 1.0, "length": "x"}, None], spec)
    assert (inputs.weights, inputs.mode, inputs.eps) == ({"p": 2.0, "length": 1.0}, "mean_advantage", 0.5)
    np.testing.assert_array_equal(inputs.rewards["p"], [1.0, np.nan])
    from_cfg = AdvantageInputs.from_extra_infos([None], cfg)
    assert (from_cfg.weights, from_cfg.mode, from_cfg.eps) == (spec.weights, spec.combine, spec.eps)
    with pytest.raises(ValueError, match="unknown combine mode 'nope'"):
        AdvantageInputs.from_extra_infos([None], {**cfg, "combine": "nope"})


class _Judged:
    """A test component that records the pairwise judge it was built with."""

    built_with: list = []

    @classmethod
    def from_config(cls, options, ctx):
        cls.built_with.append(ctx.pairwise_judge)
        return cls()

    async def score(self, batch):
        return ComponentScores(np.zeros(len(batch)), {})


@pytest.fixture
def judged_component(monkeypatch: pytest.MonkeyPatch) -> str:
    """`needs_a_judge`, registered through register_component into copies of the registries (undone after)."""
    import longwriter.rewards.base as base
    from longwriter.registry import Registry

    for attribute in ("COMPONENTS", "COMPONENT_NEEDS"):
        copy = Registry(getattr(base, attribute).kind)
        copy.update(getattr(base, attribute))
        monkeypatch.setattr(base, attribute, copy)
    base.register_component("needs_a_judge", needs=Needs(pairwise_judge=True, references=True, curriculum=True))(
        _Judged)
    monkeypatch.setattr(_Judged, "built_with", [])
    return "needs_a_judge"


def test_a_new_component_gets_the_judge_curriculum_and_guards_by_its_declaration(
        judged_component: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import longwriter.judges.lifecycle as lifecycle
    from longwriter.data.schema import Sample
    from longwriter.training_guards import require_references
    from longwriter.training_setup import build_reward_setup, needs_judge

    cfg = compose([f"paths.output_root={tmp_path}"])
    OmegaConf.update(cfg, "reward", {"name": "new", "components": {"mine": {"type": judged_component}}}, merge=False)
    assert needs_judge(cfg.reward)
    backend = object()
    monkeypatch.setattr(lifecycle, "build_judge", lambda judge_cfg, cache_dir: backend)
    setup = build_reward_setup(cfg, tmp_path / "run")
    assert setup.judge_backend is backend
    assert setup.curriculum is not None and (tmp_path / "run" / "curriculum.sqlite").exists()
    assert [judge.backend for judge in _Judged.built_with] == [backend]  # a PairwiseTask on the run's judge
    samples = [Sample(id="a", prompt="Write.", references=["ref"]), Sample(id="b", prompt="Write.")]
    with pytest.raises(ConfigError, match=r"1 of 2 samples of data=mine have none"):
        require_references(recipe_needs(cfg.reward), samples, "mine")


def test_a_new_component_without_needs_gets_no_judge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A component registered without `needs` (here straight into the registry) needs nothing."""
    from longwriter.training_setup import build_reward_setup

    monkeypatch.setitem(COMPONENTS, "plain_test_component", _Judged.from_config)  # undone after the test
    monkeypatch.setattr(_Judged, "built_with", [])
    cfg = compose([f"paths.output_root={tmp_path}"])
    OmegaConf.update(cfg, "reward", {"name": "new", "components": {"plain_test_component": {}}}, merge=False)
    setup = build_reward_setup(cfg, tmp_path / "run")
    assert setup.judge_backend is None and setup.curriculum is None and _Judged.built_with == [None]
