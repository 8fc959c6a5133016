"""verl parquet export/import: exact round trip and the column layout verl's RLHFDataset reads."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from longwriter.data.loaders import load_samples
from longwriter.data.schema import DataError, Sample
from longwriter.data.verl_parquet import export_verl_parquet, from_verl_rows, import_verl_parquet

SAMPLES = [
    Sample(
        id="zh-1",
        prompt=[{"role": "system", "content": "你是作家。"}, {"role": "user", "content": "写一篇关于秋天的散文，约800字。"}],
        criteria=["语言优美: 用词准确", "Structure: clear\nwith a two-line criterion"],
        references=["弱的参考", "较好的参考", "最好的参考"],
        length_range=(720, 880),
        source="writingbench",
        start_level=2,
        meta={"domain1": "文学", "checklist": [{"name": "a", "1-2": "差"}], "index": 3},
    ),
    Sample(id="en-no-refs", prompt=[{"role": "user", "content": "Write a haiku."}], criteria=["Form: 5-7-5"],
           length_range=(10, 20), source="builtin"),
    Sample(id="en-no-criteria", prompt=[{"role": "user", "content": "Write a story."}], references=["Once."],
           length_range=(500, 700), source="builtin", meta={"type": "Literature"}),
    Sample(id="no-range", prompt=[{"role": "user", "content": "Describe rain."}], source="longbench_write"),
]


def test_round_trip_gives_equal_samples(tmp_path: Path) -> None:
    path = export_verl_parquet(SAMPLES, tmp_path / "train.parquet", split="train")
    assert import_verl_parquet(path) == SAMPLES


def test_registered_loader_reads_it_back(tmp_path: Path) -> None:
    path = export_verl_parquet(SAMPLES, tmp_path / "val.parquet", split="test")
    loaded = load_samples({"name": "parquet", "format": "verl_parquet", "path": str(path), "shuffle_seed": None})
    assert loaded == SAMPLES


def test_columns_and_types_are_what_verl_reads(tmp_path: Path) -> None:
    path = export_verl_parquet(SAMPLES, tmp_path / "train.parquet", split="train", reward_style="model")
    table = pq.read_table(path)
    assert table.column_names == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    schema = table.schema
    assert schema.field("data_source").type == pa.string()
    assert schema.field("prompt").type == pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    truth_type = schema.field("reward_model").type.field("ground_truth").type
    assert truth_type.field("target").type == pa.list_(pa.string())  # never list<null>, even if all empty
    rows = table.to_pylist()
    assert [r["data_source"] for r in rows] == ["writingbench", "builtin", "builtin", "longbench_write"]
    assert {r["ability"] for r in rows} == {"writing"}
    first = rows[0]
    assert first["prompt"] == SAMPLES[0].prompt
    assert first["reward_model"]["style"] == "model"
    assert first["reward_model"]["ground_truth"] == {
        "prompt": "写一篇关于秋天的散文，约800字。",
        "target": ["弱的参考", "较好的参考", "最好的参考"],
        "criteria": "语言优美: 用词准确\nStructure: clear\nwith a two-line criterion",
        "id": "zh-1",
    }
    assert [r["extra_info"]["index"] for r in rows] == [0, 1, 2, 3]
    assert {r["extra_info"]["split"] for r in rows} == {"train"}
    assert first["extra_info"]["length_range"] == [720, 880] and first["extra_info"]["start_level"] == 2
    assert json.loads(first["extra_info"]["meta"])["domain1"] == "文学"
    assert rows[1]["reward_model"]["ground_truth"]["target"] == []
    assert rows[2]["reward_model"]["ground_truth"]["criteria"] is None
    assert rows[3]["extra_info"]["length_range"] is None


def test_all_empty_references_still_typed_as_strings(tmp_path: Path) -> None:
    path = export_verl_parquet(SAMPLES[1:2] + SAMPLES[3:], tmp_path / "t.parquet")
    truth_type = pq.read_schema(path).field("reward_model").type.field("ground_truth").type
    assert truth_type.field("target").type == pa.list_(pa.string())
    assert truth_type.field("criteria").type == pa.string()


def test_hf_datasets_parquet_reader_sees_plain_python_rows(tmp_path: Path) -> None:
    """verl's RLHFDataset loads these files with datasets.load_dataset("parquet", ...)."""
    datasets = pytest.importorskip("datasets")
    path = export_verl_parquet(SAMPLES, tmp_path / "train.parquet")
    ds = datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    row = ds[0]
    assert row["prompt"][1] == {"role": "user", "content": "写一篇关于秋天的散文，约800字。"}
    assert row["reward_model"]["ground_truth"]["target"][2] == "最好的参考"
    assert row["extra_info"]["index"] == 0


def test_imports_rows_written_by_others() -> None:
    """A Writing-RL-style row: target a single string, criteria only as the joined string, no extra_info."""
    row = {
        "data_source": "writing_rl",
        "prompt": [{"role": "user", "content": "Write an essay."}],
        "ability": "writing",
        "reward_model": {"style": "model", "ground_truth": {"prompt": "Write an essay.", "target": "A reference.",
                                                             "criteria": "Clarity\nDepth", "id": 17}},
    }
    (sample,) = from_verl_rows([row])
    assert sample == Sample(id="17", prompt=row["prompt"], criteria=["Clarity", "Depth"], references=["A reference."],
                            source="writing_rl")


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"row 0: field 'reward_model.ground_truth'"):
        from_verl_rows([{"prompt": "x", "reward_model": {"style": "model"}}])
    with pytest.raises(DataError, match="not found"):
        import_verl_parquet(tmp_path / "absent.parquet")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="not a readable parquet file"):
        import_verl_parquet(tmp_path / "junk.parquet")
    with pytest.raises(ValueError, match="reward_style"):
        export_verl_parquet(SAMPLES, tmp_path / "x.parquet", reward_style="judge")  # type: ignore[arg-type]


def test_builtin_set_round_trips(tmp_path: Path) -> None:
    from longwriter.data.loaders import BUILTIN_PATH

    if not BUILTIN_PATH.is_file():
        pytest.skip(f"{BUILTIN_PATH} not written yet")
    samples = load_samples({"name": "builtin", "shuffle_seed": None})
    assert import_verl_parquet(export_verl_parquet(samples, tmp_path / "builtin.parquet")) == samples
