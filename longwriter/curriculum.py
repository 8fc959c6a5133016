"""Dynamic reference scheduling (Writing-RL curriculum, DESIGN 3.2; Lei et al. 2025, arXiv 2506.05760).

Each training sample has a reference level: an index into its references, ordered weakest to
strongest. When the policy beats the current reference, the sample moves up (never past the last).
Rules: "any" (a win by any response of the group moves the sample up one level), "majority"
(at least half of the group's judged responses win: one level), "per_response" (each winning
response moves one level: the behaviour of the public Writing-RL code).

The state is explicit and durable: a sqlite file (WAL, busy timeout) keyed by the stable sample
id, one transaction per `record` (BEGIN IMMEDIATE, so concurrent reward workers in threads or
processes serialise their read-modify-write), exported to JSON with each checkpoint and imported
on resume. Every operation opens its own short connection, so an instance can be shared by
threads and pickled to worker processes. Writing-RL instead rewrote a JSON file from inside its
reward function with a thread lock only; that loses updates across processes.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import tempfile
import time
from collections import defaultdict
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from longwriter.data.schema import Sample

logger = logging.getLogger(__name__)

RULES = ("any", "majority", "per_response")
# The exported state's file name in every checkpoint and final-model folder (both engines, resume reads it).
CURRICULUM_FILE = "curriculum.json"
_FORMAT = "longwriter-curriculum"
_SCHEMA = """CREATE TABLE IF NOT EXISTS levels (
    sample_id TEXT PRIMARY KEY,
    level INTEGER NOT NULL,
    max_level INTEGER NOT NULL,
    wins INTEGER NOT NULL DEFAULT 0
)"""
_CHUNK = 500  # ids per IN (...) query, well below sqlite's variable limit


def level_steps(wins: int, judged: int, rule: str) -> int:
    """Levels a group moves up, given its number of winning and of judged responses."""
    if rule == "any":
        return int(wins > 0)
    if rule == "majority":
        return int(wins > 0 and 2 * wins >= judged)
    if rule == "per_response":
        return wins
    raise ValueError(f"unknown curriculum rule '{rule}'; available: {list(RULES)}")


class CurriculumState:
    """Reference level per sample id, persisted in the sqlite file at `path`."""

    def __init__(self, path: str | os.PathLike, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._init_db()

    def __repr__(self) -> str:
        return f"CurriculumState({str(self.path)!r})"

    def _init_db(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:  # switching to WAL can report "locked" without waiting when many processes start at once
            try:
                with self._connect() as conn:
                    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                        conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute(_SCHEMA)
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)) as conn:
            conn.execute("PRAGMA synchronous=FULL")  # a committed level survives a crash of the process
            yield conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")  # take the write lock before reading: no lost updates
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _stored(self, conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(f"SELECT sample_id, level FROM levels WHERE sample_id IN ({marks})", chunk)
            found.update({sample_id: level for sample_id, level in rows})
        return found

    def levels(self, samples: Sequence[Sample]) -> list[int]:
        """Current level of each sample (its start_level until recorded), capped at its last reference."""
        with self._connect() as conn:
            stored = self._stored(conn, [s.id for s in samples])
        return [min(stored.get(s.id, s.start_level), max(len(s.references) - 1, 0)) for s in samples]

    def register(self, samples: Sequence[Sample]) -> int:
        """Add samples not yet in the state at their start level (so the histogram covers them)."""
        rows = [(s.id, min(s.start_level, max(len(s.references) - 1, 0)), max(len(s.references) - 1, 0))
                for s in samples if s.references]
        with self._transaction() as conn:
            before = conn.total_changes
            conn.executemany("INSERT OR IGNORE INTO levels (sample_id, level, max_level) VALUES (?, ?, ?)", rows)
            return conn.total_changes - before

    def record(self, sample_ids: Sequence[str], group_index: Sequence[int] | np.ndarray, won: Sequence[bool],
               num_refs: Sequence[int], rule: str = "any",
               start_levels: Sequence[int] | None = None) -> dict[str, int]:
        """Apply one batch of judged responses; returns {sample_id: new_level} for samples that moved.

        All arguments are per response [N]. A group is the responses sharing a group id (they must
        share one sample id); a sample with no references is ignored. Pass only responses with a
        known verdict: for "majority" the group size is the number of judged responses.
        start_levels: the level of a sample not yet in the state (default 0).
        """
        groups = self._groups(sample_ids, group_index, won, num_refs, start_levels)
        moved: dict[str, int] = {}
        with self._transaction() as conn:
            for sample_id, wins, judged, refs, start in groups:
                max_level = refs - 1
                conn.execute("INSERT OR IGNORE INTO levels (sample_id, level, max_level) VALUES (?, ?, ?)",
                             (sample_id, min(start, max_level), max_level))
                (level,) = conn.execute("SELECT level FROM levels WHERE sample_id = ?", (sample_id,)).fetchone()
                new_level = min(level + level_steps(wins, judged, rule), max_level)
                conn.execute("UPDATE levels SET level = ?, max_level = ?, wins = wins + ? WHERE sample_id = ?",
                             (new_level, max_level, wins, sample_id))
                if new_level != level:
                    moved[sample_id] = new_level
        if moved:
            logger.debug("curriculum: %d sample(s) moved up (%s)", len(moved), rule)
        return moved

    @staticmethod
    def _groups(sample_ids, group_index, won, num_refs, start_levels) -> list[tuple[str, int, int, int, int]]:
        """(sample_id, wins, judged, num_refs, start_level) per group, validated."""
        n = len(sample_ids)
        starts = list(start_levels) if start_levels is not None else [0] * n
        group_index = np.asarray(group_index)
        if not (len(won) == len(num_refs) == len(starts) == group_index.shape[0] == n):
            raise ValueError("record: sample_ids, group_index, won, num_refs and start_levels need "
                             "one entry per response")
        by_group: dict[int, list[int]] = defaultdict(list)
        for i, g in enumerate(group_index.tolist()):
            by_group[g].append(i)
        out = []
        for g, rows in by_group.items():
            ids = {sample_ids[i] for i in rows}
            if len(ids) != 1:
                raise ValueError(f"record: group {g} mixes sample ids {sorted(ids)}")
            refs = int(num_refs[rows[0]])
            if refs <= 0:
                continue
            wins = sum(bool(won[i]) for i in rows)
            out.append((sample_ids[rows[0]], wins, len(rows), refs, int(starts[rows[0]])))
        return out

    def snapshot(self) -> dict[str, int]:
        """{sample_id: level} for every sample in the state."""
        with self._connect() as conn:
            return dict(conn.execute("SELECT sample_id, level FROM levels ORDER BY sample_id"))

    def histogram(self, num_levels: int | None = None) -> dict[int, int]:
        """{level: number of samples}; with num_levels, levels 0..num_levels-1 are present (maybe 0)."""
        with self._connect() as conn:
            counts = dict(conn.execute("SELECT level, COUNT(*) FROM levels GROUP BY level"))
        if num_levels is not None:
            counts = {**{k: 0 for k in range(num_levels)}, **counts}
        return dict(sorted(counts.items()))

    def export_json(self, path: str | os.PathLike) -> None:
        """Write the whole state to `path` atomically (temporary file, fsync, os.replace)."""
        with self._connect() as conn:
            rows = conn.execute("SELECT sample_id, level, max_level, wins FROM levels ORDER BY sample_id")
            state = {sid: {"level": lv, "max_level": mx, "wins": w} for sid, lv, mx, w in rows}
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"format": _FORMAT, "version": 1, "samples": state}, handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def import_json(self, path: str | os.PathLike) -> int:
        """Replace the whole state with an export (resume from a checkpoint); returns the sample count."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(data.get("samples"), dict):
            raise ValueError(f"{path}: not a longwriter curriculum export")
        rows = []
        for sample_id, entry in data["samples"].items():
            level, max_level = int(entry["level"]), int(entry["max_level"])
            if not 0 <= level <= max_level:
                raise ValueError(f"{path}: sample '{sample_id}' has level {level} outside [0, {max_level}]")
            rows.append((sample_id, level, max_level, int(entry.get("wins", 0))))
        with self._transaction() as conn:
            conn.execute("DELETE FROM levels")
            conn.executemany("INSERT INTO levels (sample_id, level, max_level, wins) VALUES (?, ?, ?, ?)", rows)
        return len(rows)
