"""Seeds as one dimension: which runs are the same config, and what a group of seeds shows.

Pure functions over plain data (no MLflow; `seed_groups.py` reads the runs and logs the results):
- `config_key(params)`: a run's params minus its seed and the keys that only name the run (its
  name, folders, store, parent). Runs with equal keys differ only in their seed: one group.
- `describe(values)`: n, mean, sample std, the 95% confidence interval of the mean (Student's t with
  n - 1 degrees of freedom: mean +- t_0.975(n-1) * std / sqrt(n); none for one seed), min and max.
- `ema(values, weight)`: TensorBoard's smoothing slider (an exponential moving average, debiased so
  that the first points are not pulled toward 0).
- `curve_band(curves, weight, band)`: per step, the mean over seeds and a band (the 95% CI, or min..max).
- `learning_figures(history, following)`: one run's learning figures: the first- and last-quarter
  mean of each training curve the run summary reports (and their change), held-out evaluations
  before (step 0) and after (last step), and the objective.
- `aggregate(label, members)`: a group's figures over its FINISHED seeds; a failed (or still
  running) seed is listed with its reason and left out of every mean.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from longwriter.tracking.run_summary import FOLLOWING_LABEL, TRACKED, quarter_means

SEED_KEYS = ("seed",)
# Params that name one run rather than its config: never a reason to split a group.
RUN_IDENTITY = ("run_name", "paths.", "tracking.", "hydra", "resume_from", "parent_run_id")
FINISHED = "FINISHED"
FAILED_STATUSES = ("FAILED", "KILLED")
BANDS = ("ci95", "minmax")

Curve = Sequence[tuple[int, float]]  # [(step, value)], oldest first


def is_run_identity(key: str) -> bool:
    """A param that names one run or its outputs, not its config: the run's name, folders and store,
    and the params an evaluation logs about what it read (`eval/final/model` = this run's own model
    folder; config params are dotted, never slashed)."""
    return key.startswith(RUN_IDENTITY) or "/" in key


def config_key(params: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The params that define the config: everything but the seed and the run's own names."""
    return tuple(sorted((k, v) for k, v in params.items() if k not in SEED_KEYS and not is_run_identity(k)))


def group_by_config(params_of: Mapping[str, Mapping[str, str]]) -> list[list[str]]:
    """Ids (keys of `params_of`, in their order) grouped by `config_key`, groups in order of first member."""
    groups: dict[tuple, list[str]] = {}
    for run_id, params in params_of.items():
        groups.setdefault(config_key(params), []).append(run_id)
    return list(groups.values())


# ----------------------------------------------------------------------------------------------
# statistics


@dataclass(frozen=True)
class Stats:
    n: int
    mean: float
    std: float     # sample std (n - 1); nan for one value
    ci95: float    # half-width of the 95% CI of the mean (Student's t); nan for one value
    min: float
    max: float
    values: tuple[float, ...]

    @property
    def low(self) -> float:
        return self.mean - self.ci95

    @property
    def high(self) -> float:
        return self.mean + self.ci95

    def text(self, digits: int = 3) -> str:
        """`0.805 +- 0.120 [0.724, 0.891]` (the CI half-width, then min and max)."""
        if self.n == 1:
            return f"{self.mean:.{digits}f} (one seed)"
        return f"{self.mean:.{digits}f} +- {self.ci95:.{digits}f} [{self.min:.{digits}f}, {self.max:.{digits}f}]"


def t_quantile(n: int, confidence: float = 0.95) -> float:
    """Two-sided Student's t quantile for the mean of n values (n - 1 degrees of freedom)."""
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, n - 1))


def describe(values: Iterable[float]) -> Stats | None:
    """Stats of the finite values (None when there is none)."""
    clean = tuple(float(v) for v in values if v is not None and math.isfinite(float(v)))
    if not clean:
        return None
    n = len(clean)
    mean = sum(clean) / n
    if n == 1:
        return Stats(1, mean, math.nan, math.nan, mean, mean, clean)
    std = math.sqrt(sum((v - mean) ** 2 for v in clean) / (n - 1))
    return Stats(n, mean, std, t_quantile(n) * std / math.sqrt(n), min(clean), max(clean), clean)


