"""Step time of the TRL loop: today's rollout, the new one and bare TRL, in one invocation.

Variants (`--variants`, default all three), each training `--steps` GRPO steps on the default model
and settings (Hydra overrides may follow) at precision `--precision`:
  today  the harness as main had it before issue 21: transformers' `generate`
         (`engine.rollout.drop_finished_rows=false`) and the step's batch in one micro batch
         (`engine.gradient_accumulation_steps=1`)
  new    the harness as configured (default: ended completions leave the decode batch)
  bare   TRL's own `GRPOTrainer` with the same model, data, reward function (the recipe as a plain
         TRL reward function) and `GRPOConfig`: what the harness costs over TRL
Each variant runs in its own child process, so that its peak resident memory is its own; the variants
run interleaved (today new bare today new bare ... for `--rounds`) so that machine load drifts hit all
alike. Per step: generation tokens/s (completion tokens / generation seconds), update seconds (step
wall time minus generation and reward), reward seconds and whole-step seconds; the first step of each
child (warm-up: allocator, oneDNN kernels) is left out. Figures are medians over rounds x steps; ratios
are against `today` (speed-ups: today / new for times) and harness / bare. The CPU's name, its
bf16-related flags and the load average are printed with them.

Run (alone on the machine: one heavy job at a time):
    flock /tmp/longwriter-cpu.lock .venv/bin/python benchmarks/step_time.py [--precision fp32|bf16|auto]
        [--steps 4] [--rounds 2] [--variants today,new,bare] [hydra overrides...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("today", "new", "bare")
# The loop before issue 21: transformers' generate, the whole step's batch in one micro batch.
TODAY = ["engine.rollout.drop_finished_rows=false", "engine.gradient_accumulation_steps=1"]


class _RssSampler(threading.Thread):
    """Peak resident memory per phase (generation / update), sampled every 50 ms from /proc."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.phase = "setup"
        self.peaks: dict[str, int] = {}
        self.running = True

    def run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while self.running:
            try:
                rss = int(Path("/proc/self/statm").read_text().split()[1]) * page
            except OSError:
                return
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), rss)
            time.sleep(0.05)


