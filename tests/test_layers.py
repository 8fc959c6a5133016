"""The layer table in docs/architecture.md holds: no import runs up a layer, and no import cycle.

The table is the source of truth: each row is a layer (bottom first), its modules cell names
`module`, `package/` or `package/module` under longwriter/. The imports are read with `ast` from every
file under longwriter/, and ALL of them count: module-level, inside functions and methods, and under
`if TYPE_CHECKING:`. An import inside a function still ties the two modules (it runs on the first
call), so moving one there never fixes a cycle or an upward import. Importing `a.b.c` from outside
package `a.b` also runs `a/b/__init__.py`, so it counts as an import of the package too. Imports made
by `importlib.import_module(name)` are not seen (the engine dispatch, lazy judge attributes).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "longwriter"
DOC = ROOT / "docs" / "architecture.md"


# --- the table -------------------------------------------------------------------------------------

def layer_table(text: str) -> list[tuple[str, list[str]]]:
    """[(layer, [entries])] from the first table under `## Layers`, bottom layer first."""
    section = text.split("\n## Layers", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else []
        if len(cells) < 2 or cells[0] in ("layer", "") or set(cells[0]) <= set("-: "):
            continue
        rows.append((cells[0], re.findall(r"`([^`]+)`", cells[1])))
    return rows


# --- the imports -----------------------------------------------------------------------------------

def package_modules(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """{dotted module name: file}; a package is named by its __init__.py."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The module that `name` (a module, or a name defined in one) belongs to."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imported(node: ast.AST, module: str, is_package: bool, modules: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[:len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([node.module] if node.module else []))
    # `from pkg import sub` imports the submodule; `from mod import name` imports mod.
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]


def import_edges(root: Path = ROOT, package: str = PACKAGE) -> dict[tuple[str, str], str]:
    """{(importer, imported): 'file:line' of the first such import}, between modules of the package."""
    modules = package_modules(root, package)
    edges: dict[tuple[str, str], str] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):  # every import, at any depth
            for name in _imported(node, module, path.name == "__init__.py", modules):
                target = _owner(name, modules) if name.split(".")[0] == package else None
                if target is None:
                    continue
                where = f"{path.relative_to(root)}:{node.lineno}"
                # the packages between the root and the target whose __init__ runs first
                parts = target.split(".")
                chain = [".".join(parts[:i]) for i in range(2, len(parts))] + [target]
                for imported in chain:
                    if imported != module and not module.startswith(imported + "."):
                        edges.setdefault((module, imported), where)
    return edges


# --- the checks ------------------------------------------------------------------------------------

def layer_of(module: str, table: list[tuple[str, list[str]]], package: str = PACKAGE) -> tuple[int, str] | None:
    """(row index, entry) of the longest table entry that holds `module`."""
    best = None
    for index, (_, entries) in enumerate(table):
        for entry in entries:
            dotted = f"{package}." + entry.strip("/").replace("/", ".")
            if module == dotted or module.startswith(dotted + "."):
                if best is None or len(entry) > len(best[1]):
                    best = (index, entry)
    return best


def upward_imports(edges: dict[tuple[str, str], str], table, package: str = PACKAGE) -> list[str]:
    problems = []
    for (importer, imported), where in sorted(edges.items()):
        low, high = layer_of(importer, table, package), layer_of(imported, table, package)
        if low is None or high is None or high[0] <= low[0]:
            continue
        problems.append(
            f"{where}: {importer} ({table[low[0]][0]}) imports {imported} ({table[high[0]][0]}), a higher layer. "
            f"Move what it needs down to '{table[low[0]][0]}' or below (or let the higher module register "
            f"itself with a lower table); an import inside a function counts too")
    return problems


