"""``--objective predictor=NAME_OR_DIR``: a CNN from ``dna-train-predictor`` (a folder or a store name).

Its config.json records the length it was trained on, read before anything is loaded
(:func:`trained_length`): design takes it as its default length and refuses another.
"""

from __future__ import annotations

from pathlib import Path

from gengen.dna.designer.objectives import Objective, ObjectiveContext, ObjectiveSpec
from gengen.errors import GengenError


def parse(spec: ObjectiveSpec) -> ObjectiveSpec:
    """No keys of its own."""
    spec.refuse_options()
    return spec


def build(spec: ObjectiveSpec, context: ObjectiveContext) -> Objective:
    """The predictor, loaded, named after its folder or store name."""
    from gengen.dna.predictor.predictors import CNNPredictor

    model = CNNPredictor.load(spec.source, device=context.device)
    return Objective(model, spec.target, spec.weight, name=Path(spec.source).name)


def trained_length(spec: ObjectiveSpec) -> tuple[str, int] | None:
    """(name, the length the model was trained on) from its config.json alone; None when it cannot be
    read (loading it says why)."""
    from gengen.checkpoint import read_config
    from gengen.store import resolve_model

    try:
        cfg = read_config(resolve_model(spec.source, "dna-predictor"))
    except (GengenError, OSError):
        return None
    length = cfg.get("length") if isinstance(cfg, dict) and cfg.get("pipeline") == "dna-predictor" else None
    return (Path(spec.source).name, length) if isinstance(length, int) and length > 0 else None
