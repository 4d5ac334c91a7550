"""gengen.ggan is layered without import circles (issue 21, item 4): the model object (core) delegates
training to train / streamed and prediction to predict, and nothing under it imports it back, not even for
type hints or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import gengen.ggan


def _module_graph(package=gengen.ggan) -> dict[str, set[str]]:
    """Every module of ``package`` -> the modules of it that it imports (top level, in functions, for typing)."""
    root = Path(package.__file__).parent
    names = {}
    for path in root.rglob("*.py"):
        parts = (*package.__name__.split(".")[:-1], *path.relative_to(root.parent).with_suffix("").parts)
        names[".".join(parts[:-1]) if parts[-1] == "__init__" else ".".join(parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module in names:
                deps |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in names else node.module for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in names}
        graph[name] = deps - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: each a path back to where it started."""
    found, done = [], set()

    def visit(node: str, path: list[str]) -> None:
        for dep in sorted(graph[node]):
            if dep in path:
                found.append(path[path.index(dep):] + [dep])
            elif dep not in done:
                visit(dep, path + [dep])
        done.add(node)

    for start in sorted(graph):
        if start not in done:
            visit(start, [start])
    return found


def test_ggan_modules_import_each_other_without_a_circle():
    graph = _module_graph()
    assert {"gengen.ggan.core", "gengen.ggan.train", "gengen.ggan.streamed", "gengen.ggan.infer"} <= set(graph)
    assert _cycles(graph) == []


def test_the_model_sits_above_its_trainers_and_below_the_file_level_inference():
    graph = _module_graph()
    assert {"gengen.ggan.train", "gengen.ggan.streamed", "gengen.ggan.predict"} <= graph["gengen.ggan.core"]
    for below in ("gengen.ggan.train", "gengen.ggan.streamed", "gengen.ggan.loop", "gengen.ggan.predict",
                  "gengen.ggan.defaults", "gengen.ggan.reference"):
        assert "gengen.ggan.core" not in graph[below], below
    assert "gengen.ggan.core" in graph["gengen.ggan.infer"]
