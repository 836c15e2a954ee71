"""The import graph of `cnncourse`, read from the source with `ast` (nothing is imported).

Run it from the repository root::

    python tests/import_graph.py

It prints each module's imports of other `cnncourse` modules (``[fn]`` for an import inside a
function, ``[type]`` for one under ``TYPE_CHECKING``), the declared layers with their modules,
every import that points up the layer order, and every cycle. It exits with status 1 when there is
an upward import or a cycle; `tests/test_layering.py` runs the same checks under pytest.

An import of ``a.b.c`` is an edge to ``a.b.c`` only, not to the packages above it that Python
also initialises: every submodule would otherwise depend on its own package's ``__init__``.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "cnncourse"

#: The layers, lowest first, each a tuple of independent parts. A module may import a module of a
#: lower layer, or of its own part; never one of a higher layer, nor of another part of its layer
#: (training does not know the model registry, nor the datasets). A module belongs to the part
#: whose prefix names it most closely (a prefix names a module and everything under it).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cnncourse.counting",),  # pure formulas on ints
    ("cnncourse.meta",),  # the meta device: shapes without memory
    ("cnncourse.profile", "cnncourse.layers"),  # counting a module; shared blocks
    # the architectures and their records; datasets; losses; fit and its step, for any model
    ("cnncourse.models", "cnncourse.data", "cnncourse.losses", "cnncourse.train"),
    ("cnncourse.mfu",),  # FLOPs of a training step (of a registry model), GPU peaks
    ("cnncourse.bench",),  # throughput measurement
    ("cnncourse.bench_report", "cnncourse.plot"),  # tables and figures of results
    ("cnncourse.notebook", "cnncourse.grading"),  # what the book's pages and exercises import
    ("cnncourse.cli",),  # the command line: every command, `cnncourse grade` included
    ("cnncourse",),  # the package itself (docstring and version only)
)


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    kind: str  # "top", "fn" (inside a function) or "type" (under TYPE_CHECKING)


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package by dotted name."""
    return {module_name(p, root): p for p in sorted((root / PACKAGE).rglob("*.py"))}


def _resolve(base: str, level: int, is_package: bool) -> str:
    """The absolute name a relative import of `level` dots starts from, inside module `base`."""
    parts = base.split(".")
    if not is_package:
        parts = parts[:-1]
    return ".".join(parts[: len(parts) - (level - 1)])


def _targets(node: ast.AST, name: str, is_package: bool, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    assert isinstance(node, ast.ImportFrom)
    base = node.module or ""
    if node.level:
        start = _resolve(name, node.level, is_package)
        base = f"{start}.{base}" if base else start
    # `from a import b` imports module a.b when there is one, else a name defined in a
    found = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
    rest = [alias for alias in node.names if f"{base}.{alias.name}" not in known]
    return found + ([base] if rest else [])


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def edges(root: Path = ROOT) -> list[Edge]:
    """Every import of one package module by another, with where and how it happens."""
    mods = modules(root)
    known = set(mods)
    found: list[Edge] = []
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"

        def visit(node: ast.AST, kind: str, name: str = name, is_package: bool = is_package):
            for child in ast.iter_child_nodes(node):
                child_kind = kind
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                    child_kind = "fn" if kind == "top" else kind
                elif isinstance(child, ast.If) and _is_type_checking(child):
                    for sub in child.body:
                        visit_one(sub, "type")
                    for sub in child.orelse:
                        visit_one(sub, kind)
                    continue
                visit_one(child, child_kind)

        def visit_one(node: ast.AST, kind: str, name: str = name, is_package: bool = is_package):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(node, name, is_package, known):
                    if target in known and target != name:
                        found.append(Edge(name, target, node.lineno, kind))
            visit(node, kind)

        visit(tree, "top")
    return found


def place(module: str) -> tuple[int, str]:
    """The layer (index in `LAYERS`) and the part (its prefix) of `module`."""
    best: tuple[int, str] | None = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            names = module == prefix or module.startswith(prefix + ".")
            if names and (best is None or len(prefix) > len(best[1])):
                best = (index, prefix)
    if best is None:
        raise ValueError(f"module {module!r} is in no layer: add it to LAYERS")
    return best


def layer_of(module: str) -> int:
    return place(module)[0]


def upward(found: list[Edge]) -> list[Edge]:
    """The imports that point up the layers, or across to another part of the same layer."""
    bad = []
    for e in found:
        (source_layer, source_part), (target_layer, target_part) = place(e.source), place(e.target)
        if target_layer > source_layer or (
            target_layer == source_layer and target_part != source_part
        ):
            bad.append(e)
    return bad


def cycles(found: list[Edge]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for e in found:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:
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
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(components)


def report(root: Path = ROOT) -> tuple[str, bool]:
    """The printed report, and whether the graph is clean (no upward import, no cycle)."""
    found = edges(root)
    lines = ["# imports of cnncourse modules by cnncourse modules"]
    by_source: dict[str, list[Edge]] = {}
    for e in found:
        by_source.setdefault(e.source, []).append(e)
    for name in modules(root):
        listed = sorted({(e.target, e.kind) for e in by_source.get(name, [])})
        shown = ", ".join(t if k == "top" else f"{t} [{k}]" for t, k in listed)
        lines.append(f"{name} -> {shown or '-'}")
    lines.append("")
    lines.append("# layers, lowest first")
    for index, prefixes in enumerate(LAYERS):
        parts = []
        for prefix in prefixes:
            members = [m for m in modules(root) if place(m) == (index, prefix)]
            parts.append(", ".join(members))
        lines.append(f"{index}: {' | '.join(parts)}")
    lines.append("")
    ups = upward(found)
    lines.append(f"# imports pointing up the layers or across a layer: {len(ups)}")
    for e in ups:
        lines.append(f"{e.source}:{e.line} -> {e.target} [{e.kind}]")
    loops = cycles(found)
    lines.append(f"# cycles: {len(loops)}")
    for component in loops:
        lines.append(" <-> ".join(component))
    return "\n".join(lines), not ups and not loops


def main() -> int:
    text, clean = report()
    print(text)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
