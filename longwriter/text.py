"""Text measurements shared by rewards and evaluation.

Word counting follows LongBench-Write: English (and other space-separated) words plus every CJK
character counted as one word, so that Chinese and mixed text get comparable lengths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# CJK Unified Ideographs (+ Ext A), compatibility ideographs, Hiragana/Katakana, Hangul syllables.
_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_WORD = re.compile(rf"[^\s{_CJK}]+")
# A "word" must contain at least one letter or digit; bare punctuation runs ("--", "...") do not count.
_HAS_ALNUM = re.compile(r"\w")


def count_words(text: str) -> int:
    """Words in `text`: space-separated tokens with a letter/digit, plus one per CJK character."""
    if not text:
        return 0
    cjk = len(_CJK_CHAR.findall(text))
    words = sum(1 for token in _WORD.findall(text) if _HAS_ALNUM.search(token))
    return cjk + words


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
