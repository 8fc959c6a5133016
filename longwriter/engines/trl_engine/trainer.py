"""GRPOTrainer whose advantages come from the project's pure function.

TRL normalises rewards itself (and its multi-reward `normalize_then_sum` z-scores the sum over
the whole batch, which is not LongWriter-Zero's average of per-component advantages). So the
reward step is replaced: the recipe scores every component, component rewards are gathered across
processes, `Recipe.advantages` (i.e. `longwriter.advantages.combine_advantages`) computes the final
advantage, and TRL receives it as the single "reward" column with `scale_rewards="none"`.
TRL then subtracts the group mean, which is already 0 for these advantages, so what TRL optimises
with is exactly the project's function (tests/test_trl_engine.py checks it).

Known limit with several processes: each process scores (and reports curriculum wins for) its own
slice of the batch; when TRL splits one prompt's group across processes, the `any`/`majority`
rules see two partial groups. Keep `prompts_per_step * num_generations` divisible by the number of
processes times the group size, or use the verl engine, which commits levels once per step.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate.utils import gather
from trl import GRPOTrainer

from longwriter.advantages import combine_advantages
from longwriter.data.schema import Sample
from longwriter.rewards import RolloutBatch
from longwriter.rewards.monitors import length_record
from longwriter.tracking.judge_usage import JudgeUsageTracker

logger = logging.getLogger(__name__)


def completion_text(completion: Any) -> str:
    """TRL passes conversational completions as a list of messages; plain ones as strings."""
    if isinstance(completion, str):
        return completion
    return "".join(message.get("content", "") for message in completion)


class RecipeReward:
    """The recipe as a plain TRL reward function (weighted sum of components per completion).

    Stock `GRPOTrainer` can use it directly; `LongwriterGRPOTrainer` replaces TRL's reward step
    altogether so that advantages come from the project's function.
    """

    __name__ = "recipe"

    def __init__(self, recipe, samples_by_id: dict[str, Sample], loop) -> None:
        self.recipe, self.samples_by_id, self.loop = recipe, samples_by_id, loop

    def __call__(self, prompts, completions, sample_id, **kwargs) -> list[float | None]:
        samples = [self.samples_by_id[str(i)] for i in sample_id]
        batch = RolloutBatch(samples, [completion_text(c) for c in completions],
                             np.arange(len(samples)), training=False)
        scores = self.loop.run(self.recipe.score(batch))
        return [None if np.isnan(value) else float(value) for value in scores.total]


class LongwriterGRPOTrainer(GRPOTrainer):
    def __init__(self, *args, recipe, samples_by_id: dict[str, Sample], loop, judge_backend=None,
                 lengths_path: Path | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lengths_path = lengths_path  # one JSON line per training step: word counts and targets (plots)
        self.judge_usage = JudgeUsageTracker(judge_backend)
        self.recipe = recipe
        self.samples_by_id = samples_by_id
        self.loop = loop
        self.last_rollout: dict[str, Any] | None = None  # the latest scored batch (sample logging, tests)
        self.timings: dict[str, float] = defaultdict(float)

    def _mode(self) -> str:
        return "train" if self.model.training else "eval"

    def _generate(self, prompts):
        start = time.perf_counter()
        try:
            return super()._generate(prompts)
        finally:
            self._metrics[self._mode()]["timing/generation_s"].append(time.perf_counter() - start)

    def _generate_and_score_completions(self, inputs):
        start = time.perf_counter()
        output = super()._generate_and_score_completions(inputs)
        self._metrics[self._mode()]["timing/rollout_s"].append(time.perf_counter() - start)
        if self.last_rollout is not None:
            self.last_rollout["trl_advantages"] = output["advantages"].detach().cpu().numpy().copy()
        return output

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        start = time.perf_counter()
        mode = self._mode()
        num_generations = self.num_generations if mode == "train" else self.num_generations_eval
        samples = [self.samples_by_id[str(row["sample_id"])] for row in inputs]
        texts = [completion_text(c) for c in completions]
        offset = self.accelerator.process_index * len(prompts)
        local_groups = (offset + np.arange(len(prompts))) // num_generations
        batch = RolloutBatch(samples=samples, completions=texts, group_index=local_groups, training=mode == "train")
        scores = self.loop.run(self.recipe.score(batch))

        names = list(scores.rewards)
        local = np.stack([np.asarray(scores.rewards[n], dtype=np.float64) for n in names], axis=1)
        device = self.accelerator.device
        gathered = gather(torch.tensor(local, dtype=torch.float64, device=device)).cpu().numpy()
        all_groups = np.arange(gathered.shape[0]) // num_generations
        advantages = combine_advantages(
            {n: gathered[:, k] for k, n in enumerate(names)}, self.recipe.weights, all_groups,
            self.recipe.combine, self.recipe.eps,
        )

        for name, value in {**scores.metrics, **self.judge_usage.step_metrics()}.items():
            self._metrics[mode][name].append(float(value))
        self._metrics[mode]["timing/reward_s"].append(time.perf_counter() - start)
        if mode == "train" and self.lengths_path is not None and self.accelerator.is_main_process:
            record = length_record(self.state.global_step + 1, samples, self.recipe.answers(texts))
            with open(self.lengths_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        self.last_rollout = {
            "step": self.state.global_step,
            "mode": mode,
            "sample_ids": [s.id for s in samples],
            "prompts": [s.user_prompt for s in samples],
            "completions": texts,
            "rewards": {n: gathered[:, k].tolist() for k, n in enumerate(names)},
            "advantages": np.asarray(advantages, dtype=np.float64).copy(),
            "group_index": all_groups,
        }
        return torch.tensor(advantages, dtype=torch.float32, device=device).unsqueeze(1)
