"""GRPOTrainer whose advantages come from the project's pure function.

TRL normalises rewards itself (and its multi-reward `normalize_then_sum` z-scores the sum over
the whole batch, which is not LongWriter-Zero's average of per-component advantages). So the
reward step is replaced: the recipe scores every component, component rewards are gathered across
processes, `Recipe.advantages` (i.e. `longwriter.advantages.combine_advantages`) computes the final
advantage, and TRL receives it as the single "reward" column with `scale_rewards="none"`.
TRL then subtracts the group mean, which is already 0 for these advantages, so what TRL optimises
with is exactly the project's function (tests/test_trl_engine.py checks it).

With several processes each process scores (and reports curriculum wins for) its own slice of the
batch. `run.batch_layout` gives every process whole groups (prompts_per_step must be a multiple of
the processes) and `check_whole_groups` enforces it, so the `any`/`majority` rules always see a whole
group; the step's metrics are merged over the processes before the main process logs them.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate.utils import gather, gather_object, is_peft_model
from trl import GRPOTrainer

from longwriter.advantages import combine_advantages, group_signal_metrics
from longwriter.data.schema import Sample
from longwriter.engines.trl_engine import compact_sampler, cpu_logprobs
from longwriter.engines.trl_engine.generation_copy import GenerationCopy
from longwriter.rewards import RolloutBatch
from longwriter.rewards.monitors import length_record
from longwriter.tracking.judge_usage import JudgeUsageTracker

logger = logging.getLogger(__name__)

def completion_text(completion: Any) -> str:
    """TRL passes conversational completions as a list of messages; plain ones as strings."""
    if isinstance(completion, str):
        return completion
    return "".join(message.get("content", "") for message in completion)


def check_whole_groups(samples: list[Sample], num_generations: int) -> None:
    """Each process must hold whole groups (run.batch_layout arranges it): the rewards, the advantage
    groups and the curriculum's any/majority verdicts are computed per process."""
    ids = [s.id for s in samples]
    if len(ids) % num_generations or any(len(set(ids[i:i + num_generations])) != 1
                                         for i in range(0, len(ids), num_generations)):
        raise RuntimeError(f"a group of {num_generations} completions is split across processes "
                           f"(this process holds {ids}); keep engine.prompts_per_step a multiple of the processes")


def token_counts(completion_ids) -> np.ndarray | None:
    """Tokens per completion from TRL's completion_ids (lists of ids, EOS included); None without them."""
    return None if completion_ids is None else np.array([len(ids) for ids in completion_ids], dtype=np.int64)


LEVEL_HIST_PREFIX = "curriculum/level_hist/"


def merge_process_metrics(per_process: list[dict[str, float]], summed: set[str]) -> dict[str, float]:
    """One value per metric for the whole step from every process's share (equal shares: whole groups
    per process): counts in `summed` are added, the rest averaged over the processes that report them
    (NaN skipped); a level-histogram bin that a process lacks counts 0 there."""
    keys = sorted({k for metrics in per_process for k in metrics})
    merged = {}
    for key in keys:
        absent = 0.0 if key.startswith(LEVEL_HIST_PREFIX) else np.nan
        values = np.array([m.get(key, absent) for m in per_process], dtype=np.float64)
        known = values[~np.isnan(values)]
        if key in summed:
            merged[key] = float(known.sum())
        else:
            merged[key] = float(known.mean()) if known.size else float("nan")
    return merged


class RecipeReward:
    """The recipe as a plain TRL reward function (weighted sum of components per completion).

    Stock `GRPOTrainer` can use it directly; `LongwriterGRPOTrainer` replaces TRL's reward step
    altogether so that advantages come from the project's function.
    """

    __name__ = "recipe"

    def __init__(self, recipe, samples_by_id: dict[str, Sample], loop) -> None:
        self.recipe, self.samples_by_id, self.loop = recipe, samples_by_id, loop

    def __call__(self, prompts, completions, sample_id, completion_ids=None, **kwargs) -> list[float | None]:
        samples = [self.samples_by_id[str(i)] for i in sample_id]
        batch = RolloutBatch(samples, [completion_text(c) for c in completions],
                             np.arange(len(samples)), training=False, completion_tokens=token_counts(completion_ids))
        scores = self.loop.run(self.recipe.score(batch))
        return [None if np.isnan(value) else float(value) for value in scores.total]

@dataclass
class _EarlyScores:
    batch: RolloutBatch
    future: Any  # concurrent.futures.Future of (RecipeScores, seconds the scoring took)


async def _timed(coro):
    start = time.perf_counter()
    result = await coro
    return result, time.perf_counter() - start


def _judge_waits_on_network(backend) -> bool:
    """True without a judge (cheap rule-based rewards) or with an HTTP judge (time spent waiting)."""
    return backend is None or hasattr(getattr(backend, "settings", None), "base_url")


