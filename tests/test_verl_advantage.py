"""The "longwriter" estimator inside verl equals the project's pure function on the same rewards.

Tier 1: verl's own `compute_advantage` (the function every verl trainer calls) with the estimator
registered by the plugin, against `longwriter.advantages.combine_advantages`.
Tier 2: the v1 trainer mode "longwriter_sync": verl's real `_compute_advantage` reading from a real
TransferQueue on a local Ray, with the components stored where the agent loop stores
`reward_extra_info` (each trajectory's `extra_fields`) - the path that really delivers them.
"""

from __future__ import annotations

import numpy as np
import pytest

from verl_support import HYBRID_RECIPE, project_cfg, require_verl

require_verl()
pytestmark = pytest.mark.verl

NAN = float("nan")
# 2 prompts x 4 responses; pairwise has an unknown verdict, length differs in spread from format.
COMPONENTS = {
    "pairwise": np.array([1.0, 0.0, NAN, 1.0, 0.5, 0.5, 0.5, 0.5]),
    "length": np.array([0.2, 0.9, 1.0, 0.4, 1.0, 0.3, 0.8, 0.6]),
    "format": np.array([1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0]),
}
WEIGHTS = {"pairwise": 2.0, "length": 1.0, "format": 1.0}
UIDS = ["p0"] * 4 + ["p1"] * 4
LENGTHS = [5, 3, 7, 2, 6, 6, 1, 4]


def _data(verl_proto_cls, torch):
    width = max(LENGTHS)
    mask = torch.tensor([[1] * n + [0] * (width - n) for n in LENGTHS], dtype=torch.float32)
    rewards = torch.zeros_like(mask)
    rewards[torch.arange(len(LENGTHS)), torch.tensor(LENGTHS) - 1] = 7.0  # ignored by the estimator
    return verl_proto_cls.from_dict(tensors={"token_level_rewards": rewards, "response_mask": mask},
                                    non_tensors={"uid": np.array(UIDS, dtype=object)})


@pytest.mark.parametrize("mode", ["mean_advantage", "sum_reward", "gdpo"])
def test_compute_advantage_equals_combine_advantages(mode: str) -> None:
    import torch
    from verl import DataProto
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo.ray_trainer import compute_advantage

    from longwriter.advantages import combine_advantages
    from longwriter.engines.verl.advantage import AdvantageInputs, provide

    expected = combine_advantages(COMPONENTS, WEIGHTS, np.repeat([0, 1], 4), mode, 1e-6)
    inputs = AdvantageInputs(COMPONENTS, WEIGHTS, mode, 1e-6)
    with provide(inputs):
        out = compute_advantage(_data(DataProto, torch), adv_estimator="longwriter",
                                config=AlgoConfig(adv_estimator="longwriter"))
    # The estimator leaves the group metrics for the trainer: format is flat in group p1, pairwise too.
    assert inputs.metrics["advantage/format/zero_std_group_frac"] == 0.5
    assert inputs.metrics["advantage/pairwise/zero_std_group_frac"] == 0.5
    assert inputs.metrics["advantage/length/zero_std_group_frac"] == 0.0
    advantages = out.batch["advantages"].numpy()
    for row, n in enumerate(LENGTHS):
        np.testing.assert_allclose(advantages[row, :n], expected[row], rtol=1e-6, atol=1e-7)
        assert not advantages[row, n:].any(), "no advantage outside the response"
    np.testing.assert_array_equal(out.batch["returns"].numpy(), advantages)


def test_estimator_refuses_to_run_without_components() -> None:
    import torch
    from verl import DataProto
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo.ray_trainer import compute_advantage

    with pytest.raises(RuntimeError, match="longwriter_sync"):
        compute_advantage(_data(DataProto, torch), adv_estimator="longwriter",
                          config=AlgoConfig(adv_estimator="longwriter"))


