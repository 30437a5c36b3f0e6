"""The import graph between rlxf's packages (and top-level modules) has no cycles and keeps the
layer rules of docs/ARCHITECTURE.md. Read from the source with `ast`, function-level imports
included, so a lazy import cannot hide a cycle."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "rlxf"

# docs/ARCHITECTURE.md: these never import stages/, pipeline or cli
LOWER = ("world", "train", "models", "feedback", "eval", "data", "probes", "store")
UPPER = ("stages", "pipeline", "cli")


def _unit(name: str) -> str | None:
    """The graph node for rlxf.NAME: a subpackage or a top-level module; None for a name of
    rlxf/__init__.py itself (e.g. `from . import __version__`)."""
    if (SRC / name).is_dir() or (SRC / f"{name}.py").is_file():
        return name
    return None


def _imported_units(source: str, package: tuple[str, ...]) -> list[tuple[str, int]]:
    """(node, line) for every import of rlxf code in one module of `package`, relative or
    absolute, at any depth (function bodies too)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        targets: list[list[str]] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[:len(package) - (node.level - 1)])
                if node.module:
                    targets = [base + node.module.split(".")]
                else:  # `from .. import x`: x may be a module
                    targets = [base + [alias.name] for alias in node.names]
            elif node.module and node.module.split(".")[0] == "rlxf":
                targets = [node.module.split(".")]
        elif isinstance(node, ast.Import):
            targets = [alias.name.split(".") for alias in node.names
                       if alias.name.split(".")[0] == "rlxf"]
        for target in targets:
            unit = _unit(target[1]) if len(target) > 1 else None
            if unit is not None:
                found.append((unit, node.lineno))
    return found


def import_graph() -> dict[tuple[str, str], list[str]]:
    """(from node, to node) -> ["path:line", ...] for imports that cross nodes."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("").parts
        source = rel[0]
        for unit, line in _imported_units(path.read_text(), ("rlxf",) + rel[:-1]):
            if unit != source:
                edges[(source, unit)].append(f"src/rlxf/{path.relative_to(SRC)}:{line}")
    return edges


def _cycles(edges) -> list[list[str]]:
    """One cycle per strongly connected component of more than one node (Tarjan)."""
    graph = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
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

    for v in sorted(set(graph) | {b for _, b in edges}):
        if v not in index:
            visit(v)
    return components


def _describe(edges, pairs) -> str:
    return "\n".join(f"  {a} -> {b}: " + ", ".join(edges[(a, b)]) for a, b in pairs)


def test_the_graph_sees_relative_absolute_and_function_level_imports():
    module = (
        "import os\n"
        "from ..models.build import load\n"          # line 2: relative, two levels
        "from . import common\n"                      # same package: its own node
        "def f():\n"
        "    from ..cli import console\n"             # line 5: inside a function
        "    import rlxf.world.kb\n"                  # line 6: absolute
        "from .. import config, __version__\n"        # line 7: a module; a name of rlxf
    )
    assert sorted(_imported_units(module, ("rlxf", "tune"))) == [
        ("cli", 5), ("config", 7), ("models", 2), ("tune", 3), ("world", 6)]
    edges = import_graph()
    assert ("cli", "tune") in edges and ("pipeline", "stages") in edges
    assert _cycles({("a", "b"): [], ("b", "c"): [], ("c", "a"): [], ("c", "d"): []}) == [["a", "b", "c"]]
    assert _cycles({("a", "b"): [], ("b", "c"): []}) == []


def test_no_cycle_between_packages():
    edges = import_graph()
    cycles = _cycles(edges)
    report = []
    for component in cycles:
        inside = [(a, b) for a, b in sorted(edges) if a in component and b in component]
        report.append(f"cycle among {component}:\n" + _describe(edges, inside))
    assert not cycles, "\n".join(report)


@pytest.mark.parametrize("lower", LOWER)
def test_lower_layers_never_import_the_pipeline(lower):
    edges = import_graph()
    bad = [(lower, upper) for upper in UPPER if (lower, upper) in edges]
    assert not bad, f"{lower}/ imports the pipeline layer:\n" + _describe(edges, bad)


@pytest.mark.parametrize("above", ["cli", "audit"])
def test_tune_imports_neither_cli_nor_audit(above):
    # tune/ prints through rlxf/console.py and builds its cards with rlxf/model_card.py
    edges = import_graph()
    assert not edges.get(("tune", above)), _describe(edges, [("tune", above)])


def test_train_takes_its_own_hyperparameters_not_the_config_schema():
    # train/hparams.py; the lab's stages and tune/ adapt their configs (stages/hparams.py,
    # tune/hparams.py), so a library caller of train/ needs no pydantic config
    edges = import_graph()
    assert not edges.get(("train", "config")), _describe(edges, [("train", "config")])
