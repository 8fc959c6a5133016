"""Strict parsers for judge replies: an explicit marker or valid JSON, otherwise *unknown*.

Nothing here guesses. A reply without a marker is None, never a verdict found by searching for a
bare letter (the public Writing-RL code does that and turns almost any unparsable answer into a
verdict). Reasoning models' `<think>...</think>` blocks are skipped: only the text after the last
`</think>` is read, since markers inside the reasoning are drafts, not answers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from longwriter.data.length_requirements import MAX_RANGE_WIDTH as LENGTH_MAX_WIDTH
from longwriter.data.length_requirements import MAX_WORDS as LENGTH_MAX
from longwriter.data.length_requirements import RANGE_STEP as LENGTH_STEP
from longwriter.judges.base import Verdict

MARKER = re.compile(r"\[\[\s*([ABC])\s*\]\]")
MARKER_VERDICTS: dict[str, Verdict] = {"A": "first", "B": "second", "C": "tie"}
_SCORE = re.compile(r"score[\s*_]*[:：][\s*_]*(\d+(?:\.\d+)?)", re.IGNORECASE)


def final_answer(text: str) -> str:
    """The part of a reply after the reasoning block, if there is one."""
    return text.rsplit("</think>", 1)[1] if "</think>" in text else text


def parse_verdict(text: str) -> tuple[Verdict | None, str | None]:
    """(verdict, error) from the last explicit marker; markers disagreeing on that line -> unknown."""
    body = final_answer(text or "")
    markers = list(MARKER.finditer(body))
    if not markers:
        return None, "no verdict marker"
    line_start = body.rfind("\n", 0, markers[-1].start()) + 1
    letters = {m.group(1) for m in markers if m.start() >= line_start}
    if len(letters) > 1:
        return None, f"conflicting verdict markers {sorted(letters)}"
    return MARKER_VERDICTS[letters.pop()], None


VERDICT_READINGS = ("last_marker", "first_marker", "public_code")
_LETTER_VERDICTS: tuple[tuple[str, Verdict], ...] = (("A", "first"), ("B", "second"), ("C", "tie"))


def read_verdict(text: str, reading: str = "last_marker") -> tuple[Verdict | None, str | None]:
    """(verdict, error) under a named reading of the judge's reply.

    last_marker   the project's strict reading (`parse_verdict`): the last marker after any
                  reasoning block, conflicting markers on that line -> unknown. Default.
    first_marker  the first `[[A]]`/`[[B]]`/`[[C]]` anywhere in the reply, as the public Writing-RL
                  code's `extract_judge_verdict` reads it; no marker -> unknown.
    public_code   first_marker, and without a marker the public code's fallback: the reply is a
                  verdict for the first letter test that passes, "A" in text -> first, else "B" ->
                  second, else "C" -> tie (so nearly any reply is a verdict). Only for reproduction.
    """
    if reading == "last_marker":
        return parse_verdict(text)
    if reading not in VERDICT_READINGS:
        raise ValueError(f"verdict reading must be one of {list(VERDICT_READINGS)}, got {reading!r}")
    found = MARKER.search(text or "")
    if found:
        return MARKER_VERDICTS[found.group(1)], None
    if reading == "public_code":
        for letter, verdict in _LETTER_VERDICTS:
            if letter in (text or ""):
                return verdict, None
    return None, "no verdict marker"


def _in_range(value: Any, lo: float, hi: float, integer: bool) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if integer and not float(value).is_integer():
        return None
    return float(value) if lo <= value <= hi else None


def parse_score_marker(text: str, lo: float = 1, hi: float = 10, integer: bool = False
                       ) -> tuple[float | None, str | None]:
    """(score, error) from the last `Score: N` in the reply (`integer`: "7.5" is refused)."""
    found = _SCORE.findall(final_answer(text or ""))
    if not found:
        return None, "no score marker"
    value = _in_range(float(found[-1]), lo, hi, integer=integer)
    if value is None:
        return None, f"score {found[-1]} outside [{lo:g}, {hi:g}]"
    return value, None


def json_objects(text: str) -> list[dict]:
    """Every JSON object that decodes somewhere in `text` (fenced or not), in order of position."""
    decoder = json.JSONDecoder()
    found = []
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def last_object_with(text: str, *keys: str) -> dict | None:
    """The last JSON object in the reply that has any of `keys`."""
    for obj in reversed(json_objects(final_answer(text or ""))):
        if any(k in obj for k in keys):
            return obj
    return None


def _dimension_key(key: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(key).strip().lower())


def parse_dimensions(text: str, dimensions: tuple[str, ...], lo: int = 1, hi: int = 5
                     ) -> tuple[dict[str, float | None], str | None]:
    """Per-dimension integer scores from a JSON object; a missing or invalid one is None.

    Keys are matched after lower-casing and turning spaces/hyphens into underscores
    ("Breadth and Depth" -> breadth_and_depth); values must be integers in [lo, hi].
    """
    for obj in reversed(json_objects(final_answer(text or ""))):
        normalised = {_dimension_key(k): v for k, v in obj.items()}
        if any(d in normalised for d in dimensions):
            scores = {d: _in_range(normalised.get(d), lo, hi, integer=True) for d in dimensions}
            bad = [d for d, v in scores.items() if v is None]
            return scores, (f"missing or invalid dimensions {bad}" if bad else None)
    return {d: None for d in dimensions}, "parse_error: no JSON object with the dimensions"


def parse_checklist_score(text: str, lo: float = 1, hi: float = 10) -> tuple[float | None, str | None]:
    """WritingBench critic reply: JSON {"score": n} when present, else a `Score: N` marker.

    The score must be an integer 1-10, as WritingBench's `evaluate_benchmark.py` requires
    (8.0 is 8; 7.5 and "8" are invalid and get the judge asked again)."""
    obj = last_object_with(text, "score")
    if obj is not None:
        value = _in_range(obj["score"], lo, hi, integer=True)
        return (value, None) if value is not None else (None, f"invalid score {obj['score']!r}")
    return parse_score_marker(text, lo, hi, integer=True)


@dataclass
class LengthRangePrediction:
    """A query's predicted word range. `range` is None when unusable; `reason` says why.

    reason: None (valid) | "infeasible" (the judge said [0, 0]) | "parse_error" (no JSON with a
    range) | "invalid_range" (breaks a rule: see `check_length_range`) | "backend_error".
    """

    range: tuple[int, int] | None
    reason: str | None = None
    raw: str = ""
    cached: bool = False
    error: str | None = None

    @property
    def feasible(self) -> bool:
        return self.range is not None


def check_length_range(value: Any) -> str | None:
    """None when `value` is a valid [lo, hi], else the broken rule (LongWriter-Zero rules)."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return "range must be a list [lo, hi]"
    if any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        return "bounds must be integers"
    lo, hi = value
    if lo < 0 or lo > hi:
        return "need 0 <= lo <= hi"
    if lo % LENGTH_STEP or hi % LENGTH_STEP:
        return f"bounds must be multiples of {LENGTH_STEP}"
    if hi > LENGTH_MAX:
        return f"hi must be <= {LENGTH_MAX}"
    if hi - lo > LENGTH_MAX_WIDTH:
        return f"hi - lo must be <= {LENGTH_MAX_WIDTH}"
    return None


def parse_length_range(text: str) -> LengthRangePrediction:
    obj = last_object_with(text, "range")
    if obj is None:
        return LengthRangePrediction(None, "parse_error", raw=text or "", error='no JSON object with "range"')
    value = obj["range"]
    problem = check_length_range(value)
    if problem:
        return LengthRangePrediction(None, "invalid_range", raw=text, error=f"{problem}: {value!r}")
    if tuple(value) == (0, 0):
        return LengthRangePrediction(None, "infeasible", raw=text)
    return LengthRangePrediction((value[0], value[1]), None, raw=text)
