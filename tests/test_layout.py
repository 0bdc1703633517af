"""The layout's rules, as each package's `__init__` states them: who may import whom, no import
cycles, small modules. Read from the source with `ast`, so a rule is checked without running
(or importing) anything; imports inside functions and under TYPE_CHECKING count like any other.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"node": "marketnode.node", "cli": "marketnode.cli", "tui": "marketnode.tui",
           "plugins": "marketnode.plugins"}  # fmt: skip

MAY_IMPORT = {
    "node.core": set(),
    "node.store": {"node.core"},
    "node.protocol": {"node.core"},
    "node.home": {"node.core"},
    "node.client": {"node.core", "node.protocol", "node.home"},
    "node.analytics": {"node.core", "node.store", "node.home", "node.protocol", "plugins"},
    "node.ops": {"node.core", "node.home", "node.protocol", "plugins"},
    "node.chain": {"node.core", "node.store", "node.home", "node.protocol", "plugins"},
    "node.server": {
        "node.core",
        "node.store",
        "node.protocol",
        "node.home",
        "node.ops",
        "node.analytics",
        "node.chain",
        "plugins",
    },
    "node.liquidity": {"node.core", "node.protocol", "node.home", "node.client", "plugins"},
    "node.cluster": {"node.core", "node.protocol", "node.home", "node.client"},
    "node.tools": {"*"},
    "plugins": {"node.core"},
    "tui": {"node.core", "node.protocol", "node.home", "node.client"},
    "cli": {"*"},
}
"""Each area and the other areas it may import (its own modules always; `*`: any)."""

RUNS_TOOLS = {"cli.bench", "cli.demo", "cli.integrity", "cli.liquidity", "cli.load", "cli.scale",
              "cli.settlement"}
"""The CLI commands that run the tools (demo, load, benchmarks, evaluations); nothing else
outside `node.tools` imports it."""

MAX_LINES = 400
LONGER_FOR_A_REASON: dict[str, str] = {}
"""Modules allowed past MAX_LINES, each with why splitting it would make it harder to read."""


def _module_name(path: Path) -> str:
    """`node/core/engine.py` -> `node.core.engine` (the marketnode. prefix left off)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    return {
        _module_name(path): path
        for folder in FOLDERS
        for path in sorted((ROOT / folder).rglob("*.py"))
    }


SOURCES = _sources()


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, *([target] if target else [])])


def _imports_of(module: str, path: Path) -> set[str]:
    """The marketnode modules `module` imports (names without the marketnode. prefix)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _resolve(module, is_package, node.level, node.module)
            elif node.module and node.module.startswith("marketnode."):
                base = node.module.removeprefix("marketnode.")
            else:
                continue
            # `from package import module` imports the module; `from module import name` not
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in SOURCES else base
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            name = name.removeprefix("marketnode.")
            if name in SOURCES and name != module:
                found.add(name)
    return found


GRAPH = {module: _imports_of(module, path) for module, path in SOURCES.items()}


def _area(module: str) -> str:
    """The unit the rules speak of: a subpackage of node, or one of the other folders."""
    parts = module.split(".")
    if parts[0] == "node" and len(parts) > 1 and (ROOT / "node" / parts[1]).is_dir():
        return f"node.{parts[1]}"
    return parts[0]


def test_every_subpackage_says_what_it_owns_and_may_import():
    packages = [m for m, p in SOURCES.items() if p.name == "__init__.py" and m.startswith("node.")]
    assert {_area(m) for m in packages} - {"node"} == set(MAY_IMPORT) - {"plugins", "tui", "cli"}
    for module in packages:
        doc = ast.get_docstring(ast.parse(SOURCES[module].read_text())) or ""
        assert doc, f"{module} has no docstring"
        if module != "node":
            assert "May import" in doc or "may import" in doc, f"{module} states no import rule"


@pytest.mark.parametrize("area", sorted(MAY_IMPORT))
def test_each_area_imports_only_what_its_rule_allows(area):
    allowed = MAY_IMPORT[area] | {area}
    broken = sorted(
        f"{module} imports {imported}"
        for module, imports in GRAPH.items()
        if _area(module) == area and "*" not in allowed
        for imported in imports
        if _area(imported) not in allowed and imported != "node"  # node: just __version__
    )
    assert not broken, "\n".join(broken)


def test_core_imports_nothing_outside_the_standard_library_and_msgspec():
    outside: list[str] = []
    for module, path in SOURCES.items():
        if _area(module) != "node.core":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                if top not in {"msgspec", "__future__"} and top not in _STDLIB:
                    outside.append(f"{module} imports {name}")
    assert not outside, "\n".join(outside)


def test_only_the_commands_that_run_them_import_the_tools():
    importers = sorted(
        module
        for module, imports in GRAPH.items()
        if _area(module) != "node.tools" and any(_area(i) == "node.tools" for i in imports)
    )
    assert set(importers) <= RUNS_TOOLS, f"import node.tools: {set(importers) - RUNS_TOOLS}"


def test_no_import_cycles():
    """Cut each cycle found until none is left, so every cycle is named at once."""
    graph = {module: set(imports) for module, imports in GRAPH.items()}
    cycles = []
    while True:
        try:
            TopologicalSorter(graph).prepare()
        except CycleError as error:
            cycle = error.args[1]
            cycles.append(" -> ".join(cycle))
            graph[cycle[1]].discard(cycle[0])  # the cycle's last edge: back to where it began
            continue
        break
    assert not cycles, "import cycles (each module imported by the next): " + "; ".join(cycles)


def test_no_module_is_longer_than_it_needs_to_be():
    long = {
        module: lines
        for module, path in SOURCES.items()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
        and module not in LONGER_FOR_A_REASON
    }
    assert not long, f"over {MAX_LINES} lines (split, or say why in LONGER_FOR_A_REASON): {long}"


def test_the_rules_read_the_real_graph():
    """The checks above would pass on an empty graph: make sure the parser sees real edges."""
    assert "node.core.book" in GRAPH["node.core.engine"]
    assert any(_area(i) == "node.core" for i in GRAPH["node.store.durable"])
    assert len(SOURCES) > 60
    by_area: dict[str, int] = defaultdict(int)
    for module in SOURCES:
        by_area[_area(module)] += 1
    assert all(by_area[area] for area in MAY_IMPORT)


_STDLIB = frozenset(__import__("sys").stdlib_module_names)
