"""The curriculum (reference levels) shared by all of verl's Ray reward workers.

One named Ray actor owns the project's `CurriculumState` (a sqlite file on the head node: sqlite
must not be shared over a network file system). Reward workers read levels and *stage* the
verdicts of training rollouts; the trainer *commits* the staged verdicts once per step, so
  - every response of a group is judged against the same reference (levels move between steps),
  - the rules "any" and "majority" see the whole group, although verl scores one response per
    call (the staged group id is derived from verl's uid, shared by the group),
  - validation rollouts never move levels (the reward manager only stages training rollouts).
The levels are exported into every verl checkpoint and imported on resume (trainer.py).
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from longwriter.curriculum import CurriculumState
from longwriter.data.schema import Sample

logger = logging.getLogger(__name__)


class CurriculumActor:
    """Ray actor body (methods run one at a time, so staging and committing never interleave)."""

    def __init__(self, path: str) -> None:
        self.state = CurriculumState(path)
        self.pending: list[tuple[str, list[Any]]] = []  # (rule, [ids, groups, won, num_refs, starts])

    def levels(self, samples: Sequence[Sample]) -> list[int]:
        return self.state.levels(samples)

    def register(self, samples: Sequence[Sample]) -> int:
        return self.state.register(samples)

    def stage(self, sample_ids: Sequence[str], group_index: Sequence[int], won: Sequence[bool],
              num_refs: Sequence[int], rule: str, start_levels: Sequence[int] | None) -> int:
        starts = list(start_levels) if start_levels is not None else [0] * len(sample_ids)
        self.pending.append((rule, [list(sample_ids), [int(g) for g in group_index], list(won),
                                    list(num_refs), starts]))
        return len(self.pending)

    def commit(self, num_levels: int | None = None) -> dict[str, Any]:
        """Apply every staged verdict (grouped across reward calls); returns metrics for the step."""
        by_rule: dict[str, list[list[Any]]] = {}
        for rule, columns in self.pending:
            merged = by_rule.setdefault(rule, [[], [], [], [], []])
            for target, values in zip(merged, columns):
                target.extend(values)
        self.pending = []
        moved: dict[str, int] = {}
        for rule, (ids, groups, won, refs, starts) in by_rule.items():
            moved.update(self.state.record(ids, np.asarray(groups, dtype=np.int64), won, refs, rule=rule,
                                           start_levels=starts))
        return {"moved": len(moved), "histogram": self.state.histogram(num_levels)}

    def histogram(self, num_levels: int | None = None) -> dict[int, int]:
        return self.state.histogram(num_levels)

    def snapshot(self) -> dict[str, int]:
        return self.state.snapshot()

    def export_json(self, path: str) -> None:
        self.state.export_json(path)

    def import_json(self, path: str) -> int:
        return self.state.import_json(path)


def get_or_create(name: str, path: str | None = None):
    """The named actor; created (pinned to the head node, 0 CPUs) by the first caller with a path."""
    import ray

    if path is None:
        return ray.get_actor(name)
    remote_cls = ray.remote(num_cpus=0)(CurriculumActor)
    options: dict[str, Any] = {"name": name, "get_if_exists": True}
    head = [n for n in ray.nodes() if n.get("Alive") and "node:__internal_head__" in n.get("Resources", {})]
    if head:
        options["resources"] = {"node:__internal_head__": 0.001}
    return remote_cls.options(**options).remote(path)


class CurriculumClient:
    """What `PairwiseComponent` calls (`levels`, `record`), forwarded to the actor.

    `record` only stages: the trainer commits once per step. Both calls block briefly (ray.get)
    so that a verdict is staged before its reward is returned, hence before the step can end.
    """

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def levels(self, samples: Sequence[Sample]) -> list[int]:
        import ray

        return ray.get(self.actor.levels.remote(list(samples)))

    def snapshot(self) -> dict[str, int]:
        """{sample_id: level} for every sample (the pairwise reward's mean level over all samples)."""
        import ray

        return ray.get(self.actor.snapshot.remote())

    def record(self, sample_ids: Sequence[str], group_index: Sequence[int] | np.ndarray, won: Sequence[bool],
               num_refs: Sequence[int], rule: str = "any",
               start_levels: Sequence[int] | None = None) -> dict[str, int]:
        import ray

        ray.get(self.actor.stage.remote(list(sample_ids), np.asarray(group_index).tolist(), list(won),
                                        list(num_refs), rule, None if start_levels is None else list(start_levels)))
        return {}  # levels move at the trainer's commit; it logs curriculum/moved
