"""No import cycles among usvid's own modules, lazy (function-level) imports included.

Every ``import`` that can run is an edge: at module level, in class bodies and inside functions. A lazy import
only postpones a cycle to call time; the two modules still depend on each other, and imports are meant to flow
one way (video -> data -> ... -> cli). The fix is a leaf module for the shared types and the factory beside
them, not a deferred import. Imports under ``if TYPE_CHECKING:`` are left out: they never run, and the
annotations they serve are strings (``from __future__ import annotations``).

An edge goes to the module whose namespace is read: ``from usvid.video.reader import FrameBatch`` ->
``usvid.video.reader``; ``from usvid.video import reader`` -> ``usvid.video.reader`` (a submodule);
``from usvid.video import FrameBatch`` -> ``usvid.video`` (its ``__init__``). The parent packages Python runs
on the way are not edges: they are in ``sys.modules`` before their submodules load, so a submodule importing a
sibling never re-enters its package's ``__init__``.
"""

from __future__ import annotations

import ast
import importlib.util
import pkgutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: Path
    line: int
    lazy: bool

    def __str__(self) -> str:
        where = "in a function" if self.lazy else "at module level"
        return f"{self.source} -> {self.target} ({self.path.name}:{self.line}, {where})"


def package_modules(packages: list[str]) -> dict[str, Path]:
    """Module name -> source file of every module in ``packages`` and their subpackages.

    Located through the import system (``find_spec``), so a package mapped elsewhere (``usvid.models`` is
    ``models/``) is found where it installs from; only the top package's ``__init__`` runs.
    """
    found: dict[str, Path] = {}
    todo = list(packages)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None, f"package {name} is not importable"
        found[name] = Path(spec.origin)
        for info in pkgutil.iter_modules(spec.submodule_search_locations):
            child = f"{name}.{info.name}"
            if info.ispkg:
                todo.append(child)
            else:
                found[child] = Path(info.module_finder.path) / f"{info.name}.py"
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement that can run, with whether it sits inside a function."""
    out: list[tuple[ast.Import | ast.ImportFrom, bool]] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                out.append((child, lazy))
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.orelse:
                    visit_stmt(stmt, lazy)
            else:
                visit(child, lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    def visit_stmt(stmt: ast.stmt, lazy: bool) -> None:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            out.append((stmt, lazy))
        else:
            visit(stmt, lazy or isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)))

    visit(tree, False)
    return out


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_edges(modules: dict[str, Path]) -> list[Edge]:
    """Edges between ``modules`` (see the module docstring for what counts)."""
    edges = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, lazy in _imports(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _absolute(node, name, path.name == "__init__.py")
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            for target in dict.fromkeys(targets):
                if target in modules and target != name:
                    edges.append(Edge(name, target, path, node.lineno, lazy))
    return edges


def cycles(edges: list[Edge]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted, sorted."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:  # recursion depth is bounded by the module count (~150)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(found)


def report(edges: list[Edge], components: list[list[str]]) -> str:
    lines = []
    for component in components:
        members = set(component)
        lines.append(f"cycle among {', '.join(component)}:")
        lines += [f"    {e}" for e in edges if e.source in members and e.target in members]
    return "\n".join(lines)


def _installed_packages() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["setuptools"]["packages"]


def test_usvid_has_no_import_cycles():
    modules = package_modules(_installed_packages())
    wanted = {"usvid.video.reader", "usvid.inference.predictor", "usvid.models.registry", "usvid.cli.app"}
    assert wanted <= set(modules)
    edges = import_edges(modules)
    components = cycles(edges)
    assert components == [], (
        "import cycles in usvid (move the shared types into a leaf module and the factory beside them):\n"
        + report(edges, components)
    )


# The detector itself, on a tiny package written here: it must see what the real test relies on.


def _package(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    modules = {}
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        parts = rel.removesuffix(".py").split("/")
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def test_detector_finds_a_cycle_through_a_lazy_import(tmp_path):
    modules = _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/types.py": "def open_it():\n    from pkg.backend import Reader\n    return Reader()\n",
        "pkg/backend.py": "from pkg.types import open_it\n\nclass Reader:\n    pass\n",
    })
    edges = import_edges(modules)
    assert cycles(edges) == [["pkg.backend", "pkg.types"]]
    assert {(e.source, e.target, e.lazy) for e in edges} == {
        ("pkg.types", "pkg.backend", True), ("pkg.backend", "pkg.types", False),
    }
    assert "pkg.types -> pkg.backend (types.py:2, in a function)" in report(edges, cycles(edges))


def test_detector_resolves_relative_and_submodule_imports(tmp_path):
    modules = _package(tmp_path, {
        "pkg/__init__.py": "from pkg.a import A\n",
        "pkg/a.py": "from . import b\nA = 1\n",
        "pkg/sub/__init__.py": "",
        "pkg/b.py": "from .sub import c\n",
        "pkg/sub/c.py": "from .. import A\n",  # reads pkg/__init__: pkg -> a -> b -> c -> pkg
    })
    assert cycles(import_edges(modules)) == [["pkg", "pkg.a", "pkg.b", "pkg.sub.c"]]


def test_detector_ignores_type_checking_imports_and_parent_packages(tmp_path):
    modules = _package(tmp_path, {
        "pkg/__init__.py": "from pkg.a import A\n",
        "pkg/a.py": "from typing import TYPE_CHECKING\nfrom pkg.b import B\nA = 1\n",
        "pkg/b.py": "import typing\nif typing.TYPE_CHECKING:\n    from pkg.a import A\nelse:\n    import json\n",
    })
    edges = import_edges(modules)
    assert {(e.source, e.target) for e in edges} == {("pkg", "pkg.a"), ("pkg.a", "pkg.b")}
    assert cycles(edges) == []


def test_finds_the_mapped_packages_where_they_install_from():
    modules = package_modules(["usvid", "usvid.models"])
    assert modules["usvid.models.registry"] == ROOT / "models" / "registry.py"
    assert modules["usvid.video.reader"] == ROOT / "usvid" / "video" / "reader.py"
