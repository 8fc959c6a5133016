"""Evaluation: the metric formulas (`metrics`) used by `python -m longwriter.evaluate`."""

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
