"""Entry point: `python -m longwriter.sft [overrides]` (a Hydra app sharing train's config groups).

A supervised warm-up before RL (docs/sft.md): TRL's SFTTrainer on prompt/response pairs from `data=`
(`sft.template`: plain, or LongWriter-Zero's think/answer form), never on an RL evaluation prompt
(`sft.holdout`), logged as one MLflow run of kind `sft`; its `final_model/` folder starts RL with
`python -m longwriter.train model.path=<folder>`. The run itself: `longwriter.sft_run`.
"""

from __future__ import annotations

import signal

import hydra
from omegaconf import DictConfig

from longwriter.cli import terminated, user_errors_exit_cleanly
from longwriter.paths import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="../conf", config_name="sft")
@user_errors_exit_cleanly
def main(cfg: DictConfig) -> float:
    # Heavy imports live inside the function so that `--cfg job` and `--help` stay fast.
    from longwriter.sft_run import run_sft

    return run_sft(cfg)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, terminated)
    main()