def ema(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: last = last * w + (1 - w) * v, shown debiased as last / (1 - w^k)
    after k points. weight 0 returns the values; non-finite values pass through unsmoothed."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    out, last, count = [], 0.0, 0
    for value in values:
        if not math.isfinite(value):
            out.append(value)
            continue
        last = last * weight + (1 - weight) * value
        count += 1
        out.append(last / (1 - weight ** count))
    return out


@dataclass(frozen=True)
class BandPoint:
    step: int
    n: int
    mean: float
    low: float
    high: float


def curve_band(curves: Sequence[Curve], weight: float = 0.0, band: str = "ci95") -> list[BandPoint]:
    """Per step (any seed logged it): the mean over the seeds' curves, each smoothed first with
    `ema(weight)`, and the band: the 95% CI of the mean (`ci95`; no width for one seed) or the
    seeds' min..max (`minmax`)."""
    if band not in BANDS:
        raise ValueError(f"band must be one of {BANDS}, got {band!r}")
    by_step: dict[int, list[float]] = {}
    for curve in curves:
        steps = [int(s) for s, _ in curve]
        for step, value in zip(steps, ema([float(v) for _, v in curve], weight)):
            by_step.setdefault(step, []).append(value)
    points = []
    for step in sorted(by_step):
        stats = describe(by_step[step])
        if stats is None:
            continue
        if band == "minmax":
            low, high = stats.min, stats.max
        elif stats.n > 1:
            low, high = stats.low, stats.high
        else:
            low = high = stats.mean
        points.append(BandPoint(step, stats.n, stats.mean, low, high))
    return points


def band_label(band: str, weight: float) -> str:
    """What a grouped curve shows, for legends and titles."""
    what = "95% CI of the mean (Student t)" if band == "ci95" else "min..max over seeds"
    smooth = f", EMA {weight:g}" if weight else ", no smoothing"
    return f"mean over seeds, band {what}{smooth}"


# ----------------------------------------------------------------------------------------------
# one run's learning figures

def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


# Training curves summarised beside the run summary's (TRACKED) and each reward component's.
EXTRA_CURVES = (("curriculum/level/mean_all", "curriculum level"),)
REWARD_COMPONENT = re.compile(r"^reward/(?!total/)[^/]+/mean$")
# Evaluation metrics that are bookkeeping, not scores.
_NOT_SCORES = re.compile(r"^eval/(timing/|generation/(cache_hits|generated)$|n_samples$)|/(n|skipped)$")


def learning_figures(history: Mapping[str, Curve], following: tuple[float, float] | None = None
                     ) -> dict[str, float]:
    """A run's figures, by name:
      <curve>/first_quarter, <curve>/last_quarter, <curve>/change   for the run summary's training
          curves (reward, in_range_rate, clip_ratio, words), each reward component (reward_<name>),
          the curriculum's mean level (curriculum_level) and `following_rho` (given: Spearman of
          requested vs written words over the first and last quarter of the steps)
      heldout/<eval metric>/before, /after, /change   an eval/* score logged at step 0 (before
          training) and at a later step (the last one: after); "/mean" is dropped from the name
      objective
    """
    figures: dict[str, float] = {}

    def quarters(name: str, first: float, last: float) -> None:
        figures.update({f"{name}/first_quarter": first, f"{name}/last_quarter": last, f"{name}/change": last - first})

    components = sorted(k for k in history if REWARD_COMPONENT.match(k))
    curves = [*TRACKED, *((k, "reward " + k.split("/")[1]) for k in components), *EXTRA_CURVES]
    for key, label in curves:
        values = [float(v) for _, v in history.get(key, ())]
        if values:
            quarters(_slug(label), *quarter_means(values))
    if following is not None:
        quarters(_slug(FOLLOWING_LABEL), *following)
    for key, curve in history.items():
        if not key.startswith("eval/") or _NOT_SCORES.search(key) or not curve:
            continue
        name = "heldout/" + key[len("eval/"):].removesuffix("/mean")
        before = [v for s, v in curve if s == 0]
        after = [v for s, v in curve if s > 0]
        if before:
            figures[f"{name}/before"] = before[-1]
        if after:
            figures[f"{name}/after"] = after[-1]
        if before and after:
            figures[f"{name}/change"] = after[-1] - before[-1]
    if history.get("objective"):
        figures["objective"] = float(history["objective"][-1][1])
    return {k: v for k, v in figures.items() if math.isfinite(v)}


# ----------------------------------------------------------------------------------------------
# a group


@dataclass
class Member:
    """One seed's run, as the aggregate needs it."""
    run_id: str
    name: str
    seed: str | None
    status: str
    figures: dict[str, float] = field(default_factory=dict)
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.status == FINISHED

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES


@dataclass
class GroupAggregate:
    label: str
    members: list[Member]
    figures: dict[str, Stats]              # over the finished seeds only
    missing: list[str] = field(default_factory=list)   # seeds that never started (an interrupted sweep)

    @property
    def finished(self) -> list[Member]:
        return [m for m in self.members if m.finished]

    @property
    def failed(self) -> list[Member]:
        return [m for m in self.members if m.failed]

    @property
    def running(self) -> list[Member]:
        return [m for m in self.members if not m.finished and not m.failed]

    @property
    def n(self) -> int:
        return len(self.finished)

    def seeds(self) -> str:
        """`0,1,2`; a failed seed is marked `2(failed)`, a running one `2(running)`."""
        def mark(m: Member) -> str:
            return (m.seed or "?") + ("" if m.finished else "(failed)" if m.failed else f"({m.status.lower()})")
        return ",".join(mark(m) for m in sorted(self.members, key=_seed_order))

    def band(self, metric: str, weight: float = 0.0, band: str = "ci95") -> list[BandPoint]:
        return curve_band([m.curves[metric] for m in self.finished if m.curves.get(metric)], weight, band)


def _seed_order(member: Member) -> tuple:
    seed = member.seed or ""
    return (0, int(seed), "") if seed.lstrip("-").isdigit() else (1, 0, seed)


def aggregate(label: str, members: Sequence[Member], expected_seeds: Sequence[str] = ()) -> GroupAggregate:
    """The group's figures over its finished seeds. `expected_seeds`: seeds the group was launched
    with; any without a member is reported as never started."""
    finished = [m for m in members if m.finished]
    names = sorted({k for m in finished for k in m.figures})
    figures = {k: s for k in names if (s := describe(m.figures.get(k) for m in finished)) is not None}
    seen = {m.seed for m in members}
    return GroupAggregate(label, sorted(members, key=_seed_order), figures,
                          [s for s in expected_seeds if s not in seen])


# The figures the printed summary shows, in this order, when the group has them.
SUMMARY_FIGURES = ("reward/first_quarter", "reward/last_quarter", "reward/change", "in_range_rate/change",
                   "clip_ratio/change", "words/change", "following_rho/first_quarter", "following_rho/last_quarter",
                   "following_rho/change")
HELDOUT_SUMMARY = ("length_score", "quality_score", "checklist_score", "pairwise/win_rate", "length_following/spearman",
                   "length_following/log_slope", "generation/truncated_rate")


def summary_figures(names: Iterable[str]) -> list[str]:
    """The figure names worth printing, in a stable order: training figures (each reward component's
    change when there are several), held-out scores (each before, after, change), objective."""
    names = set(names)
    components = sorted(n for n in names if n.startswith("reward_") and n.endswith("/change"))
    held = [f"heldout/{metric}/{stage}" for metric in HELDOUT_SUMMARY for stage in ("before", "after", "change")]
    order = [*SUMMARY_FIGURES, *(components if len(components) > 1 else []), "curriculum_level/change", *held,
             "objective"]
    return [n for n in order if n in names]


def summary_lines(group: GroupAggregate) -> list[str]:
    """The grouped figures as printed at the end of a seed group (and by the learning benchmark):
    per figure the mean +- the 95% CI half-width [min, max] over the finished seeds, then each seed's
    value; failed seeds are named with their error and left out."""
    finished = group.finished
    head = f"== seed group {group.label}: {group.n} seed(s) finished"
    if group.failed:
        head += f", {len(group.failed)} failed"
    if group.running:
        head += f", {len(group.running)} not finished"
    if group.missing:
        head += f", {len(group.missing)} never started"
    lines = [head + " =="]
    if finished:
        seeds = ", ".join(f"s{m.seed}" for m in finished)
        lines.append(f"{'figure':>40}  mean +- 95% CI [min, max] over seeds   |  {seeds}")
        for name in summary_figures(group.figures):
            stats = group.figures[name]
            each = ", ".join("-" if m.figures.get(name) is None else f"{m.figures[name]:.3f}" for m in finished)
            text = stats.text() + (f" n={stats.n}" if 1 < stats.n < group.n else "")
            lines.append(f"{name:>40}  {text:<36} |  {each}")
    else:
        lines.append("  no seed finished: nothing to average")
    for m in group.failed + group.running:
        reason = f": {m.error}" if m.error else ""
        lines.append(f"  seed {m.seed}: {m.status} (left out of the means){reason}"[:400])
    for seed in group.missing:
        lines.append(f"  seed {seed}: never started (left out)")
    return lines
