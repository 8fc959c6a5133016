"""The project's reward inside verl's reward loop, on a local Ray instance, against a local judge server.

verl's RewardLoopManager starts its RewardLoopWorker actors, which resolve reward manager
"longwriter" from verl's registry (registered in each worker by the verl.plugins entry point),
build the recipe with an OpenAI-compatible judge pointed at FakeOpenAIServer on 127.0.0.1, and
score every response concurrently. The curriculum lives in the named Ray actor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from verl_support import HYBRID_RECIPE, judge_reply, project_cfg, require_verl, rollout_batch, think

require_verl()
pytestmark = [pytest.mark.verl, pytest.mark.timeout(600)]

LATENCY = 0.4


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, namespace="longwriter-tests")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def reward_loop(ray_local, tmp_path_factory):
    """(RewardLoopManager, verl config, train rows, val rows, curriculum actor, judge server)."""
    import pyarrow.parquet as pq
    from omegaconf import open_dict
    from verl.experimental.reward_loop.reward_loop import RewardLoopManager

    from longwriter.curriculum import CurriculumState
    from longwriter.engines.verl.curriculum_actor import get_or_create
    from longwriter.engines.verl.launcher import prepare
    from longwriter.testing.fake_openai_server import FakeOpenAIServer

    tmp = tmp_path_factory.mktemp("verl_reward")
    server = FakeOpenAIServer(default_reply=judge_reply, latency=LATENCY).start()
    cfg = project_cfg(tmp, ["model=tiny_random", "data=builtin", "judge=openai", f"judge.base_url={server.base_url}",
                            "judge.model=fake-judge", "judge.api_key_required=false", "judge.cache=false",
                            "judge.rpm=null", "judge.tpm=null",  # no client-side rate limit: measure overlap
                            "engine.reward_workers=2", "engine.val_size=2", "engine.curriculum_actor=lw_test_curr"],
                      reward=HYBRID_RECIPE)
    verl_cfg, inputs, train = prepare(cfg, tmp / "run", dry_run=True)
    CurriculumState(inputs.curriculum_path).register(train)
    actor = get_or_create("lw_test_curr", str(inputs.curriculum_path))
    with open_dict(verl_cfg):
        verl_cfg.trainer.n_gpus_per_node = 1
    manager = RewardLoopManager(verl_cfg)
    train_rows = pq.read_table(inputs.train_file).to_pylist()
    val_rows = pq.read_table(inputs.val_file).to_pylist()
    # warm-up (validation rows: nothing staged): the workers finish starting (imports, recipe)
    manager.compute_rm_score(rollout_batch(_tokenizer(verl_cfg), [val_rows[0]] * 2, [think("x")] * 2, ["w", "w"]))
    yield manager, verl_cfg, train_rows, val_rows, actor, server
    server.stop()


def _tokenizer(verl_cfg):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(verl_cfg.actor_rollout_ref.model.path))


def test_reward_loop_scores_every_component_concurrently(reward_loop) -> None:
    import ray

    manager, verl_cfg, train_rows, _, actor, server = reward_loop
    rows = [train_rows[0]] * 3 + [train_rows[1]] * 3
    texts = [think(t) for t in ("WIN " + "word " * 40, "plain answer " * 10, "GARBLE " * 5,
                                "another plain one", "WIN WIN " + "text " * 30, "short")]
    uids = ["u0"] * 3 + ["u1"] * 3
    server.reset_stats()
    out = manager.compute_rm_score(rollout_batch(_tokenizer(verl_cfg), rows, texts, uids))

    pairwise = np.asarray(out.non_tensor_batch["pairwise"], dtype=float)
    np.testing.assert_array_equal(pairwise[[0, 1, 3, 4, 5]], [1.0, 0.0, 0.0, 1.0, 0.0])
    assert np.isnan(pairwise[2]), "an unparsable verdict is unknown (NaN), never a loss"
    for name in ("length", "format", "score", "judge/unknown_rate"):
        assert name in out.meta_info["reward_extra_keys"]
    # rm_scores: the recipe's weighted total on the last response token
    scores = out.batch["rm_scores"].sum(dim=1).numpy()
    np.testing.assert_allclose(scores[[0, 1]], np.asarray(out.non_tensor_batch["score"], dtype=float)[[0, 1]])
    # judge calls overlapped: the server saw at least 3 of the 6 in flight at once (a wall-time bound
    # flaked on a loaded CI machine; speed belongs in benchmarks/)
    assert server.max_in_flight >= 3
    # training verdicts are staged, one group per uid; the commit moves u0's and u1's samples up once
    ids = [r["reward_model"]["ground_truth"]["id"] for r in (train_rows[0], train_rows[1])]
    before = ray.get(actor.snapshot.remote())
    result = ray.get(actor.commit.remote())
    after = ray.get(actor.snapshot.remote())
    assert result["moved"] == 2
    assert [after[i] - before[i] for i in ids] == [1, 1]


def test_validation_rollouts_never_move_the_curriculum(reward_loop) -> None:
    import ray

    manager, verl_cfg, _, val_rows, actor, _ = reward_loop
    ray.get(actor.commit.remote())
    before = ray.get(actor.snapshot.remote())
    out = manager.compute_rm_score(rollout_batch(_tokenizer(verl_cfg), [val_rows[0]] * 2,
                                                 [think("WIN " * 20), think("WIN again")], ["v0", "v0"]))
    assert list(np.asarray(out.non_tensor_batch["pairwise"], dtype=float)) == [1.0, 1.0]
    assert ray.get(actor.commit.remote())["moved"] == 0
    assert ray.get(actor.snapshot.remote()) == before


def test_a_verl_row_becomes_the_projects_sample(tmp_path) -> None:
    """Without Ray: ground_truth/extra_info -> Sample, also when list columns arrive as numpy arrays."""
    import torch
    from verl import DataProto

    from longwriter.engines.verl.reward import group_key, sample_from_row

    truth = {"prompt": "Write a poem.", "target": np.array(["weak", "strong"], dtype=object),
             "criteria": "rhyme", "id": "poem-1"}
    extra = {"index": 0, "split": "train", "length_range": np.array([100, 200]), "start_level": 1,
             "criteria": np.array(["rhyme"], dtype=object), "meta": "{}"}
    data = DataProto.from_dict(tensors={"responses": torch.zeros(1, 2)}, non_tensors={
        "reward_model": np.array([{"ground_truth": truth}], dtype=object),
        "extra_info": np.array([extra], dtype=object), "data_source": np.array(["builtin"], dtype=object),
        "uid": np.array(["u"], dtype=object)})
    sample = sample_from_row(data[0])
    assert (sample.id, sample.references, sample.length_range, sample.start_level) == \
        ("poem-1", ["weak", "strong"], (100, 200), 1)
    assert sample.user_prompt == "Write a poem." and sample.criteria == ["rhyme"]
    assert group_key("u") == group_key("u") != group_key("v")
