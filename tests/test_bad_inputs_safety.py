"""Every silent or confusing input of issue 13 gets one clear message: what was wrong and the fix.
Early ones are checked through the real CLI (they stop before anything heavy is imported, and
before anything is written); the others in-process, at the function that reads the input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from longwriter.errors import LongwriterError

from conftest import compose, run_cli


def _error_line(proc) -> str:
    assert proc.returncode == 2, (proc.stdout[-2000:], proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_max_steps_zero_is_refused_instead_of_training_one_step(tmp_path: Path) -> None:
    proc = run_cli("longwriter.train", ["model=tiny_random", "engine.max_steps=0", f"paths.output_root={tmp_path}"],
                   check=False)
    assert _error_line(proc) == ("error: engine.max_steps=0: must be a whole number of GRPO steps, at least 1 "
                                 "(e.g. engine.max_steps=50), or null for engine.num_train_epochs passes over the data")


def test_resume_from_a_folder_that_is_not_a_run_writes_nothing_into_it(tmp_path: Path) -> None:
    folder = tmp_path / "notarun"
    folder.mkdir()
    proc = run_cli("longwriter.train", ["model=tiny_random", f"resume_from={folder}", f"paths.output_root={tmp_path}"],
                   check=False)
    assert _error_line(proc).startswith(f"error: resume_from={folder} is not a folder of an earlier run")
    assert list(folder.iterdir()) == []  # no .hydra/, no train.log


def test_an_existing_run_name_is_refused_unless_resuming(tmp_path: Path) -> None:
    run = tmp_path / "train" / "mine"
    run.mkdir(parents=True)
    (run / "mlflow_run.json").write_text(json.dumps({"run_id": "0" * 32}))
    proc = run_cli("longwriter.train", ["model=tiny_random", "run_name=mine", f"paths.output_root={tmp_path}"],
                   check=False)
    assert _error_line(proc) == (f"error: run_name=mine is taken: {run} holds an earlier run; choose another "
                                 f"run_name, or continue that run with resume_from={run}")
    assert sorted(p.name for p in run.iterdir()) == ["mlflow_run.json"]


def test_a_sweep_preset_without_multirun_says_to_add_m(tmp_path: Path) -> None:
    proc = run_cli("longwriter.train", ["sweep=length_lr_beta", f"paths.output_root={tmp_path}"], check=False)
    assert _error_line(proc) == ("error: sweep=length_lr_beta is an Optuna sweep preset and needs multirun: add -m, "
                                 "e.g. `python -m longwriter.train -m sweep=length_lr_beta ...`")
    assert not (tmp_path / "train").exists()
    proc = run_cli("longwriter.train", ["sweep=seeds", f"paths.output_root={tmp_path}"], check=False)
    assert _error_line(proc) == ("error: sweep=seeds is a multirun preset and needs multirun: add -m, "
                                 "e.g. `python -m longwriter.train -m sweep=seeds ...`")


def test_an_empty_jsonl_names_the_file_not_the_data_selection(tmp_path: Path) -> None:
    from longwriter.training_setup import load_training_samples

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(LongwriterError) as err:
        load_training_samples(compose(["data=jsonl", f"data.path={empty}"]))
    assert str(err.value) == (f"data=jsonl ({empty}) has no samples: give a file with one sample (a JSON object with "
                              f"at least `prompt`) per line, or choose another data=")


def test_a_missing_local_model_folder_is_not_told_to_pass_a_local_folder(tmp_path: Path) -> None:
    from longwriter.models import resolve_model_path

    with pytest.raises(LongwriterError) as err:
        resolve_model_path({"name": "mine", "source": "hub", "hub_id": "/path/that/does/not/exist"}, tmp_path)
    assert str(err.value) == ("model.hub_id=/path/that/does/not/exist looks like a local path, but there is no "
                              "folder there; pass an existing folder holding the model's config.json and weights, "
                              "or a Hugging Face repo id (owner/name)")


def test_malformed_json_reads_once_at_column(tmp_path: Path) -> None:
    from longwriter.data.loaders import read_samples_jsonl

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "unterminated')  # the last line, without its newline
    with pytest.raises(LongwriterError) as err:
        read_samples_jsonl(bad)
    assert str(err.value) == f"{bad}:1: invalid JSON (Unterminated string starting at column 12)"


def test_the_parquet_presets_advice_data_format_verl_parquet_composes(tmp_path: Path) -> None:
    cfg = compose(["data=parquet", "data.format=verl_parquet", f"data.path={tmp_path}/x.parquet"])
    assert cfg.data.format == "verl_parquet"
    assert "set data.format=verl_parquet" in (Path(__file__).parents[1] / "conf/data/parquet.yaml").read_text()


def test_evaluate_with_a_bad_data_path_leaves_no_mlflow_run(tmp_path: Path) -> None:
    from longwriter.evaluation.runner import run_evaluate

    cfg = compose(["model=tiny_random", "data=jsonl", f"data.path={tmp_path}/missing.jsonl",
                   f"paths.output_root={tmp_path}"], config_name="evaluate")
    with pytest.raises(LongwriterError, match="data file not found"):
        run_evaluate(cfg)
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "evaluate").exists()
