"""The supervised warm-up (`python -m longwriter.sft`, docs/sft.md): its data and templates, its
checks before anything loads, and end to end on the tiny model: the saved folder starts an RL run
that names the SFT run as its policy's origin."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

from longwriter.data.schema import DataError
from longwriter.errors import ConfigError

from conftest import TINY_RUN, compose, run_cli

SHORT_PAIRS = [
    {"prompt": "Write two sentences about rain on a tin roof.",
     "response": "Rain drummed on the tin roof all night. By morning the yard was a shallow silver lake."},
    {"prompt": "Describe a cat waking up, in one sentence.",
     "response": "The cat stretched one paw, then the other, and blinked at the sun as if it owed her money."},
    {"id": "mine-3", "prompt": [{"role": "user", "content": "Name three colours of autumn leaves."}],
     "response": "Amber, rust and a deep wine red."},
    {"prompt": "Write a haiku about a train station at dawn.",
     "response": "Empty platform hums\nthe first train breathes out its doors\ncold coffee, warm hands"},
]


def _pairs(tmp_path: Path, rows: list[dict], name: str = "pairs.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _heldout_prompt() -> str:
    first = Path(__file__).resolve().parents[1] / "longwriter" / "data" / "length_heldout.jsonl"
    return json.loads(first.read_text().splitlines()[0])["prompt"][0]["content"]


# ---- data and templates -------------------------------------------------------------------------

def test_the_think_answer_template_is_what_the_format_reward_counts_valid() -> None:
    from longwriter.prompting import apply_prompt_template
    from longwriter.rewards.format import FormatComponent, FormatConfig
    from longwriter.sft_data import build_sft_data

    data = build_sft_data(compose(["sft.template=think_answer"], config_name="sft"))
    reward = FormatComponent(FormatConfig(variant="think"))
    assert len(data.examples) == 28  # data=builtin's 36 prompts less the 8 that RL evaluates on
    for example in data.examples:
        assert reward.check(example.completion)[:2] == (1.0, True), example.completion
        assert example.completion.startswith("<think>\nThe request: ")
        assert example.completion.endswith("\n</answer>")
        # The prompt RL's reward=longwriter_zero (prompt_template think) shows, word for word.
        user = [m for m in example.prompt if m["role"] == "user"]
        assert example.prompt == apply_prompt_template(user, "think")


def test_the_plain_template_trains_on_the_strongest_reference_as_it_is() -> None:
    from longwriter.data.loaders import load_samples
    from longwriter.sft_data import build_sft_data

    cfg = compose([], config_name="sft")
    builtin = {s.id: s for s in load_samples(cfg.data)}
    data = build_sft_data(cfg)
    for example in data.examples:
        assert example.completion == builtin[example.sample_id].references[-1]
        assert example.prompt == builtin[example.sample_id].prompt
    every = build_sft_data(compose(["sft.all_references=true"], config_name="sft"))
    assert len(every.examples) == 3 * len(data.examples)


def test_sft_data_never_holds_an_rl_evaluation_prompt(tmp_path: Path) -> None:
    from longwriter.data.loaders import load_samples
    from longwriter.sft_data import build_sft_data

    cfg = compose([], config_name="sft")
    rl_eval = {s.id for s in load_samples({**dict(cfg.data), "limit": 8})}  # experiment=writing_rl_cpu_testenv's
    data = build_sft_data(cfg)
    assert {d["id"] for d in data.dropped_holdout} == rl_eval
    assert not rl_eval & {e.sample_id for e in data.examples}
    # A pairs file that repeats a held-out prompt under another id, case and spacing: dropped by its text.
    prompt = "  " + _heldout_prompt().upper().replace(" ", "   ") + " "
    path = _pairs(tmp_path, [*SHORT_PAIRS, {"id": "copied", "prompt": prompt, "response": "Short."}])
    data = build_sft_data(compose(["data=pairs", f"data.path={path}"], config_name="sft"))
    assert data.dropped_holdout == [{"id": "copied", "holdout": "length_heldout", "match": "prompt"}]
    assert len(data.examples) == len(SHORT_PAIRS)
    with pytest.raises(DataError, match=r"^1 of 5 SFT samples are RL evaluation prompts \(length_heldout\): copied; "
                                        r"SFT must not train on them"):
        build_sft_data(compose(["data=pairs", f"data.path={path}", "sft.on_holdout_overlap=error"],
                               config_name="sft"))


def test_pairs_rows_get_ids_and_keep_their_other_fields(tmp_path: Path) -> None:
    from longwriter.data.loaders import load_samples

    path = _pairs(tmp_path, SHORT_PAIRS[:3])
    samples = load_samples({"name": "pairs", "path": str(path), "shuffle_seed": None})
    assert [s.id for s in samples[:3]] == ["pairs-1", "pairs-2", "mine-3"]
    assert samples[0].references == [SHORT_PAIRS[0]["response"]] and samples[0].source == "pairs"
    renamed = _pairs(tmp_path, [{"q": "Say hi.", "a": "Hi.", "length_range": [1, 5]}], "renamed.jsonl")
    sample, = load_samples({"name": "pairs", "path": str(renamed), "prompt_field": "q", "response_field": "a"})
    assert (sample.user_prompt, sample.references, sample.length_range) == ("Say hi.", ["Hi."], (1, 5))


# ---- bad input: one clear error before any model loads ------------------------------------------

@pytest.fixture
def tripwires(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model load or an MLflow run fails the test (the checks must come first)."""
    import longwriter.models
    import longwriter.tracking.mlflow_run

    def reached(*args, **kwargs):
        raise AssertionError("a model was loaded or an MLflow run opened before the input was checked")

    monkeypatch.setattr(longwriter.models, "resolve_model_path", reached)
    monkeypatch.setattr(longwriter.tracking.mlflow_run, "mlflow_run", reached)


