"""Entry point: `python -m longwriter.train [overrides]` (a Hydra app; `-m` for sweeps).

Returns the sweep objective (see `longwriter.engines.trl_engine.run`), which Hydra's Optuna
sweeper optimises.
"""

from __future__ import annotations

import signal

import hydra
from omegaconf import DictConfig

from longwriter.cli import terminated as _terminated
from longwriter.cli import user_errors_exit_cleanly
from longwriter.paths import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@user_errors_exit_cleanly
def main(cfg: DictConfig) -> float | None:
    # Heavy imports live inside the function so that `--cfg job` and `--help` stay fast.
    from longwriter.engines import run_training

    return run_training(cfg)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminated)
    main()