def cycles(edges: dict[tuple[str, str], str]) -> list[list[str]]:
    """Each import cycle as [a, b, ..., a] (one per strongly connected group of modules)."""
    graph: dict[str, list[str]] = {}
    for a, b in sorted(edges):
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups = []

    def connect(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(set(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    loops = []
    for group in groups:  # one concrete loop through the group, for the message
        start = min(group)
        path, seen = [start], {start}
        while True:
            nxt = next((w for w in graph[path[-1]] if w == start and len(path) > 1), None) \
                or next((w for w in graph[path[-1]] if w in group and w not in seen), None) \
                or next(w for w in graph[path[-1]] if w in group)
            path.append(nxt)
            if nxt in seen:
                loops.append(path[path.index(nxt):])
                break
            seen.add(nxt)
    return loops


def describe_cycle(loop: list[str], edges: dict[tuple[str, str], str]) -> str:
    steps = "; ".join(f"{a} -> {b} ({edges[(a, b)]})" for a, b in zip(loop, loop[1:]))
    return (f"import cycle: {steps}. Break it by moving what both sides need into a lower module, or by "
            f"dependency inversion (a lower registry the higher module fills); an import inside a function counts too")


# --- the tests -------------------------------------------------------------------------------------

TABLE = layer_table(DOC.read_text(encoding="utf-8"))
EDGES = import_edges()


def test_the_layer_table_names_every_module_and_only_real_ones():
    modules = package_modules()
    unplaced = sorted(m for m in modules if m != PACKAGE and layer_of(m, TABLE) is None)
    assert not unplaced, f"modules in no row of the layer table in docs/architecture.md: {unplaced}; add each to its layer"
    stale = [e for _, entries in TABLE for e in entries
             if f"{PACKAGE}." + e.strip("/").replace("/", ".") not in modules]
    assert not stale, f"the layer table names modules that do not exist: {stale}"
    assert [name for name, _ in TABLE][:1] == ["foundations"] and len(TABLE) >= 4


def test_no_import_runs_up_a_layer():
    problems = upward_imports(EDGES, TABLE)
    assert not problems, "\n".join(problems)


def test_no_import_cycles():
    loops = cycles(EDGES)
    assert not loops, "\n".join(describe_cycle(loop, EDGES) for loop in loops)


def test_the_checks_catch_an_upward_import_and_a_cycle_including_one_inside_a_function(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("def f():\n    from pkg.high import g\n")  # hidden in a function
    (package / "high.py").write_text("from pkg import low\n")
    (package / "sub" / "__init__.py").write_text("from pkg.high import g\n")
    (package / "sub" / "leaf.py").write_text("")
    (tmp_path / "other.py").write_text("")
    edges = import_edges(tmp_path, "pkg")
    assert ("pkg.low", "pkg.high") in edges and ("pkg.high", "pkg.low") in edges
    table = [("foundations", ["low", "sub/leaf"]), ("top", ["high", "sub/"])]
    (package / "low.py").write_text("import pkg.sub.leaf\n")  # runs pkg/sub/__init__.py, a higher layer
    edges = import_edges(tmp_path, "pkg")
    assert ("pkg.low", "pkg.sub") in edges
    [problem] = upward_imports(edges, table, "pkg")
    assert problem.startswith("pkg/low.py:1: pkg.low (foundations) imports pkg.sub (top)")
    (package / "low.py").write_text("def f():\n    from pkg.high import g\n")
    loops = cycles(import_edges(tmp_path, "pkg"))
    assert loops == [["pkg.high", "pkg.low", "pkg.high"]]


def test_the_table_parser_reads_rows_bottom_first():
    text = ("# x\n\n## Layers\n\n| layer | modules | holds |\n|---|---|---|\n"
            "| foundations | `errors`, `data/` | a |\n| top | `cli` | b |\n\n## Next\n| no | `x` | c |\n")
    assert layer_table(text) == [("foundations", ["errors", "data/"]), ("top", ["cli"])]


@pytest.mark.parametrize("importer, imported", [("longwriter.config_tools", "longwriter.paths"),
                                                ("longwriter.config_checks", "longwriter.engines")])
def test_known_fixed_edges_stay_gone(importer, imported):
    """The foundations find conf/ without the Hydra setup; the config checks know the engines' names
    without importing the engines package (which runs the checks)."""
    assert (importer, imported) not in EDGES
