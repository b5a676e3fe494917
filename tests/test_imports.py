"""The import graph of tune_grid, read statically from the source: no circles, layers one way.

Every import counts: those inside functions (a lazy import still ties two modules together),
``importlib.import_module("<literal>")`` calls (packages that load their names lazily) and the
imports under ``if TYPE_CHECKING:`` (a type that needs the other module is a tie as well). The
only exception is the package's own ``tune_grid/__init__.py``, whose ``TYPE_CHECKING`` block
names the public API for type checkers and which no module imports.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tune_grid"
LAYERS = {
    "config": 0,
    "economics": 0,
    "errors": 0,
    "stats": 0,
    "results": 0,
    "data": 0,
    "grid": 1,
    "env": 2,
    "baselines": 2,
    "oracle": 2,
    "training": 3,
    "evaluation": 3,
    "search": 4,
    "bench": 5,
    "cli": 6,
}
"""Top-level part -> layer; a module may import its own layer and those below it only."""

SEARCH_LAYERS = {"spec": 0, "run": 1, "answer": 2, "pipeline": 3}
"""Inside ``tune_grid.search``, by job: the file model, running Tune, the answer after the
trials, and the pipeline that calls the three in turn."""


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, skip_type_checking: bool = False) -> Iterator[ast.AST]:
    """Every node below ``node`` (without the bodies of ``if TYPE_CHECKING:`` when asked)."""
    for child in ast.iter_child_nodes(node):
        if skip_type_checking and isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                yield other
                yield from _walk(other, skip_type_checking)
            continue
        yield child
        yield from _walk(child, skip_type_checking)


def _imported(module: str, path: Path) -> set[str]:
    """The tune_grid modules ``module`` imports (``from pkg import name`` names pkg.name when that
    is a module, else pkg)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _walk(ast.parse(path.read_text()), skip_type_checking=module == "tune_grid"):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                name = f"{base}.{alias.name}"
                found.add(name if name in MODULES else base)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (getattr(node.func, "attr", None) or getattr(node.func, "id", None))
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: _imported(module, path) for module, path in MODULES.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_lazy_and_relative_imports() -> None:
    assert "tune_grid.grid.zbus" in GRAPH["tune_grid.grid.powerflow"]  # inside make_solver
    assert "tune_grid.env.microgrid" in GRAPH["tune_grid.env"]
    assert "tune_grid.oracle.core" in GRAPH["tune_grid.oracle"]  # importlib.import_module


def test_the_circle_finder_finds_a_circle() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles_in_tune_grid() -> None:
    circles = _circles(GRAPH)
    assert not circles, "import circles: " + "; ".join(" <-> ".join(c) for c in circles)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "tune_grid"))
def test_imports_point_down_the_layers(module: str) -> None:
    layer = LAYERS[module.split(".")[1]]
    upward = [
        other
        for other in sorted(GRAPH[module])
        if other != "tune_grid" and LAYERS[other.split(".")[1]] > layer
    ]
    assert not upward, f"{module} (layer {layer}) imports higher layers: {upward}"


def _search_layer(module: str) -> int | None:
    parts = module.split(".")
    return (
        SEARCH_LAYERS[parts[2]] if parts[:2] == ["tune_grid", "search"] and len(parts) > 2 else None
    )


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _search_layer(m) is not None))
def test_search_jobs_point_one_way(module: str) -> None:
    layer = _search_layer(module)
    assert layer is not None
    upward = [other for other in sorted(GRAPH[module]) if (_search_layer(other) or -1) > layer]
    assert not upward, f"{module} ({layer}) imports later jobs of the search: {upward}"


def test_every_search_module_sits_in_a_job() -> None:
    loose = [
        m
        for m in MODULES
        if m.startswith("tune_grid.search.") and m.split(".")[2] not in SEARCH_LAYERS
    ]
    assert not loose, f"modules of tune_grid.search outside {sorted(SEARCH_LAYERS)}: {loose}"


LAZY_PACKAGES = [
    module
    for module, path in sorted(MODULES.items())
    if path.name == "__init__.py" and "def __getattr__" in path.read_text()
]
"""Packages that load their names on first use (a map of names to modules, resolved late)."""


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_lazily_exported_name_resolves(package: str) -> None:
    """A lazy map names modules in strings, which the static graph above cannot follow: load
    each exported name once (a renamed module fails here, not in a user's session)."""
    import importlib

    module = importlib.import_module(package)
    names = list(getattr(module, "__all__", []))
    assert names, f"{package} exports nothing in __all__"
    for name in names:
        assert getattr(module, name) is not None, f"{package}.{name}"


def test_the_lazy_packages_are_found() -> None:
    assert {"tune_grid", "tune_grid.training", "tune_grid.oracle", "tune_grid.search"} <= set(
        LAZY_PACKAGES
    )
