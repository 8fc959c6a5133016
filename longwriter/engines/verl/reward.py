"""Reward manager "longwriter" for verl's reward loop: the project's recipe, scored asynchronously.

verl's RewardLoopWorker (a Ray actor) calls `run_single` once per trajectory, concurrently, on
its event loop; `Recipe.score` is awaited there, so judge calls of many trajectories overlap
(bounded by the judge's own concurrency and rate limits, which config_builder splits across the
workers). Each worker builds its recipe once from `reward.reward_kwargs.longwriter` (our reward,
judge and curriculum settings, written by config_builder).

Returned per trajectory: `reward_score` = the recipe's weighted total (verl puts it on the last
token; an all-unknown row gets 0.0 there and is neutralised by trainer.py), and
`reward_extra_info` = every component's reward under its name (NaN = unknown), the total, and
the recipe's per-sample metrics. The components are what the "longwriter" estimator averages.
"""

from __future__ import annotations

import hashlib
import logging
import math
from typing import Any

import numpy as np
from omegaconf import OmegaConf
from verl import DataProto
from verl.experimental.reward_loop.reward_manager import register
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

from longwriter.data.schema import Sample
from longwriter.data.verl_parquet import from_verl_rows
from longwriter.engines.verl.config_builder import REWARD_MANAGER

logger = logging.getLogger(__name__)

TOTAL_KEY = "score"  # verl's conventional name for the scalar in reward_extra_info
# Per-batch metrics that mean nothing for one response, or that the trainer recomputes per step
# from the components (reward/*); every other recipe metric is kept, and averaged per step (a
# response's curriculum/level_hist/<l> is 1 at its level, so the step mean is the batch histogram).
_DROPPED_METRIC_PREFIXES = ("curriculum/moved", "reward/")


def group_key(uid: Any) -> int:
    """A stable int64 group id from verl's uid string (one uid per prompt, shared by its n responses).

    The curriculum receives it across reward calls, so "any"/"majority" see the whole group."""
    digest = hashlib.blake2b(str(uid).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _python(value: Any) -> Any:
    """numpy arrays (a dataset class may hand list columns as arrays) -> lists, recursively."""
    if isinstance(value, np.ndarray):
        return [_python(v) for v in value.tolist()]
    if isinstance(value, dict):
        return {k: _python(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_python(v) for v in value]
    return value


def sample_from_row(item) -> Sample:
    """The project's Sample from one verl row (our parquet's ground_truth and extra_info).

    The prompt is ground_truth.prompt (the user's request as written): the row's chat prompt
    carries the recipe's template, which the judge must not see as the task."""
    nt = item.non_tensor_batch
    truth = _python(nt["reward_model"]["ground_truth"])
    row = {
        "data_source": nt.get("data_source"),
        "prompt": [{"role": "user", "content": str(truth["prompt"])}],
        "reward_model": {"ground_truth": truth},
        "extra_info": _python(nt.get("extra_info") or {}),
    }
    return from_verl_rows([row], where=f"verl row uid={nt.get('uid')}")[0]


def build_recipe_in_worker(settings: dict[str, Any]):
    """Recipe + judge + curriculum client inside a reward worker (a Ray actor)."""
    from longwriter.judges.lifecycle import build_judge
    from longwriter.rewards import parse_recipe
    from longwriter.training_setup import judged_recipe

    spec = parse_recipe(settings["reward"])
    backend = None
    if spec.needs.judge:
        # Checked once at launch (launcher._check_judge); it serves on verl's loop for the worker's life.
        backend = build_judge(settings["judge"], settings.get("cache_dir"))
    curriculum = None
    if settings.get("curriculum") and spec.needs.curriculum:
        from longwriter.engines.verl.curriculum_actor import CurriculumClient, get_or_create

        curriculum = CurriculumClient(get_or_create(settings["curriculum"]["actor"]))
    return judged_recipe(spec, backend, curriculum, settings.get("max_completion_tokens"))


def _finite(value: Any) -> float:
    number = float(value)
    return number if math.isfinite(number) else float("nan")


@register(REWARD_MANAGER)
class LongWriterRewardManager(RewardManagerBase):
    """verl RewardManagerBase: async `run_single` per trajectory -> reward_score + reward_extra_info."""

    def __init__(self, config, tokenizer, compute_score=None, reward_router_address=None,
                 reward_model_tokenizer=None, **_: Any) -> None:
        super().__init__(config, tokenizer, compute_score)
        block = OmegaConf.select(config, "reward.reward_kwargs.longwriter")
        if block is None:
            raise KeyError("reward.reward_kwargs.longwriter is missing: build the config with longwriter's config_builder")
        self.settings = OmegaConf.to_container(block, resolve=True)
        self.recipe = build_recipe_in_worker(self.settings)

    async def run_single(self, data: DataProto) -> dict:
        item = data[-1:][0]  # multi-turn outputs: the last sequence carries the answer
        response_ids = item.batch["responses"]
        valid = int(item.batch["attention_mask"][-response_ids.shape[-1]:].sum())
        text = await self.loop.run_in_executor(
            None, lambda: self.tokenizer.decode(response_ids[:valid], skip_special_tokens=True))
        sample = sample_from_row(item)
        extra = item.non_tensor_batch.get("extra_info") or {}
        training = str(extra.get("split", "train")) == "train"  # only training rollouts move levels
        return await self.score_text(sample, text, item.non_tensor_batch.get("uid", sample.id), training, valid)

    async def score_text(self, sample: Sample, text: str, uid: Any, training: bool, tokens: int | None = None) -> dict:
        """`tokens`: the response's generated token count (its attention mask), for soft_overlong."""
        from longwriter.rewards import RolloutBatch

        batch = RolloutBatch([sample], [text], np.array([group_key(uid)], dtype=np.int64), training,
                             None if tokens is None else np.array([tokens], dtype=np.int64))
        scores = await self.recipe.score(batch)
        info = {name: _finite(values[0]) for name, values in scores.rewards.items()}
        total = _finite(scores.total[0])
        info[TOTAL_KEY] = total
        for key, value in scores.metrics.items():
            if not key.startswith(_DROPPED_METRIC_PREFIXES) and key not in info:
                info[key] = _finite(value)
        return {"reward_score": 0.0 if math.isnan(total) else total, "reward_extra_info": info}
