"""The curriculum Ray actor under concurrent reward workers, and its checkpoint round trip.

Many Ray tasks (standing in for verl's reward-loop workers, which score one response per call)
stage verdicts of the same groups at once while others read levels; one commit per step applies
the rule to whole groups. Nothing may be lost or applied twice.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from verl_support import require_verl

require_verl()
pytestmark = pytest.mark.verl

REFS = ["weak", "medium", "strong"]


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _samples(n: int):
    from longwriter.data.schema import Sample

    return [Sample(id=f"s{i}", prompt=[{"role": "user", "content": f"write {i}"}], references=REFS)
            for i in range(n)]


def _actor(ray, tmp_path: Path, name: str, samples):
    from longwriter.engines.verl.curriculum_actor import get_or_create

    actor = get_or_create(name, str(tmp_path / f"{name}.sqlite"))
    ray.get(actor.register.remote(samples))
    return actor


def test_concurrent_staging_applies_each_group_once(ray_local, tmp_path) -> None:
    ray = ray_local
    from longwriter.engines.verl.curriculum_actor import CurriculumClient, get_or_create

    samples = _samples(12)
    actor = _actor(ray, tmp_path, "curr_concurrent", samples)
    # group g answers sample s{g}: 4 responses, each scored by a different "worker" task.
    wins_per_group = [g % 5 for g in range(12)]  # 0..4 wins out of 4

    @ray.remote(num_cpus=0)
    def worker(group: int, response: int) -> list[int]:
        client = CurriculumClient(get_or_create("curr_concurrent"))
        levels = client.levels([samples[group]])  # reads race with the other workers' staging
        client.record([samples[group].id], [1000 + group], [response < wins_per_group[group]], [len(REFS)],
                      rule="majority")
        return levels

    seen_levels = ray.get([worker.remote(g, r) for g in range(12) for r in range(4)])
    assert all(levels == [0] for levels in seen_levels), "levels move only at the commit"
    result = ray.get(actor.commit.remote())
    levels = ray.get(actor.snapshot.remote())
    expected = {f"s{g}": int(w > 0 and 2 * w >= 4) for g, w in enumerate(wins_per_group)}
    assert levels == expected
    assert result["moved"] == sum(expected.values())
    assert sum(result["histogram"].values()) == 12
    assert ray.get(actor.commit.remote())["moved"] == 0, "a commit applies staged verdicts once"


def test_commits_interleaved_with_staging_lose_nothing(ray_local, tmp_path) -> None:
    ray = ray_local
    from longwriter.engines.verl.curriculum_actor import CurriculumClient, get_or_create

    samples = _samples(6)
    actor = _actor(ray, tmp_path, "curr_interleaved", samples)

    @ray.remote(num_cpus=0)
    def worker(step: int, group: int) -> None:
        client = CurriculumClient(get_or_create("curr_interleaved"))
        client.record([samples[group].id], [step * 100 + group], [True], [len(REFS)], rule="per_response")

    @ray.remote(num_cpus=0)
    def committer() -> int:
        return ray.get(get_or_create("curr_interleaved").commit.remote())["moved"]

    pending = [worker.remote(step, g) for step in range(2) for g in range(6)] + [committer.remote() for _ in range(3)]
    ray.get(pending)
    ray.get(actor.commit.remote())
    # every sample won once in each of 2 steps: exactly two levels up (the last reference caps it).
    assert ray.get(actor.snapshot.remote()) == {s.id: 2 for s in samples}


def test_checkpoint_callback_exports_and_import_restores(ray_local, tmp_path) -> None:
    ray = ray_local
    from longwriter.curriculum import CURRICULUM_FILE
    from longwriter.engines.verl.trainer import CurriculumCheckpoint

    samples = _samples(3)
    actor = _actor(ray, tmp_path, "curr_ckpt", samples)
    ray.get(actor.stage.remote(["s1"], [7], [True], [len(REFS)], "any", None))

    class Trainer:  # what verl hands on_save: the trainer, which holds the actor
        curriculum_actor = actor

    folder = tmp_path / "checkpoints" / "global_step_5"
    folder.mkdir(parents=True)
    CurriculumCheckpoint(config=None).on_save(trainer=Trainer(), global_step=5, checkpoint_dir=str(folder))
    saved = folder / CURRICULUM_FILE
    assert saved.exists()
    fresh = _actor(ray, tmp_path, "curr_restored", samples)
    assert ray.get(fresh.import_json.remote(str(saved))) == 3
    assert ray.get(fresh.snapshot.remote()) == {"s0": 0, "s1": 1, "s2": 0}
