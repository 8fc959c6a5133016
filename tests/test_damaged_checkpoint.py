"""A damaged checkpoint never stops a resume with a traceback (issue 22 item 5).

A save is published by `checkpoint_complete.json`, written last (temporary name, then rename) with
every file's size; a resume takes the newest intact checkpoint and says in one line which damaged
one it skipped, or stops with one `error:` line when none is intact, before the MLflow run reopens.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from longwriter.resume import (
    CHECKPOINT_COMPLETE_FILE,
    DamagedCheckpointError,
    checkpoint_problem,
    mark_checkpoint_complete,
    newest_intact_checkpoint,
)


def _checkpoint(root: Path, step: int, mark: bool = True) -> Path:
    from safetensors.numpy import save_file

    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    save_file({"w": np.arange(64, dtype=np.float32)}, str(folder / "model.safetensors"))
    (folder / "optimizer.pt").write_bytes(b"x" * 100)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    if mark:
        mark_checkpoint_complete(folder)
    return folder


def _cut_short(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_a_marked_checkpoint_is_intact_until_a_file_is_cut_short(tmp_path):
    folder = _checkpoint(tmp_path, 2)
    listed = json.loads((folder / CHECKPOINT_COMPLETE_FILE).read_text())
    assert listed["step"] == 2 and set(listed["files"]) == {"model.safetensors", "optimizer.pt", "trainer_state.json"}
    assert checkpoint_problem(folder) is None
    _cut_short(folder / "optimizer.pt")
    assert checkpoint_problem(folder) == "optimizer.pt is 50 bytes, 100 when saved"


def test_an_unmarked_checkpoint_is_a_save_that_did_not_finish(tmp_path):
    folder = _checkpoint(tmp_path, 2, mark=False)
    assert checkpoint_problem(folder) == f"the save did not finish (no {CHECKPOINT_COMPLETE_FILE})"


def test_a_run_from_before_the_marks_is_checked_by_its_files(tmp_path):
    folder = _checkpoint(tmp_path, 2, mark=False)
    assert checkpoint_problem(folder, marker_expected=False) is None
    _cut_short(folder / "model.safetensors")
    assert checkpoint_problem(folder, marker_expected=False).startswith("model.safetensors is cut short")
    (folder / "model.safetensors").write_bytes(b"")
    assert checkpoint_problem(folder, marker_expected=False) == "model.safetensors has no readable safetensors header (0 bytes)"
    folder = _checkpoint(tmp_path, 3, mark=False)
    (folder / "trainer_state.json").unlink()
    assert "trainer_state.json is missing" in checkpoint_problem(folder, marker_expected=False)


def test_resume_skips_a_damaged_newest_checkpoint_in_one_line(tmp_path, caplog):
    _checkpoint(tmp_path, 2)
    newest = _checkpoint(tmp_path, 3)
    _cut_short(newest / "model.safetensors")
    with caplog.at_level(logging.WARNING, logger="longwriter.resume"):
        assert newest_intact_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("resume: skipping damaged checkpoint checkpoint-3 (model.safetensors is ")
    assert line.endswith("; resuming from checkpoint-2") and "\n" not in line
    # unpublished until a save rewrites it whole: its old mark cannot vouch for a half re-save
    assert not (newest / CHECKPOINT_COMPLETE_FILE).exists()


def test_resume_without_an_intact_checkpoint_stops_with_one_message(tmp_path):
    only = _checkpoint(tmp_path, 1)
    _cut_short(only / "model.safetensors")
    with pytest.raises(DamagedCheckpointError, match=r"^resume_from=run: no intact checkpoint to resume from: "
                                                      r"checkpoint-1 \(model.safetensors is .*\). Delete the damaged"):
        newest_intact_checkpoint(tmp_path, "resume_from=run")
    assert newest_intact_checkpoint(tmp_path / "none") is None  # no checkpoint yet: start from step 0


@pytest.mark.slow
def test_resume_after_a_save_cut_short_falls_back_or_stops_cleanly(tmp_path):
    import mlflow

    from conftest import TINY_RUN, run_cli

    run_dir = tmp_path / "train" / "d"
    run_cli("longwriter.train", [*TINY_RUN, "data.limit=8", "engine.max_steps=3", "engine.save_steps=1",
                                 f"paths.output_root={tmp_path}", "run_name=d"])
    checkpoints = run_dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]  # limit 2
    assert all((checkpoints / name / CHECKPOINT_COMPLETE_FILE).exists() for name in ("checkpoint-2", "checkpoint-3"))
    run_id = json.loads((run_dir / "mlflow_run.json").read_text())["run_id"]
    _cut_short(checkpoints / "checkpoint-3" / "model.safetensors")  # what a kill or a full disk leaves

    # 1. the newest is damaged: one line says so, the run continues from checkpoint-2 to the end
    resumed = run_cli("longwriter.train", [f"resume_from={run_dir}", f"paths.output_root={tmp_path}"])
    output = resumed.stdout + resumed.stderr
    assert "Traceback" not in output
    [line] = [ln for ln in output.splitlines() if "skipping damaged checkpoint" in ln]
    assert "checkpoint-3 (model.safetensors is " in line and line.endswith("resuming from checkpoint-2")
    assert checkpoint_problem(checkpoints / "checkpoint-3") is None  # saved again, whole

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("longwriter").experiment_id])
    assert [(r.info.run_id, r.info.status) for r in runs] == [(run_id, "FINISHED")]
    steps = sorted(m.step for m in client.get_metric_history(run_id, "reward/total/mean"))
    assert steps == [1, 2, 3]  # step 3 logged again, once

    # 2. every checkpoint damaged: one error line, exit 2, the MLflow run untouched
    for name in ("checkpoint-2", "checkpoint-3"):
        _cut_short(checkpoints / name / "model.safetensors")
    stopped = run_cli("longwriter.train", [f"resume_from={run_dir}", f"paths.output_root={tmp_path}"], check=False)
    assert stopped.returncode == 2 and "Traceback" not in stopped.stdout + stopped.stderr
    [error] = [ln for ln in stopped.stderr.splitlines() if ln.startswith("error:")]
    assert f"error: resume_from={run_dir}: no intact checkpoint to resume from: checkpoint-3 (" in error
    runs = client.search_runs([client.get_experiment_by_name("longwriter").experiment_id])
    assert [(r.info.run_id, r.info.status) for r in runs] == [(run_id, "FINISHED")]
