"""Every trainer's settings, and design's, as dataclasses whose defaults are gengen's defaults.

:class:`VAERecipe` (Tybalt), :class:`GGANRecipe`, :class:`GANRecipe` (the DNA WGAN-GP),
:class:`PredictorRecipe` (the DNA CNN) and :class:`DesignSettings`. They live here, free of numpy and
torch, so that the command line takes its option defaults from them as it starts (``gengen --help``
stays fast) and the two can never disagree (``tests/test_cli_options.py``); each pipeline also
exports its own (``gengen.vae.VAERecipe``, ...).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from gengen.errors import GengenError

# How genes are ranked for the VAE's gene choice (``VAERecipe.gene_rank``): in memory by
# gengen.vae.preprocess, streamed by gengen.io.streaming (which must not import a pipeline)
GENE_RANKS = ("median-ad", "mean-ad", "variance")


@dataclass
class VAERecipe:
    """Hyper-parameters; ``None`` means "adapt to the data" (see :func:`gengen.vae.train.resolve_vae_recipe`).

    Defaults are Tybalt's: 5,000 genes by absolute deviation, k = 100, Adam 5e-4, batch 50, 50 epochs,
    kappa = 1 KL warm-up, beta = 1, 10 % validation. ``regime`` ``"auto"`` keeps that recipe when the
    samples outnumber the genes (as Tybalt's 10,459 TCGA samples did its 5,000 genes) and uses the
    small-cohort recipe (:mod:`gengen.vae.smallcohort`) below that; ``"tybalt"`` / ``"small"`` force one.
    """

    latent_dim: int | None = None
    n_genes: int | None = None
    gene_rank: str = "median-ad"
    hidden: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float = 5e-4
    kappa: float = 1.0
    beta_max: float | None = None
    val_fraction: float | None = None
    tybalt_compat: bool = False
    log_transform: str = "auto"
    seed: int = 0
    min_steps: int = 3000
    regime: str = "auto"
    # count normalisation when the data are read (gengen.io.chunked): "auto" (ARCHS4 counts -> log2(CPM + 1),
    # other files as they are), "cpm" or "none"; a trained model records the one applied
    normalize: str = "auto"
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class GGANRecipe:
    """Hyper-parameters; ``None`` means "adapt to the reference" (see :func:`gengen.ggan.defaults.resolve_ggan_recipe`).

    On a reference of D-GEX's size (>= 50,000 profiles) the adapted recipe is the D-GEX class: 3 hidden
    layers of 3,000 tanh units, Adam 5e-4, batch 200, ~1,500 optimiser steps. Smaller references get a
    narrower generator that starts from the leave-one-out ridge map and keeps its adversarial
    refinement only when that beats the ridge start on validation. λ's weight the L1 and consistency
    terms relative to an adversarial weight of 1. ``patience=0`` turns early stopping off.
    """

    hidden: int | None = None
    layers: int | None = None
    dropout: float = 0.1
    activation: str = "tanh"
    input_noise: float = 0.0
    linear_skip: bool | None = None
    ridge_init: bool | None = None
    refit: bool | None = None
    d_hidden: int | None = None
    loss: str = "gan"  # "gan" (GGAN) or "mse" (D-GEX baseline: same generator, MSE only)
    adv_weight: float = 1.0
    l1_weight: float = 10.0
    consistency_weight: float = 1.0
    epochs: int | None = None
    min_steps: int = 1500
    batch_size: int = 200
    learning_rate: float | None = None
    d_learning_rate: float | None = None
    weight_decay: float = 0.0
    val_fraction: float | None = None
    patience: int | None = None
    # standard errors (paired over validation profiles) by which the best trained epoch must beat the
    # starting point to replace it; guards the ridge start against a lucky validation split
    start_margin: float | None = None
    quantile: bool = False
    # auto: train in float32 (at batch 200 bf16 autocast was no faster on an H100: 22-39k vs
    # 29-37k profiles/s), infer with bf16 autocast on a CUDA GPU (8x faster there, 0.3 % relative
    # difference); fp32 / bf16 force one precision for both (see gengen.runtime.resolve_precision)
    precision: str = "auto"
    seed: int = 0
    normalize: str = "auto"  # as VAERecipe.normalize; queries of a model are read the same way
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GGANRecipe:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


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
    # how held-out records were chosen: "sequence" (identical records, up to case and strand, on one side:
    # gengen.dna.data.training_windows' default) or "name" (a hash of the record name). None: not recorded,
    # which a saved model means "name" (trained before the sequence split) and train_gan fills with "sequence"
    heldout_by: str | None = None
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
        if self.heldout_by not in (None, "sequence", "name"):
            raise GengenError(f"heldout_by must be 'sequence' or 'name', got {self.heldout_by!r}.")
        for name in ("log_every", "sample_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                option = " (--sample-every)" if name != "log_every" else ""
                raise GengenError(f"{name.replace('_', ' ')}{option} must be a positive number of iterations, "
                                  f"got {getattr(self, name)}.")


@dataclass
class PredictorRecipe:
    """Training settings for :class:`gengen.dna.predictor.predictors.CNNPredictor`; defaults suit ~40k PBM probes on a CPU
    (chosen on the early-stopping split of the three shared PBM factors; docs/dna.md lists what was tried)."""

    channels: int = 64
    width: int = 11
    hidden: int = 64
    # the residual convolutions after the first, by dilation (width 5 each): (2, 4) sees 35 nt at once
    dilations: tuple[int, ...] = (2, 4)
    # independently initialised networks trained side by side and averaged (their errors partly cancel)
    members: int = 3
    # learned constant context on both sides of the sequences instead of zero padding: what an end
    # base does depends on which end it is at (a PBM probe's primer side vs its free end)
    flanks: bool = True
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
    """The defaults of :func:`gengen.dna.designer.design.design` and ``dna-design``: the paper's Adam step 0.1
    and gradient noise 1e-5 on z (joint design), no prior on ``||z||^2``, unit-scale random start
    logits, and up to 500 steps that stop on a plateau (designs of tens of bases converge in a few
    hundred steps, and most stop improving after ~100).

    **Plateau.** Without ``steps``, the optimisation stops when the batch's mean one-hot objective
    (the standardised weighted sum ``J`` a design maximises, checked every ``max_steps // 100``
    steps) has not risen above its best so far by more than ``plateau_tolerance`` x max(1, |best|)
    for ``plateau_steps`` steps, or after ``max_steps``. The designs are exactly those of
    ``steps=<the step it stopped at>``. ``steps=N`` runs exactly N steps."""

    steps: int | None = None
    max_steps: int = 500
    plateau_steps: int = 50
    plateau_tolerance: float = 1e-3
    learning_rate: float = 0.1
    grad_noise: float = 1e-5
    prior_weight: float = 0.0
    init_scale: float = 1.0