@pytest.fixture(scope="module")
def transfer_queue(tmp_path_factory):
    import ray
    import transfer_queue as tq
    from omegaconf import OmegaConf

    from longwriter.engines.verl.config_builder import compose_verl_defaults

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    conf = compose_verl_defaults().transfer_queue
    conf.enable = True
    conf.backend.SimpleStorage.num_data_storage_units = 1
    tq.init(OmegaConf.create(OmegaConf.to_container(conf)))
    yield tq
    tq.close()
    ray.shutdown()


def _store_trajectories(tq, partition: str, components: dict[str, np.ndarray]):
    """Put trajectories into TransferQueue the way verl's AgentLoopWorkerTQ does."""
    import torch
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    keys, fields = [], []
    for row, (uid, n) in enumerate(zip(UIDS, LENGTHS)):
        info = {name: float(values[row]) for name, values in components.items()}
        scores = torch.zeros(n)
        scores[-1] = float(row % 3)  # GAE needs differing returns (it whitens the batch)
        keys.append(f"{uid}_{row % 4}_0")
        fields.append({"uid": uid, "response_mask": torch.ones(n, dtype=torch.int64), "rm_scores": scores,
                       "values": torch.zeros(n), "extra_fields": {"reward_extra_info": info}})
    return tq.kv_batch_put(keys=keys, partition_id=partition, fields=list_of_dict_to_tensordict(fields))


def _trainer(tmp_path, estimator: str):
    from omegaconf import open_dict

    from longwriter.engines.verl.config_builder import VerlInputs, build_verl_config
    from longwriter.engines.verl.trainer import LongWriterSyncTrainer
    from longwriter.rewards import parse_recipe

    cfg = project_cfg(tmp_path, reward=HYBRID_RECIPE)
    inputs = VerlInputs(tmp_path / "t.parquet", tmp_path / "v.parquet", "model", tmp_path)
    verl_cfg = build_verl_config(cfg, inputs)
    with open_dict(verl_cfg):
        verl_cfg.algorithm.adv_estimator = estimator
    trainer = object.__new__(LongWriterSyncTrainer)  # only _compute_advantage is exercised
    trainer.config, trainer.recipe_cfg, trainer.curriculum_actor = verl_cfg, HYBRID_RECIPE, None
    trainer.recipe_spec = parse_recipe(HYBRID_RECIPE)
    return trainer


def _advantages(tq, batch) -> list[np.ndarray]:
    got = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["advantages"])
    return [row.numpy() for row in got["advantages"].unbind()]


def test_v1_trainer_delivers_components_to_the_estimator(transfer_queue, tmp_path) -> None:
    from longwriter.advantages import combine_advantages

    batch = _store_trajectories(transfer_queue, "train", COMPONENTS)
    metrics: dict = {}
    batch = _trainer(tmp_path, "longwriter")._compute_advantage(batch, metrics)
    expected = combine_advantages(COMPONENTS, WEIGHTS, np.repeat([0, 1], 4), "mean_advantage", 1e-6)
    for row, values in enumerate(_advantages(transfer_queue, batch)):
        np.testing.assert_allclose(values, np.full(LENGTHS[row], expected[row]), rtol=1e-6, atol=1e-7)
    assert metrics["reward/pairwise/unknown_rate"] == pytest.approx(1 / 8)
    assert metrics["reward/length/mean"] == pytest.approx(np.mean(COMPONENTS["length"]))
    assert metrics["advantage/format/zero_std_group_frac"] == 0.5  # from the estimator, logged by the trainer
    assert metrics["advantage/total/tie_component_spread_frac"] == 0.0
    transfer_queue.kv_clear(keys=batch.keys, partition_id="train")


def test_gae_gives_rows_with_no_known_reward_a_zero_advantage(transfer_queue, tmp_path) -> None:
    unknown_row = {name: values.copy() for name, values in COMPONENTS.items()}
    for values in unknown_row.values():
        values[1] = NAN
    batch = _store_trajectories(transfer_queue, "gae", unknown_row)
    batch = _trainer(tmp_path, "gae")._compute_advantage(batch, {})
    advantages = _advantages(transfer_queue, batch)
    assert not advantages[1].any()
    assert all(advantages[row].any() for row in (0, 2, 3))
    transfer_queue.kv_clear(keys=batch.keys, partition_id="gae")
