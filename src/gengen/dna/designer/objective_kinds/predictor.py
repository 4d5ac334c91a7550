"""``--objective predictor=NAME_OR_DIR``: a CNN from ``dna-train-predictor`` (a folder or a store name).

Its objective (:class:`PredictorObjective`) scores every single substitution the CNN's own, faster way.

Its config.json records the length it was trained on, read before anything is loaded
(:func:`trained_length`): design takes it as its default length and refuses another.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gengen.dna.designer.objectives import Objective, ObjectiveContext, ObjectiveSpec
from gengen.errors import GengenError


@Objective.specialise(lambda model: callable(getattr(model, "substitution_outputs", None)))
class PredictorObjective(Objective):
    """An :class:`~gengen.dna.designer.objectives.Objective` over a model that scores all its single
    substitutions itself (``substitution_outputs``: gengen's CNN recomputes only what each one reaches),
    which in-silico mutagenesis and the greedy search then use."""

    own_substitutions = True

    def all_substitutions(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's outputs of ``x`` ``(N, 4, L)`` and of every single substitution ``(N, 4, L)``."""
        return self.predictor.substitution_outputs(x)

    @torch.no_grad()
    def substitution_scores(self, codes: torch.Tensor) -> torch.Tensor:
        """``(m, L, 3)``: every single substitution's output (substitution ``k`` at position ``p`` puts
        base ``(c_p + k + 1) % 4``), from :meth:`all_substitutions`."""
        codes = codes.long()
        x = torch.eye(4, device=codes.device)[codes].transpose(1, 2)
        table = self.all_substitutions(x)[1]  # (m, 4, L)
        new_base = (codes[:, :, None] + torch.arange(1, 4, device=codes.device)) % 4  # (m, L, 3)
        return table.transpose(1, 2).gather(2, new_base)


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
