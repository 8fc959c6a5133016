"""docs/config_reference.md, generated: every key of train / evaluate / prepare / sft with its default and the
comment the YAML gives it, then the keys each config-group option brings; and the shared-key table of
docs/engines.md, from longwriter/engine_settings.py.

    python -m longwriter.config_reference          # rewrite both
    python -m longwriter.config_reference --check  # exit 1 if either is out of date (tests/test_config_reference.py)

Defaults are shown unresolved (`${paths.output_root}/...`), so the page is the same on every machine.
Meanings: an `engine.*` key's from engine_settings; any other key's from conf/**/*.yaml (the inline
comment of a key, else the comment block just above it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig, ListConfig, OmegaConf

from longwriter.engine_settings import SETTINGS, vocabulary_table
from longwriter.paths import CONF_DIR

DOC = CONF_DIR.parent / "docs" / "config_reference.md"
ENGINES_DOC = CONF_DIR.parent / "docs" / "engines.md"
TABLE_START, TABLE_END = "<!-- engine-settings table: generated -->", "<!-- end of the generated table -->"
ENTRIES = ("train", "evaluate", "prepare", "sft")
GROUPS = ("engine", "reward", "data", "data_selection", "model", "judge", "eval", "tracking")
_KEY_LINE = re.compile(r"^(\s*)([A-Za-z_][\w.]*):(.*)$")


def _inline_comment(rest: str) -> str:
    text = rest.split(" #", 1)[1] if " #" in rest else ""
    return text.strip()


def file_comments(path: Path) -> dict[str, str]:
    """dotted key (relative to the file's package) -> its comment, for one YAML file."""
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    block: list[str] = []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            block.append(stripped.lstrip("#").strip())
            continue
        match = _KEY_LINE.match(line)
        if not match or stripped.startswith("-"):
            block = [] if not stripped else block
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3)
        stack = [(i, k) for i, k in stack if i < indent]
        stack.append((indent, key))
        dotted = ".".join(k for _, k in stack)
        text = _inline_comment(rest) or " ".join(b for b in block if b and not b.startswith("----"))
        if text and not dotted.startswith(("defaults", "hydra")):
            comments[dotted] = text
        block = []
    return comments


def all_comments() -> dict[str, str]:
    """Comments of every key, keyed as they appear in the composed config (first writer wins)."""
    comments: dict[str, str] = {}
    for path in sorted(CONF_DIR.rglob("*.yaml")):
        parts = path.relative_to(CONF_DIR).parts
        if parts[0] in ("sweep", "experiment"):
            continue
        prefix = "" if len(parts) == 1 else f"{parts[0]}."
        for key, text in file_comments(path).items():
            if prefix and key == "name":  # an option's description: shown in that option's own table only
                continue
            comments.setdefault(prefix + key, text)
    comments.update({f"engine.{setting.key}": setting.help for setting in SETTINGS})
    return comments


def leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, DictConfig):
        for key in node.keys():
            child = node._get_node(key)
            if isinstance(child, DictConfig) and len(child) and not _is_opaque(f"{prefix}{key}"):
                yield from leaves(child, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", child


def _is_opaque(key: str) -> bool:
    return key.endswith(("engine.trl", "engine.verl", "judge.model"))


def _show(node: Any) -> str:
    if isinstance(node, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(node, resolve=False)
        text = "{}" if value == {} else str(value)
    else:
        value = node._value() if hasattr(node, "_value") else node
        text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    text = text.replace("|", "\\|")
    return f"`{text}`" if text else "`''`"


def _rows(cfg: DictConfig, comments: dict[str, str], under: str = "") -> list[str]:
    rows = []
    node = OmegaConf.select(cfg, under) if under else cfg
    for key, value in leaves(node, f"{under}." if under else ""):
        if key.startswith("hydra"):
            continue
        comment = comments.get(key, "")
        rows.append(f"| `{key}` | {_show(value)} | {comment.replace('|', '/')} |")
    return rows


def _compose(entry: str, overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=entry, overrides=overrides)


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def render() -> str:
    from longwriter.paths import register_resolvers

    register_resolvers()
    comments = all_comments()
    out = ["# Config reference", "",
           "Generated by `python -m longwriter.config_reference` from the composed configs and the comments in",
           "conf/ (do not edit by hand; `tests/test_config_reference.py` checks it is current). Values are the",
           "defaults, unresolved. Types, ranges and allowed values are checked before a run starts",
           "(`longwriter/config_checks.py`). See a run's full config with `python -m longwriter.<entry> --cfg job`.", ""]
    for entry in ENTRIES:
        out += [f"## `python -m longwriter.{entry}` (defaults)", "", "| key | default | meaning |", "|---|---|---|"]
        out += _rows(_compose(entry, []), comments)
        out.append("")
    out += ["## Config group options", "",
            "Each option of a group, with the keys it brings (in `python -m longwriter.train GROUP=OPTION`).", ""]
    for group in GROUPS:
        for option in _options(group):
            out += [f"### `{group}={option}`", "", "| key | default | meaning |", "|---|---|---|"]
            own = {f"{group}.{k}": v for k, v in file_comments(CONF_DIR / group / f"{option}.yaml").items()}
            out += _rows(_compose("train", [f"{group}={option}"]), {**comments, **own}, under=group)
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def render_engines_doc(current: str) -> str:
    """docs/engines.md with the table between its markers regenerated from engine_settings."""
    if TABLE_START not in current or TABLE_END not in current:
        raise SystemExit(f"{ENGINES_DOC} lost its table markers {TABLE_START!r} ... {TABLE_END!r}")
    head, rest = current.split(TABLE_START, 1)
    tail = rest.split(TABLE_END, 1)[1]
    return head + TABLE_START + "\n" + "\n".join(vocabulary_table()) + "\n" + TABLE_END + tail


def main(argv: list[str]) -> int:
    pages = {DOC: render(), ENGINES_DOC: render_engines_doc(ENGINES_DOC.read_text())}
    if "--check" in argv:
        stale = [path for path, text in pages.items() if not path.exists() or path.read_text() != text]
        for path in stale:
            print(f"{path} is out of date: run python -m longwriter.config_reference", file=sys.stderr)
        return 1 if stale else 0
    for path, text in pages.items():
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
