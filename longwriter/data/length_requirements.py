"""Turn a required length into a word range, and find an explicit length requirement in a query.

Word ranges are in `longwriter.text.count_words` units: English words, one per CJK ideograph
(LongBench-Write's rule, so "3000字" and "3000 words" are the same unit).

Rules (tolerance t; LongBench-Write uses t = 0.2, WritingBench t = 0.1 = LongWriter-Zero's +-10%
for explicit counts; both are config keys). Bounds are rounded half up to integers.
  about / exact N   ("3000 words", "about 3000", "3000字左右")   -> [N(1-t), N(1+t)]
  at least N        ("no less than 3000", "不少于3000字", "3000字以上") -> [N, N(1+2t)]
  at most N         ("within 1500 words", "不超过1500字", "1500字以内") -> [N(1-2t), N]
  range A-B         ("2000-2500 words", "between 1000 and 1500 words", "3000～4000字") -> [A, B]
All kinds give a window 2t*N wide except explicit ranges, which are kept as written.

Finding the requirement is a heuristic over free text (queries also carry the user's material):
mentions scoped to a part ("each section", "per novel", "每条", titles, slogans, "increase by")
are skipped; a mention marked as the total ("total", "overall", "总", "全文", ...) wins; otherwise
the first remaining mention. Durations ("10分钟", "15-minute") and "characters" are not lengths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["about", "at_least", "at_most", "range"]

# LongWriter-Zero's rules for a predicted word range (docs/design.md, "Length-range selection"): the one
# home of these numbers. The predictor's prompt and parser (judges/prompts.py, judges/parsers.py) state
# them, and the length reward's absolute cap L_max defaults to MAX_WORDS, so its reward reaches 0
# exactly where no predicted target can reach.
MAX_WORDS = 12000
MAX_RANGE_WIDTH = 3000
RANGE_STEP = 100

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_MULT = r"[万千]?"
_UNIT = r"(?:\s*-?\s*words?\b|\s*(?:个)?(?:汉)?字)"
_SEP = r"\s*(?:-|–|—|~|～|〜|to|至|到)\s*"
_MENTION = re.compile(
    rf"(?:between\s+(?P<b_lo>{_NUM})(?P<b_lo_m>{_MULT})\s+and\s+(?P<b_hi>{_NUM})(?P<b_hi_m>{_MULT})"
    rf"|(?P<lo>{_NUM})(?P<lo_m>{_MULT})(?:{_SEP}(?P<hi>{_NUM})(?P<hi_m>{_MULT}))?){_UNIT}",
    re.IGNORECASE,
)

# Qualifier before the number: ordered so that negated forms win ("no less than" before "less than").
_BEFORE = re.compile(
    r"(?P<at_least>no less than|not less than|no fewer than|not fewer than|at least|more than|"
    r"\bover\b|\bexceed(?:ing|s)?\b|a minimum of|\bminimum(?: of)?|不少于|不低于|不小于|至少|最少|超过|多于|大于)"
    r"|(?P<at_most>no more than|not more than|not to exceed|not exceed(?:ing)?|\bwithin\b|\bunder\b|"
    r"less than|fewer than|up to|at most|a maximum of|\bmaximum(?: of)?|limited to|不超过|不多于|不得超过|"
    r"不要超过|少于|最多)"
    r"|(?P<about>\babout\b|approximately|approx\.?|\baround\b|roughly|nearly|close to|大约|大概|约)",
    re.IGNORECASE,
)
_AFTER = re.compile(
    r"^\s*(?:(?P<at_least>以上|或以上|起|or more|at least|minimum)|(?P<at_most>以内|之内|以下|内|or less|"
    r"or fewer|max(?:imum)?)|(?P<about>左右|上下|or so))",
    re.IGNORECASE,
)
_TOTAL = re.compile(
    r"\btotal|overall|altogether|\bentire\b|\bwhole\b|full text|总字数|总长|总篇幅|总体|总计|总共|共计|合计|全文|"
    r"整体|全篇|通篇|整篇",
    re.IGNORECASE,
)
_PART = re.compile(
    r"\beach\b|\bper\b|\bevery\b|\bseveral\b|\btitles?\b|headline|slogan|subtitle|increase by|expand by|"
    r"\badd\b|每|标题|口号|标语|增加",
    re.IGNORECASE,
)
_PART_AFTER = re.compile(r"^\s*(?:each|per\b|apiece|for each)", re.IGNORECASE)
_BOUNDARY = re.compile(r"[.。;；!?！？\n]")


@dataclass(frozen=True)
class LengthRequirement:
    """One length mention found in a text: kind, numbers (low == high unless a range), matched text."""

    kind: Kind
    low: int
    high: int
    text: str
    scope: Literal["total", "plain", "part"] = "plain"

    def to_range(self, tolerance: float) -> tuple[int, int]:
        if self.kind == "range":
            return (min(self.low, self.high), max(self.low, self.high))
        if self.kind == "at_least":
            return (self.low, _round(self.low * (1 + 2 * tolerance)))
        if self.kind == "at_most":
            return (_round(self.low * (1 - 2 * tolerance)), self.low)
        return range_around(self.low, tolerance)


def _round(x: float) -> int:
    """Round half up (Python's round() is half-to-even: round(2.5) == 2)."""
    return int(x + 0.5)


def range_around(required: int, tolerance: float) -> tuple[int, int]:
    """[required(1-t), required(1+t)], rounded half up. range_around(1000, 0.2) == (800, 1200)."""
    if required < 0 or not 0 <= tolerance <= 1:
        raise ValueError(f"need required >= 0 and 0 <= tolerance <= 1, got {required}, {tolerance}")
    return (_round(required * (1 - tolerance)), _round(required * (1 + tolerance)))


def _number(digits: str, multiplier: str) -> int:
    value = float(digits.replace(",", ""))
    value *= {"万": 10000, "千": 1000}.get(multiplier, 1)
    return _round(value)


def find_length_mentions(text: str) -> list[LengthRequirement]:
    """Every length mention in `text`, in order, with its kind and scope (see module docstring)."""
    mentions: list[LengthRequirement] = []
    previous_end = 0
    for match in _MENTION.finditer(text):
        if match["b_lo"]:
            lo, hi = _number(match["b_lo"], match["b_lo_m"]), _number(match["b_hi"], match["b_hi_m"])
        else:
            hi_mult = match["hi_m"] or ""
            # "1-2万字" means 10000-20000: the multiplier written once applies to both numbers.
            lo = _number(match["lo"], match["lo_m"] or hi_mult)
            hi = _number(match["hi"], hi_mult) if match["hi"] else lo
        # The clause before this mention: from the last sentence boundary or the previous mention.
        before = text[max(previous_end, match.start() - 100) : match.start()]
        cut = max((m.end() for m in _BOUNDARY.finditer(before)), default=0)
        before = before[cut:]
        after = text[match.end() : match.end() + 16]
        previous_end = match.end()
        if match["hi"] or match["b_lo"]:
            kind: Kind = "range"
        else:
            after_q = _AFTER.match(after)
            before_q = list(_BEFORE.finditer(before[-30:]))  # a qualifier sits next to its number
            qualifier = after_q or (before_q[-1] if before_q else None)
            kind = next((k for k in ("at_least", "at_most", "about") if qualifier and qualifier[k]), "about")
        if _TOTAL.search(before):
            scope: Literal["total", "plain", "part"] = "total"
        elif _PART.search(before) or _PART_AFTER.match(after):
            scope = "part"
        else:
            scope = "plain"
        mentions.append(LengthRequirement(kind, lo, hi, match.group(0).strip(), scope))
    return mentions


def parse_length_requirement(text: str) -> LengthRequirement | None:
    """The length the whole answer should have, or None when the text states none.

    >>> parse_length_requirement("Write a 2500-word briefing.").to_range(0.1)
    (2250, 2750)
    >>> parse_length_requirement("每个部分约500字，全文不少于3000字").to_range(0.1)
    (3000, 3600)
    >>> parse_length_requirement("Each slogan should be 15-20 words") is None
    True
    """
    mentions = [m for m in find_length_mentions(text) if m.scope != "part" and m.high > 0]
    totals = [m for m in mentions if m.scope == "total"]
    return (totals or mentions or [None])[0]