def _child(overrides: list[str], steps: int, bare: bool = False) -> dict:
    """Train `steps` steps with these overrides (through TRL's own trainer when `bare`); per-step
    timings and peak memory as a dict."""
    from hydra import compose, initialize_config_dir
    from transformers import TrainerCallback

    from longwriter.async_utils import BackgroundLoop
    from longwriter.engines.trl_engine.run import build_trainer
    from longwriter.models import resolve_model_path
    from longwriter.paths import CONF_DIR, register_resolvers
    from longwriter.training_setup import build_reward_setup, load_training_samples

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"engine.max_steps={steps}", "engine.save_steps=100000",
                                                      *overrides])
    sampler = _RssSampler()
    sampler.start()
    out = Path(tempfile.mkdtemp(prefix="step_time."))
    model_path = resolve_model_path(cfg.model, cfg.paths.cache_dir)
    samples = load_training_samples(cfg)
    setup = build_reward_setup(cfg, out)
    loop = BackgroundLoop()
    rows: list[dict] = []
    batch = int(cfg.engine.prompts_per_step) * int(cfg.engine.num_generations)

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()
            sampler.phase = "generation"
            rows.append({"generation_s": 0.0, "reward_s": 0.0})

        def on_step_end(self, args, state, control, **kwargs):
            rows[-1]["step_s"] = time.perf_counter() - self.start
            sampler.phase = "other"

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "completions/mean_length" in logs and rows:
                rows[-1]["tokens"] = logs["completions/mean_length"] * batch

    def timed(row_key, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                if rows:
                    rows[-1][row_key] += time.perf_counter() - start
        return wrapper

    try:
        trainer = (_bare_trainer if bare else build_trainer)(cfg, out, model_path, samples, setup, loop,
                                                               callbacks=[Timer()])
        # The same instrumentation for every variant: generation = TRL's `_generate`, reward = TRL's
        # `_calculate_rewards` (the harness overlaps part of the scoring with the forward passes).
        trainer._generate = timed("generation_s", trainer._generate)
        trainer._calculate_rewards = timed("reward_s", trainer._calculate_rewards)
        original = trainer._generate_and_score_completions

        def rollout_then_update(inputs):  # the phase after the rollout is the update
            result = original(inputs)
            sampler.phase = "update"
            return result

        trainer._generate_and_score_completions = rollout_then_update
        trainer.train()
        precision = "bf16" if trainer.args.bf16 else "fp32"
    finally:
        loop.close()
        sampler.running = False
        shutil.rmtree(out, ignore_errors=True)  # a checkpoint is GBs; nothing in it is read
    for row in rows:
        row["update_s"] = row["step_s"] - row["generation_s"] - row["reward_s"]
        row["tokens_per_s"] = row.get("tokens", 0.0) / max(row["generation_s"], 1e-9)
    return {"precision": precision, "steps": rows, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "phase_peak_rss_gb": {k: round(v / 2**30, 2) for k, v in sampler.peaks.items()}}


def _bare_trainer(cfg, out, model_path, samples, setup, loop, callbacks):
    """TRL's GRPOTrainer with the harness's GRPOConfig, data and recipe (as a plain reward function)."""
    from transformers import AutoTokenizer
    from trl import GRPOTrainer

    from longwriter.engines.precision import resolve_precision
    from longwriter.engines.trl_engine.run import _grpo_config, _train_dataset, attn_implementation
    from longwriter.engines.trl_engine.trainer import RecipeReward

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    args = _grpo_config(cfg, out, resolve_precision(cfg.engine.get("precision"), "cpu"))
    args.model_init_kwargs = {"dtype": str(cfg.model.get("dtype", "float32")),
                              "attn_implementation": attn_implementation(str(cfg.engine.attn_implementation), False)}
    return GRPOTrainer(model=model_path, reward_funcs=[RecipeReward(setup.recipe, {s.id: s for s in samples}, loop)],
                       args=args, processing_class=tokenizer, callbacks=list(callbacks),
                       train_dataset=_train_dataset(samples, setup.recipe, tokenizer,
                                                    cfg.engine.get("max_prompt_length")))


def _run_child(overrides: list[str], steps: int, bare: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", "--steps", str(steps), *(("--bare",) if bare else ()), *overrides]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"child {' '.join(overrides)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def _median(results: list[dict], key: str) -> float:
    values = [row[key] for result in results for row in result["steps"][1:] if key in row]
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="fp32", choices=["auto", "bf16", "fp32"],
                        help="engine.precision of every variant")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    parser.add_argument("--steps", type=int, default=4, help="steps per child (the first is warm-up)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the variants")
    parser.add_argument("--judge-latency", type=float, default=None,
                        help="train with reward=pairwise against the local scripted judge server answering after "
                             "this many seconds (concurrency --judge-concurrency)")
    parser.add_argument("--judge-concurrency", type=int, default=16)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    args, overrides = parser.parse_known_args()
    if args.child:
        print("RESULT " + json.dumps(_child(overrides, args.steps, bare=args.bare)), flush=True)
        return
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or not variants:
        raise SystemExit(f"--variants {args.variants}: choose from {', '.join(VARIANTS)}")
    overrides = [f"engine.precision={args.precision}", *overrides]
    if args.judge_latency is not None:
        sys.path.insert(0, str(Path(__file__).parent))
        from judge_throughput import fake_server

        with fake_server("subprocess", args.judge_latency) as base_url:
            judge = ["reward=pairwise", "judge=vllm_server", f"judge.base_url={base_url}", "judge.cache=false",
                     f"judge.concurrency={args.judge_concurrency}"]
            _compare(args, variants, [*judge, *overrides])
        return
    _compare(args, variants, overrides)


def _summary(runs: list[dict]) -> dict:
    return {
        "precision": runs[0]["precision"],
        "tokens_per_s": _median(runs, "tokens_per_s"),
        "generation_s": _median(runs, "generation_s"),
        "update_s": _median(runs, "update_s"),
        "reward_s": _median(runs, "reward_s"),
        "step_s": _median(runs, "step_s"),
        "peak_rss_gb": max(r["peak_rss_gb"] for r in runs),
        "phase_peak_rss_gb": runs[-1]["phase_peak_rss_gb"],
    }


def _ratios(a: dict, b: dict) -> dict:
    """a against b: tokens/s and speed-ups as a/b and b/a, step time and memory as a/b."""
    return {"generation_tokens_per_s": a["tokens_per_s"] / b["tokens_per_s"],
            "update_speedup": b["update_s"] / a["update_s"],
            "step_time": a["step_s"] / b["step_s"],
            "peak_rss": a["peak_rss_gb"] / b["peak_rss_gb"]}


def _compare(args, variants: list[str], overrides: list[str]) -> None:
    from longwriter.engines.precision import cpu_report

    cpu = cpu_report()
    load_before = os.getloadavg()
    started = time.perf_counter()
    results: dict[str, list[dict]] = {name: [] for name in variants}
    for round_index in range(args.rounds):
        for name in variants:
            print(f"round {round_index + 1}/{args.rounds}: {name} ({args.steps} steps) ...", flush=True)
            variant = [*(TODAY if name == "today" else ()), *overrides]
            results[name].append(_run_child(variant, args.steps, bare=name == "bare"))
    summary = {name: _summary(runs) for name, runs in results.items()}
    ratios = {}
    if "today" in summary and "new" in summary:
        ratios["new/today"] = _ratios(summary["new"], summary["today"])
    if "bare" in summary:
        for name in ("new", "today"):
            if name in summary:
                ratios[f"{name}/bare"] = _ratios(summary[name], summary["bare"])
    print(f"CPU: {cpu['cpu']}; flags: {', '.join(cpu['flags']) or 'none of interest'}; "
          f"bf16 matrix units: {'yes' if cpu['bf16_matrix_units'] else 'no'}; cores: {os.cpu_count()}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"load average before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}; {args.rounds} rounds x "
          f"{args.steps} steps (first step of each left out); wall {time.perf_counter() - started:.0f} s; "
          f"overrides: {overrides}")
    for name, s in summary.items():
        print(f"{name:5s} ({s['precision']}): generation {s['tokens_per_s']:.1f} tokens/s ({s['generation_s']:.1f} s), "
              f"update {s['update_s']:.1f} s, reward {s['reward_s']:.2f} s, step {s['step_s']:.1f} s, "
              f"peak RSS {s['peak_rss_gb']:.2f} GB (by phase {s['phase_peak_rss_gb']})")
    for name, r in ratios.items():
        print(f"ratios {name}: generation tokens/s x{r['generation_tokens_per_s']:.2f}, update speed-up "
              f"x{r['update_speedup']:.2f}, step time x{r['step_time']:.2f}, peak RSS x{r['peak_rss']:.2f}")
    print(json.dumps({"cpu": cpu, "load_before": load_before[0], "summary": summary, "ratios": ratios}))


if __name__ == "__main__":
    main()
