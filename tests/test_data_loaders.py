"""Data loaders: the real shared benchmark files, the project's own formats, and bad rows.

Real files come from ../shared/benchmarks beside the checkout (see its README); tests that need them
skip with a reason when that folder is absent.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from longwriter.data import loaders
from longwriter.data.length_requirements import parse_length_requirement, range_around
from longwriter.data.loaders import load_samples, save_samples
from longwriter.data.loader_registry import register_loader, registered_loaders
from longwriter.data.schema import DataError, Sample

from conftest import compose

BENCH = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
LBW = BENCH / "longbench_write"
WB = BENCH / "writingbench_length"
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def bench() -> Path:
    if not BENCH.is_dir():
        pytest.skip(f"shared benchmark folder not found at {BENCH} (it sits beside the repo checkout)")
    return BENCH


def _load(fmt: str, path: Path, **extra) -> list[Sample]:
    return load_samples({"name": fmt, "path": str(path), "shuffle_seed": None, "limit": None, **extra})


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- LongBench-Write -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filename,count", [("longbench_write.jsonl", 120), ("longbench_write_en.jsonl", 60), ("longwrite_ruler.jsonl", 48)]
)
def test_longbench_write_files_load_with_length_ranges(bench: Path, filename: str, count: int) -> None:
    path = LBW / filename
    samples = _load("longbench_write", path)
    raw = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(samples) == len(raw) == count
    assert len({s.id for s in samples}) == count
    for i, (sample, row) in enumerate(zip(samples, raw)):
        assert sample.id == f"{path.stem}-{i}"
        assert sample.prompt == [{"role": "user", "content": row["prompt"]}]
        assert sample.meta == {"type": row["type"], "required_length": row["length"]}
        assert sample.source == "longbench_write" and sample.criteria == [] and sample.references == []
        lo, hi = sample.length_range
        assert lo <= row["length"] <= hi
        assert (lo, hi) == range_around(row["length"], 0.2)


def test_longbench_write_full_file_mixes_chinese_and_english(bench: Path) -> None:
    samples = _load("longbench_write", LBW / "longbench_write.jsonl")
    chinese = sum(bool(CJK.search(s.user_prompt)) for s in samples)
    assert 0 < chinese < len(samples)
    assert samples[0].length_range == (80, 120)  # required 100 -> [0.8x, 1.2x]


def test_longbench_write_ruler_lengths(bench: Path) -> None:
    samples = _load("longbench_write", LBW / "longwrite_ruler.jsonl")
    assert sorted({s.meta["required_length"] for s in samples}) == [1000, 2000, 5000, 10000, 20000, 30000]
    assert {s.length_range for s in samples if s.meta["required_length"] == 30000} == {(24000, 36000)}


def test_longbench_write_preset_default_path_composes_and_loads(bench: Path) -> None:
    cfg = compose(["data=longbench_write", "data.limit=5"])
    samples = load_samples(cfg.data)
    assert len(samples) == 5 and all(s.id.startswith("longbench_write_en-") for s in samples)


# --- WritingBench ----------------------------------------------------------------------------


def _wb_raw(name: str) -> list[dict]:
    return [json.loads(line) for line in (WB / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def test_writingbench_length_subset_loads_with_checklist_criteria(bench: Path) -> None:
    samples = _load("writingbench", WB / "length_subset.jsonl")
    raw = _wb_raw("length_subset.jsonl")
    assert len(samples) == 222 and len({s.id for s in samples}) == 222
    for sample, row in zip(samples, raw):
        assert sample.id == f"length_subset-{row['index']}"
        assert sample.user_prompt == row["query"]
        assert len(sample.criteria) == len(row["checklist"]) == 5
        for criterion, item in zip(sample.criteria, row["checklist"]):
            name, _, description = criterion.partition(": ")
            assert name == item["name"].replace("_", " ").strip() and name
            assert description == item["criteria_description"].strip() and description
        assert sample.meta["checklist"] == row["checklist"]
        assert {k: sample.meta[k] for k in ("domain1", "domain2", "index")} == {
            k: row[k] for k in ("domain1", "domain2", "index")
        }
        if sample.length_range is not None:
            lo, hi = sample.length_range
            assert 0 < lo <= hi <= 120_000 and sample.meta["length_requirement"]
    with_range = sum(s.length_range is not None for s in samples)
    assert 150 <= with_range < 222  # most queries state a length; some only a duration or none


def test_writingbench_c_variant_same_queries_requirement_checklist(bench: Path) -> None:
    """length_subset_C.jsonl is not a Chinese translation: same 222 queries (both files mix zh and
    en), with 1-2 criteria focused on the length requirement instead of 5 general ones."""
    main = {s.meta["index"]: s for s in _load("writingbench", WB / "length_subset.jsonl")}
    variant = _load("writingbench", WB / "length_subset_C.jsonl")
    assert len(variant) == 222 and len({s.id for s in variant}) == 222
    assert all(s.id.startswith("length_subset_C-") for s in variant)
    assert all(1 <= len(s.criteria) <= 2 and all(c.strip() for c in s.criteria) for s in variant)
    for sample in variant:
        twin = main[sample.meta["index"]]
        assert sample.user_prompt == twin.user_prompt and sample.length_range == twin.length_range
    assert 50 < sum(bool(CJK.search(s.user_prompt)) for s in variant) < 222


@pytest.mark.parametrize(
    "index,expected",
    [
        (16, (2000, 2500)),  # "word count requirement of 2000-2500 words"
        (23, (1000, 1500)),  # "between 1000 and 1500 words"
        (24, (2700, 3300)),  # "approximately 3000 words" -> +-10%
        (58, (3000, 3600)),  # "no less than 3000 words" -> [N, 1.2N]
        (131, (2000, 2500)),  # "2000～2500字之间"
        (184, (6000, 7200)),  # "each section ... 2000 words, with the total text exceeding 6000 words"
        (265, (1200, 1500)),  # "1500字以内" -> [0.8N, N]
        (297, (20000, 24000)),  # "不少于2万字"
        (393, (8000, 10000)),  # "2000-2500 words per novel ... Total length: 8000-10000 words"
        (414, None),  # only "Each comment should be between 50-100 words"
        (35, None),  # "10分钟左右的毕业答辩稿": a duration, not a length
    ],
)
def test_writingbench_length_ranges_hand_checked(bench: Path, index: int, expected) -> None:
    samples = {s.meta["index"]: s for s in _load("writingbench", WB / "length_subset.jsonl")}
    assert samples[index].length_range == expected


def test_writingbench_rubric_option_appends_score_bands(bench: Path) -> None:
    sample = _load("writingbench", WB / "length_subset.jsonl", criteria_with_rubric=True, limit=1)[0]
    lines = sample.criteria[0].split("\n")
    assert [line.split(":")[0] for line in lines[1:]] == ["1-2", "3-4", "5-6", "7-8", "9-10"]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Write a 2500-word briefing.", (2250, 2750)),
        ("写一篇3000字左右的文章", (2700, 3300)),
        ("全文不少于5000字", (5000, 6000)),
        ("The speech should not exceed 1,800 words.", (1440, 1800)),
        ("around 1,500-2,000 words", (1500, 2000)),
        ("篇幅1-2万字", (10000, 20000)),
        ("每个部分约500字，全文不少于3000字", (3000, 3600)),
        ("Main slogan should not exceed 12 characters", None),
        ("a 15-minute course report", None),
    ],
)
def test_length_requirement_parser(text: str, expected) -> None:
    found = parse_length_requirement(text)
    assert (found.to_range(0.1) if found else None) == expected


# --- The project's own formats, options and bad rows -----------------------------------------


def _samples() -> list[Sample]:
    return [
        Sample(id=f"s{i}", prompt=[{"role": "user", "content": f"写一篇文章 {i}"}], criteria=["清晰"],
               references=["r1", "r2"], length_range=(100, 200), source="t", start_level=1, meta={"k": [i]})
        for i in range(6)
    ]


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_own_formats_round_trip(tmp_path: Path, suffix: str) -> None:
    path = save_samples(_samples(), tmp_path / f"data.{suffix}")
    assert _load(suffix, path) == _samples()


def test_shuffle_then_limit_is_deterministic(tmp_path: Path) -> None:
    path = save_samples(_samples(), tmp_path / "data.jsonl")
    first = load_samples({"name": "jsonl", "path": str(path), "shuffle_seed": 3, "limit": 4})
    again = load_samples({"name": "jsonl", "path": str(path), "shuffle_seed": 3, "limit": 4})
    assert [s.id for s in first] == [s.id for s in again] and len(first) == 4
    assert sorted(s.id for s in load_samples({"name": "jsonl", "path": str(path), "shuffle_seed": 3})) == [
        f"s{i}" for i in range(6)
    ]
    assert [s.id for s in _load("jsonl", path, limit=2)] == ["s0", "s1"]
    with pytest.raises(DataError, match="data.limit"):
        _load("jsonl", path, limit=-1)


def test_format_key_overrides_name_and_relative_path_uses_cwd(tmp_path: Path, monkeypatch) -> None:
    save_samples(_samples(), tmp_path / "mine.jsonl")
    monkeypatch.chdir(tmp_path)
    assert len(load_samples({"name": "my_set", "format": "jsonl", "path": "mine.jsonl"})) == 6


def test_builtin_file_loads_when_present() -> None:
    if not loaders.BUILTIN_PATH.is_file():
        pytest.skip(f"{loaders.BUILTIN_PATH} not written yet")
    samples = load_samples({"name": "builtin", "limit": None, "shuffle_seed": None})
    assert samples and len({s.id for s in samples}) == len(samples)


def test_builtin_missing_file_is_a_clear_error(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(loaders, "BUILTIN_PATH", tmp_path / "absent.jsonl")
    with pytest.raises(DataError, match="built-in dataset file is missing"):
        load_samples({"name": "builtin"})


def test_missing_file_names_path_and_config_key(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(DataError) as err:
        _load("jsonl", missing)
    assert str(missing) in str(err.value) and "data.path" in str(err.value)
    with pytest.raises(DataError, match=r"set data.path="):
        load_samples({"name": "parquet", "path": "???"})


def test_unknown_format_and_duplicate_registration() -> None:
    with pytest.raises(DataError, match="registered: .*longbench_write"):
        load_samples({"name": "nonsense"})
    assert {"builtin", "jsonl", "parquet", "hf_hub", "longbench_write", "writingbench"} <= set(registered_loaders())
    with pytest.raises(ValueError, match="already registered"):
        register_loader("jsonl")(lambda cfg: [])


GOOD = '{"id": "a", "prompt": "Write."}'


@pytest.mark.parametrize(
    "fmt,lines,line_no,message",
    [
        ("jsonl", [GOOD, '{"id": "b", "prompt": '], 2, "invalid JSON"),
        ("jsonl", [GOOD, '{"id": "b"}'], 2, "field 'prompt'"),
        ("jsonl", ['{"id": "a", "prompt": "x", "criteria": 3}'], 1, "field 'criteria'"),
        ("jsonl", ['{"id": "a", "prompt": "x", "length_range": ["a", "b"]}'], 1, "field 'length_range'"),
        ("jsonl", ['["not", "an", "object"]'], 1, "expected an object"),
        ("jsonl", [GOOD, "", '{"id": "a", "prompt": "again"}'], 3, "field 'id' duplicates 'a'"),
        ("longbench_write", ['{"prompt": "x", "type": "t", "length": "100"}'], 1, "field 'length'"),
        ("longbench_write", ['{"type": "t", "length": 100}'], 1, "field 'prompt'"),
        ("writingbench", ['{"index": 1, "query": "q", "checklist": [{"name": "n"}]}'], 1,
         "field 'checklist' item 0 needs a non-empty string 'criteria_description'"),
        ("writingbench", ['{"index": "1", "query": "q", "checklist": []}'], 1, "field 'index'"),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path: Path, fmt: str, lines: list[str], line_no: int, message: str):
    path = _write(tmp_path / "bad.jsonl", lines)
    with pytest.raises(DataError) as err:
        _load(fmt, path)
    assert f"{path}:{line_no}" in str(err.value) and message in str(err.value)


def test_duplicate_id_error_names_both_lines(tmp_path: Path) -> None:
    path = _write(tmp_path / "dup.jsonl", [GOOD, GOOD])
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}:2: .*first seen at {re.escape(str(path))}:1"):
        _load("jsonl", path)


# --- HF Hub (no network: a local folder and an offline miss) ---------------------------------

_HF_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from longwriter.data.loaders import load_samples
    from longwriter.data.schema import DataError
    local, cache = sys.argv[1], sys.argv[2]
    ok = load_samples({"name": "hf_hub", "repo_id": local, "split": "train", "cache_dir": cache,
                       "shuffle_seed": None, "columns": {"id": "uid", "prompt": "question",
                       "references": "answer", "length_range": None}})
    try:
        load_samples({"name": "hf_hub", "repo_id": "longwriter-tests/no-such-dataset-xyz", "cache_dir": cache})
        error = None
    except DataError as exc:
        error = str(exc)
    print(json.dumps({"ok": [s.to_dict() for s in ok], "error": error}, ensure_ascii=False))
    """
)


