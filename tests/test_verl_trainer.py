"""The v1 trainer "longwriter_sync" built for real (verl's PPOTrainer.__init__ on a local Ray with
TransferQueue), its step with verl's padding rows, the checkpoint callback and `_load_checkpoint`.

What needs GPUs is replaced at its boundary only: the rollout submission (`prepare_step`), the
per-step GPU pipeline (`_step_once`, whose stand-in calls the real `_compute_advantage` on a batch
padded by verl's own `upsample_batch_to_divisible_size`), and the actor worker group and data loader
that `_load_checkpoint` restores.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from verl_support import HYBRID_RECIPE, project_cfg, require_verl

require_verl()
pytestmark = [pytest.mark.verl, pytest.mark.timeout(600)]

COMPONENTS = {"pairwise": [1.0, 0.0, 1.0, 1.0, 0.5, 0.5], "length": [0.2, 0.9, 1.0, 0.4, 1.0, 0.3],
              "format": [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]}
UIDS = ["p0"] * 3 + ["p1"] * 3


@pytest.fixture(scope="module")
def cluster():
    import ray
    import transfer_queue as tq
    from omegaconf import OmegaConf

    from longwriter.engines.verl.config_builder import compose_verl_defaults

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, namespace="longwriter-trainer-tests")
    conf = compose_verl_defaults().transfer_queue
    conf.enable = True
    conf.backend.SimpleStorage.num_data_storage_units = 1
    tq.init(OmegaConf.create(OmegaConf.to_container(conf)))
    yield ray, tq
    tq.close()
    ray.shutdown()


def _verl_cfg(tmp_path: Path, actor: str):
    from longwriter.curriculum import CurriculumState
    from longwriter.engines.verl.launcher import prepare

    cfg = project_cfg(tmp_path, ["model=tiny_random", "data=builtin", "judge=vllm_server", "engine.val_size=1",
                                 f"engine.curriculum_actor={actor}", "engine.save_steps=1"], reward=HYBRID_RECIPE)
    verl_cfg, inputs, train = prepare(cfg, tmp_path / "run", dry_run=True)
    CurriculumState(inputs.curriculum_path).register(train)
    return verl_cfg, train


def _store(tq, rows: int = 6):
    import torch
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict
    from verl.workers.utils.padding import response_to_nested  # noqa: F401  (the layout verl stores)

    keys, fields, tags = [], [], []
    for row in range(rows):
        info = {name: values[row] for name, values in COMPONENTS.items()}
        info["judge/win_rate"] = COMPONENTS["pairwise"][row]
        n = 3 + row
        keys.append(f"{UIDS[row]}_{row % 3}_0")
        fields.append({"uid": UIDS[row], "prompts": torch.arange(4), "responses": torch.arange(n),
                       "input_ids": torch.arange(4 + n), "attention_mask": torch.ones(4 + n, dtype=torch.int64),
                       "position_ids": torch.arange(4 + n), "response_mask": torch.ones(n, dtype=torch.int64),
                       "rm_scores": torch.zeros(n), "extra_fields": {"reward_extra_info": info}})
        tags.append({"seq_len": 4 + n, "prompt_len": 4, "response_len": n})
    return tq.kv_batch_put(keys=keys, partition_id="train", fields=list_of_dict_to_tensordict(fields), tags=tags)


def test_real_construction_step_with_padding_save_and_restore(cluster, tmp_path) -> None:
    ray, tq = cluster
    from verl.trainer.ppo.padding_utils import upsample_batch_to_divisible_size

    from longwriter.curriculum import CURRICULUM_FILE
    from longwriter.engines.verl.trainer import CurriculumCheckpoint, LongWriterSyncTrainer

    verl_cfg, train = _verl_cfg(tmp_path, "lw_trainer_test")
    trainer = LongWriterSyncTrainer(verl_cfg)  # verl's PPOTrainer.__init__, then ours
    assert trainer.trainer_mode == "sync" and trainer.recipe_cfg["components"].keys() == COMPONENTS.keys()
    assert isinstance(trainer.checkpoint_callback, CurriculumCheckpoint)

    # one step: 6 trajectories padded by verl to 8 (copies of row 0), a verdict staged for one sample
    seen = {}

    def step_once(metrics, timing_raw, sample_batch_size):  # stands in for rollout + log-probs + update
        batch = upsample_batch_to_divisible_size(_store(tq), 4, eos_token_id=0)
        seen["padding"] = sum(bool(t.get("is_padding")) for t in batch.tags)
        batch = trainer._compute_advantage(batch, metrics)
        seen["advantages"] = [row.numpy() for row in tq.kv_batch_get(
            keys=batch.keys, partition_id="train", select_fields=["advantages"])["advantages"].unbind()]
        return batch

    trainer.prepare_step = lambda: {}
    trainer._step_once = step_once
    movable = max(train, key=lambda s: len(s.references) - (s.start_level or 0))  # the most room to move up
    first = movable.id
    ray.get(trainer.curriculum_actor.stage.remote([first], [0], [True], [len(movable.references)], "any", None))
    metrics: dict = {}
    trainer.step(metrics, {})
    assert seen["padding"] == 2
    assert metrics["reward/length/mean"] == pytest.approx(np.mean(COMPONENTS["length"]))  # padding left out
    assert metrics["judge/win_rate"] == pytest.approx(np.mean(COMPONENTS["pairwise"]))
    assert not any(seen["advantages"][row].any() for row in (6, 7)), "padding rows get no advantage"
    assert metrics["curriculum/moved"] == 1.0
    assert sum(v for k, v in metrics.items() if k.startswith("curriculum/dataset_level_hist/")) == pytest.approx(1.0)

    # checkpoint (verl's callback hook), then a fresh trainer restores from it
    folder = Path(verl_cfg.trainer.default_local_dir) / "global_step_1"
    (folder / "actor").mkdir(parents=True)
    trainer.checkpoint_callback.on_save(trainer, global_step=1, checkpoint_dir=str(folder))
    levels = ray.get(trainer.curriculum_actor.snapshot.remote())
    assert json.loads((folder / CURRICULUM_FILE).read_text()) and levels[first] == 1
    ray.get(trainer.curriculum_actor.import_json.remote(str(folder / CURRICULUM_FILE)))  # same state
    ray.get(trainer.curriculum_actor.stage.remote([first], [0], [True], [9], "any", None))
    ray.get(trainer.curriculum_actor.commit.remote())  # levels move on after the checkpoint ...
    assert ray.get(trainer.curriculum_actor.snapshot.remote())[first] == 2

    (folder.parent / "latest_checkpointed_iteration.txt").write_text("1")  # verl's _save_checkpoint writes it
    restored = LongWriterSyncTrainer(verl_cfg)
    loads = []

    class ActorGroup:  # the GPU worker group: records what it is asked to load
        def load_checkpoint(self, local_path, del_local_after_load=False):
            loads.append(local_path)

    restored.actor_rollout_wg = ActorGroup()
    restored._load_checkpoint()
    assert restored.global_steps == 1 and loads == [str(folder / "actor")]
    assert ray.get(restored.curriculum_actor.snapshot.remote())[first] == 1  # ... and resume restores step 1's


def test_the_plugin_probe_runs_in_a_ray_worker(cluster, monkeypatch) -> None:
    from longwriter.engines.verl import cluster as cluster_checks

    cluster_checks.check_plugin_in_ray_worker(timeout_s=120)  # passes: the worker finds our registrations
    import verl.trainer.ppo.v1 as v1

    def unknown(name):
        raise ValueError(f"Unknown trainer mode: {name}")

    monkeypatch.setattr(v1, "get_trainer_cls", unknown)  # what a worker without the plugin would see
    assert "Unknown trainer mode: longwriter_sync" in cluster_checks._probe_plugin()