def _sft_cli(overrides: list[str], monkeypatch: pytest.MonkeyPatch, capsys) -> str:
    """`python -m longwriter.sft <overrides>` in this process: its one `error:` line (exit code 2)."""
    monkeypatch.setattr(sys, "argv", ["longwriter.sft", *overrides])
    capsys.readouterr()  # only this command's output (an earlier in-process Hydra run may have left log handlers)
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("longwriter.sft", run_name="__main__")
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _bad_input_cases(tmp_path: Path) -> list[tuple[list[str], str]]:
    """(overrides, the exact error line)."""
    from longwriter.data.loaders import load_samples

    first_kept = load_samples(compose(["data=length_prompts"], config_name="sft").data)[8].id  # 8 are held out
    missing = _pairs(tmp_path, [SHORT_PAIRS[0], {"prompt": "Write a limerick about a cat."}], "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    return [
        (["data=pairs", f"data.path={missing}"],
         f"error: {missing}:2: field 'response' must be a non-empty string, got missing"),
        (["data=pairs", f"data.path={empty}"],
         f"error: {empty} is empty: give one JSON object with `prompt` and `response` per line"),
        (["data=jsonl", f"data.path={empty}"],
         f"error: data=jsonl ({empty}) has no samples: SFT needs prompt/response pairs (data=pairs: one JSON "
         f"object with `prompt` and `response` per line; or data=builtin)"),
        (["sft.template=poem"], "error: sft.template='poem': must be one of plain, think_answer"),
        (["data=length_prompts"], f"error: data=length_prompts: sample '{first_kept}' has no response to train on (no "
         f"references); SFT needs prompt/response pairs: data=pairs data.path=<a JSONL with `prompt` and "
         f"`response` per line>, or a data set with references (data=builtin)"),
        (["sft.batch_size=3", "sft.gradient_accumulation_steps=2"],
         "error: sft.gradient_accumulation_steps=2 must divide sft.batch_size=3 (the step's batch is split into "
         "that many micro batches)"),
        ([f"model.path={tmp_path / 'nope'}"],
         f"error: model.path={tmp_path / 'nope'}: no folder there; pass the folder a run saved (an SFT run's "
         f"model/ or a training run's final_model/), holding config.json, the weights and the tokenizer"),
    ]


