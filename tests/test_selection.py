"""Data selection: margin and start-level rules by hand, then margin-aware, length-range and reference
building end to end against the scripted judge server (FakeOpenAIServer) with the tiny policy.

The scripted judge reads what it is shown: a response containing `QUALITY-N` scores N, one
containing `UNSCORABLE` gets no score marker, and any other response (the tiny policy's random
text) scores the N of `policy scores N` in the writing request. So every margin is known in advance.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import compose
from longwriter.data.loaders import load_samples
from longwriter.data.schema import Sample
from longwriter.testing.fake_openai_server import FakeOpenAIServer
from longwriter.selection import select_samples
from longwriter.selection.judging import order_by_score
from longwriter.selection.margin_aware import first_level_beating, keep_largest, margin
from longwriter.selection.report import select_with_report


# --- the rules, by hand -----------------------------------------------------------------------------

@pytest.mark.parametrize("policy,refs,expected", [
    (5, [3, 8, 6], 3), (4, [9, 2], 5), (6, [4], -2), (2, [None, 6], 4),
    (None, [7], None), (3, [None], None), (3, [], None), (7.5, [7.25], -0.25),
])
def test_margin_is_best_known_reference_minus_policy(policy, refs, expected) -> None:
    assert margin(policy, refs) == expected


@pytest.mark.parametrize("policy,ordered,expected", [
    (5, [3, 6, 8], 1),   # 3 does not beat 5; 6 does
    (1, [3, 6, 8], 0),   # every reference beats it: start at the weakest
    (9, [3, 6, 8], 2),   # none beats it: the strongest
    (6, [3, 6, 8], 2),   # a tie is not a beat
    (2, [None, 6], 1),   # unknown scores are skipped
    (4, [], 0),
])
def test_start_level_is_first_reference_that_beats_the_policy(policy, ordered, expected) -> None:
    assert first_level_beating(policy, ordered) == expected


def test_keep_largest_threshold_then_top_k_ties_in_input_order() -> None:
    margins = [3.0, 5.0, -2.0, None, 4.0, 0.0, 5.0]
    assert keep_largest(margins, 0.0, None) == [None, None, "below_threshold", "unscored", None,
                                                "below_threshold", None]
    assert keep_largest(margins, 0.0, 2) == ["beyond_top_k", None, "below_threshold", "unscored", "beyond_top_k",
                                             "below_threshold", None]
    assert keep_largest(margins, None, None) == [None, None, None, "unscored", None, None, None]
    assert keep_largest(margins, 4.5, 0)[1] == "beyond_top_k"


def test_order_by_score_is_stable_and_leaves_unknowns_out() -> None:
    texts, scores, labels, unknown = order_by_score(["a", "b", "c", "d"], [7, None, 3, 7], ["la", "lb", "lc", "ld"])
    assert (texts, scores, labels, unknown) == (["c", "a", "d"], [3, 7, 7], ["lc", "la", "ld"], 1)


# --- the scripted judge ---------------------------------------------------------------------------

def _between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0] if start in text else ""


def scripted_judge(body: dict) -> str:
    user = body["messages"][-1]["content"]
    if "Predict the word-count range" in user:
        request = _between(user, "[Writing request]\n", "Your reply")
        for marker, reply in LENGTH_REPLIES.items():
            if marker in request:
                return reply
        return "?"
    if "Rate the response" in user:
        response = _between(user, "[Response]\n", "\n[End of Response]")
        if found := re.search(r"QUALITY-(\d+)", response):
            return f"Solid work.\nScore: {found.group(1)}"
        if "UNSCORABLE" in response:
            return "I would rather not say."
        policy = re.search(r"policy scores (\w+)", _between(user, "[Writing request]\n", "[Evaluation criteria]"))
        if policy and policy.group(1).isdigit():
            return f"Score: {policy.group(1)}"
        return "Score: 1" if policy is None else "No verdict."
    # Anything else is a reference writer answering the writing request itself.
    return "" if "WRITER FAILS" in user else "An API-written answer. QUALITY-9"


LENGTH_REPLIES = {
    "lr-ok": '{"range": [1800, 2200]}',
    "lr-fenced": 'Here it is:\n```json\n{"range": [300, 600]}\n```',
    "lr-zero": '{"range": [0, 0]}',
    "lr-prose": "About two thousand words would be right.",
    "lr-rule": '{"range": [150, 170]}',
    "lr-wide": '{"range": [1000, 9000]}',
}


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _row(sample_id: str, prompt: str, references: list[str], **extra) -> dict:
    return {"id": sample_id, "prompt": prompt, "references": references, "source": "test", **extra}


MARGIN_ROWS = [
    _row("m1", "Write a poem. policy scores 5", ["QUALITY-3 weak", "QUALITY-8 strong", "QUALITY-6 mid"],
         criteria=["CRIT-M1: uses concrete imagery"]),
    _row("m2", "Write a letter. policy scores 4", ["QUALITY-9 best", "QUALITY-2 poor"]),
    _row("m3", "Write a note. policy scores 6", ["QUALITY-4 only"], start_level=0),
    _row("m4", "Write a list. policy scores 1", []),
    _row("m5", "Write a memo. policy scores X", ["QUALITY-7", "QUALITY-5"]),
    _row("m6", "Write a toast. policy scores 2", ["UNSCORABLE one", "QUALITY-6 two"]),
    _row("m7", "Write a limerick. policy scores 3", ["UNSCORABLE only"]),
]


@pytest.fixture
def judge_server():
    with FakeOpenAIServer(scripted_judge) as server:
        yield server


def _overrides(server: FakeOpenAIServer | str, tmp_path: Path, data_path: Path, *extra: str) -> list[str]:
    url = server if isinstance(server, str) else server.base_url
    return ["model=tiny_random", "data=jsonl", f"data.path={data_path}", "data.shuffle_seed=null",
            "judge=vllm_server", f"judge.base_url={url}", "judge.model=fake-judge", "judge.cache=false",
            "judge.max_retries=0", f"paths.output_root={tmp_path}/outputs", *extra]


MARGIN_ARGS = ("data_selection=margin_aware", "data_selection.generation.max_new_tokens=8",
               "data_selection.generation_cache=null")


def test_margin_aware_keeps_positive_margins_orders_references_and_sets_levels(judge_server, tmp_path: Path) -> None:
    data = _write_jsonl(tmp_path / "margin.jsonl", MARGIN_ROWS)
    cfg = compose(_overrides(judge_server, tmp_path, data, *MARGIN_ARGS), config_name="prepare")
    report = select_with_report(load_samples(cfg.data), cfg)

    kept = {s.id: s for s in report.samples}
    assert list(kept) == ["m1", "m2", "m6"]  # input order
    assert dict(report.dropped) == {"below_threshold": 1, "no_references": 1, "unknown_policy_score": 1,
                                    "no_scored_reference": 1}
    assert kept["m1"].references == ["QUALITY-3 weak", "QUALITY-6 mid", "QUALITY-8 strong"]
    assert kept["m1"].meta["reference_scores"] == [3, 6, 8] and kept["m1"].meta["margin"] == 3
    assert kept["m1"].meta["reference_order"] == ["reference:0", "reference:2", "reference:1"]
    assert kept["m2"].references == ["QUALITY-2 poor", "QUALITY-9 best"]
    assert [kept[i].start_level for i in ("m1", "m2", "m6")] == [1, 1, 0]
    assert kept["m6"].references == ["QUALITY-6 two"] and report.metrics["references/unknown_score_dropped"] == 2
    rows = {r["id"]: r for r in report.rows}
    assert rows["m3"]["margin"] == -2 and rows["m5"]["margin"] is None
    assert report.metrics["margin/n"] == 4 and report.metrics["margin/max"] == 5
    assert report.metrics["generation/generated"] == 6  # the sample without references is not generated

    # Every judged sample: the policy answer and each reference, with the sample's criteria in the prompt.
    rated = [r.body["messages"][-1]["content"] for r in judge_server.chat_requests]
    assert len(rated) == 4 + 3 + 2 + 3 + 3 + 2
    assert sum("CRIT-M1: uses concrete imagery" in text for text in rated) == 4


def test_margin_aware_top_k_threshold_and_switches(judge_server, tmp_path: Path) -> None:
    data = _write_jsonl(tmp_path / "margin.jsonl", MARGIN_ROWS)
    cache = f"data_selection.generation_cache={tmp_path}/gen.sqlite"  # the second call reuses the answers
    cfg = compose(_overrides(judge_server, tmp_path, data, *MARGIN_ARGS, cache, "data_selection.top_k=2"),
                  config_name="prepare")
    assert [s.id for s in select_samples(load_samples(cfg.data), cfg)] == ["m2", "m6"]  # training's path

    cfg = compose(_overrides(judge_server, tmp_path, data, *MARGIN_ARGS, cache, "data_selection.threshold=null",
                             "data_selection.order_references=false", "data_selection.set_start_level=false"),
                  config_name="prepare")
    report = select_with_report(load_samples(cfg.data), cfg)
    kept = {s.id: s for s in report.samples}
    assert list(kept) == ["m1", "m2", "m3", "m6"]
    assert kept["m1"].references == MARGIN_ROWS[0]["references"] and kept["m1"].start_level == 0
    assert kept["m6"].references == ["UNSCORABLE one", "QUALITY-6 two"]
    assert report.metrics["generation/cache_hits"] == 6


def test_margin_aware_with_an_unreachable_judge_fails_with_one_clear_error(tmp_path: Path) -> None:
    from longwriter.judges import JudgeError

    data = _write_jsonl(tmp_path / "margin.jsonl", MARGIN_ROWS[:1])
    closed = FakeOpenAIServer().start()
    dead_url = closed.base_url
    closed.stop()  # its port is now closed
    cfg = compose(_overrides(dead_url, tmp_path, data, *MARGIN_ARGS), config_name="prepare")
    with pytest.raises(JudgeError, match="unreachable"):
        select_with_report(load_samples(cfg.data), cfg)


def test_length_range_sets_ranges_and_counts_every_drop_reason(judge_server, tmp_path: Path) -> None:
    rows = [_row(marker, f"{marker}: write something.", []) for marker in LENGTH_REPLIES]
    rows.append(_row("has-range", "lr-zero but it already has a range", [], length_range=[400, 600]))
    data = _write_jsonl(tmp_path / "lengths.jsonl", rows)
    cfg = compose(_overrides(judge_server, tmp_path, data, "data_selection=length_range"), config_name="prepare")
    report = select_with_report(load_samples(cfg.data), cfg)
    assert {s.id: s.length_range for s in report.samples} == {"lr-ok": (1800, 2200), "lr-fenced": (300, 600)}
    assert dict(report.dropped) == {"infeasible": 2, "parse_error": 1, "invalid_range": 2}
    assert report.metrics["length_range/predicted"] == 7
    assert report.samples[0].meta["length_range_source"].startswith("judge:openai:fake-judge")

    cfg = compose(_overrides(judge_server, tmp_path, data, "data_selection=length_range",
                             "data_selection.keep_existing=true"), config_name="prepare")
    kept = {s.id: s.length_range for s in select_samples(load_samples(cfg.data), cfg)}
    assert kept["has-range"] == (400, 600) and len(kept) == 3


def test_references_from_api_and_local_writers_are_judged_and_ordered(judge_server, tmp_path: Path) -> None:
    rows = [_row("r1", "Write a haiku about rain.", ["QUALITY-5 the existing one"], criteria=["CRIT-R1"]),
            _row("r2", "Write a riddle. WRITER FAILS", ["UNSCORABLE existing"])]
    data = _write_jsonl(tmp_path / "refs.jsonl", rows)
    writers = (f"prepare.references.writers=[{{name: api, kind: openai, base_url: '{judge_server.base_url}', "
               f"model: fake-writer, api_key_required: false, max_tokens: 64, cache: false}}, "
               f"{{name: tiny, kind: local_hf, model: tiny_random, max_new_tokens: 8, temperature: 1.0}}]")  # greedy: only newlines
    cfg = compose(_overrides(judge_server, tmp_path, data, writers,
                             "prepare.references.generation_cache=null"), config_name="prepare")
    from longwriter.references import build_references

    samples, metrics = build_references(load_samples(cfg.data), cfg)
    r1, r2 = samples
    assert r1.meta["reference_sources"] == ["tiny", "existing:0", "api"]
    assert r1.meta["reference_scores"] == [1, 5, 9]
    assert r1.references[1:] == ["QUALITY-5 the existing one", "An API-written answer. QUALITY-9"]
    assert r2.meta["reference_sources"] == ["tiny"]  # the api writer failed, the existing one is unscorable
    assert metrics["references/writer_failures/api"] == 1 and metrics["references/writer_failures/tiny"] == 0
    assert metrics["references/unknown_score_dropped"] == 1 and metrics["references/strongest/api"] == 1


def test_reference_writer_config_errors_are_user_errors(tmp_path: Path) -> None:
    from longwriter.errors import ConfigError
    from longwriter.references import build_references

    sample = Sample(id="a", prompt=[{"role": "user", "content": "Write."}])
    for writers, message in [("[{name: w, kind: telepathy}]", "kind"),
                             ("[{name: w, kind: local_hf, model: no_such_model}]", "no such conf/model preset"),
                             ("[{name: w, kind: local_hf, model: tiny_random, max_new_token: 8}]", "unknown keys")]:
        cfg = compose([f"paths.output_root={tmp_path}", f"prepare.references.writers={writers}"],
                      config_name="prepare")
        with pytest.raises(ConfigError, match=message):
            build_references([sample], cfg)


@pytest.mark.slow
def test_training_selects_with_margin_aware_before_it_trains(judge_server, tmp_path: Path) -> None:
    """`train data_selection=margin_aware`: the selection runs before training, on the training config."""
    from conftest import run_cli

    proc = run_cli("longwriter.train", [
        "model=tiny_random", "data=builtin", "data.limit=6", "data_selection=margin_aware", "data_selection.threshold=-1",
        "data_selection.top_k=4", "data_selection.generation.max_new_tokens=8", "data_selection.generation_cache=null",
        "judge=vllm_server", f"judge.base_url={judge_server.base_url}", "judge.model=fake-judge", "judge.cache=false",
        "engine.max_steps=1", "engine.save_steps=1", "engine.prompts_per_step=2", "engine.num_generations=2",
        "engine.max_completion_length=8", f"paths.output_root={tmp_path}/outputs", "run_name=selected",
    ], timeout=600)
    log = (tmp_path / "outputs" / "train" / "selected" / "train.log").read_text()
    assert "6 samples loaded, 4 selected (margin_aware)" in log, proc.stdout[-2000:]
    assert len(judge_server.chat_requests) == 6 * 4  # the built-in samples have 3 references each
