"""Word counting: LongBench-Write's rule by default, other conventions by name (hand-counted)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from longwriter.data.schema import Sample
from longwriter.evaluation.metrics import length_score_text
from longwriter.rewards.base import RolloutBatch
from longwriter.rewards.length import LengthComponent, LengthConfig
from longwriter.text import WORD_COUNTS, count_words

# (text, longbench_write, cjk_extended, unicode_words, whitespace), each counted by hand.
CASES = [
    ("don't", 2, 2, 2, 1),               # the apostrophe is a word boundary: "don", "t"
    ("state-of-the-art", 4, 4, 4, 1),
    ("U.S.A.", 3, 3, 3, 1),
    ("2024", 0, 0, 1, 1),                # digits are not [a-zA-Z]
    ("GPT4", 0, 0, 1, 1),                # no boundary between "T" and "4"
    ("café", 0, 0, 1, 1),                # "é" is a word character: no boundary after "caf"
    ("中文English", 2, 2, 3, 3),          # no boundary between an ideograph and a Latin letter
    ("Hello, world!", 2, 2, 2, 2),
    ("-- ... !!", 0, 0, 0, 0),
    ("", 0, 0, 0, 0),
    ("日本語のテキスト", 3, 8, 8, 8),      # 3 ideographs + 5 kana
    ("한국어 문장", 0, 5, 5, 5),           # Hangul syllables: only the extended conventions see them
    ("㐀 abc", 1, 2, 2, 2),               # CJK Extension A ideograph: outside [\u4e00-\u9fff]
    ("Привет мир", 0, 0, 2, 2),           # Cyrillic
    ("snake_case x", 1, 1, 3, 2),         # "_" is a word character: no boundary inside "snake_case"
]


@pytest.mark.parametrize("text, lbw, cjk, uni, ws", CASES)
def test_hand_counted_table(text, lbw, cjk, uni, ws):
    assert count_words(text) == lbw
    assert count_words(text, "longbench_write") == lbw
    assert count_words(text, "cjk_extended") == cjk
    assert count_words(text, "unicode_words") == uni
    assert count_words(text, "whitespace") == ws


def test_every_convention_is_in_the_table():
    assert set(WORD_COUNTS) == {"longbench_write", "cjk_extended", "unicode_words", "whitespace"}


def test_unknown_convention_is_refused_by_name():
    with pytest.raises(ValueError, match="unicode_words"):
        count_words("x", "spaces")
    with pytest.raises(ValueError, match="longbench_write"):
        LengthConfig(word_count="spaces")


def test_s_l_uses_the_reference_count():
    text = "state-of-the-art " * 25  # 100 words by the reference rule, 25 by whitespace
    assert length_score_text(100, text) == 100.0
    assert length_score_text(100, text, "whitespace") == 0.0  # 25 words for 100 asked: 4x too short


def test_length_reward_counts_by_the_configured_convention():
    sample = Sample(id="s", prompt=[{"role": "user", "content": "write"}], length_range=(90, 110))
    text = "don't " * 50  # 100 reference words, 50 whitespace words
    batch = RolloutBatch([sample, sample], [text, text], np.array([0, 0]))
    ref = asyncio_run(LengthComponent().score(batch))
    old = asyncio_run(LengthComponent(LengthConfig(word_count="whitespace")).score(batch))
    np.testing.assert_allclose(ref.rewards, [1.0, 1.0])
    np.testing.assert_allclose(old.rewards, [50 / 90, 50 / 90])
    assert not math.isnan(ref.metrics["length/words/mean"]) and ref.metrics["length/words/mean"] == 100


def asyncio_run(coro):
    import asyncio

    return asyncio.run(coro)
