"""Entry point: `python -m longwriter.evaluate [overrides]` (a Hydra app sharing train's config groups).

Scores `model=` (or a trained folder, `eval.checkpoint=`) on `data=` and logs one MLflow run; see
`longwriter.evaluation.runner`. Returns the logged metrics.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from longwriter.cli import quiet_request_logs, user_errors_exit_cleanly
from longwriter.paths import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
@user_errors_exit_cleanly
def main(cfg: DictConfig) -> dict[str, float]:
    # Heavy imports live inside the function so that `--cfg job` and `--help` stay fast.
    from longwriter.evaluation.runner import run_evaluate

    quiet_request_logs()
    return run_evaluate(cfg)


if __name__ == "__main__":
    main()
