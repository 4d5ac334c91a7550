"""``VAEModel``: the user-facing Tybalt model (train, encode, decode, sample, save, load).

Separate from the torch module (:mod:`gengen.vae.model`) and the loop (:mod:`gengen.vae.train`),
in the manner of scvi-tools: the model object carries the gene list and scaler, and checks new data
against them by gene name.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gengen.checkpoint import overwrite_check
from gengen.errors import GengenError, preview
from gengen.runtime import describe_device, log, resolve_device, seed_everything
from gengen.saved_model import LoadedCheckpoint, SavedModel
from gengen.training import split_indices
from gengen.vae.preprocess import MinMaxScaler, resolve_log, select_variable_genes
from gengen.vae.train import VAERecipe, fit_vae, resolve_vae_recipe, run_metrics

if TYPE_CHECKING:
    import anndata as ad
    import pandas as pd

    from gengen.training_state import Checkpointing

PIPELINE = "vae"
EMBEDDING_KEY = "X_vae"
LATENT_MAP_KEY = "latent_map"  # extra tensor in model.safetensors (not a module parameter)


class VAEModel(SavedModel):
    """A trained Tybalt VAE with its genes and [0, 1] scaler.

    ``latent_map`` (k x k, optional): the embedding is ``z_mean @ latent_map`` (the small-cohort
    recipe's decoder-metric coordinates, see :mod:`gengen.vae.smallcohort`); ``decode`` and
    ``decoder_weights`` work in the same coordinates. ``None``: the embedding is z_mean (Tybalt).
    Build one with :meth:`train` or :meth:`load`; ``save(path)`` writes a checkpoint folder and
    returns it (model.safetensors keys: docs/checkpoints.md).
    """

    pipeline = PIPELINE
    required_keys = ("architecture", "genes", "scaler", "recipe")

    def __init__(self, module, genes: list[str], scaler: MinMaxScaler, *, recipe: VAERecipe,
                 history: pd.DataFrame | None = None, metrics: dict | None = None, device: str = "cpu",
                 decoder_only: bool = False, latent_map: np.ndarray | None = None):
        self.module = module
        self.latent_map = latent_map
        self.genes = list(genes)
        self.scaler = scaler
        self.recipe = recipe
        self.history = history
        self.metrics = metrics or {}
        self.device = resolve_device(device)
        self.decoder_only = decoder_only
        self.cpu_threads: int | None = None  # the torch CPU threads it was trained with (results depend on it)
        self.training: dict | None = None  # config.json's training section (resumable runs, see training_state)
        self.module.to(self.device).eval()

    @property
    def latent_dim(self) -> int:
        return self.module.latent_dim

    @property
    def latent_map(self) -> np.ndarray | None:
        """The small-cohort regime's (k, k) map from z_mean to decoder-metric coordinates (None: identity)."""
        return self._latent_map

    @latent_map.setter
    def latent_map(self, value: np.ndarray | None) -> None:
        k = self.module.latent_dim
        self._latent_map = None if value is None else np.asarray(value, np.float64)
        if self._latent_map is not None and self._latent_map.shape != (k, k):
            raise ValueError(f"latent map of shape {self._latent_map.shape} for k = {k}")
        self._latent_unmap = None if self._latent_map is None else np.linalg.inv(self._latent_map)

    # ------------------------------------------------------------------ training
    @classmethod
    def train(cls, adata: ad.AnnData, recipe: VAERecipe | None = None, device: str = "auto",
              *, quiet: bool = True, on_epoch: Callable[[int, dict], None] | None = None,
              checkpoint: Checkpointing | None = None) -> VAEModel:
        """Select genes, fit the scaler on the training split and train the VAE on ``adata``.

        With the small-cohort regime (see :func:`resolve_vae_recipe`) the genes' BCE is weighted to count
        error in input units, the KL weight is calibrated (unless given), z_mean is linear and the
        embedding is mapped to decoder-metric coordinates (:mod:`gengen.vae.smallcohort`).

        ``on_epoch(epoch, row)``: called after every epoch with its history row (see :func:`fit_vae`).

        ``checkpoint`` (:class:`gengen.training_state.Checkpointing`) makes the run resumable: its
        folder holds a loadable model of the current weights plus the whole training state, saved
        after every 10 epochs and at least once a minute (by default), and the finished model at the
        end. With ``resume=True`` the run continues the unfinished one saved there (``recipe=None``:
        with that run's settings); the result is bit-identical to an uninterrupted run on the CPU at
        the same thread count.

        Parameters
        ----------
        adata : samples x genes, original units; or a :class:`gengen.io.chunked.ChunkedExpression` to
            stream from disk (:mod:`gengen.vae.streamed`).
        recipe : the settings (default :class:`VAERecipe`: Tybalt's, fields left at None sized to the data).
        device : ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        quiet : no progress or status lines (the default for library calls).
        on_epoch : called as ``on_epoch(epoch, history_row)`` after every epoch.
        checkpoint : a :class:`gengen.training_state.Checkpointing` for a resumable run.

        Returns
        -------
        The trained model (with ``history`` and ``metrics``).
        """
        from gengen import distributed
        from gengen.runtime import plan_outputs

        if checkpoint is None or not distributed.is_main():  # (under torchrun rank 0 holds the output)
            return cls._train(adata, recipe, device, quiet, on_epoch, checkpoint)
        with plan_outputs(models={checkpoint.directory: overwrite_check(PIPELINE)}):  # locked from the start (no-op in the CLI)
            return cls._train(adata, recipe, device, quiet, on_epoch, checkpoint)

    @classmethod
    def _train(cls, adata, recipe, device, quiet, on_epoch, checkpoint) -> VAEModel:
        import torch

        from gengen.io.chunked import ChunkedExpression

        if isinstance(adata, ChunkedExpression):  # larger than memory: read block by block from the file
            from gengen.vae.streamed import train_streamed

            return train_streamed(cls, adata, recipe, device, quiet=quiet, on_epoch=on_epoch, checkpoint=checkpoint)

        from gengen.training_state import data_fingerprint, finish_model, open_training
        from gengen.vae import smallcohort
        from gengen.vae.model import TybaltVAE

        ck = open_training(checkpoint, PIPELINE, quiet)
        X = np.asarray(adata.X, dtype=np.float32)
        if ck is not None:  # other data first: they would also resolve to other settings
            ck.check_data(data_fingerprint(X, names=(adata.obs_names, adata.var_names)))
        given = recipe or VAERecipe()
        if ck is not None and ck.resuming and recipe is None and ck.saved_recipe() is not None:
            given = VAERecipe(**ck.saved_recipe())
        recipe = resolve_vae_recipe(given, adata.n_obs, adata.n_vars)
        if ck is not None:
            resolved = {**recipe.to_dict(), "notes": []}
            saved_given = ck.saved_recipe() if ck.resuming else None
            if recipe.beta_max is None and saved_given is not None and saved_given.get("beta_max") is None:
                # calibrated from the (checked) data below, as the checkpoint's was: compare the value it got
                resolved["beta_max"] = (ck.section["config"].get("recipe") or {}).get("beta_max")
            ck.check_recipe(resolved)
            if ck.resuming and ck.saved_recipe() is not None:  # the original's notes, word for word
                given = VAERecipe(**ck.saved_recipe())
                recipe = resolve_vae_recipe(given, adata.n_obs, adata.n_vars)
            ck.recipe_given = given.to_dict()
            ck.ready(recipe.epochs)
            if ck.finished_already(quiet):
                return cls.load(ck.directory, device=device)
        for note in recipe.notes:
            log(f"recipe: {note}", quiet)
        dev = resolve_device(device)
        seed_everything(recipe.seed)
        if X.shape[0] >= 2 and X.size and not np.ptp(X, axis=0).any():  # (fewer samples: the split says so)
            raise GengenError(
                f"every gene is constant across the {X.shape[0]} samples (e.g. an all-zero matrix): there is nothing "
                "for a VAE to learn; check the input file."
            )
        use_log, why = resolve_log(recipe.log_transform, X)
        log(f"input: {why}", quiet)
        recipe.notes.append(why)
        # genes are ranked on the scale the network sees
        gene_idx = select_variable_genes(np.log2(X + 1) if use_log else X, recipe.n_genes, recipe.gene_rank)
        genes = adata.var_names[gene_idx].astype(str).tolist()
        X = X[:, gene_idx]
        train_idx, val_idx = split_indices(X.shape[0], recipe.val_fraction, recipe.seed)
        scaler = MinMaxScaler.fit(X[train_idx], log2p1=use_log)
        Xs = scaler.transform(X)
        x_train, x_val = Xs[train_idx], (Xs[val_idx] if len(val_idx) else None)
        small = recipe.regime == "small"
        weights = smallcohort.input_unit_weights(scaler) if small else None
        if recipe.beta_max is None:
            recipe.beta_max, noise, implied = smallcohort.calibrated_beta(x_train, scaler, recipe.latent_dim, seed=recipe.seed)
            why = (f"KL weight beta = {recipe.beta_max:.4g}: residual noise {noise:.4g} per gene after {recipe.latent_dim} "
                   f"principal components / noise the weighted BCE implies {implied:.4g} (capped at 1)")
            log(f"recipe: {why}", quiet)
            recipe.notes.append(why)
        module = TybaltVAE(len(genes), recipe.latent_dim, recipe.hidden, compat=recipe.tybalt_compat,
                           mean_activation="linear" if small else "relu")
        model = cls(module, genes, scaler, recipe=recipe, device=str(dev))
        if ck is not None:
            ck.write_model = partial(model._checkpoint_parts, x_train=x_train if small else None)
        log(f"training VAE: {len(train_idx)} train / {len(val_idx)} validation samples, {len(genes)} genes, "
            f"k={recipe.latent_dim}, {recipe.epochs} epochs on {dev}", quiet)
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(recipe.seed)
            history = fit_vae(module, x_train, x_val, recipe=recipe, device=dev, quiet=quiet, on_epoch=on_epoch, checkpoint=ck,
                              gene_weights=weights)
        module.eval()
        model.latent_map = smallcohort.decoder_metric_map(module, x_train, scaler) if small else None
        model.history, model.metrics = history, run_metrics(history, dev)
        return finish_model(model, ck, history)

    # ------------------------------------------------------------------ data alignment
    def align(self, adata: ad.AnnData, fill_missing: bool = False, quiet: bool = True) -> np.ndarray:
        """The model's genes, in the model's order, from ``adata`` (samples x genes, original units).

        Missing genes are an error naming them unless ``fill_missing``, which puts the training
        midpoint (scaled 0.5) in their place and says how many.
        """
        from gengen.io.expression import mismatch_hint

        names = adata.var_names.astype(str)
        pos = self.gene_positions(names, quiet)
        missing = [g for g in self.genes if g not in pos]
        if len(missing) == len(self.genes):
            raise GengenError(
                f"none of the model's {len(self.genes)} genes are in the data (model genes start "
                f"{preview(self.genes, 3)}; data genes start {preview(names, 3)}); wrong model or wrong gene ids?"
                + mismatch_hint(self.genes, names)
            )
        if missing and not fill_missing:
            raise GengenError(
                f"{len(missing)} of the model's {len(self.genes)} genes are missing from the data: "
                f"{preview(missing)}; pass --fill-missing to fill them with training mid-range values."
            )
        X = np.asarray(adata.X, dtype=np.float32)
        out = np.empty((adata.n_obs, len(self.genes)), dtype=np.float32)
        present = np.array([g in pos for g in self.genes])
        out[:, present] = X[:, [pos[g] for g in np.array(self.genes)[present]]]
        if missing:
            mid = self.scaler.inverse_transform(np.full((1, len(self.genes)), 0.5, np.float32))[0]
            out[:, ~present] = mid[~present]
            log(f"warning: filled {len(missing)} missing gene(s) with training mid-range values.", quiet)
        return out

    def gene_positions(self, names, quiet: bool = True) -> dict[str, int]:
        """Where each of the model's genes is in ``names`` (a data set's genes): model gene -> position,
        matched by name, then by Ensembl id without its version suffix; genes not found are absent."""
        from gengen.io.expression import match_by_key

        names = [str(n) for n in names]
        index = {g: i for i, g in enumerate(names)}
        pos = {g: index[g] for g in self.genes if g in index}
        missing = [g for g in self.genes if g not in pos]
        if missing:  # Ensembl ids that differ only in their version suffix
            by_key = match_by_key(missing, names)
            if by_key:
                pos.update(by_key)
                log(f"matched {len(by_key)} gene(s) ignoring Ensembl version suffixes.", quiet)
        return pos

    # ------------------------------------------------------------------ inference
    def _require_encoder(self) -> None:
        if self.decoder_only:
            raise GengenError("this model holds only a decoder (imported weights); it can decode and sample, not encode.")

    def encode(self, adata: ad.AnnData, fill_missing: bool = False, batch_size: int = 8192, *, quiet: bool = True) -> np.ndarray:
        """z_mean for every sample: the (n_samples, k) embedding.

        Parameters
        ----------
        adata : samples x genes, original units; matched to the model's genes by name.
        fill_missing : fill missing genes with training mid-range values instead of refusing.
        batch_size : samples per forward pass.
        quiet : no status lines (the default for library calls).

        Returns
        -------
        The embedding, ``(n_samples, k)`` float32.
        """
        self._require_encoder()
        return self.encode_array(self.align(adata, fill_missing, quiet), batch_size)

    def encode_array(self, X: np.ndarray, batch_size: int = 8192) -> np.ndarray:
        """z_mean for an already aligned (n, n_genes) matrix in original units."""
        import torch

        self._require_encoder()
        Xs = self.scaler.transform(X)
        self.module.eval()
        outs = []
        with torch.inference_mode():
            for start in range(0, Xs.shape[0], batch_size):
                xb = torch.as_tensor(Xs[start : start + batch_size], device=self.device)
                outs.append(self.module.encode_mean(xb).float().cpu().numpy())
        z = np.concatenate(outs) if outs else np.zeros((0, self.latent_dim), np.float32)
        return z if self.latent_map is None else (z @ self.latent_map).astype(np.float32)

    def decode(self, z: np.ndarray, scaled: bool = False, batch_size: int = 8192) -> np.ndarray:
        """Expression for latent vectors, in the input's original units (``scaled=True``: [0, 1]).

        Parameters
        ----------
        z : latent vectors ``(n, k)`` in embedding coordinates.
        scaled : return [0, 1]-scaled values instead of original units.
        batch_size : vectors per forward pass.

        Returns
        -------
        Expression ``(n, n_genes)`` in the model's gene order.
        """
        import torch

        z = np.asarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise GengenError(f"latent matrix has shape {z.shape}; this model needs {self.latent_dim} columns.")
        if not np.isfinite(z).all():
            raise GengenError("latent matrix holds NaN or infinite values.")
        if self._latent_unmap is not None:  # embedding coordinates -> the network's z
            z = (z @ self._latent_unmap).astype(np.float32)
        outs = []
        with torch.inference_mode():
            for start in range(0, z.shape[0], batch_size):
                zb = torch.as_tensor(z[start : start + batch_size], device=self.device)
                outs.append(self.module.decode(zb).float().cpu().numpy())
        x01 = np.concatenate(outs) if outs else np.zeros((0, len(self.genes)), np.float32)
        return x01 if scaled else self.scaler.inverse_transform(x01)

    def sample_latent(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` draws of the VAE prior z ~ N(0, I), in embedding coordinates (what ``decode`` takes)."""
        if n < 1:
            raise GengenError(f"number of samples must be positive, got {n}.")
        z = np.random.default_rng(seed).standard_normal((n, self.latent_dim)).astype(np.float32)
        return z if self.latent_map is None else (z @ self.latent_map).astype(np.float32)

    def sample(self, n: int, seed: int = 0, scaled: bool = False) -> np.ndarray:
        """Draw ``n`` profiles by decoding z ~ N(0, I), the VAE prior.

        Parameters
        ----------
        n : number of profiles.
        seed : seed of the latent draws.
        scaled : return [0, 1]-scaled values instead of original units.

        Returns
        -------
        Expression ``(n, n_genes)`` in the model's gene order.
        """
        return self.decode(self.sample_latent(n, seed), scaled=scaled)

    def reconstruction_bce(self, X: np.ndarray) -> float:
        """Mean per-sample BCE summed over genes (Tybalt's loss scale) of the deterministic
        reconstruction decode(z_mean), on [0, 1]-clipped scaled data."""
        x01 = np.clip(self.scaler.transform(X), 0, 1)
        recon = self.decode(self.encode_array(X), scaled=True)
        return bce_per_sample(x01, recon)

    def decoder_weights(self) -> pd.DataFrame:
        """(k x genes) decoder weights; rows ``vae_1..vae_k`` (1-based, as in the paper), per unit of the
        embedding's features (with a latent map: the network's weights re-expressed on its axes)."""
        import pandas as pd

        w = self.module.decoder_weight_matrix().detach().double().cpu().numpy()
        if self._latent_unmap is not None:
            w = self._latent_unmap @ w
        w = w.astype(np.float32)
        return pd.DataFrame(w, index=[f"vae_{i + 1}" for i in range(w.shape[0])], columns=self.genes)

    # ------------------------------------------------------------------ persistence
    def config(self) -> dict[str, Any]:
        m = self.module
        extra: dict[str, Any] = {}
        if self.cpu_threads is not None:
            extra["cpu_threads"] = self.cpu_threads
        if self.training is not None:
            extra["training"] = self.training
        return {**extra,
            "architecture": {"class": "TybaltVAE", "n_genes": m.n_genes, "latent_dim": m.latent_dim,
                             "hidden": m.hidden, "compat": m.compat, "mean_activation": m.mean_activation,
                             "latent_map": self.latent_map is not None},
            "recipe": self.recipe.to_dict(),
            "seed": self.recipe.seed,
            "genes": self.genes,
            "scaler": self.scaler.to_dict(),
            "metrics": self.metrics,
            "decoder_only": self.decoder_only,
        }

    def _save_parts(self) -> tuple[dict, dict, Callable[[Path], None]]:
        """model.safetensors (the network + ``latent_map``), config.json, history.csv, training.png."""
        def extras(tmp: Path) -> None:
            if self.history is not None and len(self.history):
                self.history.to_csv(tmp / "history.csv", index=False)
                from gengen.plots import plot_vae_history

                plot_vae_history(self.history, tmp / "training.png")

        import torch

        tensors = dict(self.module.state_dict())
        if self.latent_map is not None:
            tensors[LATENT_MAP_KEY] = torch.as_tensor(self.latent_map, dtype=torch.float64)
        return tensors, self.config(), extras

    def _checkpoint_parts(self, state, x_train: np.ndarray | None = None) -> tuple[dict, dict, Callable[[Path], None]]:
        """A mid-training model of the current weights (for :class:`gengen.training_state.TrainingCheckpoint`):
        weights, config and history.csv as the loop has them; no plot (it would cost more than the save).
        ``x_train`` (the small-cohort regime): the latent map of the current weights is saved too, so the
        checkpoint embeds in the same coordinates as the finished model."""
        import pandas as pd
        import torch

        tensors = dict(self.module.state_dict())
        if x_train is not None:
            from gengen.vae import smallcohort

            mode = self.module.training
            self.latent_map = smallcohort.decoder_metric_map(self.module, x_train, self.scaler)
            self.module.train(mode)  # the loop continues in its mode (the map is computed in eval mode)
            tensors[LATENT_MAP_KEY] = torch.as_tensor(self.latent_map, dtype=torch.float64)

        history = pd.DataFrame(state.history)
        metrics = {k: float(history[k].iloc[-1]) for k in history.columns if k != "epoch"} if len(history) else {}
        metrics.update(epochs_run=state.epoch, device=describe_device(self.device))
        self.metrics, self.cpu_threads = metrics, torch.get_num_threads()

        def extras(tmp: Path) -> None:
            if len(history):
                history.to_csv(tmp / "history.csv", index=False)

        return tensors, self.config(), extras

    @classmethod
    def _from_checkpoint(cls, checkpoint: LoadedCheckpoint, device: str) -> VAEModel:
        from gengen.vae.model import TybaltVAE

        cfg, arch = checkpoint.config, checkpoint.config["architecture"]
        module = TybaltVAE(int(arch["n_genes"]), int(arch["latent_dim"]), arch.get("hidden"), compat=bool(arch.get("compat")),
                           mean_activation=arch.get("mean_activation", "relu"))  # older checkpoints: Tybalt's ReLU
        if len(cfg["genes"]) != module.n_genes:
            raise ValueError(f"{len(cfg['genes'])} genes listed for a {module.n_genes}-gene network")
        tensors = dict(checkpoint.tensors)
        latent_map = tensors.pop(LATENT_MAP_KEY, None)
        if bool(arch.get("latent_map")) != (latent_map is not None):
            raise ValueError("config.json and the weights disagree on the latent map")
        if latent_map is not None and tuple(latent_map.shape) != (module.latent_dim,) * 2:
            raise ValueError(f"latent map of shape {tuple(latent_map.shape)} for k = {module.latent_dim}")
        module.load_state_dict(tensors, strict=True)
        recipe_cfg = dict(cfg["recipe"])
        if recipe_cfg.get("regime", "auto") == "auto":  # trained before regimes existed: Tybalt's recipe
            recipe_cfg["regime"] = "tybalt"
        recipe = VAERecipe(**recipe_cfg)
        scaler = MinMaxScaler.from_dict(cfg["scaler"])
        model = cls(module, cfg["genes"], scaler, recipe=recipe, history=checkpoint.history(("epoch",)),
                    metrics=cfg.get("metrics"), device=device, decoder_only=bool(cfg.get("decoder_only")),
                    latent_map=None if latent_map is None else latent_map.double().numpy())
        model.cpu_threads = cfg.get("cpu_threads")
        model.training = checkpoint.training_section()
        return model




def bce_per_sample(x01: np.ndarray, recon01: np.ndarray, eps: float = 1e-7) -> float:
    """Mean over samples of the BCE summed over genes (Keras clips predictions to [eps, 1 - eps])."""
    p = np.clip(np.asarray(recon01, dtype=np.float64), eps, 1 - eps)
    x = np.asarray(x01, dtype=np.float64)
    return float(-(x * np.log(p) + (1 - x) * np.log1p(-p)).sum(axis=1).mean())