class LongwriterGRPOTrainer(GRPOTrainer):
    """`precision="bf16"` (the resolved `engine.precision`; TRL's `args.bf16` must agree) adds what
    TRL's bf16 flag alone does not: rollouts sampled from a bf16 copy of the weights (see
    generation_copy.py) and a bf16 reference model (it only ever runs forward, under autocast)."""

    def __init__(self, *args, recipe, samples_by_id: dict[str, Sample], loop, judge_backend=None,
                 precision: str = "fp32", drop_finished_rows: bool = True, unknown_streak=None, lengths_path: Path | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.unknown_streak = unknown_streak  # longwriter.training_guards.UnknownVerdictStreak
        self.lengths_path = lengths_path  # one JSON line per training step: word counts and targets (plots)
        self.precision = precision
        self.generation_copy = None
        self.drop_finished_rows = drop_finished_rows  # engine.rollout.drop_finished_rows (compact_sampler.py)
        # One process only: under DDP/FSDP/DeepSpeed the wrapped models are the engines' to cast and swap.
        if precision == "bf16" and self.accelerator.num_processes == 1:
            if self.ref_model is not None:
                self.ref_model.to(torch.bfloat16)
            if not self.use_vllm and not is_peft_model(self.model):
                self.generation_copy = GenerationCopy(self.accelerator.unwrap_model(self.model))
        self.judge_usage = JudgeUsageTracker(judge_backend)
        self.recipe = recipe
        self.samples_by_id = samples_by_id
        self.loop = loop
        self.last_rollout: dict[str, Any] | None = None  # the latest scored batch (sample logging, tests)
        # Rewards start scoring as soon as the completions exist, while TRL runs the reference (and, when
        # needed, old-policy) forward; `_calculate_rewards` then only waits for what is left. Only for
        # judges that wait on a network: an in-process judge model would fight the forward for the cores.
        self.overlap_rewards = _judge_waits_on_network(judge_backend)
        self.cpu_logprobs = True  # False: TRL's own fused head everywhere (benchmarks/step_time.py's "today")
        self._rollout_inputs = None
        self._early_scores: _EarlyScores | None = None
        self.timings: dict[str, float] = defaultdict(float)

    def _mode(self) -> str:
        return "train" if self.model.training else "eval"

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None,
                                           compute_entropy=False, compute_aux_loss=False, **multimodal):
        # On CPU, TRL's fused head scores prompt positions too and uses GPU-sized tiles; the same kernel
        # on the completion rows with CPU-sized tiles is several times faster (see cpu_logprobs.py).
        # One process only: several wrap the model in DDP, whose forward must run for gradients to sync.
        base = self.accelerator.unwrap_model(model)
        base = base.get_base_model() if is_peft_model(base) else base
        if (not self.cpu_logprobs or compute_aux_loss or self.accelerator.num_processes > 1 or any(v is not None for v in multimodal.values())
                or not cpu_logprobs.supports(base, self.accelerator.device, self.args.cast_lm_head_to_fp32)):
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss, **multimodal)
        logps, entropies = cpu_logprobs.completion_logprobs(
            base, input_ids, attention_mask, logits_to_keep, self.temperature, batch_size or input_ids.size(0),
            compute_entropy, self.accelerator.autocast)
        return logps, entropies, None

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        # TRL samples from `self.model_wrapped`. Two swaps for this call only (TRL has no hook for a
        # sampler outside vLLM): the bf16 copy (refreshed from the policy first) as the model, and
        # compact_sampler.compact_generate as its `generate` (an instance attribute, removed after).
        sampling = self.model.training and not self.use_vllm and not self.use_transformers_continuous_batching
        copy = self.generation_copy if sampling else None
        if copy is not None:
            copy.sync()
        sampler = copy.model if copy is not None else self.accelerator.unwrap_model(self.model_wrapped)
        compact = sampling and self.drop_finished_rows and compact_sampler.supports(self.generation_config)
        wrapped = self.model_wrapped
        if copy is not None:
            self.model_wrapped = copy.model
        stats: dict[str, float] = {}
        shadowed = sampler.__dict__.get("generate")  # an instance attribute set by someone else stays theirs
        if compact:
            sampler.generate = functools.partial(compact_sampler.compact_generate, sampler, stats=stats)
        try:
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                 has_tool_images)
        finally:
            self.model_wrapped = wrapped
            if compact:
                del sampler.generate
                if shadowed is not None:
                    sampler.generate = shadowed
            if stats:
                self._metrics[self._mode()]["rollout/decoded_rows_frac"].append(stats["decoded_rows_frac"])

    def _generate(self, prompts):
        start = time.perf_counter()
        try:
            output = super()._generate(prompts)
        finally:
            self._metrics[self._mode()]["timing/generation_s"].append(time.perf_counter() - start)
        if self.overlap_rewards and self._rollout_inputs is not None and len(self._rollout_inputs) == len(prompts):
            completion_ids, completions = output[1], output[3]
            batch = self._rollout_batch(self._rollout_inputs, [completion_text(c) for c in completions],
                                        token_counts(completion_ids))
            self._early_scores = _EarlyScores(batch, self.loop.submit(_timed(self.recipe.score(batch))))
        return output

    def _generate_and_score_completions(self, inputs):
        start = time.perf_counter()
        self._rollout_inputs, self._early_scores = inputs, None
        try:
            output = super()._generate_and_score_completions(inputs)
        finally:
            self._rollout_inputs = None
            if self._early_scores is not None:  # never used (an error in between): stop it
                self._early_scores.future.cancel()
                self._early_scores = None
        self._metrics[self._mode()]["timing/rollout_s"].append(time.perf_counter() - start)
        if self.last_rollout is not None:
            self.last_rollout["trl_advantages"] = output["advantages"].detach().cpu().numpy().copy()
        return output

    def _rollout_batch(self, inputs, texts: list[str], tokens: np.ndarray | None = None) -> RolloutBatch:
        mode = self._mode()
        num_generations = self.num_generations if mode == "train" else self.num_generations_eval
        samples = [self.samples_by_id[str(row["sample_id"])] for row in inputs]
        check_whole_groups(samples, num_generations)
        offset = self.accelerator.process_index * len(inputs)
        local_groups = (offset + np.arange(len(inputs))) // num_generations
        return RolloutBatch(samples=samples, completions=texts, group_index=local_groups, training=mode == "train",
                            completion_tokens=tokens)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        start = time.perf_counter()
        mode = self._mode()
        num_generations = self.num_generations if mode == "train" else self.num_generations_eval
        texts = [completion_text(c) for c in completions]
        early, self._early_scores = self._early_scores, None
        tokens = token_counts(completion_ids_list)
        if early is not None and early.batch.completions == texts:
            # Scoring began when generation ended and ran beside TRL's reference/old-policy forward.
            scores, judge_s = early.future.result()
            self._metrics[mode]["timing/judge_s"].append(judge_s)
        else:
            if early is not None:  # TRL changed the completions in between (tools): score what it has now
                early.future.result()
            scores = self.loop.run(self.recipe.score(self._rollout_batch(inputs, texts, tokens)))
        samples = [self.samples_by_id[str(row["sample_id"])] for row in inputs]

        names = list(scores.rewards)
        local = np.stack([np.asarray(scores.rewards[n], dtype=np.float64) for n in names], axis=1)
        device = self.accelerator.device
        gathered = gather(torch.tensor(local, dtype=torch.float64, device=device)).cpu().numpy()
        all_groups = np.arange(gathered.shape[0]) // num_generations
        gathered_rewards = {n: gathered[:, k] for k, n in enumerate(names)}
        advantages = combine_advantages(gathered_rewards, self.recipe.weights, all_groups,
                                        self.recipe.combine, self.recipe.eps)

        usage = self.judge_usage.step_metrics()
        step_metrics = {**scores.metrics, **usage}
        if self.accelerator.num_processes > 1:  # the whole step's values, not the main process's share
            step_metrics = merge_process_metrics(gather_object([step_metrics]),
                                                 summed=set(usage) - {"judge/cache_hit_rate"})
        # From the gathered batch: the same on every process, so no merge is needed.
        step_metrics.update(group_signal_metrics(gathered_rewards, self.recipe.weights, all_groups))
        if self.unknown_streak is not None and mode == "train":  # raises past the limit: the run fails
            step_metrics.update(self.unknown_streak.update(step_metrics, self.state.global_step + 1))
        for name, value in step_metrics.items():
            self._metrics[mode][name].append(float(value))
        self._metrics[mode]["timing/reward_s"].append(time.perf_counter() - start)
        if mode == "train" and self.lengths_path is not None and self.accelerator.is_main_process:
            record = length_record(self.state.global_step + 1, samples, self.recipe.answers(texts))
            with open(self.lengths_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        self.last_rollout = {
            "step": self.state.global_step,
            "mode": mode,
            "samples": samples,  # this process's rows; the gathered arrays below start with them on the main one
            "sample_ids": [s.id for s in samples],
            "prompts": [s.user_prompt for s in samples],
            "completions": texts,
            "answers": self.recipe.answers(texts),
            "rewards": {n: gathered[:, k].tolist() for k, n in enumerate(names)},
            "total": np.asarray(scores.total, dtype=np.float64).tolist(),
            "labels": scores.labels,
            "advantages": np.asarray(advantages, dtype=np.float64).copy(),
            "group_index": all_groups,
        }
        return torch.tensor(advantages, dtype=torch.float32, device=device).unsqueeze(1)
