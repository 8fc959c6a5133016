"""Evaluation: S_l by hand, benchmark files as the evaluator sees them, judge scorers against the
scripted judge server, and (slow) the real CLI end to end, cache and training's eval.at_end."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from conftest import ROOT, SHARED_BENCHMARKS, cfg_job, compose, run_cli
from longwriter.data.loaders import load_samples
from longwriter.data.schema import Sample
from longwriter.generation import GenerationSettings, generation_key, model_identity
from longwriter.evaluation.metrics import length_score
from longwriter.evaluation.scoring import ScoringContext, checklist_items, required_length, score_all
from longwriter.testing.fake_openai_server import FakeOpenAIServer
from longwriter.judges.prompts import QUALITY_DIMENSIONS
from longwriter.text import count_words

LBW = SHARED_BENCHMARKS / "longbench_write"
WB = SHARED_BENCHMARKS / "writingbench_length"


def _sample(i: int, required: int | None = None, **kwargs) -> Sample:
    meta = {"required_length": required} if required is not None else {}
    return Sample(id=f"s{i}", prompt=[{"role": "user", "content": f"Write text number {i}."}], meta=meta, **kwargs)


def _context(samples, answers, **kwargs) -> ScoringContext:
    return ScoringContext(list(samples), list(answers), list(answers), [{} for _ in samples], **kwargs)


# --- S_l through the evaluation path (the formula's own table is in test_eval_metrics.py) --------------

def test_length_scorer_hand_computed_cases() -> None:
    cases = [
        (100, "word " * 100, 100.0),  # exact
        (100, "word " * 200, 100 * (1 - (2 - 1) / 3)),  # over-length: 66.67
        (100, "word " * 400, 0.0),  # 4x over: 0
        (100, "word " * 50, 100 * (1 - (2 - 1) / 2)),  # under-length: 50
        (100, "word " * 25, 0.0),  # a quarter: 1 - (4 - 1)/2 < 0 -> 0
        (100, "", 0.0),  # empty output: 0, not a crash
        (800, "秋天的风吹过田野。" * 100, 100.0),  # Chinese: 8 characters per repeat, the full stop not counted
        (1600, "秋天的风吹过田野。" * 100, 50.0),  # 800 of 1600 characters
        (10, "Hello 世界, twice. 再见", 100 * (1 - (10 / 6 - 1) / 2)),  # mixed: 2 words + 4 CJK = 6
    ]
    samples = [_sample(i, x) for i, (x, _, _) in enumerate(cases)] + [_sample(99)]  # the last has no length
    ctx = _context(samples, [text for _, text, _ in cases] + ["anything"])
    metrics = asyncio.run(score_all(ctx, ["length"]))
    for row, (_, _, expected) in zip(ctx.rows, cases):
        assert row["length_score"] == pytest.approx(expected)
    assert ctx.rows[-1]["length_score"] is None and ctx.rows[-1]["required_length"] is None
    assert metrics["eval/length_score/mean"] == pytest.approx(sum(e for _, _, e in cases) / len(cases))
    assert metrics["eval/length_score/n"] == len(cases) and metrics["eval/length_score/skipped"] == 1


def test_required_length_prefers_the_benchmark_length_then_the_range_middle() -> None:
    assert required_length(_sample(0, 300, length_range=(100, 200))) == 300
    assert required_length(_sample(1, length_range=(1800, 2200))) == 2000
    assert required_length(_sample(2, length_range=(101, 200))) == 151  # rounded half up
    assert required_length(_sample(3)) is None


# --- the shared benchmark files, as the evaluator sees them --------------------------------------------

@pytest.mark.parametrize("filename,count", [("longbench_write_en.jsonl", 60), ("longbench_write.jsonl", 120)])
def test_longbench_write_required_lengths_are_the_files_lengths(filename: str, count: int) -> None:
    path = LBW / filename
    raw = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    samples = load_samples({"name": "longbench_write", "path": str(path), "shuffle_seed": None})
    assert len(samples) == count
    assert [required_length(s) for s in samples] == [row["length"] for row in raw]
    assert [s.user_prompt for s in samples] == [row["prompt"] for row in raw]
    assert not any(checklist_items(s) or s.references for s in samples)  # checklist and pairwise skip these


def test_writingbench_checklists_reach_the_checklist_judge() -> None:
    samples = load_samples({"name": "writingbench", "path": str(WB / "length_subset.jsonl"), "shuffle_seed": None})
    assert len(samples) == 222
    for sample in samples:
        items = checklist_items(sample)
        assert len(items) == 5 and all("criteria_description" in item for item in items)
        assert required_length(sample) == (None if sample.length_range is None else round(sum(sample.length_range) / 2))
    assert sum(required_length(s) is not None for s in samples) > 50


# --- judge scorers against the scripted judge server ----------------------------------------------------

POLICY = "POLICY-ANSWER"


def _scripted_reply(body: dict) -> str:
    user = body["messages"][-1]["content"]
    if "six dimensions" in user:
        if "unreadable" in user:
            return "I liked it."  # no JSON: every dimension unknown
        return json.dumps({"relevance": 5, "accuracy": 3, "coherence": 4, "clarity": 4, "breadth_and_depth": 2,
                           "reading_experience": 5})
    if "ONE criterion" in user:
        return "no score here" if "Criterion two" in user else '{"score": 7, "reason": "fine"}'
    if "Compare two responses" in user:
        if "biased judge" in user:
            return "Verdict: [[A]]"  # always the first position: swap turns this into a tie
        a = user.split("[Response A]", 1)[1].split("[End of Response A]", 1)[0]
        return "Verdict: [[A]]" if POLICY in a else "Verdict: [[B]]"
    return "?"


def _judge(server: FakeOpenAIServer):
    from longwriter.judges import build_judge_backend

    return build_judge_backend({"backend": "openai", "base_url": server.base_url, "model": "fake-judge",
                                "api_key_required": False, "concurrency": 4, "cache": False})


async def _score_and_close(ctx: ScoringContext, names: list[str]) -> dict:
    try:
        return await score_all(ctx, names)
    finally:
        await ctx.backend.aclose()


def test_judge_scorers_exact_numbers_skips_and_unknowns() -> None:
    criteria = ["Criterion one: clear.", "Criterion two: vivid.", "Criterion three: short."]
    samples = [
        Sample(id="a", prompt=[{"role": "user", "content": "Write a poem."}], criteria=criteria,
               references=["weak reference", "strong reference"]),
        Sample(id="b", prompt=[{"role": "user", "content": "Write a note for a biased judge."}],
               references=["only reference"]),
        Sample(id="c", prompt=[{"role": "user", "content": "Write something unreadable."}]),
    ]
    answers = [f"{POLICY} one", f"{POLICY} two", f"{POLICY} three"]
    with FakeOpenAIServer(_scripted_reply) as server:
        ctx = _context(samples, answers, backend=_judge(server), pairwise_position="swap")
        metrics = asyncio.run(_score_and_close(ctx, ["quality", "checklist", "pairwise"]))
        compared = [r.body["messages"][-1]["content"] for r in server.chat_requests if "Compare two" in r.body["messages"][-1]["content"]]
    # S_q: two readable samples with (5, 3, 4, 4, 2, 5) -> mapped (100, 50, 75, 75, 25, 100), mean 70.83;
    # the unreadable one is asked 5 times (QUALITY_TRIES), then dropped whole and counted.
    assert metrics["eval/quality_score/mean"] == pytest.approx((100 + 50 + 75 + 75 + 25 + 100) / 6)
    assert metrics["eval/quality_score/relevance"] == 100.0 and metrics["eval/quality_score/breadth_and_depth"] == 25.0
    assert metrics["eval/quality_score/dropped"] == 1 and metrics["eval/quality_score/n"] == 2
    assert ctx.rows[2]["quality_score"] is None and ctx.rows[0]["quality_score"] == pytest.approx(425 / 6)
    assert sum("unreadable" in r.body["messages"][-1]["content"] for r in server.chat_requests) == 5
    # checklist: only sample a has criteria; two items scored 7, one unparsable even after 3 tries:
    # WritingBench never reports a partly scored sample, so sample a is dropped.
    assert metrics["eval/checklist_score/mean"] is None and ctx.rows[0]["checklist_items"] == [7.0, None, 7.0]
    assert metrics["eval/checklist_score/dropped"] == 1
    asked = [r.body["messages"][-1]["content"] for r in server.chat_requests]
    assert sum("ONE criterion" in text and "Criterion two" in text for text in asked) == 3
    assert metrics["eval/checklist_score/skipped"] == 2 and metrics["eval/checklist_score/unknown_item_rate"] == pytest.approx(1 / 3)
    # pairwise: a wins in both orders against its strongest reference; b's judge always says A -> tie.
    assert ctx.rows[0]["pairwise_outcome"] == "win" and ctx.rows[1]["pairwise_outcome"] == "tie"
    assert metrics["eval/pairwise/win_rate"] == 0.5 and metrics["eval/pairwise/tie_rate"] == 0.5
    assert metrics["eval/pairwise/loss_rate"] == 0.0 and metrics["eval/pairwise/unknown_rate"] == 0.0
    assert metrics["eval/pairwise/position_disagreement"] == 0.5 and metrics["eval/pairwise/skipped"] == 1
    assert len(compared) == 4 and all("weak reference" not in text for text in compared)


def test_pairwise_win_rate_against_the_level_0_reference() -> None:
    samples = [Sample(id="a", prompt=[{"role": "user", "content": "Write a poem."}],
                      references=["weak reference", "mid reference", "strong reference"])]
    with FakeOpenAIServer(_scripted_reply) as server:
        ctx = _context(samples, [f"{POLICY} one"], backend=_judge(server), pairwise_position="disadvantage",
                       pairwise_reference=0)
        metrics = asyncio.run(_score_and_close(ctx, ["pairwise"]))
        compared = [r.body["messages"][-1]["content"] for r in server.chat_requests]
    assert metrics["eval/pairwise/win_rate"] == 1.0
    assert len(compared) == 1 and "weak reference" in compared[0] and "strong reference" not in compared[0]


def test_unknown_pairwise_verdicts_are_counted_not_losses() -> None:
    samples = [Sample(id="a", prompt=[{"role": "user", "content": "Write."}], references=["ref"])]
    with FakeOpenAIServer("I cannot decide.") as server:
        ctx = _context(samples, ["answer"], backend=_judge(server), pairwise_position="disadvantage")
        metrics = asyncio.run(_score_and_close(ctx, ["pairwise"]))
    assert metrics["eval/pairwise/unknown_rate"] == 1.0 and metrics["eval/pairwise/loss_rate"] == 0.0
    assert ctx.rows[0]["pairwise_outcome"] == "unknown"


def test_format_scorer_checks_tags_and_repetition() -> None:
    completions = [
        "<think>plan</think><answer>A fine short answer with distinct words.</answer>",
        "no tags at all",
        "<think>plan</think><answer>" + "the cat sat " * 30 + "</answer>",  # well formed, repetitive
    ]
    ctx = ScoringContext([_sample(i) for i in range(3)], completions, ["x"] * 3, [{} for _ in range(3)],
                         prompt_template="think")
    metrics = asyncio.run(score_all(ctx, ["format"]))
    assert [r["format_well_formed"] for r in ctx.rows] == [True, False, True]
    assert [r["format_valid"] for r in ctx.rows] == [True, False, False]
    assert metrics["eval/format/valid_rate"] == pytest.approx(1 / 3)
    assert metrics["eval/repetition/repetitive_rate"] == pytest.approx(1 / 3)


def test_unknown_metric_is_a_config_error() -> None:
    from longwriter.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown"):
        asyncio.run(score_all(_context([], []), ["bleu"]))


def test_generation_cache_key_changes_with_the_model_files_and_settings(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    settings = GenerationSettings(16, 0.0, 1.0, "plain", 0)
    messages = [{"role": "user", "content": "hi"}]
    first = model_identity(str(tmp_path))
    key = generation_key(first, messages, settings)
    assert generation_key(model_identity(str(tmp_path)), messages, settings) == key
    assert generation_key(first, messages, GenerationSettings(32, 0.0, 1.0, "plain", 0)) != key
    time.sleep(0.01)
    (tmp_path / "model.safetensors").write_bytes(b"new weights")  # a checkpoint re-written in place
    assert model_identity(str(tmp_path)) != first


def test_a_lora_adapter_folder_is_merged_and_a_run_folder_means_its_final_model(tmp_path: Path) -> None:
    """Trained with engine.lora.enabled, final_model/ holds an adapter (no tokenizer inside)."""
    from peft import LoraConfig, get_peft_model

    from longwriter.generation import generate_responses, load_for_generation
    from longwriter.evaluation.runner import resolve_checkpoint
    from longwriter.models import resolve_model_path

    base = resolve_model_path(compose(["model=tiny_random"]).model, ROOT / ".cache")
    model, _ = load_for_generation(base)
    adapter = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    adapter.save_pretrained(tmp_path / "run" / "final_model")
    folder = resolve_checkpoint(str(tmp_path / "run"))
    assert folder == str(tmp_path / "run" / "final_model")
    settings = GenerationSettings(4, 0.0, 1.0, "plain", 0)
    generations, stats = generate_responses([_sample(0), _sample(1)], folder, settings, batch_size=2)
    assert stats["generated"] == 2 and all(g.n_tokens <= 4 for g in generations)


def test_evaluate_config_composes_and_train_shares_the_eval_group() -> None:
    cfg = compose([], config_name="evaluate")
    train = compose([])
    assert cfg.data.name == "longbench_write" and cfg.model.name == "smollm2_135m" and cfg.judge.name == "local_hf"
    assert cfg.eval == train.eval and train.eval.at_end is False
    assert cfg.eval.generation_cache.startswith(str(ROOT))


def test_cfg_job_prints_the_evaluate_config_without_heavy_imports(tmp_path: Path) -> None:
    printed, heavy = cfg_job("longwriter.evaluate", [], tmp_path)
    assert "eval:" in printed and "max_new_tokens" in printed
    assert heavy == []


# --- the real CLI, end to end (slow) --------------------------------------------------------------------

def _scores_all(value: int):
    def reply(body: dict) -> str:
        return json.dumps({d: value for d in QUALITY_DIMENSIONS})
    return reply


def _client(output_root: Path):
    import mlflow

    uri = f"sqlite:///{output_root}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    return mlflow.MlflowClient(uri)


def _table(client, run_id: str, path: str) -> list[dict]:
    local = client.download_artifacts(run_id, path)
    data = json.loads(Path(local).read_text())
    return [dict(zip(data["columns"], row)) for row in data["data"]]


def _eval_args(output_root: Path, tmp_path: Path, server: FakeOpenAIServer, run_name: str) -> list[str]:
    return [
        "model=tiny_random", "data=longbench_write", "data.limit=4", "data.shuffle_seed=null",  # 100-200 words
        "eval.max_new_tokens=96", "eval.temperature=1.0", "eval.batch_size=3",
        "judge=vllm_server", f"judge.base_url={server.base_url}", "judge.model=fake-judge", "judge.cache=false",
        f"paths.output_root={output_root}", f"eval.generation_cache={tmp_path}/generations.sqlite",
        f"run_name={run_name}",
    ]


@pytest.mark.slow
def test_evaluate_cli_logs_metrics_table_plots_and_reuses_generations(output_root: Path, tmp_path: Path) -> None:
    with FakeOpenAIServer(_scores_all(4)) as server:
        run_cli("longwriter.evaluate", _eval_args(output_root, tmp_path, server, "first"))
    client = _client(output_root)
    experiment = client.get_experiment_by_name("longwriter")
    (run,) = client.search_runs([experiment.experiment_id])
    metrics, params = run.data.metrics, run.data.params
    assert metrics["eval/quality_score/mean"] == 75.0  # every dimension 4 -> (4 - 1) * 25
    assert metrics["eval/n_samples"] == 4 and metrics["eval/generation/generated"] == 4
    assert metrics["eval/generation/cache_hits"] == 0
    assert metrics["eval/checklist_score/skipped"] == 4 and metrics["eval/pairwise/skipped"] == 4
    assert "eval/checklist_score/mean" not in metrics and "eval/pairwise/win_rate" not in metrics
    assert {"eval/format/valid_rate", "eval/repetition/mean"} <= set(metrics)
    assert params["eval/model"] == "tiny_random" and params["eval/dataset"] == "longbench_write"
    assert params["eval/dataset_path"].endswith("longbench_write_en.jsonl")
    rows = _table(client, run.info.run_id, "eval/samples.json")
    raw = [json.loads(line) for line in (LBW / "longbench_write_en.jsonl").read_text().splitlines()[:4]]
    assert [r["required_length"] for r in rows] == [row["length"] for row in raw]
    recomputed = [length_score(r["required_length"], count_words(r["completion"])) for r in rows]
    assert metrics["eval/length_score/mean"] == pytest.approx(sum(recomputed) / 4)
    assert any(score > 0 for score in recomputed)  # the check is not vacuous
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "eval/plots")}
    assert {"eval/plots/length_score_hist.png", "eval/plots/length_scatter.png",
            "eval/plots/quality_dimensions.png"} <= artifacts

    # Re-scoring with another judge: every response comes from the cache, the model is never run.
    with FakeOpenAIServer(_scores_all(5), model="other-judge") as other:
        proc = run_cli("longwriter.evaluate", [*_eval_args(output_root, tmp_path, other, "second"),
                                               "judge.model=other-judge"])
    assert "generating" not in proc.stderr
    second = next(r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == "second")
    assert second.data.metrics["eval/generation/cache_hits"] == 4
    assert second.data.metrics["eval/generation/generated"] == 0
    assert second.data.metrics["eval/quality_score/mean"] == 100.0
    assert second.data.metrics["eval/length_score/mean"] == metrics["eval/length_score/mean"]
    assert [r["completion"] for r in _table(client, second.info.run_id, "eval/samples.json")] == \
        [r["completion"] for r in rows]


@pytest.mark.slow
def test_train_eval_at_start_and_end_log_into_the_training_run(output_root: Path, tmp_path: Path) -> None:
    with FakeOpenAIServer(_scores_all(3)) as server:
        run_cli("longwriter.train", [
            "model=tiny_random", "engine.prompts_per_step=2", "engine.num_generations=2",
            "engine.max_completion_length=16", "engine.max_steps=2", "engine.save_steps=2", "data=builtin", "data.limit=4",
            "eval.at_start=true", "eval.at_end=true", "eval.max_new_tokens=16", "eval.metrics=[length,quality,format]",
            "judge=vllm_server", f"judge.base_url={server.base_url}", "judge.model=fake-judge", "judge.cache=false",
            f"paths.output_root={output_root}", f"eval.generation_cache={tmp_path}/generations.sqlite",
            "run_name=with-eval",
        ])
    client = _client(output_root)
    (run,) = client.search_runs([client.get_experiment_by_name("longwriter").experiment_id])
    run_id = run.info.run_id
    assert [m.step for m in client.get_metric_history(run_id, "eval/length_score/mean")] == [0, 2]
    assert [m.value for m in client.get_metric_history(run_id, "eval/quality_score/mean")] == [50.0, 50.0]
    assert [m.step for m in client.get_metric_history(run_id, "train/loss")] == [1, 2]
    final = Path(run.data.tags["final_model_path"])
    assert run.data.params["eval/final/model"] == str(final)
    assert run.data.params["eval/initial/model"] == "tiny_random"
    assert run.data.params["eval/final/dataset"] == "builtin"
    for label in ("eval/initial", "eval/final"):
        assert len(_table(client, run_id, f"{label}/samples.json")) == 4
