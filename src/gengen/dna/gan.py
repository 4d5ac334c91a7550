"""Old import path of the DNA GAN, kept so existing code keeps working.

The networks live in :mod:`gengen.dna.model`, the training loop in :mod:`gengen.dna.train` and the
user-facing :class:`~gengen.dna.core.GANModel` in :mod:`gengen.dna.core`.
"""

from gengen.dna.core import GANModel
from gengen.dna.model import Critic, Generator, ResBlock, same_conv1d
from gengen.dna.train import (
    PIPELINE,
    GANRecipe,
    TrainState,
    _flatten_opt,
    _load_training,
    _new_state,
    gradient_penalty,
    iterations_for,
    make_iteration,
    save_training,
    train_gan,
    wgan_gp_iteration,
)

__all__ = [
    "PIPELINE", "Critic", "GANModel", "GANRecipe", "Generator", "ResBlock", "TrainState", "_flatten_opt",
    "_load_training", "_new_state", "gradient_penalty", "iterations_for", "make_iteration", "same_conv1d",
    "save_training", "train_gan", "wgan_gp_iteration",
]
