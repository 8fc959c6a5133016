"""Curriculum state: level rules, persistence, export/import, concurrent writers, crash safety."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from longwriter.curriculum import CurriculumState, level_steps
from longwriter.data.schema import Sample


def sample(sid: str, n_refs: int = 3, start_level: int = 0) -> Sample:
    return Sample(id=sid, prompt=[{"role": "user", "content": "Write."}],
                  references=[f"ref{i}" for i in range(n_refs)], start_level=start_level)


def record_group(state: CurriculumState, sid: str, won: list[bool], rule: str, n_refs: int = 3, group: int = 0):
    return state.record([sid] * len(won), [group] * len(won), won, [n_refs] * len(won), rule=rule)


@pytest.mark.parametrize(
    "wins, judged, rule, steps",
    [(0, 4, "any", 0), (1, 4, "any", 1), (3, 4, "any", 1),
     (1, 4, "majority", 0), (2, 4, "majority", 1), (2, 3, "majority", 1), (1, 3, "majority", 0), (0, 0, "majority", 0),
     (0, 4, "per_response", 0), (3, 4, "per_response", 3)],
)
def test_level_steps(wins, judged, rule, steps):
    assert level_steps(wins, judged, rule) == steps


def test_defaults_rules_and_cap(tmp_path):
    state = CurriculumState(tmp_path / "c.sqlite")
    samples = [sample("a"), sample("b", start_level=1), sample("c", n_refs=2, start_level=5), sample("d", n_refs=0)]
    assert state.levels(samples) == [0, 1, 1, 0]  # start level, capped at the last reference
    assert state.snapshot() == {}  # reading levels writes nothing
    state.register(samples)  # stores the start levels that record() moves from
    assert record_group(state, "a", [True, False, False, False], "any") == {"a": 1}
    assert record_group(state, "b", [True, False, False, False], "majority") == {}
    assert record_group(state, "b", [True, True, False, False], "majority") == {"b": 2}
    assert state.levels(samples[:2]) == [1, 2]
    assert record_group(state, "a", [True, True, True], "per_response") == {"a": 2}  # 1 + 3, capped at 2
    assert record_group(state, "a", [True], "any") == {}  # already at the last level
    assert state.snapshot() == {"a": 2, "b": 2, "c": 1}
    assert record_group(state, "d", [True], "any", n_refs=0) == {}  # no references: ignored
    assert "d" not in state.snapshot()


def test_start_levels_and_groups_sharing_a_sample(tmp_path):
    state = CurriculumState(tmp_path / "c.sqlite")
    # Two groups of the same sample in one batch: each moves it (per_response: 1 + 2 wins).
    moved = state.record(["x"] * 4, [0, 0, 1, 1], [True, False, True, True], [5] * 4, rule="per_response",
                         start_levels=[1] * 4)
    assert moved == {"x": 4}


def test_bad_inputs_are_errors(tmp_path):
    state = CurriculumState(tmp_path / "c.sqlite")
    with pytest.raises(ValueError, match="mixes sample ids"):
        state.record(["a", "b"], [0, 0], [True, True], [3, 3])
    with pytest.raises(ValueError, match="one entry per response"):
        state.record(["a"], [0, 0], [True], [3])
    with pytest.raises(ValueError, match="unknown curriculum rule"):
        record_group(state, "a", [True], "sometimes")
    assert state.snapshot() == {}  # the failed transaction left nothing behind


def test_persistence_and_histogram(tmp_path):
    path = tmp_path / "sub" / "c.sqlite"
    state = CurriculumState(path)
    assert state.register([sample("a"), sample("b"), sample("c", start_level=2), sample("none", n_refs=0)]) == 3
    record_group(state, "a", [True], "any")
    reopened = CurriculumState(path)
    assert reopened.snapshot() == {"a": 1, "b": 0, "c": 2}
    assert reopened.histogram() == {0: 1, 1: 1, 2: 1}
    assert reopened.histogram(num_levels=4) == {0: 1, 1: 1, 2: 1, 3: 0}
    assert reopened.register([sample("a")]) == 0  # registering again keeps the recorded level
    assert reopened.levels([sample("a")]) == [1]


def test_export_import_round_trip(tmp_path):
    state = CurriculumState(tmp_path / "a.sqlite")
    state.register([sample("a"), sample("b")])
    record_group(state, "a", [True, True], "per_response")
    export = tmp_path / "ckpt" / "curriculum.json"
    state.export_json(export)
    data = json.loads(export.read_text())
    assert data["samples"]["a"] == {"level": 2, "max_level": 2, "wins": 2}
    assert [p.name for p in export.parent.iterdir()] == ["curriculum.json"]  # no temporary file left

    other = CurriculumState(tmp_path / "b.sqlite")
    record_group(other, "stale", [True], "any")
    assert other.import_json(export) == 2
    assert other.snapshot() == state.snapshot() == {"a": 2, "b": 0}  # import replaces the whole state
    record_group(state, "b", [True], "any")
    state.export_json(export)  # overwriting an export is atomic too
    assert json.loads(export.read_text())["samples"]["b"]["level"] == 1

    export.write_text(json.dumps({"format": "longwriter-curriculum", "samples": {"a": {"level": 5, "max_level": 2}}}))
    with pytest.raises(ValueError, match="outside"):
        other.import_json(export)
    assert other.snapshot() == {"a": 2, "b": 0}  # a bad import changes nothing


def _writer_process(path: str, worker: int, rounds: int, barrier) -> None:
    state = CurriculumState(path)
    barrier.wait(timeout=60)  # start writing together, so that the transactions really overlap
    for _ in range(rounds):
        state.record(["shared", "shared"], [0, 0], [True, False], [1000, 1000], rule="per_response")
        state.record([f"own{worker}"], [0], [True], [1000], rule="any")


def test_concurrent_processes_lose_no_update(tmp_path):
    path = str(tmp_path / "c.sqlite")
    CurriculumState(path)
    workers, rounds = 4, 30
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(workers)
    procs = [ctx.Process(target=_writer_process, args=(path, w, rounds, barrier)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * workers
    levels = CurriculumState(path).snapshot()
    assert levels["shared"] == workers * rounds
    assert all(levels[f"own{w}"] == rounds for w in range(workers))


def test_concurrent_threads_share_one_instance(tmp_path):
    state = CurriculumState(tmp_path / "c.sqlite")
    threads = [threading.Thread(target=lambda: [record_group(state, "t", [True], "per_response", n_refs=1000)
                                                for _ in range(20)]) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state.snapshot() == {"t": 120}


CHILD = """
import sys
from longwriter.curriculum import CurriculumState
state = CurriculumState(sys.argv[1])
i = 0
while True:
    state.record(["k"], [0], [True], [10**9], rule="per_response")
    i += 1
    print(i, flush=True)
"""


def test_killed_writer_keeps_what_it_committed(tmp_path):
    path = tmp_path / "c.sqlite"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        last = 0
        deadline = time.monotonic() + 30
        while last < 25 and time.monotonic() < deadline:
            last = int(child.stdout.readline())
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL and last >= 25
    resumed = CurriculumState(path)
    level = resumed.snapshot()["k"]
    # Every reported commit survived; at most the commits made after the last report are extra.
    assert last <= level
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    record_group(resumed, "k", [True], "per_response", n_refs=10**9)
    assert resumed.snapshot()["k"] == level + 1
    assert Path(path).exists()