def test_bad_sft_input_is_one_error_line_before_any_model_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys, tripwires) -> None:
    for overrides, expected in _bad_input_cases(tmp_path):
        out = tmp_path / "outputs"
        line = _sft_cli(["model=tiny_random", f"paths.output_root={out}", *overrides], monkeypatch, capsys)
        assert line == expected, (line, expected)
        assert not (out / "mlflow.db").exists() and not list(out.glob("sft/*/mlflow_run.json"))


def test_a_sample_without_a_response_names_the_way_to_give_one() -> None:
    from longwriter.sft_data import build_sft_data

    with pytest.raises(DataError, match=r"has no response to train on \(no references\); SFT needs prompt/response "
                                        r"pairs: data=pairs data.path="):
        build_sft_data(compose(["data=length_prompts"], config_name="sft"))
    with pytest.raises(ConfigError, match=r"^sft.reference=5: sample '.*' of data=builtin has 3 reference\(s\)"):
        build_sft_data(compose(["sft.reference=5"], config_name="sft"))


def test_run_sft_checks_before_starting_when_called_from_code(tmp_path: Path, tripwires) -> None:
    from longwriter.sft_run import run_sft

    out = tmp_path / "outputs"
    with pytest.raises(ConfigError, match=r"^sft.max_steps=0: must be a whole number of SFT steps"):
        run_sft(compose([f"paths.output_root={out}", "sft.max_steps=0"], config_name="sft"))
    assert not out.exists()


def test_sft_runs_are_not_training_runs_to_compare_unless_asked() -> None:
    from types import SimpleNamespace

    from longwriter.tracking.analysis_runs import is_training_run

    def run(kind):
        return SimpleNamespace(data=SimpleNamespace(tags={} if kind is None else {"kind": kind}))

    assert is_training_run(run(None)) and not is_training_run(run("sft"))
    assert is_training_run(run("sft"), include=("sft",)) and not is_training_run(run("evaluate"), include=("sft",))


# ---- end to end on the tiny model ---------------------------------------------------------------

def _client(output_root: Path):
    import mlflow

    uri = f"sqlite:///{output_root}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    return mlflow.MlflowClient(uri)


SFT_TINY = ["model=tiny_random", "sft.template=think_answer", "sft.batch_size=2", "sft.max_length=256",
            "sft.num_samples_logged=2", "sft.sample_max_new_tokens=8", "sft.learning_rate=1e-3"]


