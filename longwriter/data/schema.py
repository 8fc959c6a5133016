"""The one sample schema used everywhere inside longwriter.

Every loader (built-in, JSONL, parquet, HF Hub, LongBench-Write, WritingBench, verl parquet)
turns its rows into `Sample`s through `Sample.from_dict`, so validation happens once, at the
edge, with an error that names the source, row and field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from longwriter.errors import LongwriterError


class DataError(LongwriterError, ValueError):
    """A data row or file is malformed. The message names the source, row and field."""


@dataclass
class Sample:
    """One training/evaluation prompt.

    id:            stable sample id (curriculum state and caches are keyed by it)
    prompt:        chat messages [{"role": ..., "content": ...}], at least one user message
    criteria:      evaluation criteria for the judge (empty list = generic criteria)
    references:    reference answers ordered weakest -> strongest (may be empty)
    length_range:  (lower, upper) target word range, or None when unknown
    source:        where the sample came from (dataset name)
    start_level:   initial curriculum level (index into references)
    meta:          anything else a loader wants to keep (type, domain, required length, ...)
    """

    id: str
    prompt: list[dict[str, str]]
    criteria: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    length_range: tuple[int, int] | None = None
    source: str = "unknown"
    start_level: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def user_prompt(self) -> str:
        """Text of the last user message (what the judge sees as "the prompt")."""
        for message in reversed(self.prompt):
            if message.get("role") == "user":
                return message["content"]
        return self.prompt[-1]["content"]

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["length_range"] = list(self.length_range) if self.length_range is not None else None
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any], where: str = "row") -> "Sample":
        """Validate and build a sample. `where` names the row in errors, e.g. "data.jsonl:12"."""

        def fail(field_name: str, problem: str) -> DataError:
            return DataError(f"{where}: field '{field_name}' {problem}")

        if not isinstance(row, dict):
            raise DataError(f"{where}: expected an object, got {type(row).__name__}")
        sample_id = row.get("id")
        if sample_id is None or str(sample_id).strip() == "":
            raise fail("id", "is missing or empty")
        prompt = row.get("prompt")
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        if not isinstance(prompt, list) or not prompt:
            raise fail("prompt", "must be a non-empty string or list of chat messages")
        for i, message in enumerate(prompt):
            if not isinstance(message, dict) or "role" not in message or "content" not in message:
                raise fail("prompt", f"message {i} must have 'role' and 'content'")
            if not isinstance(message["content"], str):
                raise fail("prompt", f"message {i} content must be a string")
        if not any(m["role"] == "user" and m["content"].strip() for m in prompt):
            raise fail("prompt", "has no non-empty user message")
        criteria = row.get("criteria") or []
        if isinstance(criteria, str):
            criteria = [criteria]
        if not isinstance(criteria, list) or not all(isinstance(c, str) for c in criteria):
            raise fail("criteria", "must be a string or a list of strings")
        references = row.get("references") or []
        if not isinstance(references, list) or not all(isinstance(r, str) for r in references):
            raise fail("references", "must be a list of strings")
        length_range = row.get("length_range")
        if length_range is not None:
            if not isinstance(length_range, (list, tuple)) or len(length_range) != 2:
                raise fail("length_range", "must be [lower, upper]")
            try:
                lo, hi = int(length_range[0]), int(length_range[1])
            except (TypeError, ValueError):
                raise fail("length_range", f"must hold two integers, got {length_range!r}") from None
            if lo < 0 or hi < lo:
                raise fail("length_range", f"must satisfy 0 <= lower <= upper, got [{lo}, {hi}]")
            length_range = (lo, hi)
        start_level = row.get("start_level", 0) or 0
        if not isinstance(start_level, int) or start_level < 0:
            raise fail("start_level", "must be a non-negative integer")
        meta = row.get("meta") or {}
        if not isinstance(meta, dict):
            raise fail("meta", "must be an object")
        return cls(
            id=str(sample_id),
            prompt=[{"role": m["role"], "content": m["content"]} for m in prompt],
            criteria=list(criteria),
            references=list(references),
            length_range=length_range,
            source=str(row.get("source") or "unknown"),
            start_level=start_level,
            meta=dict(meta),
        )
