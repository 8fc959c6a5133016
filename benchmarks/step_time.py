"""Step time of the TRL loop: today's path (fp32) against the new one, in one invocation.

Each variant trains `--steps` GRPO steps on the default model and settings (Hydra overrides may
follow) in its own child process, so that its peak resident memory is its own; the variants run
interleaved (A B A B ... for `--rounds`) so that machine load drifts hit both alike. Per step:
generation tokens/s (completion tokens / generation seconds), update seconds (step wall time minus
generation and reward), reward seconds and whole-step seconds; the first step of each child
(warm-up: allocator, oneDNN kernels) is left out. Figures are medians over rounds x steps; ratios
are new / today (speed-ups: today / new for times). The CPU's name and bf16-related flags and the
load average are printed with them: whether bf16 pays depends on them.

Run (on this shared machine, both cores):
    cpujob --exclusive .venv/bin/python benchmarks/step_time.py [--new auto|bf16|fp32] [--steps 3]
        [--rounds 2] [hydra overrides...]
`--new` is the precision of the new path (default auto: bf16 only where the CPU has bf16 matrix
units, so on a CPU without them both variants are fp32 and the ratios show noise).
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
# Today's path as it ran before issue 15: fp32 compute and sampling (plus, in the child, TRL's own
# fused LM head on CPU and rewards scored only after the rollout: `--today`).
TODAY = ["engine.precision=fp32"]


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


def _child(overrides: list[str], steps: int, overlap: bool = True) -> dict:
    """`overlap=False` is today's path (see TODAY); True the new one."""
    """Train `steps` steps with these overrides; per-step timings and peak memory as a dict."""
    from transformers import TrainerCallback

    from longwriter.async_utils import BackgroundLoop
    from longwriter.engines.trl_engine.run import build_trainer
    from longwriter.models import resolve_model_path
    from longwriter.paths import register_resolvers
    from longwriter.training_setup import build_reward_setup, load_training_samples

    from hydra import compose, initialize_config_dir

    from longwriter.paths import CONF_DIR

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

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()
            sampler.phase = "generation"

        def on_step_end(self, args, state, control, **kwargs):
            rows.append({"step_s": time.perf_counter() - self.start})
            sampler.phase = "other"

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "timing/generation_s" in logs and rows:
                rows[-1].update(generation_s=logs["timing/generation_s"], reward_s=logs.get("timing/reward_s", 0.0),
                                rollout_s=logs.get("timing/rollout_s", 0.0),
                                tokens=logs["completions/mean_length"] * batch)

    try:
        trainer = build_trainer(cfg, out, model_path, samples, setup, loop, callbacks=[Timer()])
        # "today" = the loop before issue 15: TRL's fused head on CPU too, rewards scored after the rollout.
        trainer.overlap_rewards = trainer.overlap_rewards and overlap
        trainer.cpu_logprobs = overlap
        batch = int(cfg.engine.prompts_per_step) * int(cfg.engine.num_generations)
        original = trainer._generate_and_score_completions

        def rollout_then_update(inputs):  # the phase after the rollout is the update
            result = original(inputs)
            sampler.phase = "update"
            return result

        trainer._generate_and_score_completions = rollout_then_update
        trainer.train()
        precision = trainer.precision
    finally:
        loop.close()
        sampler.running = False
        shutil.rmtree(out, ignore_errors=True)  # a checkpoint is GBs; nothing in it is read
    for row in rows:
        row["update_s"] = row["step_s"] - row.get("generation_s", 0.0) - row.get("reward_s", 0.0)
        row["tokens_per_s"] = row.get("tokens", 0.0) / max(row.get("generation_s", 0.0), 1e-9)
    return {"precision": precision, "steps": rows, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "phase_peak_rss_gb": {k: round(v / 2**30, 2) for k, v in sampler.peaks.items()}}


