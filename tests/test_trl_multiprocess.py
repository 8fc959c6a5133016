"""TRL with several processes, for real on this CPU: `accelerate launch --multi_gpu --num_processes 2`
(accelerate's multi-process launcher; without CUDA the processes talk over gloo) on the tiny model,
with the pairwise recipe against the local OpenAI-compatible judge server.

Checked: one run name and folder for both processes, one MLflow run (from the main process), the
step's groups whole in each process (the trainer refuses split groups), the curriculum moving
every sample, and the step metrics merged over both processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from longwriter.testing.fake_openai_server import FakeOpenAIServer

from conftest import ROOT, TINY_RUN

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

TINY = [*TINY_RUN, "data.limit=2", "data.shuffle_seed=null", "engine.max_steps=2", "engine.save_steps=1"]


def _accelerate(args: list[str], output_root: Path) -> subprocess.CompletedProcess:
    accelerate = Path(sys.executable).with_name("accelerate")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "longwriter.train", *TINY,
                           f"paths.output_root={output_root}", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=800)
    assert proc.returncode == 0, f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-8000:]}"
    return proc


def test_two_processes_pairwise_one_run_whole_groups(output_root: Path) -> None:
    import mlflow

    with FakeOpenAIServer(default_reply="The second response is better. [[B]]") as server:
        _accelerate(["reward=pairwise", "judge=vllm_server", f"judge.base_url={server.base_url}",
                     "judge.cache=false"], output_root)
        judged = len(server.chat_requests)
    runs = sorted((output_root / "train").iterdir())
    assert len(runs) == 1, runs  # both processes composed the same run name (one folder)
    client = mlflow.MlflowClient(f"sqlite:///{output_root}/mlflow.db")
    found = client.search_runs([client.get_experiment_by_name("longwriter").experiment_id])
    assert len(found) == 1 and found[0].info.run_name == runs[0].name  # one MLflow run, from the main process
    run_id = found[0].info.run_id
    assert found[0].data.tags["processes"] == "2"

    def history(key: str) -> list[float]:
        return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]

    # 2 prompts x 2 completions per step, one judge call each, plus each process's one swapped-order probe
    # (the swap-disagreement monitor): the step's count is summed over both processes, and matches the server.
    assert history("judge/requests") == [6.0, 6.0] and sum(history("judge/requests")) == judged
    assert history("judge/win_rate") == [1.0, 1.0]
    # The rule "any" moved both samples once per step: levels 0 then 1 over the whole step's batch.
    assert history("curriculum/level/mean") == [0.0, 1.0]
    assert history("curriculum/level_hist/0") == [1.0, 0.0]
    assert history("curriculum/dataset_level_hist/1") == [1.0, 0.0]  # all samples, after each step's moves
    assert history("curriculum/dataset_level_hist/2") == [0.0, 1.0]
    assert history("train/loss") and history("response_length/tokens/mean")
    final = json.loads((runs[0] / "final_model" / "curriculum.json").read_text())
    assert {k: v["level"] for k, v in final["samples"].items()} == {"builtin-001": 2, "builtin-002": 2}
    assert (runs[0] / "checkpoints" / "checkpoint-2").is_dir()
