"""Where things live: test fixtures stay out of the product's runtime import graph."""

from __future__ import annotations

import ast
from pathlib import Path

import longwriter

PACKAGE = Path(longwriter.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_runtime_module_imports_the_testing_package():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "testing":
            continue
        hits = sorted(m for m in _imported_modules(path) if m == "longwriter.testing" or m.startswith("longwriter.testing."))
        if hits:
            offenders.append(f"{rel}: {hits}")
    assert not offenders, "runtime modules import test fixtures:\n" + "\n".join(offenders)


def test_the_fake_openai_server_lives_in_the_testing_package():
    assert (PACKAGE / "testing" / "fake_openai_server.py").is_file()
    assert not (PACKAGE / "judges" / "fake_server.py").exists()
