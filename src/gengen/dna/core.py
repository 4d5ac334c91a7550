"""``GANModel``: the user-facing DNA generator (load, generate, latent paths).

Separate from the torch modules (:mod:`gengen.dna.model`) and the training loop
(:mod:`gengen.dna.train`), as in scvi-tools and gengen's VAE and GGAN pipelines.
"""

from __future__ import annotations

import numpy as np
import torch

from gengen.dna.model import Generator
from gengen.dna.train import PIPELINE, GANRecipe
from gengen.errors import GengenError
from gengen.runtime import check_memory, resolve_device
from gengen.saved_model import LoadedCheckpoint, SavedModel


class GANModel(SavedModel):
    """A trained generator with its recipe; ``generate`` draws sequences, ``save``/``load`` round-trip.

    :func:`gengen.dna.train_gan` returns one; :meth:`load` reads a ``dna-train`` folder, ``save(path)``
    writes the generator alone and returns the folder (model.safetensors keys: docs/checkpoints.md).
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

    def sample_latent(self, n: int, seed: int = 0) -> torch.Tensor:
        g = torch.Generator(device="cpu").manual_seed(seed)
        return torch.randn(n, self.recipe.latent, generator=g).to(self.device)

    @torch.no_grad()
    def generate_soft(self, z: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
        self.generator.eval()
        return torch.cat([self.generator(z[i : i + batch_size]) for i in range(0, len(z), batch_size)])

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
        r = self.recipe  # z, the soft (n, 4, L) output and one batch's activations
        check_memory(4.0 * n * (r.latent + 2 * 4 * r.length) + 4.0 * 2048 * r.channels * r.length * 4,
                     f"generating {n} sequences", self.device)
        soft = self.generate_soft(self.sample_latent(n, seed))
        return soft.argmax(dim=1).to(torch.uint8).cpu().numpy()

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


def write_samples(
    gan: GANModel,
    path,
    n: int = 1000,
    *,
    seed: int = 0,
    objectives=None,
    train_data=None,
) -> list[str]:
    """``dna-generate``: write ``n`` samples as FASTA (GC, objective scores and, with the training FASTA
    ``train_data``, the distance to the nearest training window in each description).

    Returns
    -------
    The lines to report: GC, and with ``train_data`` the novelty of the samples next to held-out real
    windows (:mod:`gengen.dna.novelty`).
    """
    from gengen.io.sequences import decode_codes, gc_content, write_fasta

    lines: list[str] = []
    nov = None
    if train_data is not None:  # read (and refuse) the training file before sampling
        from gengen.dna.data import evaluation_windows
        from gengen.io.sequences import read_fasta

        seqs = read_fasta(train_data, length=gan.length, windows="tiled")
        if gan.recipe.heldout_fraction:
            win = evaluation_windows(seqs, gan)
            train, test = win.train, win.test
            lines += [win.split] + [f"warning: {c}." for c in win.caveats]
        else:
            train, test = seqs.codes, None
            lines.append("note: the model held no genes out (--heldout-fraction 0): no held-out real windows to "
                         "compare with")
    codes = gan.generate(n, seed=seed)
    desc = [f"gc={g:.3f}" for g in gc_content(codes)]
    if objectives:
        from gengen.dna.design import borrowed
        from gengen.dna.objectives import column_names, exact_scores
        from gengen.io.sequences import codes_to_one_hot

        with borrowed([o.predictor for o in objectives], gan.device):
            scores = exact_scores(objectives, codes_to_one_hot(codes, device=gan.device))
        cols = [c.removeprefix("score_") for c in column_names(objectives)]
        desc = [d + "".join(f" {c}={v:.4f}" for c, v in zip(cols, row)) for d, row in zip(desc, scores)]
    if train_data is not None:
        from gengen.dna.novelty import describe, novelty_table

        sets = {"gan": codes}
        if test is not None:
            rng = np.random.default_rng(seed)
            sets["heldout_real"] = test if len(test) <= n else test[np.sort(rng.choice(len(test), n, replace=False))]
        nov, dist = novelty_table(sets, train, seed=seed, device=gan.device)
        desc = [d + f" nearest_train={int(k)}" for d, k in zip(desc, dist["gan"])]
        lines += describe(nov, gan.length)
    write_fasta(path, [f"gan_{i + 1}" for i in range(n)], decode_codes(codes), descriptions=desc)
    lines.insert(0, f"generated {n} sequences of {gan.length} nt (seed {seed}, {gan.metrics.get('weights', 'last')} "
                    f"weights, iteration {gan.iteration}); mean GC {gc_content(codes).mean():.3f}")
    return lines
