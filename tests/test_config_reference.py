"""docs/config_reference.md is generated from conf/ (longwriter/config_reference.py) and must be current."""

from __future__ import annotations

from longwriter.config_reference import DOC, ENGINES_DOC, file_comments, render, render_engines_doc


def test_the_reference_is_up_to_date() -> None:
    assert DOC.read_text() == render(), "run: python -m longwriter.config_reference"


def test_the_engines_doc_table_is_generated_from_the_settings() -> None:
    from longwriter.engine_settings import BY_KEY

    text = ENGINES_DOC.read_text()
    assert text == render_engines_doc(text), "run: python -m longwriter.config_reference"
    assert f"| `beta` | beta | {BY_KEY['beta'].verl} |" in text


def test_every_checked_key_has_a_row() -> None:
    from longwriter.config_checks import RULES

    text = DOC.read_text()
    missing = [k for rules in RULES.values() for k in rules if "*" not in k and f"| `{k}` |" not in text]
    assert missing == []


def test_comments_come_from_the_key_line_or_the_block_above(tmp_path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("# the name\nname: a\nouter:\n  # ignored: a blank line follows\n\n  inner: 1   # one\n")
    assert file_comments(path) == {"name": "the name", "outer.inner": "one"}