def _run_child(overrides: list[str], steps: int, overlap: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", "--steps", str(steps), *(() if overlap else ("--today",)),
           *overrides]
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
    parser.add_argument("--new", default="auto", choices=["auto", "bf16", "fp32"], help="precision of the new path")
    parser.add_argument("--steps", type=int, default=3, help="steps per child (the first is warm-up)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved today/new pairs")
    parser.add_argument("--judge-latency", type=float, default=None,
                        help="train with reward=pairwise against the local scripted judge server answering after "
                             "this many seconds (concurrency --judge-concurrency); today's path scores after the "
                             "rollout, the new one overlaps scoring with the reference forward")
    parser.add_argument("--judge-concurrency", type=int, default=16)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--today", action="store_true", help=argparse.SUPPRESS)
    args, overrides = parser.parse_known_args()
    if args.child:
        print("RESULT " + json.dumps(_child(overrides, args.steps, overlap=not args.today)), flush=True)
        return
    if args.judge_latency is not None:
        sys.path.insert(0, str(Path(__file__).parent))
        from judge_throughput import REPLY, fake_server

        with fake_server("subprocess", args.judge_latency) as base_url:
            judge = ["reward=pairwise", "judge=vllm_server", f"judge.base_url={base_url}", "judge.cache=false",
                     f"judge.concurrency={args.judge_concurrency}"]
            _compare(args, [*judge, *overrides])
        return
    _compare(args, overrides)


def _compare(args, overrides: list[str]) -> None:

    from longwriter.engines.precision import cpu_report

    cpu = cpu_report()
    load_before = os.getloadavg()
    variants = {"today": TODAY + overrides, "new": [f"engine.precision={args.new}", *overrides]}
    if args.judge_latency is not None:
        print(f"judge: local scripted server, {args.judge_latency * 1000:.0f} ms a request, "
              f"concurrency {args.judge_concurrency}")
    results: dict[str, list[dict]] = {"today": [], "new": []}
    for _ in range(args.rounds):
        for name, variant in variants.items():
            results[name].append(_run_child(variant, args.steps, overlap=name == "new"))
    summary = {}
    for name, runs in results.items():
        summary[name] = {
            "precision": runs[0]["precision"],
            "tokens_per_s": _median(runs, "tokens_per_s"),
            "generation_s": _median(runs, "generation_s"),
            "update_s": _median(runs, "update_s"),
            "reward_s": _median(runs, "reward_s"),
            "step_s": _median(runs, "step_s"),
            "peak_rss_gb": max(r["peak_rss_gb"] for r in runs),
            "phase_peak_rss_gb": runs[-1]["phase_peak_rss_gb"],
        }
    today, new = summary["today"], summary["new"]
    ratios = {
        "generation_tokens_per_s": new["tokens_per_s"] / today["tokens_per_s"],
        "update_speedup": today["update_s"] / new["update_s"],
        "step_time": new["step_s"] / today["step_s"],
        "peak_rss": new["peak_rss_gb"] / today["peak_rss_gb"],
    }
    print(f"CPU: {cpu['cpu']}; flags: {', '.join(cpu['flags']) or 'none of interest'}; "
          f"bf16 matrix units: {'yes' if cpu['bf16_matrix_units'] else 'no'}; cores: {os.cpu_count()}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"load average before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}; "
          f"{args.rounds} rounds x {args.steps} steps (first step of each left out); overrides: {overrides or 'none'}")
    for name, s in summary.items():
        print(f"{name:5s} ({s['precision']}): generation {s['tokens_per_s']:.1f} tokens/s ({s['generation_s']:.1f} s), "
              f"update {s['update_s']:.1f} s, reward {s['reward_s']:.2f} s, step {s['step_s']:.1f} s, "
              f"peak RSS {s['peak_rss_gb']:.2f} GB (by phase {s['phase_peak_rss_gb']})")
    for name, s in summary.items():
        print(f"{name:5s}: reward wall time {s['reward_s']:.2f} s = {100 * s['reward_s'] / s['step_s']:.1f}% of the step")
    print(f"ratios new/today: generation tokens/s x{ratios['generation_tokens_per_s']:.2f}, "
          f"update speed-up x{ratios['update_speedup']:.2f}, step time x{ratios['step_time']:.2f}, "
          f"peak RSS x{ratios['peak_rss']:.2f}")
    print(json.dumps({"cpu": cpu, "load_before": load_before[0], "summary": summary, "ratios": ratios}))


if __name__ == "__main__":
    main()
