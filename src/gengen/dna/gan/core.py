"""``GANModel``: the user-facing DNA generator (train, load, generate, latent paths).

Separate from the torch modules (:mod:`gengen.dna.gan.model`) and the training loop
(:mod:`gengen.dna.gan.train`), as in scvi-tools and gengen's VAE and GGAN pipelines; ``dna-generate``'s
FASTA is written by :mod:`gengen.dna.gan.generate`.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import torch

from gengen.checkpoint import overwrite_check
from gengen.dna.gan.model import Generator, latent_draws, sample_codes, soft_sequences
from gengen.errors import GengenError
from gengen.recipes import GANRecipe
from gengen.runtime import log, resolve_device, seed_everything
from gengen.saved_model import LoadedCheckpoint, SavedModel

if TYPE_CHECKING:
    from pathlib import Path

    from gengen.training_state import Checkpointing

PIPELINE = "dna-gan"
KMER_SIZES = (1, 2, 3, 4, 5, 6)  # the held-out check's k-mer table


class GANModel(SavedModel):
    """A trained generator with its recipe; ``generate`` draws sequences, ``save``/``load`` round-trip.

    :meth:`train` (or :func:`train_gan`) makes one; :meth:`load` reads a ``dna-train`` folder,
    ``save(path)`` writes the generator alone and returns the folder (model.safetensors keys:
    docs/checkpoints.md).
    """

    pipeline = PIPELINE
    required_keys = ("recipe", "iteration")

    def __init__(self, generator: Generator, recipe: GANRecipe, metrics: dict | None = None):
        self.generator = generator
        self.recipe = recipe
        self.metrics = metrics or {}
        self.last: GANModel | None = None  # from train_gan: the final-iteration model beside the best

    @property
    def length(self) -> int:
        return self.recipe.length

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    # ------------------------------------------------------------------ training
    @classmethod
    def train(cls, codes: np.ndarray, recipe: GANRecipe | None = None, device: str = "auto", *,
              heldout_codes: np.ndarray | None = None, quiet: bool = True, checkpoint: Checkpointing | None = None,
              time_limit: float | None = None, ks: tuple[int, ...] = KMER_SIZES) -> GANModel:
        """Train (or resume) a WGAN-GP on ``(N, L)`` uint8 training windows.

        With ``checkpoint`` (:class:`gengen.training_state.Checkpointing`) its folder holds a resumable
        checkpoint (both nets, optimisers, RNG, history.csv, training.png, samples.fa and the k-mer check
        against ``heldout_codes``), written every ``checkpoint_every`` iterations and at the end, and a
        ``training`` section in config.json; with ``resume=True`` the run continues from it up to
        ``recipe.iterations`` (a finished run trains on when more are asked; the architecture must match
        the checkpoint's, the data must be the same; ``recipe=None``: the checkpoint's settings). On the CPU at the same thread count the result
        is bit-identical to an uninterrupted run. ``time_limit`` (seconds) stops early, cleanly, with a
        final checkpoint. The folder is checked and locked before training until the last checkpoint.

        A recipe without ``heldout_by`` records ``"sequence"``, the split of
        :func:`gengen.dna.data.training_windows` (a resumed run keeps its checkpoint's).

        Parameters
        ----------
        codes : training windows ``(N, L)``, uint8 codes 0-3 (A, C, G, T).
        recipe : the settings (default :class:`GANRecipe`: the paper's WGAN-GP).
        device : ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        heldout_codes : held-out windows for the k-mer check that picks the best generator.
        quiet : no progress or status lines (the default for library calls).
        checkpoint : the checkpoint folder and whether to resume (None: train in memory only).
        time_limit : seconds after which training stops cleanly.
        ks : k-mer sizes of the held-out check's table.

        Returns
        -------
        The model with the best generator (``.last``: the final iteration's).
        """
        from dataclasses import replace

        from gengen.runtime import plan_outputs

        resume = checkpoint is not None and checkpoint.resume
        if recipe is None and not resume:
            recipe = GANRecipe()
        if recipe is not None:
            if recipe.heldout_by is None and not resume:
                recipe = replace(recipe, heldout_by="sequence")
            recipe.validate()
        if checkpoint is None:
            return cls._train(codes, recipe, device, heldout_codes, quiet, None, time_limit, ks)
        with plan_outputs(models={checkpoint.directory: overwrite_check(PIPELINE)}):  # locked from the start (no-op in the CLI)
            return cls._train(codes, recipe, device, heldout_codes, quiet, checkpoint, time_limit, ks)

    @classmethod
    def _train(cls, codes, recipe, device, heldout_codes, quiet, checkpoint, time_limit, ks) -> GANModel:
        from gengen.dna.gan.train import best_generator_weights, fit_gan, new_nets, resumed_recipe, training_snapshot
        from gengen.training_state import data_fingerprint, open_training

        dev = resolve_device(device)
        # the model file holds the whole training state (docs/checkpoints.md): no training_state.safetensors
        ck = open_training(checkpoint, PIPELINE, quiet, model_state=partial(training_snapshot, pipeline=PIPELINE),
                           unit="iteration")
        if ck is not None and ck.resuming:  # the checkpoint's settings, but the iterations asked for
            recipe = resumed_recipe(ck.section["config"], ck.directory, recipe)
        codes = np.asarray(codes, dtype=np.uint8)
        if codes.ndim != 2 or codes.shape[1] != recipe.length:
            raise GengenError(f"training windows must be (N, {recipe.length}) codes, got shape {codes.shape}.")
        if len(codes) < recipe.batch_size:
            raise GengenError(f"need at least one batch ({recipe.batch_size}) of training windows, got {len(codes)}.")
        if ck is not None:
            held = () if heldout_codes is None else (np.asarray(heldout_codes, dtype=np.uint8),)
            ck.check_data(data_fingerprint(codes, *held))
            ck.recipe_given = recipe.to_dict()
            ck.ready(recipe.iterations)
            if ck.resuming:
                log(f"resuming from iteration {ck.snapshot.meta['epoch']} of {recipe.iterations}", quiet)
        if ck is None or not ck.resuming:
            seed_everything(recipe.seed)
        nets = new_nets(recipe, dev)  # a resumed run's are restored by fit_gan
        loop = fit_gan(nets, codes, recipe, heldout_codes=heldout_codes, checkpoint=ck, quiet=quiet,
                       time_limit=time_limit, ks=ks)
        metrics = loop.values["metrics"]
        nets.generator.eval()
        last = cls(nets.generator, recipe, {**metrics, "weights": "last"})
        best_weights = best_generator_weights(loop)
        if not best_weights:
            last.last = last
            return last
        best_gen = Generator(recipe.length, recipe.latent, recipe.channels, blocks=recipe.blocks).to(dev)
        best_gen.load_state_dict(best_weights)
        best = cls(best_gen.eval(), recipe,
                   {**metrics, "weights": "best", "weights_iteration": loop.values["best"]["iteration"]})
        best.last = last
        return best

    # ------------------------------------------------------------------ sampling
    def sample_latent(self, n: int, seed: int = 0) -> torch.Tensor:
        """``(n, latent)`` draws of z ~ N(0, I), seeded (the same on every device)."""
        return latent_draws(n, self.recipe.latent, seed, device=self.device)

    def generate_soft(self, z: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
        """G(z): ``(n, 4, L)`` base probabilities."""
        return soft_sequences(self.generator, z, batch_size)

    def generate(self, n: int, seed: int = 0) -> np.ndarray:
        """``(n, L)`` uint8 codes: the argmax base of each position of G(z), z ~ N(0, I) seeded.

        Parameters
        ----------
        n : number of sequences.
        seed : seed of the latent draws.

        Returns
        -------
        Codes ``(n, L)``, uint8 0-3 (A, C, G, T).
        """
        if n < 1:
            raise GengenError(f"-n must be positive, got {n}.")
        return sample_codes(self.generator, n, seed)

    @property
    def iteration(self):
        """The training iteration these generator weights come from (``None`` if unknown)."""
        return self.metrics.get("weights_iteration", self.metrics.get("iteration"))

    @classmethod
    def load(cls, path_or_name, device: str = "auto", *, weights: str = "best") -> GANModel:
        """Load a ``dna-train`` folder (or one written by :meth:`save`), or a store name.

        Parameters
        ----------
        path_or_name : the checkpoint folder or a model name in the store.
        device : ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        weights : ``"best"`` (default) takes the generator with the best held-out k-mer check (mean JS
            over k = 3, 4) seen during training, falling back to the last weights when no check was
            recorded; ``"last"`` takes the final iteration's.

        Returns
        -------
        The model, its generator in evaluation mode on ``device``.
        """
        if weights not in ("best", "last"):
            raise GengenError(f"weights must be 'best' or 'last', got {weights!r}.")
        from gengen.saved_model import load_model

        return load_model(cls, path_or_name, device, weights=weights)

    @classmethod
    def _from_checkpoint(cls, checkpoint: LoadedCheckpoint, device, weights: str = "best") -> GANModel:
        cfg, tensors, directory = checkpoint.config, checkpoint.tensors, checkpoint.directory
        recipe = checkpoint.section(GANRecipe, "recipe")
        best = cfg.get("best")
        use_best = weights == "best" and best is not None and any(k.startswith("B.") for k in tensors)
        state = checkpoint.prefixed("B." if use_best else "G.")
        gen = Generator(recipe.length, recipe.latent, recipe.channels, blocks=recipe.blocks)
        try:
            gen.load_state_dict(state)
        except RuntimeError as exc:
            raise GengenError(
                f"{str(directory)!r}: generator weights do not match the recipe ({str(exc).splitlines()[0][:160]})."
            ) from None
        metrics = dict(cfg.get("metrics") or {})
        generator_only = not any(k.startswith(("B.", "D.")) for k in tensors)  # written by save()
        if not (generator_only and metrics.get("weights") in ("best", "last")):
            metrics["weights"] = "best" if use_best else "last"
        metrics["weights_iteration"] = int(best["iteration"]) if use_best else int(cfg["iteration"])
        dev = resolve_device(device) if isinstance(device, str) else device
        return cls(gen.to(dev).eval(), recipe, metrics)

    def _save_parts(self) -> tuple[dict, dict, None]:
        """The generator alone (``G.*`` tensors) with its recipe: it loads and generates like a
        ``dna-train`` folder, but holds no critic or optimiser state, so training cannot resume from it."""
        tensors = {f"G.{k}": v for k, v in self.generator.state_dict().items()}
        iteration = self.iteration
        cfg = {"recipe": self.recipe.to_dict(), "iteration": int(iteration) if iteration is not None else 0,
               "alphabet": "ACGT", "layout": "(N, 4, L)", "best": None, "metrics": self.metrics}
        return tensors, cfg, None


def train_gan(
    train_codes: np.ndarray,
    recipe: GANRecipe | None = None,
    output: str | Path | None = None,
    *,
    heldout_codes: np.ndarray | None = None,
    resume: bool = False,
    device: str = "auto",
    quiet: bool = True,
    time_limit: float | None = None,
    ks: tuple[int, ...] = KMER_SIZES,
) -> GANModel:
    """:meth:`GANModel.train` with the checkpoint folder given as ``output`` (and ``resume``).

    Parameters
    ----------
    train_codes : training windows ``(N, L)``, uint8 codes 0-3 (A, C, G, T).
    recipe : the settings (default :class:`GANRecipe`: the paper's WGAN-GP).
    output : the checkpoint folder (None: train in memory only).
    heldout_codes : held-out windows for the k-mer check that picks the best generator.
    resume : continue the run saved in ``output``.
    device : ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    quiet : no progress or status lines (the default for library calls).
    time_limit : seconds after which training stops cleanly.
    ks : k-mer sizes of the held-out check's table.

    Returns
    -------
    The model with the best generator (``.last``: the final iteration's).
    """
    from gengen.training_state import Checkpointing

    if resume and output is None:
        raise GengenError("--resume: no checkpoint in 'None' to resume from.")
    checkpoint = Checkpointing(output, resume=resume) if output is not None else None
    return GANModel.train(train_codes, recipe, device, heldout_codes=heldout_codes, quiet=quiet, checkpoint=checkpoint,
                          time_limit=time_limit, ks=ks)
