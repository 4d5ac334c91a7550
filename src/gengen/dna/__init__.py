"""Killoran et al. (2017) DNA pipeline: a WGAN-GP over one-hot DNA and gradient-based design.

>>> from gengen.dna import PWMPredictor, design
>>> from gengen.io.motifs import load_motif
>>> pwm = load_motif("MA0139.2")                       # CTCF, offline via pyjaspar
>>> result = design(PWMPredictor(pwm), n=300, length=50, steps=300, pwm=pwm)
>>> result.summary()["fraction_of_max"], result.records()[:2]
"""

import sys
import types

# Names are imported on first use (PEP 562), so that ``gengen.dna.recipes`` (the settings the command
# line reads its defaults from) can be imported without torch.
_HOMES = {
    "Constraints": "constraints", "verify": "constraints",
    "GANModel": "core",
    "DesignResult": "design", "design": "design", "design_direct": "design", "design_joint": "design",
    "parse_target": "design", "plot_design": "design",
    "fit_markov": "metrics", "hamming_diversity": "metrics", "js_divergence": "metrics", "kmer_js_table": "metrics",
    "kmer_spectrum": "metrics", "sample_iid": "metrics", "sample_markov": "metrics",
    "Critic": "model", "Generator": "model",
    "Objective": "objectives",
    "TrainedPredictor": "predictor_training", "train_predictor": "predictor_training",
    "CNNPredictor": "predictors", "PWMPredictor": "predictors", "load_predictor": "predictors", "predict": "predictors",
    "report_scores": "predictors",
    "DesignSettings": "recipes", "GANRecipe": "recipes", "PredictorRecipe": "recipes",
    "gradient_penalty": "train", "train_gan": "train",
}


def __getattr__(name: str):
    if name in _HOMES:
        import importlib

        value = getattr(importlib.import_module(f"gengen.dna.{_HOMES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gengen.dna' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """``gengen.dna.design`` is the function, as an eager ``from gengen.dna.design import design`` made
    it: importing the submodule binds the package attribute to the module, and this puts the function
    of the same name there instead (``from gengen.dna.design import ...`` reads ``sys.modules``)."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and _HOMES.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__all__ = [
    "CNNPredictor",
    "Constraints",
    "Objective",
    "verify",
    "Critic",
    "DesignSettings",
    "DesignResult",
    "GANModel",
    "GANRecipe",
    "Generator",
    "PWMPredictor",
    "PredictorRecipe",
    "TrainedPredictor",
    "design",
    "design_direct",
    "design_joint",
    "fit_markov",
    "gradient_penalty",
    "hamming_diversity",
    "js_divergence",
    "kmer_js_table",
    "kmer_spectrum",
    "load_predictor",
    "parse_target",
    "plot_design",
    "predict",
    "report_scores",
    "sample_iid",
    "sample_markov",
    "train_gan",
    "train_predictor",
]
