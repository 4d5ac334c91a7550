"""The whole package is layered without import circles (issue 21): no module of gengen reaches itself
back through imports of any kind (top level, in functions, for typing), the three wings never import
each other, and the shared plumbing imports no wing."""

from __future__ import annotations

import gengen
from test_ggan_layers import _cycles, _module_graph

WINGS = ("gengen.vae", "gengen.ggan", "gengen.dna")
PLUMBING = ("gengen.errors", "gengen.runtime", "gengen.checkpoint", "gengen.store", "gengen.saved_model",
            "gengen.training_state", "gengen.io", "gengen.batches", "gengen.distributed", "gengen.recipes")


def _wing(module: str) -> str | None:
    return next((w for w in WINGS if module == w or module.startswith(w + ".")), None)


def test_no_import_circle_anywhere_in_gengen():
    graph = _module_graph(gengen)
    assert {"gengen.runtime.outputs", "gengen.dna.designer.objectives", "gengen.dna.gan.core"} <= set(graph)
    assert _cycles(graph) == []


def test_wings_do_not_import_each_other_and_plumbing_imports_no_wing():
    graph = _module_graph(gengen)
    crossing = sorted((m, d) for m, deps in graph.items() for d in deps
                      if _wing(m) and _wing(d) and _wing(m) != _wing(d))
    assert crossing == []
    below = sorted((m, d) for m, deps in graph.items() for d in deps
                   if any(m == p or m.startswith(p + ".") for p in PLUMBING) and _wing(d))
    assert below == []
