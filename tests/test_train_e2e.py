"""End-to-end: the real CLI trains the tiny random model and MLflow holds the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, TINY_RUN, run_cli

TINY = [*TINY_RUN, "engine.sample_every=1", "data.limit=8"]


def _client(output_root: Path):
    import mlflow

    uri = f"sqlite:///{output_root}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    return mlflow.MlflowClient(uri)


def _only_run(client):
    experiment = client.get_experiment_by_name("longwriter")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0]


def test_two_step_train_logs_run_metrics_and_artifacts(output_root: Path) -> None:
    # beta > 0 (the default is 0): the KL term and the reference model stay covered end to end.
    # A linear decay: the logged learning rate is the one each step used (2e-5 then 1e-5), not TRL's
    # "after this step" value, which reaches 0 at the last step.
    run_cli("longwriter.train", [*TINY, "engine.max_steps=2", "engine.save_steps=2", "engine.beta=0.04",
                                 "engine.learning_rate=2e-5", "engine.lr_scheduler_type=linear",
                                 f"paths.output_root={output_root}", "run_name=e2e"])
    client = _client(output_root)
    run = _only_run(client)
    assert run.info.status == "FINISHED"
    for key in ["reward/total/mean", "reward/length/mean", "train/loss", "train/kl", "response_length/tokens/mean",
                "timing/generation_s", "timing/reward_s", "timing/update_s", "timing/step_s"]:
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == [1, 2], key
    assert run.data.params["engine.max_steps"] == "2"
    assert run.data.params["model.name"] == "tiny_random"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config", "samples", "final_model_path.txt"} <= artifacts
    assert [m.value for m in client.get_metric_history(run.info.run_id, "train/learning_rate")] == \
        pytest.approx([2e-5, 1e-5])
    # One-off figures are tags, not one-dot metric charts.
    assert not [k for k in run.data.metrics if k.startswith("summary/")]
    assert float(run.data.tags["summary.train_runtime"]) > 0
    # The logged completions: one MLflow table (the UI shows it as a table), a row per completion and step.
    samples = client.list_artifacts(run.info.run_id, "samples")
    assert [a.path for a in samples] == ["samples/samples.json"]
    table = json.loads(Path(client.download_artifacts(run.info.run_id, "samples/samples.json",
                                                      str(output_root / "dl"))).read_text())
    assert table["columns"] == ["step", "sample_id", "words", "target", "reward_length", "reward_total", "advantage",
                                "prompt", "completion"]
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    assert [r["step"] for r in rows] == [1, 1, 1, 1, 2, 2, 2, 2]  # engine.num_samples_logged=4, sample_every=1
    assert all(r["completion"] and isinstance(r["words"], int) and r["target"] for r in rows)
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {"plots/rewards.png", "plots/lengths.png", "plots/monitors.png"} <= plots
    lengths = Path(client.download_artifacts(run.info.run_id, "rollouts/lengths.jsonl", str(output_root / "dl")))
    assert [json.loads(line)["step"] for line in lengths.read_text().splitlines()] == [1, 2]
    assert client.get_metric_history(run.info.run_id, "monitor/distinct_1")
    final = Path(run.data.tags["final_model_path"])
    assert (final / "config.json").exists() and (final / "model.safetensors").exists()
    assert final == output_root / "train" / "e2e" / "final_model"


def test_killed_run_resumes_into_the_same_mlflow_run(output_root: Path) -> None:
    run_dir = output_root / "train" / "killme"
    args = [*TINY, "engine.max_steps=6", "engine.save_steps=1", f"paths.output_root={output_root}", "run_name=killme"]
    proc = subprocess.Popen([sys.executable, "-m", "longwriter.train", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and not (run_dir / "checkpoints" / "checkpoint-1").exists():
        assert proc.poll() is None, "training exited before its first checkpoint"
        time.sleep(0.2)
    time.sleep(0.5)  # let the checkpoint finish writing... and then die mid-run, like a pre-empted job
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run_id = json.loads((run_dir / "mlflow_run.json").read_text())["run_id"]

    run_cli("longwriter.train", [*args, f"resume_from={run_dir}"])
    client = _client(output_root)
    run = _only_run(client)
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run_id, "train/loss")]
    assert max(steps) == 6 and set(range(1, 7)) <= set(steps)
    assert (run_dir / "checkpoints" / "checkpoint-6").is_dir()


def test_resume_from_a_missing_folder_is_one_clear_error(tmp_path: Path) -> None:
    proc = run_cli("longwriter.train", [*TINY, f"resume_from={tmp_path}/nope", f"paths.output_root={tmp_path}"],
                   check=False)
    assert proc.returncode == 2
    assert "resume_from=" in proc.stderr and "is not a folder of an earlier run" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_prompts_over_the_token_cap_are_dropped_and_all_dropped_is_one_clear_error(tmp_path: Path) -> None:
    proc = run_cli("longwriter.train", [*TINY, "engine.max_prompt_length=5", f"paths.output_root={tmp_path}"],
                   check=False)
    assert proc.returncode == 2
    assert "every prompt is longer than engine.max_prompt_length=5 tokens" in proc.stderr
    assert "Traceback" not in proc.stderr
