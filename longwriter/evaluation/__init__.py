"""Evaluation behind `python -m longwriter.evaluate` and training's `eval.at_start/at_end`.

  metrics     the formulas (S_l, S_q, checklist, win rates): pure functions
  generation  batched generation with a persistent cache keyed by model identity, prompt, settings
  scoring     one registered scorer per metric family (judge calls concurrent)
  report      MLflow metrics, params, per-sample table and plots
  runner      one evaluation end to end (`evaluate_model`, `run_evaluate`, `evaluate_in_training`)
"""

from longwriter.evaluation.metrics import (
    QUALITY_DIMENSIONS,
    checklist_score,
    length_score,
    length_score_text,
    mean_length_score,
    policy_outcome,
    quality_score,
    win_rates,
)

__all__ = [
    "QUALITY_DIMENSIONS",
    "checklist_score",
    "length_score",
    "length_score_text",
    "mean_length_score",
    "policy_outcome",
    "quality_score",
    "win_rates",
]
