"""Killoran et al. (2017) DNA pipeline: a WGAN-GP over one-hot DNA and gradient-based design.

>>> from gengen.dna import PWMPredictor, design
>>> from gengen.io.motifs import load_motif
>>> pwm = load_motif("MA0139.2")                       # CTCF, offline via pyjaspar
>>> result = design(PWMPredictor(pwm), n=300, length=50, steps=300, pwm=pwm)
>>> result.summary()["fraction_of_max"], result.records()[:2]
"""

from gengen.dna.designer.constraints import Constraints, verify
from gengen.dna.designer.design import DesignResult, design, design_direct, design_joint, parse_target, plot_design
from gengen.dna.designer.objective_kinds import motif as _motif_kind  # noqa: F401  (its PWM objective: Objective.specialise)
from gengen.dna.designer.objective_kinds import predictor as _predictor_kind  # noqa: F401  (its CNN objective)
from gengen.dna.designer.objective_kinds.model import export_torchscript
from gengen.dna.designer.objectives import Objective, load_objectives, register_objective_kind
from gengen.dna.gan.core import GANModel, train_gan
from gengen.dna.gan.model import Critic, Generator
from gengen.dna.gan.train import gradient_penalty
from gengen.dna.metrics import (
    fit_markov,
    hamming_diversity,
    js_divergence,
    kmer_js_table,
    kmer_spectrum,
    sample_iid,
    sample_markov,
)
from gengen.dna.predictor.explain import ExplainedScore, Explanation, explain, jaspar_hits, match_motifs
from gengen.dna.predictor.predictors import (
    CNNPredictor,
    PWMPredictor,
    exact_score,
    load_predictor,
    predict,
    report_scores,
)
from gengen.dna.predictor.training import PredictorRecipe, TrainedPredictor, train_predictor
from gengen.recipes import DesignSettings, GANRecipe

__all__ = [
    "CNNPredictor",
    "Constraints",
    "Objective",
    "verify",
    "Critic",
    "DesignSettings",
    "DesignResult",
    "ExplainedScore",
    "Explanation",
    "GANModel",
    "GANRecipe",
    "Generator",
    "PWMPredictor",
    "PredictorRecipe",
    "TrainedPredictor",
    "design",
    "design_direct",
    "design_joint",
    "exact_score",
    "explain",
    "export_torchscript",
    "fit_markov",
    "gradient_penalty",
    "hamming_diversity",
    "jaspar_hits",
    "js_divergence",
    "kmer_js_table",
    "kmer_spectrum",
    "load_objectives",
    "load_predictor",
    "match_motifs",
    "parse_target",
    "plot_design",
    "predict",
    "register_objective_kind",
    "report_scores",
    "sample_iid",
    "sample_markov",
    "train_gan",
    "train_predictor",
]
