"""Issue 13 end to end through the real CLI on the tiny model (slow: each start imports the stack).

- resume: SIGKILL after a step was logged but before its checkpoint, and again after a checkpoint;
  a changing override is refused; the final run is one MLflow run, same id and name, one value per
  step, the accepted change recorded.
- judge: a dead endpoint stops before the first step; a judge whose every verdict is unknown stops
  the run FAILED; planted secrets (environment and overrides) appear nowhere on disk or in output.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, TINY_RUN, run_cli

pytestmark = pytest.mark.slow

TINY = [*TINY_RUN, "data.limit=8"]


def _client(root: Path):
    import mlflow

    uri = f"sqlite:///{root}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    return mlflow.MlflowClient(uri)


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "longwriter.train", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _kill_when(proc: subprocess.Popen, ready, what: str) -> None:
    deadline = time.time() + 600
    while not ready():
        assert proc.poll() is None, f"training exited before {what}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_resume_after_sigkill_at_several_points_is_the_same_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "train" / "k"
    args = [*TINY, "engine.max_steps=6", "engine.save_steps=2", f"paths.output_root={tmp_path}", "run_name=k"]
    log = run_dir / "train.log"
    # 1. killed after step 3 was logged, before checkpoint 4 (the last checkpoint is 2).
    proc = _start(args)
    _kill_when(proc, lambda: log.exists() and "step 3/6" in log.read_text(), "step 3")
    assert not (run_dir / "checkpoints" / "checkpoint-4").exists()
    run_id = json.loads((run_dir / "mlflow_run.json").read_text())["run_id"]

    # 2. a resume that would change what is trained is refused, listing every change, and changes nothing:
    #    the typed data.limit, the recipe, and the data set the recipe's preset swaps in (it needs references).
    refused = run_cli("longwriter.train", [f"resume_from={run_dir}", "reward=longwriter_zero", "data.limit=36",
                                           f"paths.output_root={tmp_path}"], check=False)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert ("these overrides would change what is trained: data.limit: 8 -> 36; data.name: 'length_prompts' -> "
            "'builtin'; reward.name: 'length' -> 'longwriter_zero'. Drop them") in refused.stderr, refused.stderr

    # 3. resumed (the README's way: resume_from alone), killed again after checkpoint 4.
    proc = _start([f"resume_from={run_dir}", f"paths.output_root={tmp_path}"])
    _kill_when(proc, lambda: (run_dir / "checkpoints" / "checkpoint-4" / "trainer_state.json").exists(),
               "checkpoint 4")

    # 4. resumed with one safe change: two more steps.
    run_cli("longwriter.train", [f"resume_from={run_dir}", "engine.max_steps=8", f"paths.output_root={tmp_path}"])
    client = _client(tmp_path)
    runs = client.search_runs([client.get_experiment_by_name("longwriter").experiment_id])
    assert [r.info.run_id for r in runs] == [run_id]
    run = runs[0]
    assert run.info.status == "FINISHED" and run.info.run_name == "k"
    assert run.data.params["reward.name"] == "length" and run.data.params["data.limit"] == "8"
    assert run.data.tags["resumed.engine.max_steps"] == "8" and run.data.tags["longwriter.resumes"] == "2"
    for key in ("reward/total/mean", "train/loss", "timing/step_s"):
        steps = sorted(m.step for m in client.get_metric_history(run_id, key))
        assert steps == list(range(1, 9)), (key, steps)  # one value per step: none duplicated, none missing
    resumes = [json.loads(line) for line in (run_dir / "resumes.jsonl").read_text().splitlines()]
    assert [r["changed"] for r in resumes] == [{}, {"engine.max_steps": {"from": 6, "to": 8}}]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_dead_judge_stops_training_before_the_first_step(tmp_path: Path) -> None:
    port = _closed_port()
    proc = run_cli("longwriter.train", [*TINY, "reward=pairwise", "judge=openai", "judge.api_key_required=false",
                                        f"judge.base_url=http://127.0.0.1:{port}/v1", "judge.timeout_s=5",
                                        f"paths.output_root={tmp_path}"], check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: judge endpoint http://127.0.0.1:{port}/v1 unreachable")
    assert errors[0].endswith("start the server or set judge.base_url")
    assert "step 1/" not in proc.stderr + proc.stdout


def test_unknown_verdicts_stop_the_run_failed_and_planted_secrets_leak_nowhere(tmp_path: Path, monkeypatch) -> None:
    from longwriter.testing.fake_openai_server import FakeOpenAIServer

    monkeypatch.setenv("LW_TEST_JUDGE_KEY", "sk-PLANTED-ENV-KEY")
    monkeypatch.setenv("LW_TEST_ORG_ID", "PLANTED-ENV-HEADER")
    root = tmp_path / "outputs"
    with FakeOpenAIServer(default_reply="I cannot decide.") as server:  # no verdict marker: unknown
        proc = run_cli("longwriter.train", [
            *TINY, "reward=pairwise", "judge=openai", f"judge.base_url={server.base_url}", "judge.model=fake-judge",
            "judge.api_key_env=LW_TEST_JUDGE_KEY", "+judge.extra_body.session_token=PLANTED-OVERRIDE-TOKEN",
            "+judge.extra_body.enable_thinking=false", "+judge.headers_env={X-Org: LW_TEST_ORG_ID}",
            "engine.max_steps=4", "stop_after_unknown_steps=1", "run_name=judged",
            f"paths.output_root={root}", f"paths.cache_dir={tmp_path}/.cache",
        ], check=False)
        chats = server.chat_requests
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "--- Logging error ---" not in proc.stderr
    # (the progress bar may share the error's line: it ends without a newline)
    errors = [line[line.index("error: "):] for line in proc.stderr.splitlines() if "error: " in line]
    assert len(errors) == 1 and errors[0].startswith(
        "error: no reward signal: every judge verdict was unknown for 2 steps in a row (steps 1-2)"), proc.stderr[-3000:]
    client = _client(root)
    run = client.search_runs([client.get_experiment_by_name("longwriter").experiment_id])[0]
    assert run.info.status == "FAILED" and "no reward signal" in run.data.tags["longwriter.error"]
    # The secrets were really used ...
    headers = {k.lower(): v for k, v in chats[0].headers.items()} if chats else {}
    assert headers.get("x-org") == "PLANTED-ENV-HEADER"
    assert chats[0].body["session_token"] == "PLANTED-OVERRIDE-TOKEN"
    assert headers.get("authorization") == "Bearer sk-PLANTED-ENV-KEY"
    # ... and reached no file (Hydra's, run_config, MLflow store and artifacts, judge cache) and no output.
    leaks = [str(p) for p in tmp_path.rglob("*") if p.is_file() and b"PLANTED" in p.read_bytes()]
    assert leaks == []
    assert "PLANTED" not in proc.stdout + proc.stderr
    assert (root / "train" / "judged" / ".hydra" / "overrides.yaml").exists()
    assert (tmp_path / ".cache" / "judges" / "judge_cache.sqlite").exists() or not chats
