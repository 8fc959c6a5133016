"""A small real MLflow store for the notebook and MLflow UI tests, built once per test session.

One Optuna sweep (`sweep=recipes`, grid over two recipes) on the tiny model: a parent run with two
child runs, one pairwise (judged by the tiny model too: curriculum metrics) and one length.
"""

from __future__ import annotations

from pathlib import Path

from conftest import TINY_RUN, run_cli

TINY_TRIAL = [*TINY_RUN, "engine.max_steps=2", "data.limit=8"]
STUDY = "recipes-tiny_random"
_built: dict[str, Path] = {}


def sweep_store(tmp_path_factory) -> Path:
    """The output root holding `mlflow.db`; made by the first caller of the session."""
    if "root" not in _built:
        root = tmp_path_factory.mktemp("sweep_store")
        run_cli("longwriter.train", [
            "-m", "sweep=recipes", *TINY_TRIAL, "model@judge.model=tiny_random", "judge.cache=false",
            # Exactly one trial per recipe: the grid sampler over just the recipe choice.
            "hydra/sweeper/sampler=grid", "hydra.sweeper.params=null", "reward=choice(pairwise,length)",
            "eval.limit=2", "eval.max_new_tokens=16", "eval.generation_cache=null", f"paths.output_root={root}",
            # Named on the command line (which wins over MLFLOW_TRACKING_URI): a module-scoped caller runs
            # before conftest's per-test fixture clears that variable, which an earlier test's in-process
            # mlflow.set_tracking_uri may have left pointing at its own store.
            f"tracking.tracking_uri={tracking_uri(root)}",
        ])
        _built["root"] = root
    return _built["root"]


def tracking_uri(root: Path) -> str:
    return f"sqlite:///{root}/mlflow.db"
