"""Text measurements shared by rewards and evaluation.

Word counting (`count_words`) follows LongBench-Write's own code by default (THUDM/LongWriter,
`evaluation/pred.py`; ../shared/benchmarks/README.md): the number of matches of `\\b[a-zA-Z]+\\b`
plus the number of characters in `[\\u4e00-\\u9fff]`. So "don't" is 2 words, "state-of-the-art" 4,
"U.S.A." 3, "2024" 0, "GPT4" 0, "café" 0 and "中文English" 2 (an ideograph next to a Latin letter
leaves no word boundary). That is the unit of the published S_l numbers and of the length reward.

Other conventions are named (`WORD_COUNTS`, chosen with `eval.word_count` and the length
component's `word_count` option), for text the reference rule does not see:
  longbench_write  the reference rule above (default).
  cjk_extended     the reference rule, plus one word per kana, Hangul syllable, CJK Extension A or
                   compatibility ideograph (Japanese/Korean text is otherwise nearly uncounted).
  unicode_words    runs of Unicode letters/digits split at anything else ("café" 1, "2024" 1,
                   "GPT4" 1, "don't" 2), plus one per CJK/kana/Hangul character: counts numbers and
                   accented or non-Latin words.
  whitespace       the project's counter before issue 12: space-separated tokens holding a letter or
                   digit, plus one per CJK/kana/Hangul character. Kept to compare with old runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

# CJK Unified Ideographs (+ Ext A), compatibility ideographs, Hiragana/Katakana, Hangul syllables.
_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK_CHAR = re.compile(f"[{_CJK}]")
# LongBench-Write's two patterns, verbatim in meaning: ASCII-letter words and the basic ideograph block.
_LBW_LATIN = re.compile(r"\b[a-zA-Z]+\b")
_LBW_IDEOGRAPH = re.compile(r"[\u4e00-\u9fff]")
_WHITESPACE_TOKEN = re.compile(rf"[^\s{_CJK}]+")
_HAS_ALNUM = re.compile(r"\w")  # bare punctuation runs ("--", "...") are not words
_UNICODE_WORD = re.compile(rf"[^\W_{_CJK}]+")

DEFAULT_WORD_COUNT = "longbench_write"


def _longbench_write(text: str) -> int:
    return len(_LBW_LATIN.findall(text)) + len(_LBW_IDEOGRAPH.findall(text))


def _cjk_extended(text: str) -> int:
    return len(_LBW_LATIN.findall(text)) + len(_CJK_CHAR.findall(text))


def _unicode_words(text: str) -> int:
    return len(_UNICODE_WORD.findall(text)) + len(_CJK_CHAR.findall(text))


def _whitespace(text: str) -> int:
    words = sum(1 for token in _WHITESPACE_TOKEN.findall(text) if _HAS_ALNUM.search(token))
    return words + len(_CJK_CHAR.findall(text))


WORD_COUNTS: dict[str, Callable[[str], int]] = {
    "longbench_write": _longbench_write,
    "cjk_extended": _cjk_extended,
    "unicode_words": _unicode_words,
    "whitespace": _whitespace,
}


def check_word_count(name: str) -> str:
    """`name` if it is a known convention, else a ValueError listing them."""
    if name not in WORD_COUNTS:
        raise ValueError(f"unknown word count convention {name!r}; known: {sorted(WORD_COUNTS)}")
    return name


def count_words(text: str, convention: str = DEFAULT_WORD_COUNT) -> int:
    """Words in `text` under a named convention (module doc); LongBench-Write's rule by default.

    >>> count_words("State-of-the-art U.S.A. in 2024"), count_words("中文English")
    (7, 2)
    """
    counter = WORD_COUNTS[check_word_count(convention)]
    return counter(text) if text else 0


_THINK_ANSWER = re.compile(
    r"^\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*$", re.DOTALL
)


@dataclass(frozen=True)
class ThinkAnswer:
    """A completion split into its reasoning and its answer.

    well_formed: exactly one <think>...</think> followed by exactly one <answer>...</answer>
    and nothing else around them.
    answer: the answer part when well formed; otherwise the best-effort answer (text inside the
    first <answer> tag if any, else the text after </think> if any, else the whole completion).
    """

    think: str
    answer: str
    well_formed: bool


def split_think_answer(completion: str) -> ThinkAnswer:
    text = completion or ""
    tag_counts_ok = all(text.count(tag) == 1 for tag in ("<think>", "</think>", "<answer>", "</answer>"))
    match = _THINK_ANSWER.match(text) if tag_counts_ok else None
    if match:
        return ThinkAnswer(match["think"].strip(), match["answer"].strip(), True)
    answer_open = text.find("<answer>")
    if answer_open != -1:
        rest = text[answer_open + len("<answer>"):]
        end = rest.find("</answer>")
        return ThinkAnswer("", (rest if end == -1 else rest[:end]).strip(), False)
    think_close = text.find("</think>")
    if think_close != -1:
        return ThinkAnswer(text[:think_close].replace("<think>", "").strip(),
                           text[think_close + len("</think>"):].strip(), False)
    return ThinkAnswer("", text.strip(), False)


# Units for repetition: each CJK character, or a run of word characters (case-folded, punctuation dropped).
_UNIT = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+")


def repetition_units(text: str) -> list[str]:
    """The sequence repetition is measured on: lower-cased words, and CJK text as single characters."""
    return _UNIT.findall((text or "").lower())


def repetition_rate(text: str, n: int = 3) -> float:
    """Share of the n-grams of `text` that repeat an earlier n-gram: 1 - distinct / total.

    0.0 for text with no repeated n-gram (and for text shorter than n units); close to 1.0 for
    degenerate loops ("the cat the cat the cat ..."). Words for space-separated scripts,
    characters for CJK (see `repetition_units`), so mixed text is measured on one sequence.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    units = repetition_units(text)
    total = len(units) - n + 1
    if total <= 0:
        return 0.0
    distinct = len({tuple(units[i:i + n]) for i in range(total)})
    return 1.0 - distinct / total
