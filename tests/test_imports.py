"""Imports point one way (DESIGN section 1): no cycle anywhere in npcell/, counting imports inside
functions too (so no function-level import can hide one), and the reference (cells/) imports
nothing from engine/, training/ or cli/."""

import ast
from pathlib import Path

import npcell

PACKAGE = Path(npcell.__file__).parent
# A cycle another branch has already broken, listed until that branch is merged (then delete).
# diagnostics <-> plots was the last one (fixed on branch diag: plots imports diagnostics only).
PENDING: set = set()


def _modules() -> dict:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("npcell",) + path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(name, path) -> set:
    """Every npcell module ``name`` imports, at any depth of its code. Importing a.b.c runs the
    __init__ of a.b too, so a package counts as imported with its submodule (the top package
    npcell itself excepted: every module is imported from inside it)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
    edges = set()
    for target in found:
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        while target and target != "npcell":
            if target != name and not name.startswith(target + "."):
                edges.add(target)
            target = target.rpartition(".")[0]
    return edges


def _cycles(graph) -> list:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_the_walk_sees_the_package():
    assert len(MODULES) > 40 and "npcell.cells.wmc" in MODULES and "npcell.engine.cpu" in MODULES
    assert "npcell.cells.lstm" in GRAPH["npcell.cells.peephole"]
    assert "npcell.checks" in GRAPH["npcell.sequence"]
    assert "npcell.cells" in GRAPH["npcell.engine.gru"]  # the package a submodule import runs


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]


def test_no_import_cycle_in_npcell():
    cycles = [sorted(c) for c in _cycles(GRAPH) if c not in PENDING]
    assert not cycles, f"import cycles (function-level imports count): {cycles}"


def test_the_reference_imports_no_engine_training_or_cli():
    bad = sorted((name, target) for name, targets in GRAPH.items()
                 if name.startswith("npcell.cells") for target in targets
                 if target.split(".")[1] in ("engine", "training", "cli"))
    assert not bad, bad
