"""One training run for both engines: the same guard cases reach the same outcome through the TRL
adapter and the verl adapter (the part of verl's that runs on CPU: its preparation, which fails on a
guard before anything of verl is needed), because both call `longwriter.training_run`."""

from __future__ import annotations

import json
import re

import pytest

import longwriter.training_run as training_run
from longwriter.errors import ConfigError
from longwriter.rewards import parse_recipe

from conftest import compose


def _prepare(engine: str, cfg, tmp_path):
    """The adapter's own preparation: TRL's dry run, verl's prepare (both before any model or Ray)."""
    if engine == "trl":
        from longwriter.engines.trl_engine.run import dry_run

        return dry_run(cfg, tmp_path)
    from longwriter.engines.verl.launcher import prepare

    return prepare(cfg, tmp_path, dry_run=True)


def _rows(tmp_path, rows: list[dict]) -> str:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _row(i: int, **extra) -> dict:
    return {"id": f"s{i}", "prompt": f"Write {20 + i} words about tea.", "length_range": [16, 24 + i], **extra}


GUARDS = [
    # (reward, rows, the message both engines stop with)
    ("pairwise", [_row(0), _row(1)], "compares responses with reference answers (pairwise), but 2 of 2 samples"),
    ("checklist", [_row(0, references=["A reference."])], "criteria"),
]


@pytest.mark.parametrize("engine", ["trl", "verl"])
@pytest.mark.parametrize("reward,rows,message", GUARDS, ids=[g[0] for g in GUARDS])
def test_both_engines_refuse_data_the_recipe_cannot_score_alike(engine, reward, rows, message, tmp_path) -> None:
    cfg = compose([f"engine={engine}", "model=tiny_random", f"reward={reward}", "data=jsonl",
                   f"data.path={_rows(tmp_path, rows)}", "engine.dry_run=true", f"paths.output_root={tmp_path}"])
    with pytest.raises(ConfigError, match=re.escape(message)):
        _prepare(engine, cfg, tmp_path)


@pytest.mark.parametrize("engine", ["trl", "verl"])
def test_both_engines_take_their_samples_from_the_one_checked_source(engine, tmp_path, monkeypatch) -> None:
    """Each adapter gets its training samples from training_run.checked_training_samples (no copy of
    its own): a sentinel there stops both."""
    class Reached(Exception):
        pass

    def sentinel(cfg, spec):
        raise Reached(spec.name)

    monkeypatch.setattr(training_run, "checked_training_samples", sentinel)
    cfg = compose([f"engine={engine}", "model=tiny_random", "reward=length", "engine.dry_run=true",
                   f"paths.output_root={tmp_path}"])
    with pytest.raises(Reached, match="length"):
        _prepare(engine, cfg, tmp_path)


def test_infeasible_length_ranges_are_dropped_for_a_length_recipe_only(tmp_path) -> None:
    rows = [_row(0), {**_row(1), "length_range": [0, 0]}, _row(2)]
    data = ["data=jsonl", f"data.path={_rows(tmp_path, rows)}"]
    kept = training_run.checked_training_samples(compose(data), parse_recipe(compose(["reward=length"]).reward))
    assert [s.id for s in kept] == ["s0", "s2"]
    quality = compose([*data, "reward=longwriter_zero"])
    spec = parse_recipe(quality.reward)
    if spec.needs.length_ranges:  # longwriter_zero has a length component too
        assert len(training_run.checked_training_samples(quality, spec)) == 2
    no_length = parse_recipe({"name": "f", "components": {"format": {"weight": 1.0}}})
    assert len(training_run.checked_training_samples(compose(data), no_length)) == 3
