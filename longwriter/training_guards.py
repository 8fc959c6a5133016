"""A training that cannot get rewards fails, early and by name.

- `require_references`: a recipe whose components need references (pairwise) compares responses with
  reference answers; data without them would train on zero advantages, so it is refused at start.
- `require_criteria`: a recipe whose components need criteria (checklist) scores each sample's own criteria; a sample
  without them (or with weights that cannot normalise) is refused at start, not skipped: a silently
  smaller training set would change what a run means.
- the judge check: an API judge is asked once before the first step (unreachable endpoint, rejected
  key), so a dead judge is one message, not a run of unknown verdicts (`judges/lifecycle.py`).
- `UnknownVerdictStreak`: a step whose judged rewards are all unknown is counted; more than
  `stop_after_unknown_steps` such steps in a row stop the run as FAILED with the reason.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any, Mapping

from longwriter.errors import ConfigError, LongwriterError

if TYPE_CHECKING:
    from longwriter.rewards.base import Needs

logger = logging.getLogger(__name__)

# Per-step metrics that give the share of judged rewards without a verdict (pairwise, judge quality).
UNKNOWN_RATE_METRICS = ("judge/unknown_rate", "quality/unknown_rate", "checklist/unknown_rate")


class RewardSignalLost(LongwriterError):
    """Too many consecutive steps without a single judge verdict."""


def require_references(needs: "Needs", samples: list, data_name: str) -> None:
    """`needs`: the recipe's (`longwriter.rewards.recipe_needs`)."""
    if not needs.references:
        return
    missing = [s.id for s in samples if not s.references]
    if missing:
        raise ConfigError(
            f"the reward recipe compares responses with reference answers (pairwise), but {len(missing)} of "
            f"{len(samples)} samples of data={data_name} have none (e.g. {', '.join(missing[:3])}); use data with "
            f"`references` (data=builtin has them) or add them with `python -m longwriter.prepare "
            f"prepare.references.writers=[...]`")


def require_criteria(needs: "Needs", samples: list, data_name: str) -> None:
    """`needs`: the recipe's (`longwriter.rewards.recipe_needs`)."""
    if not needs.criteria:
        return
    from longwriter.rewards.checklist import criteria_weights

    missing = [s.id for s in samples if not s.criteria]
    if missing:
        raise ConfigError(
            f"the reward recipe scores each sample's own criteria (checklist), but {len(missing)} of {len(samples)} "
            f"samples of data={data_name} have none (e.g. {', '.join(missing[:3])}); use data whose samples all carry "
            f"`criteria` (data=builtin, data=writingbench), or drop those rows from the file")
    for sample in samples:
        try:
            criteria_weights(sample.criteria, sample.meta, f"sample {sample.id!r} of data={data_name}")
        except ValueError as error:
            raise ConfigError(str(error)) from None


class UnknownVerdictStreak:
    """Counts consecutive steps whose judged rewards were all unknown; raises past the limit."""

    def __init__(self, limit: int | None, endpoint: str = "") -> None:
        self.limit = int(limit) if limit else 0  # 0 or null: never stop
        self.endpoint = endpoint
        self.streak = 0
        self.total = 0

    def update(self, metrics: Mapping[str, float], step: int) -> dict[str, float]:
        """Metrics to log for this step (`judge/all_unknown_steps`, `judge/all_unknown_streak`)."""
        rates = [metrics.get(k) for k in UNKNOWN_RATE_METRICS]
        rates = [float(r) for r in rates if r is not None and not math.isnan(float(r))]
        if not rates:  # nothing judged this step (no judge in the recipe)
            return {}
        if max(rates) >= 1.0:
            self.streak += 1
            self.total += 1
            logger.warning("step %d: every judge verdict was unknown (%d such steps in a row)", step, self.streak)
        else:
            self.streak = 0
        if self.limit and self.streak > self.limit:
            where = f" ({self.endpoint})" if self.endpoint else ""
            raise RewardSignalLost(
                f"no reward signal: every judge verdict was unknown for {self.streak} steps in a row (steps "
                f"{step - self.streak + 1}-{step}), more than stop_after_unknown_steps={self.limit}; the judge"
                f"{where} is failing: see the warnings above for its errors, fix it and resume with "
                f"resume_from=<this run's folder>")
        return {"judge/all_unknown_steps": float(self.total), "judge/all_unknown_streak": float(self.streak)}


def judge_endpoint(backend: Any) -> str:
    settings = getattr(backend, "settings", None)
    return f"judge endpoint {settings.base_url}" if settings is not None else ""
