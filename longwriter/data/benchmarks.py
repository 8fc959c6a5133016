"""Loaders for the public benchmark formats: LongBench-Write and WritingBench.

Both read the benchmark's own JSONL unchanged (users fetch the files from the original repos and
point `data.path` at them). Ids are `<file stem>-<row id>` so that the zh+en, en-only and ruler
files of LongBench-Write, or WritingBench's two checklist variants, never collide in caches.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any

from longwriter.data.length_requirements import parse_length_requirement, range_around
from longwriter.data.loader_registry import (
    build_samples,
    iter_jsonl,
    register_loader,
    require_int,
    require_object,
    require_str,
    resolve_path,
)
from longwriter.data.schema import DataError, Sample

logger = logging.getLogger(__name__)

_BAND = re.compile(r"^(\d+)-(\d+)$")


@register_loader("longbench_write")
def load_longbench_write(cfg: Mapping[str, Any]) -> list[Sample]:
    """LongBench-Write rows {prompt, type, length}.

    length_range = [x(1-t), x(1+t)] around the required length x (t = data.length_tolerance,
    default 0.2, rounded half up): S_l peaks at y = x and is >= 87.5 anywhere inside [0.8x, 1.2x]
    (at 0.8x: 100(1 - (1.25-1)/2) = 87.5; at 1.2x: 100(1 - 0.2/3) = 93.3).
    """
    path = resolve_path(cfg)
    tolerance = float(cfg.get("length_tolerance", 0.2))

    def rows() -> Iterator[tuple[str, dict[str, Any]]]:
        for index, (where, raw) in enumerate(iter_jsonl(path)):
            row = require_object(raw, where)
            prompt = require_str(row, "prompt", where)
            kind = require_str(row, "type", where, allow_missing=True)
            required = require_int(row, "length", where, minimum=1)
            yield where, {
                "id": f"{path.stem}-{index}",
                "prompt": [{"role": "user", "content": prompt}],
                "length_range": list(range_around(required, tolerance)),
                "source": "longbench_write",
                "meta": {"type": kind, "required_length": required},
            }

    return build_samples(rows())


def checklist_criteria(checklist: Any, where: str, with_rubric: bool = False) -> list[str]:
    """One criterion string per WritingBench checklist item: "Name: description".

    Underscores in names become spaces ("Technical_Accuracy" -> "Technical Accuracy"). With
    `with_rubric`, the 1-10 score bands follow on one line each ("1-2: ..."), which is what
    WritingBench's critic sees; the raw checklist is always kept in `meta["checklist"]`.
    """
    if not isinstance(checklist, list) or not checklist:
        raise DataError(f"{where}: field 'checklist' must be a non-empty list of criteria")
    criteria = []
    for k, item in enumerate(checklist):
        item_where = f"{where}: field 'checklist' item {k}"
        if not isinstance(item, Mapping):
            raise DataError(f"{item_where} must be an object, got {type(item).__name__}")
        for key in ("name", "criteria_description"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise DataError(f"{item_where} needs a non-empty string '{key}'")
        text = f"{item['name'].replace('_', ' ').strip()}: {item['criteria_description'].strip()}"
        if with_rubric:
            bands = sorted((int(m[1]), key) for key in item if (m := _BAND.match(str(key))))
            text += "".join(f"\n{key}: {str(item[key]).strip()}" for _, key in bands)
        criteria.append(text)
    return criteria


@register_loader("writingbench")
def load_writingbench(cfg: Mapping[str, Any]) -> list[Sample]:
    """WritingBench rows {index, domain1, domain2, query, checklist}.

    length_range comes from an explicit requirement in the query ("2000-2500 words", "3000字左右",
    "不少于2万字"; rules in `longwriter.data.length_requirements`, t = data.length_tolerance,
    default 0.1), else None. The matched phrase is kept in meta["length_requirement"].
    """
    path = resolve_path(cfg)
    tolerance = float(cfg.get("length_tolerance", 0.1))
    with_rubric = bool(cfg.get("criteria_with_rubric", False))

    def rows() -> Iterator[tuple[str, dict[str, Any]]]:
        for where, raw in iter_jsonl(path):
            row = require_object(raw, where)
            index = require_int(row, "index", where)
            query = require_str(row, "query", where)
            domain1 = require_str(row, "domain1", where, allow_missing=True)
            domain2 = require_str(row, "domain2", where, allow_missing=True)
            criteria = checklist_criteria(row.get("checklist"), where, with_rubric)
            requirement = parse_length_requirement(query)
            yield where, {
                "id": f"{path.stem}-{index}",
                "prompt": [{"role": "user", "content": query}],
                "criteria": criteria,
                "length_range": list(requirement.to_range(tolerance)) if requirement else None,
                "source": "writingbench",
                "meta": {
                    "domain1": domain1,
                    "domain2": domain2,
                    "index": index,
                    "checklist": row["checklist"],
                    "length_requirement": requirement.text if requirement else None,
                },
            }

    samples = build_samples(rows())
    with_range = sum(s.length_range is not None for s in samples)
    logger.info("writingbench %s: %d samples, %d with an explicit length requirement", path, len(samples), with_range)
    return samples
