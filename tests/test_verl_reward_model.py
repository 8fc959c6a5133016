"""The writing reward model inside verl's reward manager: the "longwriter" manager built from the
prepared verl config scores trajectories with the RM named by reward.components.quality.model,
concurrent trajectories batched into RM passes (no judge, no Ray: the manager's own code path)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from reward_model_support import build_tiny_rm
from verl_support import project_cfg, require_verl, rollout_batch, think

require_verl()
pytestmark = [pytest.mark.verl]


def test_reward_manager_scores_quality_with_the_named_rm(tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    from transformers import AutoTokenizer

    from longwriter.engines.verl.launcher import prepare
    from longwriter.engines.verl.reward import LongWriterRewardManager

    rm_dir = build_tiny_rm(tmp_path / "rm")
    cfg = project_cfg(tmp_path, ["model=tiny_random", "reward=longwriter_zero",
                                 f"reward.components.quality.model={rm_dir}", "engine.val_size=2"])
    verl_cfg, inputs, _ = prepare(cfg, tmp_path / "run", dry_run=True)
    assert verl_cfg.reward.reward_kwargs.longwriter.reward.components.quality.model == str(rm_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(verl_cfg.actor_rollout_ref.model.path))
    manager = LongWriterRewardManager(verl_cfg, tokenizer)
    scorer = manager.recipe.components[1].component.reward_model
    passes = []
    original = scorer.score_with_truncation
    scorer.score_with_truncation = lambda p, a: (passes.append(len(a)), original(p, a))[1]

    rows = pq.read_table(inputs.train_file).to_pylist()[:1] * 4
    texts = [think(t) for t in ("A story about a cat.", "The dog ran away. " * 3, "Short.", "Once upon a time.")]
    data = rollout_batch(tokenizer, rows, texts, ["u0"] * 4)

    async def score_all():
        return await asyncio.gather(*(manager.run_single(data[i:i + 1]) for i in range(len(data))))

    results = manager.loop.run_until_complete(score_all())
    quality = np.array([r["reward_extra_info"]["quality"] for r in results])
    # calls that arrive while the RM is busy (here: loading) are scored together in the next pass
    assert sum(passes) == 4 and len(passes) <= 2, passes
    expected, _ = original([[{"role": "user", "content": rows[0]["reward_model"]["ground_truth"]["prompt"]}]] * 4,
                           [t.split("<answer>")[1].split("</answer>")[0] for t in texts])
    np.testing.assert_allclose(quality, expected, atol=1e-4)
    for result in results:
        info = result["reward_extra_info"]
        assert {"length", "quality", "format", "score", "quality/rm_score/mean"} <= set(info)
        assert np.isfinite(result["reward_score"])
