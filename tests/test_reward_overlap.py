"""Rewards are scored while TRL runs the reference forward, and the scores are the same as scoring after."""

from __future__ import annotations

import time

import numpy as np

from longwriter.async_utils import BackgroundLoop
from longwriter.rewards import RolloutBatch

from test_trl_precision import _trainer


def test_scoring_starts_before_the_reference_forward_and_gives_the_same_rewards(tmp_path) -> None:
    loop = BackgroundLoop()
    try:
        trainer = _trainer(tmp_path, "fp32", loop, beta=0.04)
        assert trainer.overlap_rewards, "no judge: scoring is cheap and may overlap"
        events = []
        score = trainer.recipe.score

        async def recorded_score(batch):
            events.append(("score", time.perf_counter()))
            return await score(batch)

        trainer.recipe.score = recorded_score
        logps = trainer._get_per_token_logps_and_entropies

        def recorded_logps(model, *args, **kwargs):
            kind = "reference" if model is trainer.ref_model else "policy"
            events.append((kind, time.perf_counter()))
            result = logps(model, *args, **kwargs)
            events.append((kind + "_end", time.perf_counter()))
            return result

        trainer._get_per_token_logps_and_entropies = recorded_logps
        trainer.model.train()
        inputs = next(iter(trainer.get_train_dataloader()))
        trainer._generate_and_score_completions(inputs)
        at = dict(events)
        # scoring runs on the background loop, so it may start a moment after the reference forward began
        # (the thread scheduler decides); it must start before that forward ends, i.e. overlap it
        assert {"score", "reference", "reference_end"} <= at.keys(), events
        assert at["score"] < at["reference_end"], events
        assert len(trainer._metrics["train"]["timing/judge_s"]) == 1
        rollout = trainer.last_rollout
        batch = RolloutBatch([trainer.samples_by_id[i] for i in rollout["sample_ids"]], rollout["completions"],
                             rollout["group_index"], training=False)
        expected = loop.run(score(batch))
        np.testing.assert_allclose(rollout["rewards"]["length"], expected.rewards["length"])
    finally:
        loop.close()
