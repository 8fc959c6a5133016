"""GPU smoke (run by scripts/gpu_smoke.sh): a few TRL steps, checkpoint, resume, checked in MLflow.

The tiny random model in bf16 with LoRA, the pairwise reward against a scripted judge served over
the OpenAI-compatible HTTP path on 127.0.0.1 (a verdict per response text, so rewards vary
within a group), 2 steps with a checkpoint, then `resume_from=` up to 4 steps. Exits non-zero with
the failed check's name; prints one line per check.

    python scripts/gpu_smoke.py [--cpu] [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def scripted_verdict(request: dict) -> str:
    """Scripted pairwise verdict, deterministic per text: the policy's response (shown second, as B,
    under position "disadvantage") wins when its text hashes to an odd number, so rewards vary
    within a group (a length rule would always lose to the long references)."""
    content = request["messages"][-1]["content"]
    match = re.search(r"\[Response B\](.*?)\[End of Response B\]", content, re.S)
    response = match.group(1).strip() if match else ""
    return f"Verdict: [[{'B' if hashlib.sha256(response.encode()).digest()[0] % 2 else 'A'}]]"


def train(overrides: list[str], log: Path) -> float:
    start = time.monotonic()
    with log.open("w") as handle:
        proc = subprocess.run([sys.executable, "-m", "longwriter.train", *overrides], cwd=ROOT,
                              stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if proc.returncode != 0:
        print(log.read_text()[-6000:])
        raise SystemExit(f"FAILED: python -m longwriter.train exited {proc.returncode} (log {log})")
    return time.monotonic() - start


def check(name: str, ok: bool, detail: str = "") -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
    if not ok:
        raise SystemExit(f"FAILED: {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="run on the CPU in fp32 (to test this script anywhere)")
    parser.add_argument("--out", default="/tmp/longwriter_gpu_smoke")
    args = parser.parse_args()

    import torch

    if not args.cpu and not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible: run on a GPU machine, or pass --cpu")
    device = "cpu" if args.cpu else torch.cuda.get_device_name(0)
    import transformers
    import trl

    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"trl {trl.__version__}, device {device}", flush=True)
    from longwriter.testing.fake_openai_server import FakeOpenAIServer

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    run_dir = out / "train" / "gpu_smoke"
    with FakeOpenAIServer(default_reply=scripted_verdict) as judge:
        common = [
            "model=tiny_random", f"model.dtype={'float32' if args.cpu else 'bfloat16'}",
            "reward=pairwise", "judge=vllm_server", f"judge.base_url={judge.base_url}", "judge.model=scripted",
            "judge.cache=false", "engine.lora.enabled=true", "engine.prompts_per_step=2",
            "engine.num_generations=4", "engine.max_completion_length=32", "engine.save_steps=2",
            "engine.sample_every=2", "data.limit=4", f"paths.output_root={out}", "run_name=gpu_smoke",
        ]
        first = train([*common, "engine.max_steps=2"], out / "train_1.log")
        check("2 steps trained, checkpoint written", (run_dir / "checkpoints" / "checkpoint-2").is_dir(),
              f"{first:.1f} s")
        second = train([*common, "engine.max_steps=4", f"resume_from={run_dir}"], out / "train_2.log")
        check("resumed from checkpoint-2 to step 4", (run_dir / "checkpoints" / "checkpoint-4").is_dir(),
              f"{second:.1f} s")
        judge_requests = len(judge.chat_requests)

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{out}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("longwriter").experiment_id])
    check("one MLflow run across the resume", len(runs) == 1, f"{len(runs)} run(s)")
    run = runs[0]
    run_id = json.loads((run_dir / "mlflow_run.json").read_text())["run_id"]
    check("the resumed run logs into the first run", run.info.run_id == run_id and run.info.status == "FINISHED",
          run.info.status)
    steps = sorted({m.step for m in client.get_metric_history(run.info.run_id, "train/loss")})
    check("train/loss logged at steps 1-4", steps == [1, 2, 3, 4], str(steps))
    rewards = [m.value for m in client.get_metric_history(run.info.run_id, "reward/pairwise/mean")]
    check("pairwise rewards from the judge", len(rewards) >= 4 and judge_requests > 0 and max(rewards) > 0,
          f"{judge_requests} judge requests, reward/pairwise/mean {[round(r, 3) for r in rewards]}")
    final = Path(run.data.tags["final_model_path"])
    check("final LoRA adapter saved", (final / "adapter_model.safetensors").exists(), str(final))
    if not args.cpu:
        config = json.loads((run_dir / "checkpoints" / "checkpoint-4" / "adapter_config.json").read_text())
        check("LoRA adapter config", config.get("peft_type") == "LORA", str(config.get("target_modules")))
    print(f"GPU SMOKE PASSED on {device}", flush=True)


if __name__ == "__main__":
    main()
