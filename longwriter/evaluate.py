"""Entry point: `python -m longwriter.evaluate [overrides]` (a Hydra app sharing train's config groups).

Scores `model=` (or a trained folder, `eval.checkpoint=`) on `data=` and logs one MLflow run; see
`longwriter.evaluation.runner`. Returns the logged metrics.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from longwriter.cli import user_errors_exit_cleanly
from longwriter.paths import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
@user_errors_exit_cleanly
def main(cfg: DictConfig) -> dict[str, float]:
    # Heavy imports live inside the function so that `--cfg job` and `--help` stay fast.
    from longwriter.evaluation.runner import run_evaluate

    for name in ("httpx", "httpx2"):  # one INFO line per judge request drowns the progress bars
        logging.getLogger(name).setLevel(logging.WARNING)

    return run_evaluate(cfg)


if __name__ == "__main__":
    main()
