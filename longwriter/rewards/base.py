"""What a reward component sees (a rollout batch), what it returns, and how it is registered.

A component is a plain object with `async def score(batch) -> ComponentScores`: one reward per
completion (NaN = unknown or not applicable, never a silent 0) plus metrics named
"section/name/stat". Components are registered by name so that a recipe config selects them;
a duplicate name is an error, and no discovery by subclassing happens.

A component declares at registration what it needs from the run (`Needs`: a judge, the samples'
references or criteria, the curriculum, ...); training setup and the guards ask the recipe's
declared needs (`recipe.recipe_needs`), never a component's name, so a new component that needs a
judge gets one without editing them.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Mapping, Protocol, Sequence, TypeVar

import numpy as np

from longwriter.data.schema import Sample
from longwriter.judges.base import PairwiseJudge, PointwiseJudge
from longwriter.registry import Registry


@dataclass
class RolloutBatch:
    """Completions to score, one `Sample` per completion.

    samples:      [N] the sample each completion answers (repeated across its group)
    completions:  [N] generated texts (the full completion, tags included)
    group_index:  [N] int, completions to the same prompt share a group id
    training:     False for validation batches: they never move the curriculum
    completion_tokens: [N] int, tokens the engine generated for each completion (EOS included, as
                  TRL's completion_ids and verl's response mask count them); None when the caller
                  has no token ids (components that need them refuse such a batch)
    """

    samples: list[Sample]
    completions: list[str]
    group_index: np.ndarray
    training: bool = True
    completion_tokens: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.group_index = np.asarray(self.group_index)
        n = len(self.completions)
        if len(self.samples) != n or self.group_index.shape != (n,):
            raise ValueError(
                f"RolloutBatch needs one sample and one group id per completion: {len(self.samples)} "
                f"samples, {n} completions, group_index shape {self.group_index.shape}"
            )
        if n and not np.issubdtype(self.group_index.dtype, np.integer):
            raise ValueError(f"group_index must hold integers, got dtype {self.group_index.dtype}")
        if self.completion_tokens is not None:
            self.completion_tokens = np.asarray(self.completion_tokens, dtype=np.int64)
            if self.completion_tokens.shape != (n,):
                raise ValueError(f"completion_tokens needs one count per completion: shape "
                                 f"{self.completion_tokens.shape}, {n} completions")

    def __len__(self) -> int:
        return len(self.completions)

    @classmethod
    def from_groups(cls, samples: Sequence[Sample], completions: Sequence[Sequence[str]],
                    training: bool = True) -> "RolloutBatch":
        """Build from one sample per prompt and its list of completions (group g = prompt g)."""
        if len(samples) != len(completions):
            raise ValueError("from_groups needs one list of completions per sample")
        flat_samples, flat_texts, groups = [], [], []
        for g, (sample, texts) in enumerate(zip(samples, completions)):
            flat_samples += [sample] * len(texts)
            flat_texts += list(texts)
            groups += [g] * len(texts)
        return cls(flat_samples, flat_texts, np.asarray(groups, dtype=np.int64), training)


@dataclass
class ComponentScores:
    """rewards: [N] float, NaN = unknown/not applicable; metrics: {"section/name/stat": value};
    labels: {name: [N] text or None}, what a reader of one completion wants beside its reward
    (e.g. the judge's verdict; the training samples table shows them)."""

    rewards: np.ndarray
    metrics: dict[str, float] = field(default_factory=dict)
    labels: dict[str, list[str | None]] = field(default_factory=dict)


class RewardComponent(Protocol):
    async def score(self, batch: RolloutBatch) -> ComponentScores: ...


@dataclass
class BuildContext:
    """Everything a component may need besides its own options; passed in, never global."""

    prompt_template: str = "plain"
    pairwise_judge: PairwiseJudge | None = None
    pointwise_judge: PointwiseJudge | None = None
    curriculum: Any = None  # longwriter.curriculum.CurriculumState
    reward_model: Any = None  # (model, tokenizer) or a callable returning them
    max_completion_tokens: int | None = None  # the engine's token budget per completion (engine.max_completion_length)
    checklist_judge: Any = None  # scores one criterion at a time (longwriter.judges.ChecklistTask)


@dataclass(frozen=True)
class Needs:
    """What a component needs besides its options (declared at registration, see module doc).

    pairwise_judge / pointwise_judge / checklist_judge: that judge in the BuildContext (the run builds one);
    references: every training sample's reference answers (refused at start without them);
    criteria: every training sample's criteria with weights that normalise (refused at start otherwise);
    curriculum: a curriculum state that moves the samples' levels;
    length_ranges: scores against each sample's length range (samples marked infeasible, [0, 0], are
      dropped before training);
    whole_group: scores a completion against others of its group, so all of a group must be scored
      together (verl's reward loop scores one trajectory at a time and refuses it).
    """

    pairwise_judge: bool = False
    pointwise_judge: bool = False
    checklist_judge: bool = False
    references: bool = False
    criteria: bool = False
    curriculum: bool = False
    length_ranges: bool = False
    whole_group: bool = False

    @property
    def judge(self) -> bool:
        """Whether any judge is needed (the run then builds its judge backend)."""
        return self.pairwise_judge or self.pointwise_judge or self.checklist_judge

    def __or__(self, other: "Needs") -> "Needs":
        return replace(self, **{f.name: getattr(self, f.name) or getattr(other, f.name) for f in fields(self)})


NO_NEEDS = Needs()
# A component's needs: fixed, or a function of its options (e.g. quality needs a judge only when it scores by one).
NeedsRule = Needs | Callable[[Mapping[str, Any]], Needs]
ComponentFactory = Callable[[Mapping[str, Any], BuildContext], RewardComponent]
COMPONENTS: Registry[ComponentFactory] = Registry("reward component")
COMPONENT_NEEDS: Registry[NeedsRule] = Registry("reward component's needs")
F = TypeVar("F")


def register_component(name: str, *, needs: NeedsRule = NO_NEEDS) -> Callable[[F], F]:
    """Register a component class (with a `from_config(options, ctx)` classmethod) or factory, and
    what it needs (`Needs`, or a function of its options returning one)."""

    def decorator(obj: F) -> F:
        COMPONENTS.add(name, getattr(obj, "from_config", obj))
        COMPONENT_NEEDS.add(name, needs)
        return obj

    return decorator


def get_component_factory(name: str) -> ComponentFactory:
    return COMPONENTS.lookup(name)


def component_needs(kind: str, options: Mapping[str, Any] | None = None) -> Needs:
    """The needs a component of registered type `kind` declares for `options` (nothing declared: none);
    an unknown type is the registry's KeyError naming the available ones."""
    get_component_factory(kind)
    rule = COMPONENT_NEEDS.get(kind, NO_NEEDS)
    return rule if isinstance(rule, Needs) else rule(dict(options or {}))


C = TypeVar("C")


def parse_options(config_cls: type[C], options: Mapping[str, Any], component: str) -> C:
    """Build a component's config dataclass, naming the component and valid keys on a typo."""
    valid = {f.name for f in fields(config_cls)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"reward component '{component}': unknown option(s) {unknown}; valid: {sorted(valid)}")
    return config_cls(**options)


def nanmean(values: np.ndarray | Sequence[float]) -> float:
    """Mean over known values; NaN when none is known (without numpy's empty-slice warning)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0 or np.all(np.isnan(array)):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(array))


def rate(flags: Sequence[bool] | np.ndarray, total: int | None = None) -> float:
    """Fraction of true flags (over `total` when given); NaN for an empty denominator."""
    flags = np.asarray(flags, dtype=bool)
    denominator = flags.size if total is None else total
    return float(flags.sum() / denominator) if denominator else math.nan
