"""`python -m longwriter.prepare`: the config, a WritingBench file that keeps its checklist criteria,
margin-aware selection through the real CLI into MLflow, and (slow) training on a prepared file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ROOT, SHARED_BENCHMARKS, cfg_job, compose, run_cli
from longwriter.data.loaders import load_samples
from longwriter.testing.fake_openai_server import FakeOpenAIServer
from test_selection import MARGIN_ROWS, _write_jsonl, scripted_judge

WB_FILE = SHARED_BENCHMARKS / "writingbench_length" / "length_subset.jsonl"


def _client(output_root: Path):
    import mlflow

    uri = f"sqlite:///{output_root}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    return mlflow.MlflowClient(uri)


def _run_named(output_root: Path, name: str):
    client = _client(output_root)
    (run,) = [r for r in client.search_runs([client.get_experiment_by_name("longwriter").experiment_id])
              if r.info.run_name == name]
    return client, run


@pytest.fixture(scope="module")
def shared_root(tmp_path_factory) -> Path:
    """One MLflow store for the in-process tests of this module (creating a store takes seconds)."""
    return tmp_path_factory.mktemp("prepare") / "outputs"


def test_prepare_config_defaults_and_cfg_job_without_heavy_imports(tmp_path: Path) -> None:
    cfg = compose([], config_name="prepare")
    assert cfg.data_selection.name == "all" and cfg.model.name == "smollm2_135m" and cfg.judge.name == "local_hf"
    assert cfg.prepare.output == f"{ROOT}/outputs/prepared/builtin-all.jsonl"
    assert list(cfg.prepare.references.writers) == []
    margin = compose(["data_selection=margin_aware", "data=writingbench"], config_name="prepare")
    assert margin.prepare.output.endswith("/prepared/writingbench-margin_aware.jsonl")
    printed, heavy = cfg_job("longwriter.prepare", ["data_selection=margin_aware"], tmp_path)
    assert "top_k" in printed and heavy == []


def test_prepare_rejects_an_unknown_output_suffix(tmp_path: Path) -> None:
    from longwriter.errors import ConfigError
    from longwriter.prepare import output_path

    with pytest.raises(ConfigError, match="prepare.output"):
        output_path(compose([f"prepare.output={tmp_path}/x.csv"], config_name="prepare"))


@pytest.mark.skipif(not WB_FILE.exists(), reason=f"shared WritingBench file not found at {WB_FILE}")
def test_prepare_writingbench_keeps_checklist_criteria_and_logs_the_run(shared_root: Path, tmp_path: Path) -> None:
    from longwriter.data.verl_parquet import import_verl_parquet
    from longwriter.prepare import run_prepare

    out = tmp_path / "wb.jsonl"
    cfg = compose(["data=writingbench", "data.limit=6", f"paths.output_root={shared_root}", f"prepare.output={out}",
                   "prepare.verl_parquet=true", "model=tiny_random", "prepare.max_prompt_tokens=1024", "run_name=wb"],
                  config_name="prepare")
    metrics = run_prepare(cfg)
    # The first 6 (shuffle_seed 0) have 1565, 228, 26328, 615, 675 and 1866 tokens with the chat template.
    assert (metrics["prepare/loaded"], metrics["prepare/kept"], metrics["prepare/dropped/prompt_too_long"]) == (6, 3, 3)
    samples = load_samples({"name": "jsonl", "path": str(out), "shuffle_seed": None})
    assert [s.id for s in samples] == ["length_subset-179", "length_subset-297", "length_subset-236"]
    assert all(len(s.criteria) == 5 for s in samples)
    assert all(":" in c for s in samples for c in s.criteria)  # "Name: description" of each checklist item
    assert samples == [s for s in load_samples(cfg.data) if s.id in {x.id for x in samples}]  # otherwise unchanged
    assert import_verl_parquet(tmp_path / "wb.verl.parquet") == samples

    client, run = _run_named(shared_root, "wb")
    assert run.data.tags["prepare.output_path"] == str(out) and run.data.tags["kind"] == "prepare"
    assert run.data.params["data.name"] == "writingbench" and run.data.metrics["prepare/kept"] == 3
    dataset = {a.path for a in client.list_artifacts(run.info.run_id, "prepare/dataset")}
    assert dataset == {"prepare/dataset/wb.jsonl", "prepare/dataset/wb.verl.parquet"}


MARGIN_OVERRIDES = ["model=tiny_random", "data=jsonl", "data.shuffle_seed=null", "data_selection=margin_aware",
                    "data_selection.generation.max_new_tokens=8", "data_selection.generation_cache=null",
                    "judge=vllm_server", "judge.model=fake-judge", "judge.cache=false"]


def _check_margin_run(output_root: Path, out: Path, run_name: str) -> None:
    kept = load_samples({"name": "jsonl", "path": str(out), "shuffle_seed": None})
    assert [(s.id, s.start_level) for s in kept] == [("m1", 1), ("m2", 1), ("m6", 0)]
    assert kept[0].references == ["QUALITY-3 weak", "QUALITY-6 mid", "QUALITY-8 strong"]

    client, run = _run_named(output_root, run_name)
    metrics = run.data.metrics
    assert (metrics["prepare/loaded"], metrics["prepare/kept"], metrics["prepare/dropped/total"]) == (7, 3, 4)
    assert metrics["prepare/dropped/below_threshold"] == 1 and metrics["prepare/dropped/no_references"] == 1
    assert metrics["prepare/dropped/unknown_policy_score"] == 1 and metrics["prepare/dropped/no_scored_reference"] == 1
    assert metrics["prepare/margin/mean"] == pytest.approx((3 + 5 - 2 + 4) / 4)
    assert metrics["prepare/margin_kept/min"] == 3 and metrics["prepare/judge/requests"] == 17
    assert run.data.params["data_selection.name"] == "margin_aware"
    assert run.data.tags["prepare.output_path"] == str(out)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "prepare")}
    assert {"prepare/margin_hist.png", "prepare/samples.json", "prepare/summary.json"} <= artifacts
    table = json.loads(Path(client.download_artifacts(run.info.run_id, "prepare/samples.json")).read_text())
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    assert [r["reason"] for r in rows] == [None, None, "below_threshold", "no_references", "unknown_policy_score",
                                           None, "no_scored_reference"]
    assert {a.path for a in client.list_artifacts(run.info.run_id, "prepare/dataset")} == {f"prepare/dataset/{out.name}"}


def test_prepare_margin_aware_logs_counts_histogram_and_file(shared_root: Path, tmp_path: Path) -> None:
    from longwriter.prepare import run_prepare

    data = _write_jsonl(tmp_path / "margin.jsonl", MARGIN_ROWS)
    out = tmp_path / "selected.jsonl"
    with FakeOpenAIServer(scripted_judge) as server:
        cfg = compose([*MARGIN_OVERRIDES, f"data.path={data}", f"judge.base_url={server.base_url}",
                       f"paths.output_root={shared_root}", f"prepare.output={out}", "run_name=margin"],
                      config_name="prepare")
        run_prepare(cfg)
    _check_margin_run(shared_root, out, "margin")


@pytest.mark.slow
def test_prepare_cli_margin_aware(output_root: Path, tmp_path: Path) -> None:
    """The same selection through the real command line (a subprocess, as a user runs it)."""
    data = _write_jsonl(tmp_path / "margin.jsonl", MARGIN_ROWS)
    out = tmp_path / "selected.jsonl"
    with FakeOpenAIServer(scripted_judge) as server:
        run_cli("longwriter.prepare", [*MARGIN_OVERRIDES, f"data.path={data}", f"judge.base_url={server.base_url}",
                                       f"paths.output_root={output_root}", f"prepare.output={out}",
                                       "run_name=margin-cli"], timeout=600)
    _check_margin_run(output_root, out, "margin-cli")


@pytest.mark.slow
@pytest.mark.skipif(not WB_FILE.exists(), reason=f"shared WritingBench file not found at {WB_FILE}")
def test_training_runs_on_a_prepared_writingbench_file(output_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "wb.jsonl"
    run_cli("longwriter.prepare", ["data=writingbench", "model=tiny_random", "prepare.max_prompt_tokens=1024",
                                   f"paths.output_root={output_root}", f"prepare.output={out}", "run_name=prep"])
    assert len(load_samples({"name": "jsonl", "path": str(out), "shuffle_seed": None})) == 136  # of 222
    run_cli("longwriter.train", ["model=tiny_random", "data=jsonl", f"data.path={out}", "engine.max_steps=2",
                                 "engine.prompts_per_step=2", "engine.num_generations=2",
                                 "engine.max_completion_length=16", "engine.save_steps=2",
                                 f"paths.output_root={output_root}", "run_name=train-on-prepared"])
    client = _client(output_root)
    runs = client.search_runs([client.get_experiment_by_name("longwriter").experiment_id])
    train = next(r for r in runs if r.info.run_name == "train-on-prepared")
    assert [m.step for m in client.get_metric_history(train.info.run_id, "train/loss")] == [1, 2]
    assert train.data.params["data.path"] == str(out)
