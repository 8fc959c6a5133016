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


def test_every_design_section_the_code_cites_is_in_docs_design_md():
    """`DESIGN 3.4` in a docstring or config comment means section 3.4 of docs/design.md."""
    import re

    root = PACKAGE.parent
    headings = set(re.findall(r"^#{2,3} (\d+[a-z]?(?:\.\d+)?)[. ]", (root / "docs" / "design.md").read_text(), re.M))
    cited: dict[str, list[str]] = {}
    files = [*PACKAGE.rglob("*.py"), *(root / "conf").rglob("*.yaml"), *(root / "docs").glob("*.md")]
    for path in files:
        for section in re.findall(r"DESIGN (?:section )?(\d+[a-z]?(?:\.\d+)?)", path.read_text()):
            cited.setdefault(section, []).append(str(path.relative_to(root)))
    assert cited, "expected the code to cite docs/design.md"
    missing = {s: where for s, where in cited.items() if s not in headings}
    assert not missing, f"cited but not in docs/design.md: {missing}"
