"""Nothing lost, nothing mixed, nothing leaked (issue 13, 14.1), in-process and fast: resume restores
the run's own config and refuses changing overrides, metrics after a checkpoint are replaced,
run names are distinct, a dead judge or a run of unknown verdicts fails, secrets are hidden, a
fresh store survives concurrent first use, stale sweep trials are failed on resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from longwriter.errors import ConfigError
from longwriter.resume import RUN_CONFIG_FILE, checkpoint_step, restore_config, save_run_config
from longwriter.tracking.redact import REDACTED, is_secret_path, redact, redact_overrides

from conftest import ROOT, compose

PAIRWISE_RUN = ["model=tiny_random", "reward=pairwise", "data.limit=6", "engine.max_steps=6",
                "engine.num_generations=2"]


def _saved_run(tmp_path: Path, overrides: list[str]) -> Path:
    cfg = compose([*overrides, f"paths.output_root={tmp_path}"])
    save_run_config(cfg, tmp_path / "run")
    return tmp_path / "run"


# -- resume: the same run, or nothing ------------------------------------------------------------------

def test_resume_refuses_every_override_that_changes_what_is_trained(tmp_path: Path) -> None:
    run = _saved_run(tmp_path, PAIRWISE_RUN)
    overrides = ["model=tiny_random", "reward=length", "data.limit=36", "engine.num_generations=4",
                 "engine.max_steps=8", f"paths.output_root={tmp_path}"]
    cfg = compose([*overrides, f"resume_from={run}"])
    with pytest.raises(ConfigError) as err:
        restore_config(cfg, run, overrides=overrides, baseline=compose([]))
    message = str(err.value)
    assert message.startswith(f"resume_from={run} continues that run with its own config")
    for key in ("reward.name: 'pairwise' -> 'length'", "data.limit: 6 -> 36", "engine.num_generations: 2 -> 4"):
        assert key in message
    assert "engine.max_steps" not in message.split("A resume may change only")[0]  # a safe change


def test_a_swapped_group_is_listed_by_name_beside_the_keys_typed_into_it(tmp_path: Path) -> None:
    run = _saved_run(tmp_path, ["model=tiny_random", "data.limit=8"])   # length recipe on the default data
    # longwriter_zero's preset swaps data to builtin: its leaves are not listed one by one, data.limit is typed.
    overrides = ["reward=longwriter_zero", "data.limit=36", f"paths.output_root={tmp_path}"]
    cfg = compose([*overrides, f"resume_from={run}"])
    with pytest.raises(ConfigError) as err:
        restore_config(cfg, run, overrides=overrides, baseline=compose([]))
    listed = str(err.value).split("would change what is trained: ")[1].split(". Drop them")[0]
    assert listed == ("data.limit: 8 -> 36; data.name: 'length_prompts' -> 'builtin'; "
                      "reward.name: 'length' -> 'longwriter_zero'")


def test_resume_restores_the_run_config_and_records_safe_changes(tmp_path: Path) -> None:
    run = _saved_run(tmp_path, PAIRWISE_RUN)
    # The README's way: resume_from plus model= (which equals the run's): everything else is the run's own.
    overrides = ["model=tiny_random", "engine.max_steps=8", "engine.sample_every=1", f"paths.output_root={tmp_path}"]
    cfg = compose([*overrides, f"resume_from={run}"])
    restored, accepted = restore_config(cfg, run, overrides=overrides, baseline=compose([]))
    assert restored.reward.name == "pairwise" and restored.data.limit == 6 and restored.engine.num_generations == 2
    assert restored.engine.max_steps == 8 and restored.engine.sample_every == 1
    assert accepted == {"engine.max_steps": (6, 8), "engine.sample_every": (2, 1)}
    assert restored.resume_from == str(run)
    assert restored.run_name == OmegaConf.load(run / RUN_CONFIG_FILE).run_name  # the run keeps its name


def test_hidden_values_are_not_saved_and_come_from_the_resuming_command(tmp_path: Path) -> None:
    run = _saved_run(tmp_path, [*PAIRWISE_RUN, "judge=openai", "+judge.extra_body.session_token=PLANTED-1"])
    text = (run / RUN_CONFIG_FILE).read_text()
    assert "PLANTED-1" not in text and REDACTED in text
    overrides = ["judge=openai", "+judge.extra_body.session_token=PLANTED-2", f"paths.output_root={tmp_path}"]
    cfg = compose([*PAIRWISE_RUN, *overrides, f"resume_from={run}"])
    restored, _ = restore_config(cfg, run, overrides=[*PAIRWISE_RUN, *overrides], baseline=compose([]))
    assert restored.judge.extra_body.session_token == "PLANTED-2"


def test_resume_of_a_folder_without_its_config_is_refused(tmp_path: Path) -> None:
    cfg = compose([f"resume_from={tmp_path}"])
    with pytest.raises(ConfigError, match="has no run_config.yaml"):
        restore_config(cfg, tmp_path, overrides=[], baseline=compose([]))


def test_checkpoint_step_reads_trl_and_verl_folders() -> None:
    assert checkpoint_step(None) == 0
    assert checkpoint_step("/x/checkpoints/checkpoint-12") == 12
    assert checkpoint_step("/x/verl/global_step_7") == 7


def test_metrics_after_the_checkpoint_are_replaced_not_duplicated(tmp_path: Path) -> None:
    import mlflow

    from longwriter.tracking.mlflow_run import rewind_metrics
    from longwriter.tracking.objective import run_objective

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("e")).info.run_id
    for step in (1, 2, 3):  # the killed attempt logged step 3; its last checkpoint was step 2
        client.log_metric(run_id, "reward/total/mean", 0.1 * step, step=step)
    assert rewind_metrics(uri, run_id, after_step=2) == 1
    client.log_metric(run_id, "reward/total/mean", 0.9, step=3)  # the resumed attempt's step 3
    history = client.get_metric_history(run_id, "reward/total/mean")
    assert sorted((m.step, m.value) for m in history) == [(1, 0.1), (2, 0.2), (3, 0.9)]
    assert client.get_run(run_id).data.metrics["reward/total/mean"] == 0.9
    mlflow.set_tracking_uri(uri)
    assert run_objective(run_id) == 0.9


# -- run names -----------------------------------------------------------------------------------------

def _multirun_hydra(num: int, overrides: list[str], **extra) -> object:
    return OmegaConf.create({"mode": "MULTIRUN", "job": {"num": num}, "sweep": {"dir": "/o/multirun/20261128-0101"},
                             "overrides": {"task": overrides}, **extra})


def test_multirun_jobs_get_distinct_readable_names(monkeypatch) -> None:
    from hydra.types import RunMode

    from longwriter import run_names

    monkeypatch.setattr(sys, "argv", ["train", "-m", "reward=length,longwriter_zero", "engine.max_steps=2"])
    cfg = OmegaConf.create({"run_name": "20261128-010101"})
    names = []
    for num, reward in enumerate(["length", "longwriter_zero"]):
        hydra_cfg = _multirun_hydra(num, [f"reward={reward}", "engine.max_steps=2"])
        hydra_cfg.mode = RunMode.MULTIRUN
        names.append(run_names.job_run_name(cfg, hydra_cfg))
    assert names == ["20261128-0101-0-reward=length", "20261128-0101-1-reward=longwriter_zero"]
    hydra_cfg = _multirun_hydra(3, ["run_name=mine", "engine.learning_rate=2.1234e-05"],
                                sweeper={"study_name": "s", "params": {"engine.learning_rate": "interval(1,2)"}})
    hydra_cfg.mode = RunMode.MULTIRUN
    assert run_names.job_run_name(cfg, hydra_cfg) == "mine-3-learning_rate=2.12e-05"


def test_swept_keys_come_from_sweep_syntax_and_the_search_space() -> None:
    from longwriter.run_names import swept_keys

    hydra_cfg = OmegaConf.create({"sweeper": {"params": {"engine.beta": "interval(0,1)"}}})
    argv = ["-m", "reward=length,pairwise", "engine.lr=choice(1,2)", "engine.lora.target_modules=[a,b]", "x=1"]
    assert swept_keys(hydra_cfg, argv) == ["engine.beta", "reward", "engine.lr"]


# -- a training that cannot get rewards fails -----------------------------------------------------------

def test_a_streak_of_all_unknown_steps_stops_the_run_past_the_limit() -> None:
    from longwriter.training_guards import RewardSignalLost, UnknownVerdictStreak

    streak = UnknownVerdictStreak(2, "judge endpoint http://127.0.0.1:9/v1")
    assert streak.update({"judge/unknown_rate": 1.0}, 1)["judge/all_unknown_streak"] == 1
    assert streak.update({"judge/unknown_rate": 0.5}, 2)["judge/all_unknown_streak"] == 0  # one verdict resets
    streak.update({"judge/unknown_rate": 1.0}, 3)
    streak.update({"quality/unknown_rate": 1.0}, 4)
    with pytest.raises(RewardSignalLost) as err:
        streak.update({"judge/unknown_rate": 1.0}, 5)
    assert "every judge verdict was unknown for 3 steps in a row (steps 3-5)" in str(err.value)
    assert "stop_after_unknown_steps=2" in str(err.value) and "http://127.0.0.1:9/v1" in str(err.value)
    assert UnknownVerdictStreak(0).update({"judge/unknown_rate": 1.0}, 1)  # 0: counted, never stops
    assert UnknownVerdictStreak(3).update({"reward/length/mean": 0.2}, 1) == {}  # nothing judged


def test_a_recipe_that_needs_references_refuses_data_without_them(tmp_path: Path) -> None:
    from longwriter.data.schema import Sample
    from longwriter.rewards import recipe_needs
    from longwriter.training_guards import require_references

    samples = [Sample(id="a", prompt="Write 300 words.", references=["ref"]), Sample(id="b", prompt="Write.")]
    require_references(recipe_needs({"components": {"length": {}}}), samples, "jsonl")
    with pytest.raises(ConfigError, match=r"1 of 2 samples of data=jsonl have none \(e.g. b\)"):
        require_references(recipe_needs({"components": {"pairwise": {}, "length": {}}}), samples, "jsonl")


async def _open_clients(backend) -> int:
    """How many HTTP clients the OpenAI backend still holds on the running loop (0 once closed)."""
    return int(backend._clients.pop_current() is not None)


def test_a_dead_judge_is_one_message_naming_the_endpoint_and_the_fix() -> None:
    import socket

    from longwriter.async_utils import BackgroundLoop
    from longwriter.judges import JudgeError
    from longwriter.judges.lifecycle import build_judge, judge_on_loop

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = build_judge({"backend": "openai", "base_url": f"http://127.0.0.1:{port}/v1",
                           "api_key_required": False, "timeout_s": 5}, cache_dir=None)
    loop = BackgroundLoop()
    try:
        with pytest.raises(JudgeError) as err:
            with judge_on_loop(backend, loop):   # what the TRL run does before its first step
                pytest.fail("a dead judge passed the check")
        assert loop.run(_open_clients(backend)) == 0  # the failed check closed its client on that loop
    finally:
        loop.close()
    assert f"judge endpoint http://127.0.0.1:{port}/v1 unreachable" in str(err.value)
    assert "start the server or set judge.base_url" in str(err.value)


def test_the_progress_line_reads_na_for_a_step_without_verdicts() -> None:
    from longwriter.engines.trl_engine.callbacks import _number

    assert _number(None, ".3f") == "n/a" and _number(float("nan"), ".2f") == "n/a"
    assert _number(0.25, ".2f") == "0.25"


# -- secrets nowhere -------------------------------------------------------------------------------------

def test_secret_like_keys_and_provider_extras_are_hidden_everywhere_they_are_written() -> None:
    assert redact({"judge": {"extra_body": {"enable_thinking": False, "x": "PLANTED"},
                             "headers": {"X-Org": "PLANTED"}, "headers_env": {"X-Org": "ORG_VAR"}}}) == {
        "judge": {"extra_body": {"enable_thinking": REDACTED, "x": REDACTED},
                  "headers": {"X-Org": REDACTED}, "headers_env": {"X-Org": "ORG_VAR"}}}
    assert redact_overrides(["+judge.extra_body.x=PLANTED", "judge.extra_body={a: PLANTED}", "+judge.api_key=PLANTED",
                             "engine.max_steps=2", "+hub_token=PLANTED", "judge.api_key_env=MY_VAR"]) == [
        f"+judge.extra_body.x={REDACTED}", f"judge.extra_body={REDACTED}", f"+judge.api_key={REDACTED}",
        "engine.max_steps=2", f"+hub_token={REDACTED}", "judge.api_key_env=MY_VAR"]
    assert is_secret_path("judge.headers.Authorization") and not is_secret_path("judge.max_tokens")


def test_provider_headers_and_body_fields_come_from_the_environment(monkeypatch) -> None:
    from longwriter.judges import JudgeError
    from longwriter.judges.openai_backend import OpenAIBackend, OpenAISettings

    monkeypatch.setenv("LW_TEST_ORG", "PLANTED-ORG")
    settings = OpenAISettings(api_key_required=False, extra_body={"enable_thinking": False},
                              headers_env={"OpenAI-Organization": "LW_TEST_ORG"},
                              extra_body_env={"session": "LW_TEST_ORG"})
    backend = OpenAIBackend(settings)
    assert backend._request([{"role": "user", "content": "hi"}], 8)["session"] == "PLANTED-ORG"
    assert "PLANTED" not in backend.identity and "PLANTED" not in repr(backend)
    assert "False" not in backend.identity  # extra_body values reach the cache identity only as a digest
    monkeypatch.delenv("LW_TEST_ORG")
    with pytest.raises(JudgeError, match="judge.headers_env.OpenAI-Organization names the environment variable "
                                         "LW_TEST_ORG, which is not set"):
        OpenAIBackend(settings)


def test_hydra_files_are_written_redacted(tmp_path: Path) -> None:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from longwriter.hydra_guard import save_redacted_hydra_files
    from longwriter.paths import CONF_DIR

    overrides = ["judge=openai", "+judge.extra_body.session_token=PLANTED", f"paths.output_root={tmp_path}"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose("train", overrides=overrides, return_hydra_config=True)
    save_redacted_hydra_files(cfg, tmp_path / ".hydra")
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        text = (tmp_path / ".hydra" / name).read_text()
        assert "PLANTED" not in text and REDACTED in text, name
    assert OmegaConf.load(tmp_path / ".hydra" / "config.yaml").judge.model == "gpt-4o-mini"


# -- MLflow store: concurrent first use; sweeps: stale trials ---------------------------------------------

def test_concurrent_first_use_of_a_fresh_store_is_safe(tmp_path: Path) -> None:
    code = ("import sys; from omegaconf import OmegaConf; from longwriter.tracking.mlflow_run import _setup_experiment;"
            "print(_setup_experiment(OmegaConf.create({'tracking_uri': sys.argv[1], 'experiment_name': 'longwriter'})))")
    uri = f"sqlite:///{tmp_path}/fresh/mlflow.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code, uri], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in results]
    assert len({out.strip() for out, _ in results}) == 1  # one experiment, seen by all


def test_a_resumed_study_fails_the_trials_and_runs_its_killed_process_left_running(tmp_path: Path) -> None:
    import mlflow
    import optuna

    from longwriter.tracking.sweep_callback import ERROR_TAG, HOST_TAG, PID_TAG, mark_stale_trials

    storage = f"sqlite:///{tmp_path}/studies.db"
    study = optuna.create_study(study_name="s", storage=storage)
    study.tell(study.ask(), 1.0)
    killed = study.ask()  # the trial that was running when the sweep got SIGKILL
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.create_experiment("e")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    parent = client.create_run(experiment, tags={PID_TAG: dead.stdout.strip(), HOST_TAG: socket.gethostname()})
    child = client.create_run(experiment, tags={"mlflow.parentRunId": parent.info.run_id})
    assert mark_stale_trials(client, experiment, parent.info.run_id, "s", storage) == 1
    assert study.trials[killed.number].state == optuna.trial.TrialState.FAIL
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE
    child_run = client.get_run(child.info.run_id)
    assert child_run.info.status == "FAILED" and child_run.data.tags[ERROR_TAG].startswith("stale:")
    # A parent whose process is alive (another invocation of the study) is left alone.
    live = client.create_run(experiment, tags={PID_TAG: str(os.getppid()), HOST_TAG: socket.gethostname()})
    study.ask()
    assert mark_stale_trials(client, experiment, live.info.run_id, "s", storage) == 0
