"""``--objective motif=FILE_OR_JASPAR_ID``: a PWM's best match over positions and both strands.

A motif objective scores its own, faster way (:class:`MotifObjective`): the loss sees the smooth
maximum over windows (every window gets gradient), every single-base substitution is scored
incrementally in O(N·L·W), and a sequence shorter than the motif is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from gengen.dna.designer.objectives import Objective, ObjectiveContext, ObjectiveSpec, read_motif

if TYPE_CHECKING:
    from gengen.io.motifs import PWM


@Objective.specialise(lambda model: getattr(model, "pwm", None) is not None)  # the one place a PWM is told apart
class MotifObjective(Objective):
    """An :class:`~gengen.dna.designer.objectives.Objective` over a :class:`~gengen.dna.predictor.predictors.PWMPredictor`
    (``Objective(PWMPredictor(pwm), ...)`` makes one)."""

    activation_copies = 1
    incremental = True

    @property
    def pwm(self) -> PWM:
        """The motif scanned."""
        return self.predictor.pwm

    def evaluate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss sees the smooth maximum over windows, or the exact best window when a value is to be
        hit (the smooth maximum sits above the reported one); the exact score is the best window, which
        is the reported score when ``x`` is one-hot."""
        windows = self.predictor.window_scores(x).flatten(1)
        exact = windows.amax(dim=1)
        tau = self.predictor.tau
        if self.is_value or tau <= 0:
            return exact, exact
        return tau * torch.logsumexp(windows / tau, dim=1), exact

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        """``(N,)`` the best window's score over both strands."""
        return self.predictor.window_scores(x).flatten(1).amax(dim=1)

    @torch.no_grad()
    def substitution_scores(self, codes: torch.Tensor) -> torch.Tensor:
        """Exact PWM scores of every single-base substitution, ``(N, L, 3)``, in O(N·L·W): a
        substitution changes only the windows that overlap it, so the rest is a prefix/suffix maximum
        over the unchanged windows."""
        return pwm_substitution_scores(self.predictor, codes)

    def check_length(self, length: int, *, gradient: bool = False) -> None:
        """A motif longer than the sequences cannot be matched."""
        self.pwm.check_fits(length)


def pwm_substitution_scores(predictor, codes: torch.Tensor) -> torch.Tensor:
    """Exact scores of every single-base substitution of codes ``(N, L)`` by a
    :class:`~gengen.dna.predictor.predictors.PWMPredictor`, ``(N, L, 3)`` (substitution ``k`` at position ``p``
    puts base ``(c_p + k + 1) % 4``)."""
    codes = codes.long()
    weight = predictor.weight.to(codes.device, torch.float32)  # (2, 4, W): forward, reverse strand
    n, length = codes.shape
    width = weight.shape[-1]
    n_pos = length - width + 1
    one_hot = torch.eye(4, device=codes.device)[codes].transpose(1, 2)
    full = predictor.window_scores(one_hot)  # (N, 2, P)
    windows = full.amax(dim=1)  # (N, P): best strand per window start
    neg = torch.full((n, 1), -torch.inf, device=codes.device)
    prefix = torch.cat([neg, torch.cummax(windows, dim=1).values], dim=1)  # prefix[:, k] = max over q < k
    suffix = torch.cat([torch.flip(torch.cummax(torch.flip(windows, [1]), dim=1).values, [1]), neg], dim=1)
    pos = torch.arange(length, device=codes.device)
    lo = (pos - width + 1).clamp(min=0)
    hi = (pos + 1).clamp(max=n_pos)
    best = torch.maximum(prefix[:, lo], suffix[:, hi])[:, :, None].expand(-1, -1, 3).contiguous()  # untouched windows
    shift = (torch.arange(4, device=codes.device)[:, None] + torch.arange(1, 4, device=codes.device)) % 4  # (4, 3)
    for j in range(width):  # the window starting at q = p - j holds p (in [j, j + P)) at its column j
        c = codes[:, j : j + n_pos]
        for strand in range(2):
            col = weight[strand][:, j]  # (4,)
            cand = full[:, strand, :, None] + (col[shift] - col[:, None])[c]  # (N, P, 3)
            torch.maximum(best[:, j : j + n_pos], cand, out=best[:, j : j + n_pos])
    return best




def parse(spec: ObjectiveSpec) -> ObjectiveSpec:
    """No keys of its own (a motif file is read with --motif-format, --motif-name, --pseudocount)."""
    spec.refuse_options()
    return spec


def build(spec: ObjectiveSpec, context: ObjectiveContext) -> MotifObjective:
    """The PWM scanner of the motif, named after it."""
    from gengen.dna.predictor.predictors import PWMPredictor
    from gengen.runtime import log

    pwm = read_motif(spec.source, context)
    objective = Objective(PWMPredictor(pwm), spec.target, spec.weight, name=pwm.name)
    if objective.is_value and objective.target > pwm.max_score:
        log(f"note: target {objective.target:g} is above {objective.name}'s best possible score {pwm.max_score:.3f}; "
            "the designs can only approach the consensus", context.quiet)
    return objective
