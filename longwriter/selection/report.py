"""What a data-selection run reports: kept samples, drop reasons, per-sample rows, summary numbers.

The registry in `longwriter.selection` maps a name to `(samples, cfg) -> samples`, which is all
training needs. `prepare` also needs to know *why* samples were dropped and what the judge said,
so strategies that can say more register a reporting function with `@reporting_strategy(name)`:
it returns a `SelectionReport`, and the plain strategy registered under the same name is that
report's `.samples`. Strategies without a report (`all`, `random`) get a generic one.
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from omegaconf import DictConfig

from longwriter.data.schema import Sample
from longwriter.registry import Registry

logger = logging.getLogger(__name__)


@dataclass
class SelectionReport:
    """samples: the kept samples in input order; dropped: reason -> count;
    rows: one dict per *input* sample (id, kept, reason, strategy numbers such as margin);
    metrics: strategy summaries named `<section>/<stat>` (prepare logs them under `prepare/`)."""

    samples: list[Sample]
    dropped: Counter = field(default_factory=Counter)
    rows: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.dropped.items())) or "none"
        return f"kept {len(self.samples)}, dropped {sum(self.dropped.values())} ({reasons})"


ReportingStrategy = Callable[[list[Sample], DictConfig], SelectionReport]
_REPORTING: Registry[ReportingStrategy] = Registry("reporting strategy")


def reporting_strategy(name: str) -> Callable[[ReportingStrategy], ReportingStrategy]:
    """Register `fn` as the reporting form of strategy `name` and its plain form in the registry."""
    from longwriter.selection import register_strategy

    def decorator(fn: ReportingStrategy) -> ReportingStrategy:
        _REPORTING.add(name, fn)

        def plain(samples: list[Sample], cfg: DictConfig) -> list[Sample]:
            report = fn(samples, cfg)
            logger.info("data_selection=%s: %s", name, report.summary())
            return report.samples

        plain.__doc__ = fn.__doc__
        register_strategy(name)(plain)
        return fn

    return decorator


def select_with_report(samples: list[Sample], cfg: DictConfig) -> SelectionReport:
    """`select_samples` with the reasons: the strategy's own report, or a generic one."""
    from longwriter.selection import _load_builtin_strategies, select_samples

    _load_builtin_strategies()
    name = str(cfg.data_selection.name)
    if name in _REPORTING:
        return _REPORTING[name](samples, cfg)
    kept = select_samples(samples, cfg)
    kept_ids = {s.id for s in kept}
    rows = [{"id": s.id, "kept": s.id in kept_ids, "reason": None if s.id in kept_ids else "not_selected"}
            for s in samples]
    dropped = Counter(r["reason"] for r in rows if r["reason"])
    return SelectionReport(kept, dropped, rows)


def drop_counts(rows: Sequence[dict[str, Any]]) -> Counter:
    return Counter(r["reason"] for r in rows if not r["kept"])


def stats(name: str, values: Sequence[float | None]) -> dict[str, float]:
    """`<name>/{n,mean,median,min,max}` over the known values (None = unknown, not counted)."""
    known = [float(v) for v in values if v is not None]
    if not known:
        return {f"{name}/n": 0.0}
    return {f"{name}/n": float(len(known)), f"{name}/mean": statistics.fmean(known),
            f"{name}/median": statistics.median(known), f"{name}/min": min(known), f"{name}/max": max(known)}
