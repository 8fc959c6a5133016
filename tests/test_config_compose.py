"""Every config group option composes, and the CLI prints the config quickly from anywhere."""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from longwriter.paths import CONF_DIR

from conftest import ROOT, cfg_job, compose

GROUPS = ["engine", "model", "reward", "judge", "data", "data_selection", "tracking"]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in _options(g)])
def test_every_group_option_composes_and_resolves(group: str, option: str) -> None:
    cfg = compose([f"{group}={option}"])
    container = OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    assert container[group]["name"] == option
    assert container["paths"]["root"] == str(ROOT)


def test_every_group_has_a_default_and_paths_are_absolute() -> None:
    cfg = compose([])
    for group in GROUPS:
        assert cfg[group].name, group
    assert cfg.tracking.tracking_uri.startswith("sqlite:////")


def test_cfg_job_prints_config_from_another_directory_without_heavy_imports(tmp_path) -> None:
    """`--cfg job` must stay fast: it may not import the ML stack (time it with benchmarks/cli_startup.py)."""
    printed, heavy = cfg_job("longwriter.train", ["reward=length"], tmp_path)
    assert "engine:" in printed and "tracking:" in printed
    assert heavy == []
    assert not (tmp_path / "outputs").exists()  # nothing written into the caller's directory


def test_wrong_override_gets_one_clear_message() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "longwriter.train", "reward=does_not_exist", "--cfg", "job"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert "does_not_exist" in proc.stderr and "Available options" in proc.stderr


def _presets(folder: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / folder).glob("*.yaml"))


@pytest.mark.parametrize("name", _presets("experiments"))
def test_every_experiment_preset_composes_and_resolves(name: str) -> None:
    cfg = compose([f"experiment={name}"])
    OmegaConf.to_container(cfg, resolve=True)
    assert cfg.engine.name in ("trl", "verl")


def test_cpu_demo_holds_only_what_differs() -> None:
    """Every group the preset overrides and every value it sets differ from the defaults."""
    preset = OmegaConf.load(ROOT / "experiments" / "cpu_demo.yaml")
    demo, default = compose(["experiment=cpu_demo"]), compose([])
    for entry in preset.get("defaults", []):
        ((key, option),) = entry.items()
        group = key.removeprefix("override ").strip("/")
        assert default[group].name != option, f"cpu_demo restates the default {group}={option}"
        assert demo[group].name == option
    values = OmegaConf.to_container(preset, resolve=False)
    values.pop("defaults", None)

    def leaves(node, prefix=""):
        for name, value in node.items():
            if isinstance(value, dict):
                yield from leaves(value, f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}"

    for key in leaves(values):
        assert OmegaConf.select(demo, key) != OmegaConf.select(default, key), f"cpu_demo restates {key}"
    assert demo.engine.learning_rate == default.engine.learning_rate  # what it does not set stays the default
