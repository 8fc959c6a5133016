"""Tier 1: hand-written tables of judge replies -> verdicts, scores, ranges (strict parsers)."""

from __future__ import annotations

import pytest

from longwriter.judges.parsers import (
    check_length_range,
    parse_checklist_score,
    parse_dimensions,
    parse_length_range,
    parse_score_marker,
    parse_verdict,
)
from longwriter.judges.prompts import QUALITY_DIMENSIONS, format_criteria, get_template, register, Template

VERDICTS = [
    # (judge text, expected verdict)
    ("Response A is more vivid.\nVerdict: [[A]]", "first"),
    ("B covers every requirement.\nVerdict: [[B]]", "second"),
    ("Both are equally good.\nVerdict: [[C]]", "tie"),
    ("[[B]]", "second"),
    ("**Verdict: [[A]]**", "first"),
    ("Verdict: [[ B ]]", "second"),
    ("First I thought [[A]] but on reflection\nVerdict: [[B]]", "second"),  # last marker wins
    ("Verdict: [[A]]\n\nThank you for the interesting task.", "first"),  # trailing text after the marker
    ("回答A更好，结构更清晰。\n最终判断：[[A]]", "first"),  # CJK
    ("两个回答质量相当。[[C]]", "tie"),
    # unknown: no explicit marker
    ("A", None),
    ("Response A is better.", None),
    ("The answer is A.", None),
    ("Verdict: A", None),
    ("Verdict: [A]", None),
    ("Verdict: [[a]]", None),
    ("Verdict: [[D]]", None),
    ("", None),
    ("回答A更好。", None),
    # unknown: conflicting markers at the end
    ("Verdict: [[A]] or [[B]]", None),
    ("I would say [[A]] is better than [[B]]", None),
    ("[[A]][[C]]", None),
    # same marker twice on the last line is not a conflict
    ("Verdict: [[A]] ([[A]])", "first"),
    # reasoning blocks are drafts: only the final answer counts
    ("<think>maybe [[A]]</think>\nVerdict: [[B]]", "second"),
    ("<think>surely [[A]]</think>\nI cannot decide.", None),
]


@pytest.mark.parametrize("text,expected", VERDICTS)
def test_parse_verdict_table(text: str, expected: str | None) -> None:
    verdict, error = parse_verdict(text)
    assert verdict == expected
    assert (error is None) == (expected is not None)


def test_conflict_and_missing_are_reported_differently() -> None:
    assert parse_verdict("no marker")[1] == "no verdict marker"
    assert "conflicting" in parse_verdict("[[A]] vs [[B]]")[1]


SCORES = [
    ("Well structured.\nScore: 7", 7.0),
    ("Score: 10", 10.0),
    ("score: 3", 3.0),
    ("**Score:** 8", 8.0),
    ("Score: 7/10", 7.0),
    ("Score: 6.5", 6.5),
    ("Score: 4\n...on reflection...\nScore: 6", 6.0),
    ("评分理由：内容充实。\nScore: 9", 9.0),
    ("Score：5", 5.0),  # full-width colon (CJK keyboards)
    ("8", None),  # a bare number is not a marker
    ("I would give it an 8 out of 10.", None),
    ("Score: 11", None),
    ("Score: 0", None),
    ("Score: -3", None),
    ("Score: N", None),
    ("", None),
]


@pytest.mark.parametrize("text,expected", SCORES)
def test_parse_score_marker_table(text: str, expected: float | None) -> None:
    assert parse_score_marker(text)[0] == expected


CHECKLIST = [
    ('{"score": 8, "reason": "meets the criterion"}', 8.0),
    ('```json\n{"score": 3, "reason": "misses the scope"}\n```', 3.0),
    ('{"reason": "x", "score": 10}', 10.0),
    ("Score: 6", 6.0),  # marker form also accepted
    ('{"score": 12, "reason": "x"}', None),
    ('{"score": "8"}', None),  # strings are not scores
    ('{"score": true}', None),
    ('{"score": 8, "reason": "unterminated', None),  # malformed JSON and no marker
    ("8/10", None),
]


