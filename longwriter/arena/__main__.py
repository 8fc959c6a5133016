"""Entry point: `python -m longwriter.arena [overrides]` (a Hydra app, conf/arena.yaml)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from longwriter.cli import quiet_request_logs, user_errors_exit_cleanly
from longwriter.paths import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="../../conf", config_name="arena")
@user_errors_exit_cleanly
def main(cfg: DictConfig) -> None:
    from longwriter.arena.runner import run_arena

    quiet_request_logs()
    run_arena(cfg)


if __name__ == "__main__":
    main()
