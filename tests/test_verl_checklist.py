"""reward=checklist inside verl on a local Ray: the reward workers judge every criterion of every trajectory
over HTTP against the TEST-ENVIRONMENT judge (a deterministic rule, not a writing-quality judge), and the
longwriter advantage estimator turns what they return into exactly `combine_advantages` of it.

Its own module (its own Ray instance): verl's RewardLoopManager names its workers reward_loop_worker_<i>, so
two managers cannot share one Ray namespace (tests/test_verl_reward_loop.py holds another).
"""

from __future__ import annotations

import numpy as np
import pytest

from verl_support import project_cfg, require_verl, rollout_batch

require_verl()
pytestmark = [pytest.mark.verl, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="longwriter-checklist-tests")
    yield ray
    ray.shutdown()


def _tokenizer(verl_cfg):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(verl_cfg.actor_rollout_ref.model.path))


def test_checklist_reward_through_verls_reward_loop_and_advantage_estimator(ray_local, tmp_path) -> None:
    import pyarrow.parquet as pq
    import torch
    from omegaconf import open_dict
    from verl import DataProto
    from verl.experimental.reward_loop.reward_loop import RewardLoopManager
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo.ray_trainer import compute_advantage

    from longwriter.advantages import combine_advantages
    from longwriter.config_tools import plain
    from longwriter.data.verl_parquet import from_verl_rows
    from longwriter.engines.verl.advantage import AdvantageInputs, provide
    from longwriter.engines.verl.launcher import prepare
    from longwriter.testing.length_criteria_judge import LengthCriteriaRule, serve

    rule = LengthCriteriaRule()
    server = serve(rule)
    try:
        cfg = project_cfg(tmp_path, ["model=tiny_random", "reward=checklist", "data=builtin", "judge=openai",
                                     f"judge.base_url={server.base_url}", "judge.model=test-env",
                                     "judge.api_key_required=false", "judge.cache=false", "engine.reward_workers=1",
                                     "engine.val_size=1"])
        verl_cfg, inputs, _ = prepare(cfg, tmp_path / "run", dry_run=True)
        with open_dict(verl_cfg):
            verl_cfg.trainer.n_gpus_per_node = 1
        manager = RewardLoopManager(verl_cfg)
        rows = pq.read_table(inputs.train_file).to_pylist()[:2]
        samples = from_verl_rows(rows)
        # texts built from the criteria' own words, so that the rule's coverage separates them
        texts = [" ".join(samples[0].criteria), samples[0].criteria[0], "No.",
                 " ".join(samples[1].criteria), samples[1].criteria[1], "No."]
        out = manager.compute_rm_score(rollout_batch(_tokenizer(verl_cfg), [rows[0]] * 3 + [rows[1]] * 3, texts,
                                                     ["c0"] * 3 + ["c1"] * 3))
    finally:
        server.stop()
    by_hand = [np.mean([(rule.criterion_score(c, text) - 1) / 9 for c in sample.criteria])
               for sample, text in zip([samples[0]] * 3 + [samples[1]] * 3, texts)]
    checklist = np.asarray(out.non_tensor_batch["checklist"], dtype=float)
    np.testing.assert_allclose(checklist, by_hand, atol=1e-9)
    assert len(set(np.round(by_hand, 6))) > 2, "the chosen texts must score differently"
    keys = out.meta_info["reward_extra_keys"]
    assert {"checklist", "checklist/unknown_rate", "checklist/criterion_score/mean"} <= set(keys)
    assert np.asarray(out.non_tensor_batch["checklist/unknown_rate"], dtype=float).tolist() == [0.0] * 6

    infos = [{k: out.non_tensor_batch[k][i] for k in keys} for i in range(6)]
    advantage_inputs = AdvantageInputs.from_extra_infos(infos, plain(cfg.reward))
    mask = torch.ones(6, 3)
    data = DataProto.from_dict(tensors={"token_level_rewards": torch.zeros(6, 3), "response_mask": mask},
                               non_tensors={"uid": np.array(["c0"] * 3 + ["c1"] * 3, dtype=object)})
    with provide(advantage_inputs):
        adv = compute_advantage(data, adv_estimator="longwriter", config=AlgoConfig(adv_estimator="longwriter"))
    expected = combine_advantages({"checklist": checklist}, {"checklist": 1.0}, np.repeat([0, 1], 3), "sum_reward")
    np.testing.assert_allclose(adv.batch["advantages"].numpy()[:, 0], expected, rtol=1e-5, atol=1e-6)
    assert np.abs(expected).max() > 0