def test_hf_hub_maps_columns_and_offline_miss_is_one_clear_error(tmp_path: Path) -> None:
    local = tmp_path / "local_ds"
    local.mkdir()
    rows = [{"uid": 7, "question": "写一首诗", "answer": "春"}, {"uid": 8, "question": "Write.", "answer": "Done."}]
    _write(local / "train.jsonl", [json.dumps(r, ensure_ascii=False) for r in rows])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    proc = subprocess.run([sys.executable, "-c", _HF_SCRIPT, str(local), str(tmp_path / "cache")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [(r["id"], r["prompt"][0]["content"], r["references"]) for r in result["ok"]] == [
        ("7", "写一首诗", ["春"]), ("8", "Write.", ["Done."])
    ]
    assert result["ok"][0]["source"] == str(local)
    error = result["error"]
    assert error.startswith("could not load HF dataset 'longwriter-tests/no-such-dataset-xyz'")
    assert "this machine may be offline: download it elsewhere and use data=jsonl/parquet with data.path=" in error


def test_hf_hub_needs_a_repo_id() -> None:
    with pytest.raises(DataError, match="set data.repo_id"):
        load_samples(compose(["data=hf_hub"]).data)


def test_hf_hub_column_map_errors_name_the_config_key() -> None:
    from longwriter.data.hf_hub import map_row

    with pytest.raises(DataError, match=r"data.columns.prompt='text' is not a column"):
        map_row({"question": "q"}, {"prompt": "text"}, "x:0", "src")
    with pytest.raises(DataError, match="unknown schema fields"):
        map_row({"question": "q"}, {"prompt": "question", "answer": "a"}, "x:0", "src")


def test_shipped_length_sets_are_disjoint_and_fit_their_ranges() -> None:
    train = load_samples({"name": "length_prompts", "format": "builtin", "file": "length_train.jsonl"})
    heldout = load_samples({"name": "length_heldout", "format": "builtin", "file": "length_heldout.jsonl"})
    assert len(train) >= 48 and len(heldout) >= 24
    assert not {s.user_prompt for s in train} & {s.user_prompt for s in heldout}
    assert not {s.id for s in train} & {s.id for s in heldout}
    for s in train + heldout:
        lower, upper = s.length_range
        assert lower <= s.meta["required_length"] <= upper
        assert f"{s.meta['required_length']} words" in s.user_prompt


def test_builtin_file_must_be_a_shipped_jsonl_name() -> None:
    with pytest.raises(DataError, match="no folders"):
        load_samples({"name": "builtin", "file": "../../etc/passwd.jsonl"})
    with pytest.raises(DataError, match="shipped"):
        load_samples({"name": "builtin", "file": "absent.jsonl"})