@pytest.mark.parametrize("text,expected", CHECKLIST)
def test_parse_checklist_score_table(text: str, expected: float | None) -> None:
    assert parse_checklist_score(text)[0] == expected


def test_parse_dimensions_strict() -> None:
    full = ('{"relevance": 5, "accuracy": 4, "coherence": 4, "clarity": 3, '
            '"breadth_and_depth": 2, "reading_experience": 5}')
    scores, error = parse_dimensions(full, QUALITY_DIMENSIONS)
    assert error is None and scores == {"relevance": 5, "accuracy": 4, "coherence": 4, "clarity": 3,
                                        "breadth_and_depth": 2, "reading_experience": 5}
    # display names are accepted as keys; a missing, out-of-range or non-integer value is None
    partial = '```json\n{"Relevance": 4, "Breadth and Depth": 3, "clarity": 6, "coherence": 2.5, "accuracy": "4"}\n```'
    scores, error = parse_dimensions(partial, QUALITY_DIMENSIONS)
    assert scores == {"relevance": 4, "accuracy": None, "coherence": None, "clarity": None,
                      "breadth_and_depth": 3, "reading_experience": None}
    assert "accuracy" in error and "reading_experience" in error
    scores, error = parse_dimensions("relevance 5, accuracy 4", QUALITY_DIMENSIONS)
    assert all(v is None for v in scores.values()) and error.startswith("parse_error")
    scores, _ = parse_dimensions('{"relevance": 5, "accuracy": 4', QUALITY_DIMENSIONS)  # truncated JSON
    assert all(v is None for v in scores.values())


RANGES = [
    # (reply, expected range, expected reason)
    ('{"range": [1800, 2200]}', (1800, 2200), None),
    ('Sure.\n```json\n{"range": [300, 500]}\n```', (300, 500), None),
    ('{"range": [1000, 1000]}', (1000, 1000), None),
    ('{"range": [0, 300]}', (0, 300), None),
    ('{"range": [9000, 12000]}', (9000, 12000), None),
    ('{"range": [0, 0]}', None, "infeasible"),
    ('这个请求需要超过一万二千字。{"range": [0, 0]}', None, "infeasible"),
    ('{"range": [1850, 2200]}', None, "invalid_range"),  # not a multiple of 100
    ('{"range": [1800, 2250]}', None, "invalid_range"),
    ('{"range": [10000, 12100]}', None, "invalid_range"),  # hi > 12000
    ('{"range": [1000, 4100]}', None, "invalid_range"),  # width > 3000
    ('{"range": [2200, 1800]}', None, "invalid_range"),  # lo > hi
    ('{"range": [-100, 200]}', None, "invalid_range"),
    ('{"range": [1800]}', None, "invalid_range"),
    ('{"range": [1800.0, 2200.0]}', None, "invalid_range"),  # floats are not word counts
    ('{"range": ["1800", "2200"]}', None, "invalid_range"),
    ('{"range": "1800-2200"}', None, "invalid_range"),
    ("1800-2200 words", None, "parse_error"),
    ('{"range": [1800, 2200]', None, "parse_error"),  # truncated JSON
    ('{"length": [1800, 2200]}', None, "parse_error"),
    ("", None, "parse_error"),
]


@pytest.mark.parametrize("text,expected,reason", RANGES)
def test_parse_length_range_table(text: str, expected, reason) -> None:
    prediction = parse_length_range(text)
    assert prediction.range == expected
    assert prediction.reason == reason
    assert prediction.feasible == (expected is not None)


def test_length_range_rules_name_the_broken_rule() -> None:
    assert check_length_range([100, 200]) is None
    assert "multiples" in check_length_range([150, 200])
    assert "12000" in check_length_range([11000, 12100])
    assert "3000" in check_length_range([100, 3200])
    assert "lo <= hi" in check_length_range([300, 200])


def test_templates_render_and_registry_refuses_duplicates() -> None:
    assert "1. Keep it short" in format_criteria(["Keep it short"])
    assert "Relevance" in format_criteria([])  # generic criteria when the sample has none
    with pytest.raises(ValueError, match="already registered"):
        register(Template(id="pairwise_v1", user="x", api_ending="y"))
    with pytest.raises(KeyError, match="unknown judge template"):
        get_template("nope")
