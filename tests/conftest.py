"""Shared fixtures: Hydra composition, per-test output folders, the shared model cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from longwriter.paths import CONF_DIR, project_root, register_resolvers

ROOT = project_root()
SHARED_BENCHMARKS = ROOT.parent / "shared" / "benchmarks"
# The smallest real training run (the tiny random model, 2 prompts x 2 completions of 16 tokens); each
# end-to-end test adds its own steps and data limit.
TINY_RUN = ["model=tiny_random", "engine.prompts_per_step=2", "engine.num_generations=2",
            "engine.max_completion_length=16"]


def compose(overrides: list[str] | None = None, config_name: str = "train"):
    """The config exactly as `python -m longwriter.<config_name> <overrides>` would see it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides or [], return_hydra_config=False)


@pytest.fixture(autouse=True)
def _store_in_the_test_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's MLFLOW_TRACKING_URI would send every test's runs to that store (it is honoured,
    conf/tracking/mlflow_local.yaml): tests keep theirs under paths.output_root."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture
def output_root(tmp_path: Path) -> Path:
    """A fresh output folder (MLflow store, runs) for one test; the model cache stays shared."""
    return tmp_path / "outputs"


HEAVY_MODULES = ("torch", "transformers", "trl", "mlflow", "datasets", "verl")


def cfg_job(module: str, overrides: list[str], cwd: Path) -> tuple[str, list[str]]:
    """`python -m <module> --cfg job <overrides>` in a fresh interpreter started in `cwd`: (the printed
    config, the HEAVY_MODULES it imported). `--cfg job` must stay fast, so that list should be empty."""
    script = (
        "import runpy, sys\n"
        f"sys.argv = [{module!r}, '--cfg', 'job', *{list(overrides)!r}]\n"
        "try:\n    runpy.run_module(sys.argv[0], run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    printed, _, heavy = proc.stdout.rpartition("HEAVY=")
    return printed, [m for m in heavy.strip().split(",") if m]


def run_cli(module: str, overrides: list[str], timeout: int = 900, check: bool = True, **kwargs):
    """Run `python -m <module> <overrides>` in a subprocess, as a user would."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", module, *overrides],
        cwd=kwargs.pop("cwd", ROOT), env=env, capture_output=True, text=True, timeout=timeout, **kwargs,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} {' '.join(overrides)} failed ({proc.returncode}):\n"
                             f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-6000:]}")
    return proc
