"""One name per quantity, whichever engine trained: TRL's and verl's metric names -> the project's.

The project names metrics `section/name/stat` (README). TRL's log keys are renamed (the originals
are not logged); verl's are kept as verl logs them (verl users know them) and the project's name
is logged beside them, so a dashboard, a sweep objective or a comparison reads the same key from a
TRL run and from a verl run (tests/test_engine_vocabulary.py checks both tables).
"""

from __future__ import annotations

# TRL log key -> project name. TRL's own "reward" columns are dropped: the trainer feeds TRL the
# final advantage as its only reward, so they would be mislabelled.
TRL_TO_PROJECT = {
    "loss": "train/loss",
    "grad_norm": "train/grad_norm",
    "learning_rate": "train/learning_rate",
    "kl": "train/kl",
    "entropy": "train/entropy",
    "epoch": "train/epoch",
    "num_tokens": "train/num_tokens",
    "completions/mean_length": "response_length/tokens/mean",
    "completions/min_length": "response_length/tokens/min",
    "completions/max_length": "response_length/tokens/max",
    "completions/clipped_ratio": "response_length/clip_ratio",
    "frac_reward_zero_std": "advantage/zero_std_group_frac",
}
TRL_DROP_PREFIXES = ("reward", "rewards/", "completions/", "step_time")

# verl metric -> project name (verl 0.9.1's v1 trainer: workers/engine_workers.py, utils/losses.py,
# trainer/ppo/metric_utils.py, the marked_timer names of trainer/ppo/v1/trainer_base.py).
VERL_TO_PROJECT = {
    "actor/loss": "train/loss",
    "actor/grad_norm": "train/grad_norm",
    "actor/lr": "train/learning_rate",
    "actor/kl_loss": "train/kl",
    "actor/entropy": "train/entropy",
    "training/epoch": "train/epoch",
    "response_length/mean": "response_length/tokens/mean",
    "response_length/min": "response_length/tokens/min",
    "response_length/max": "response_length/tokens/max",
    "response_length/clip_ratio": "response_length/clip_ratio",
    "timing_s/gen": "timing/generation_s",
    "timing_s/reward": "timing/reward_s",
    "timing_s/update_actor": "timing/update_s",
    "timing_s/step": "timing/step_s",
}


def rename_trl_metrics(logs: dict[str, float]) -> dict[str, float]:
    out = {}
    for key, value in logs.items():
        if key in TRL_TO_PROJECT:
            out[TRL_TO_PROJECT[key]] = value
        elif key.startswith("clip_ratio"):
            out["train/" + key] = value
        elif key.startswith(TRL_DROP_PREFIXES) and not key.startswith("reward/"):
            continue
        else:
            out[key] = value
    return out


def add_project_names(verl_metrics: dict) -> dict:
    """verl's step metrics plus the project's name for each quantity both engines log (in place)."""
    for verl_key, project_key in VERL_TO_PROJECT.items():
        if verl_key in verl_metrics and project_key not in verl_metrics:
            verl_metrics[project_key] = verl_metrics[verl_key]
    return verl_metrics
