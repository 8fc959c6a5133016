"""Judge accounting as metrics: run totals (`usage_metrics`) and per-step deltas (`JudgeUsageTracker`)."""

from __future__ import annotations

import copy

from longwriter.judges.base import Usage


def usage_metrics(backend, prefix: str = "judge") -> dict[str, float]:
    """A backend's running totals as `<prefix>/<counter>` metrics (evaluation, data selection, references)."""
    usage = backend.usage()
    return {f"{prefix}/{name}": float(getattr(usage, name)) for name in
            ("requests", "cache_hits", "cache_misses", "failures", "retries", "prompt_tokens", "completion_tokens", "cost_usd")}


class JudgeUsageTracker:
    """Turns a backend's running `Usage` totals into per-step deltas plus run totals."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self._last = copy.copy(backend.usage()) if backend is not None else Usage()

    def step_metrics(self) -> dict[str, float]:
        if self.backend is None:
            return {}
        now = copy.copy(self.backend.usage())
        last, self._last = self._last, now
        lookups = (now.cache_hits - last.cache_hits) + (now.cache_misses - last.cache_misses)
        metrics = {
            "judge/requests": float(now.requests - last.requests),
            "judge/tokens/prompt": float(now.prompt_tokens - last.prompt_tokens),
            "judge/tokens/completion": float(now.completion_tokens - last.completion_tokens),
            "judge/retries": float(now.retries - last.retries),
            "judge/failures": float(now.failures - last.failures),
            "judge/cost_usd/total": float(now.cost_usd),
            "judge/tokens/total": float(now.prompt_tokens + now.completion_tokens),
        }
        if lookups:
            metrics["judge/cache_hit_rate"] = (now.cache_hits - last.cache_hits) / lookups
        return metrics