@pytest.mark.slow
def test_sft_end_to_end_and_its_folder_starts_an_rl_run(tmp_path: Path, output_root: Path) -> None:
    path = _pairs(tmp_path, [*SHORT_PAIRS, {"id": "leak", "prompt": _heldout_prompt(), "response": "Leaked."}])
    run_cli("longwriter.sft", [*SFT_TINY, "data=pairs", f"data.path={path}", "sft.max_steps=3",
                               f"paths.output_root={output_root}", "run_name=warm"])
    client = _client(output_root)
    experiment = client.get_experiment_by_name("longwriter")
    sft_run, = client.search_runs([experiment.experiment_id])
    assert sft_run.info.status == "FINISHED" and sft_run.data.tags["kind"] == "sft"
    assert [m.step for m in client.get_metric_history(sft_run.info.run_id, "train/loss")] == [1, 2, 3]
    assert sft_run.data.params["sft.template"] == "think_answer"
    artifacts = {a.path for a in client.list_artifacts(sft_run.info.run_id, "sft")}
    assert artifacts == {"sft/dataset.jsonl", "sft/data_summary.json"}
    dl = output_root / "dl"
    used = Path(client.download_artifacts(sft_run.info.run_id, "sft/dataset.jsonl", str(dl))).read_text()
    rows = [json.loads(line) for line in used.splitlines()]
    assert sorted(r["sample_id"] for r in rows) == ["mine-3", "pairs-1", "pairs-2", "pairs-4"]  # "leak" dropped
    summary = json.loads(Path(client.download_artifacts(sft_run.info.run_id, "sft/data_summary.json",
                                                        str(dl))).read_text())
    assert summary["dropped_holdout_overlap"] == [{"id": "leak", "holdout": "length_heldout", "match": "prompt"}]
    assert {a.path for a in client.list_artifacts(sft_run.info.run_id, "samples")} == {"samples/samples.json"}
    assert {a.path for a in client.list_artifacts(sft_run.info.run_id, "plots")} == {"plots/loss.png"}
    assert "sft/samples/well_formed_rate" in sft_run.data.metrics

    final = output_root / "sft" / "warm" / "final_model"
    assert sft_run.data.tags["final_model_path"] == str(final)
    for name in ("config.json", "model.safetensors", "tokenizer_config.json", "longwriter_origin.json"):
        assert (final / name).exists(), name
    origin = json.loads((final / "longwriter_origin.json").read_text())
    assert (origin["run_id"], origin["kind"], origin["template"]) == (sft_run.info.run_id, "sft", "think_answer")

    # RL from the saved folder: one step; the run records the folder and the SFT run it came from.
    run_cli("longwriter.train", [*TINY_RUN, f"model.path={final}", "engine.max_steps=1", "engine.save_steps=1",
                                 "data.limit=2", f"paths.output_root={output_root}", "run_name=rl"])
    rl_run, = [r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == "rl"]
    assert rl_run.info.status == "FINISHED"
    assert rl_run.data.params["model.path"] == str(final)
    assert rl_run.data.tags["policy_origin"] == sft_run.info.run_id
    assert rl_run.data.tags["policy_origin.kind"] == "sft"
    assert rl_run.data.tags["policy_origin.run_name"] == "warm"

    from longwriter.compare import find_runs

    def listed(**options) -> list[str]:
        return [r.info.run_name for r in find_runs(client, experiment.experiment_id, None, **options)[0]]

    assert listed() == []  # random-init model runs are mechanics checks: listed only with --all
    assert listed(everything=True) == ["rl"]  # SFT warm-ups only with --include-sft
    assert listed(everything=True, include_sft=True) == ["warm", "rl"]


@pytest.mark.slow
def test_sft_resumes_into_its_own_run_and_never_into_another_kind(tmp_path: Path, output_root: Path) -> None:
    path = _pairs(tmp_path, SHORT_PAIRS)
    run_dir = output_root / "sft" / "res"
    args = [*SFT_TINY, "data=pairs", f"data.path={path}", "sft.save_steps=2", "sft.num_samples_logged=0",
            f"paths.output_root={output_root}", "run_name=res"]
    run_cli("longwriter.sft", [*args, "sft.max_steps=2"])
    run_id = json.loads((run_dir / "mlflow_run.json").read_text())["run_id"]

    # A resume may train longer (a safe key), not differently; the refusal changes nothing.
    refused = run_cli("longwriter.sft", [f"resume_from={run_dir}", "sft.learning_rate=0.5"], check=False)
    assert refused.returncode == 2 and "would change what is trained: sft.learning_rate" in refused.stderr
    run_cli("longwriter.sft", [f"resume_from={run_dir}", "sft.max_steps=4"])
    client = _client(output_root)
    runs = client.search_runs([client.get_experiment_by_name("longwriter").experiment_id])
    assert [r.info.run_id for r in runs] == [run_id] and runs[0].info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run_id, "train/loss")] == [1, 2, 3, 4]
    assert (run_dir / "checkpoints" / "checkpoint-4").is_dir()

    # An SFT folder is not an RL run to continue (nor the other way round): one line naming the right command.
    wrong = run_cli("longwriter.train", [*TINY_RUN, f"resume_from={run_dir}", f"paths.output_root={output_root}"],
                    check=False)
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert (f"error: resume_from={run_dir} is the folder of an SFT run (python -m longwriter.sft); continue it with "
            f"python -m longwriter.sft resume_from={run_dir}") in wrong.stderr


def test_cfg_job_stays_light() -> None:
    from conftest import ROOT, cfg_job

    printed, heavy = cfg_job("longwriter.sft", ["sft.template=think_answer"], ROOT)
    assert "template: think_answer" in printed
    assert heavy == []
