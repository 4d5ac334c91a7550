"""The settings of the DNA pipeline's trainers and of design, as dataclasses with the defaults.

Kept free of torch so the command line takes its defaults from them when it starts (``gengen
--help`` stays fast); :mod:`gengen.dna.train`, :mod:`gengen.dna.predictor_training` and
:mod:`gengen.dna.design` use them, and every name is also exported where it was before.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from gengen.errors import GengenError


@dataclass
class GANRecipe:
    """WGAN-GP settings; defaults are the paper's except ``iterations`` (100k there; CPU-sized here)."""

    length: int = 50
    latent: int = 100
    channels: int = 100
    blocks: int = 5
    batch_size: int = 64
    critic_steps: int = 5
    gp_weight: float = 10.0
    learning_rate: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.9
    iterations: int = 2000
    log_every: int = 50
    sample_every: int = 250
    checkpoint_every: int = 250
    seed: int = 0
    heldout_fraction: float = 0.0
    # True when the held-out check used only the validation half of the held-out genes (dna-train),
    # leaving the test half to dna-eval; False: all held-out genes chose the checkpoint (library use,
    # older models)
    heldout_split: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        for name in ("length", "latent", "channels", "blocks", "batch_size", "critic_steps", "iterations"):
            if getattr(self, name) < 1:
                raise GengenError(f"{name.replace('_', ' ')} must be positive, got {getattr(self, name)}.")
        if self.learning_rate <= 0:
            raise GengenError(f"learning rate must be positive, got {self.learning_rate}.")
        if not 0 <= self.heldout_fraction < 1:
            raise GengenError(f"held-out fraction (--heldout-fraction) must be in [0, 1), got {self.heldout_fraction}.")
        for name in ("log_every", "sample_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                option = " (--sample-every)" if name != "log_every" else ""
                raise GengenError(f"{name.replace('_', ' ')}{option} must be a positive number of iterations, "
                                  f"got {getattr(self, name)}.")


@dataclass
class PredictorRecipe:
    """Training settings for :class:`CNNPredictor`; defaults suit ~40k PBM probes on a CPU."""

    channels: int = 64
    width: int = 11
    hidden: int = 64
    epochs: int = 8
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 1e-5
    val_fraction: float = 0.1
    # share of the training sequences that picks the best epoch, so the reported held-out r (on the
    # val_fraction split) is not flattered by the choice
    stop_fraction: float = 0.1
    transform: str = "log"
    seed: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DesignSettings:
    """The defaults of :func:`gengen.dna.design.design` and ``dna-design``: the paper's Adam step 0.1
    and gradient noise 1e-5 on z (joint design), no prior on ``||z||^2``, 500 steps (designs of
    tens of bases converge in a few hundred), and unit-scale random start logits."""

    steps: int = 500
    learning_rate: float = 0.1
    grad_noise: float = 1e-5
    prior_weight: float = 0.0
    init_scale: float = 1.0
