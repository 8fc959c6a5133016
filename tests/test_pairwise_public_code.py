"""The public Writing-RL code's reward values, verdict reading and level moves, as options.

Hand-computed from `verl/utils/reward_score/writing_rl.py` (Tongyi-Zhiwen/Writing-RL), position
disadvantage (reference first): win = score + format_score = 1.1, tie = 1.1 / 2 = 0.55, loss and
unreadable = format_score = 0.1; the verdict is the first [[X]] marker, else a bare-letter search.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from longwriter.curriculum import CurriculumState
from longwriter.data.schema import Sample
from longwriter.judges.base import PairwiseJudgement
from longwriter.judges.parsers import read_verdict
from longwriter.rewards.base import RolloutBatch
from longwriter.rewards.pairwise import PairwiseComponent, PairwiseConfig

PUBLIC_CODE = dict(win=1.1, tie=0.55, loss=0.1, unknown="loss", verdict_reading="public_code")

# (reply, last_marker, first_marker, public_code); A = first shown = the reference here.
READINGS = [
    ("Verdict: [[B]]", "second", "second", "second"),
    ("[[A]] at first.\nOn reflection [[B]]", "second", "first", "first"),
    ("<think>maybe [[B]]</think> Verdict: [[A]]", "first", "second", "second"),
    ("Assistant B is better.", None, None, "first"),   # the bare-letter search finds "A" in "Assistant"
    ("Both are fine.", None, None, "second"),         # ... and "B" in "Both"
    ("equally good", None, None, None),
    ("It is a tie: C.", None, None, "tie"),
    ("[[A]] [[B]]", None, "first", "first"),           # conflicting markers on one line
]


@pytest.mark.parametrize("reply, last, first, public", READINGS)
def test_verdict_readings_table(reply, last, first, public):
    assert read_verdict(reply, "last_marker")[0] == last
    assert read_verdict(reply, "first_marker")[0] == first
    assert read_verdict(reply, "public_code")[0] == public


class ReplyJudge:
    """A chat judge's record: the strict verdict plus the raw reply (the external boundary)."""

    def __init__(self, replies: dict[str, str]):
        self.replies = replies

    async def compare(self, prompt, criteria, first, second) -> PairwiseJudgement:
        reply = self.replies[second]  # position disadvantage: the response is shown second
        verdict, error = read_verdict(reply)
        return PairwiseJudgement(verdict, raw=reply, error=error)


REPLIES = {"win": "Verdict: [[B]]", "tie": "[[C]]", "loss": "Verdict: [[A]]",
           "unreadable": "equally good", "letters": "I prefer B, honestly."}


SAMPLE = Sample(id="s", prompt=[{"role": "user", "content": "Write."}], references=["r0", "r1", "r2"])


def score(config: dict, training=True, curriculum=None):
    sample = SAMPLE
    batch = RolloutBatch.from_groups([sample], [list(REPLIES)], training=training)
    comp = PairwiseComponent(ReplyJudge(REPLIES), PairwiseConfig(position="disadvantage", **config),
                             curriculum=curriculum)
    return asyncio.run(comp.score(batch))


def test_paper_values_stay_the_default():
    rewards = score({}).rewards
    np.testing.assert_allclose(rewards[:3], [1.0, 0.5, 0.0])
    assert np.isnan(rewards[3]) and np.isnan(rewards[4])  # unknown -> neutral


def test_public_code_values_and_reading():
    # "I prefer B, honestly." has no marker and no "A": the letter search reads B = the response wins.
    np.testing.assert_allclose(score(PUBLIC_CODE).rewards, [1.1, 0.55, 0.1, 0.1, 1.1])


def test_validation_moves_levels_only_when_asked(tmp_path):
    state = CurriculumState(tmp_path / "c.sqlite")
    score({}, training=False, curriculum=state)
    assert state.levels([SAMPLE]) == [0]
    score({"validation_moves_levels": True}, training=False, curriculum=state)
    assert state.levels([SAMPLE]) == [1]


def test_unknown_reading_is_refused():
    with pytest.raises(ValueError, match="verdict_reading"):
        PairwiseConfig(verdict_reading="last")
