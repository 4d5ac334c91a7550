"""``GGANModel``: the user-facing landmark -> target model (train, predict, save, load).

The model object, in the manner of scvi-tools: it carries its generator, its landmark and target genes
and its preprocessing; matches new data by gene name (or by an L1000 GCT's ``pr_gene_symbol``, or by
array probes); predicts; and saves and loads itself. The layers under it do the work: the torch
modules (:mod:`gengen.ggan.model`), training (:mod:`gengen.ggan.train`, or :mod:`gengen.ggan.streamed`
for a reference larger than memory) and the forward pass (:mod:`gengen.ggan.predict`). Files of
queries are :mod:`gengen.ggan.infer`'s, above it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gengen.errors import GengenError, preview
from gengen.ggan.predict import LandmarkPlan, predict_z
from gengen.ggan.preprocess import Preprocessor
from gengen.ggan.streamed import train_streamed
from gengen.ggan.train import train_arrays, train_in_memory
from gengen.recipes import GGANRecipe
from gengen.runtime import describe_device, log, resolve_device
from gengen.saved_model import LoadedCheckpoint, SavedModel

if TYPE_CHECKING:
    import anndata as ad
    import pandas as pd

    from gengen.training_state import Checkpointing

PIPELINE = "ggan"
SYMBOL_COLUMNS = ("pr_gene_symbol", "gene_symbol", "symbol", "gene")


class GGANModel(SavedModel):
    """A trained landmark -> target generator with its genes and preprocessing.

    Build one with :meth:`train` (or :meth:`train_arrays`) or :meth:`load`; ``save(path)`` writes a
    checkpoint folder and returns it (model.safetensors keys: docs/checkpoints.md).
    """

    pipeline = PIPELINE
    required_keys = ("architecture", "landmarks", "targets", "recipe")

    def __init__(
        self,
        generator,
        landmarks: list[str],
        targets: list[str],
        *,
        preprocessor: Preprocessor,
        recipe: GGANRecipe,
        history: pd.DataFrame | None = None,
        metrics: dict | None = None,
        device: str = "cpu",
        landmark_probes: list[list[str]] | None = None,
        landmark_genes: list[str] | None = None,
        target_genes: list[str] | None = None,
        landmark_fill: np.ndarray | None = None,
    ):
        self.generator = generator
        self.landmarks = list(landmarks)
        self.targets = list(targets)
        self.preprocessor = preprocessor
        self.recipe = recipe
        self.history = history
        self.metrics = metrics or {}
        self.device = resolve_device(device)
        self.landmark_probes = landmark_probes
        self.landmark_genes = list(landmark_genes) if landmark_genes is not None else list(landmarks)
        self.target_genes = list(target_genes) if target_genes is not None else list(targets)
        self.landmark_fill = (
            np.asarray(landmark_fill, dtype=np.float32)
            if landmark_fill is not None
            else preprocessor.x_scaler.mean
        )
        self.cpu_threads: int | None = None  # the torch CPU threads it was trained with (results depend on it)
        self.training: dict | None = None  # config.json's training section (resumable runs, see training_state)
        self.generator.to(self.device).eval()

    # ------------------------------------------------------------------ training
    @classmethod
    def train(
        cls,
        adata: ad.AnnData,
        landmarks: list[str],
        targets: list[str] | None = None,
        *,
        recipe: GGANRecipe | None = None,
        device: str = "auto",
        quiet: bool = True,
        on_epoch: Callable[[int, dict], None] | None = None,
        checkpoint: Checkpointing | None = None,
    ) -> GGANModel:
        """Train on a reference (samples x genes, original units): landmarks -> targets.

        ``targets`` defaults to every other gene. Preprocessing is fitted on the training split only.
        ``on_epoch(epoch, row)``: called after every epoch with its history row (see :func:`gengen.ggan.loop.fit_ggan`).
        ``checkpoint``: a resumable run (see :meth:`train_arrays`).

        Parameters
        ----------
        adata : the reference, samples x genes (original units, log scale); or a
            :class:`gengen.io.chunked.ChunkedExpression` to stream from disk (:mod:`gengen.ggan.streamed`).
        landmarks : landmark gene names.
        targets : target gene names (default: every other gene).
        recipe : the settings (default :class:`GGANRecipe`, fields left at None sized to the reference).
        device : ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        quiet : no progress or status lines (the default for library calls).
        on_epoch : called as ``on_epoch(epoch, history_row)`` after every validated epoch.
        checkpoint : a :class:`gengen.training_state.Checkpointing` for a resumable run.

        Returns
        -------
        The trained model.
        """
        from gengen.io.chunked import ChunkedExpression

        if isinstance(adata, ChunkedExpression):  # larger than memory: read block by block from the file
            return train_streamed(cls, adata, landmarks, targets, recipe=recipe, device=device, quiet=quiet,
                                  on_epoch=on_epoch, checkpoint=checkpoint)
        return train_in_memory(cls, adata, landmarks, targets, recipe=recipe, device=device, quiet=quiet,
                               on_epoch=on_epoch, checkpoint=checkpoint)

    @classmethod
    def train_arrays(
        cls,
        X: np.ndarray,
        Y: np.ndarray,
        *,
        landmarks: list[str],
        targets: list[str],
        recipe: GGANRecipe | None = None,
        device: str = "auto",
        quiet: bool = True,
        on_epoch: Callable[[int, dict], None] | None = None,
        checkpoint: Checkpointing | None = None,
        **gene_info: Any,
    ) -> GGANModel:
        """Train from aligned arrays (n, n_landmarks) and (n, n_targets) in original units.

        ``on_epoch(epoch, row)``: called after every validated epoch (not during ``refit``).

        ``checkpoint`` (:class:`gengen.training_state.Checkpointing`) makes the run resumable: its
        folder holds a loadable model (the best generator so far; during ``refit``, the refit's
        current one) plus the whole training state, saved after every 10 epochs and at least once a
        minute (by default), through the refit too, and the finished model at the end. With
        ``resume=True`` the run continues the unfinished one saved there (``recipe=None``: with that
        run's settings); bit-identical to an uninterrupted run on the CPU at the same thread count.

        Parameters
        ----------
        X : landmarks ``(n, n_landmarks)``, original units.
        Y : targets ``(n, n_targets)``, original units.
        landmarks : the landmark names (X's columns).
        targets : the target names (Y's columns).
        recipe : the settings (default :class:`GGANRecipe`).
        device : ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        quiet : no progress or status lines (the default for library calls).
        on_epoch : called as ``on_epoch(epoch, history_row)``.
        checkpoint : a :class:`gengen.training_state.Checkpointing` for a resumable run.
        **gene_info : ``landmark_probes``, ``landmark_genes``, ``target_genes`` (kept in the model).

        Returns
        -------
        The trained model.
        """
        return train_arrays(cls, X, Y, landmarks=landmarks, targets=targets, recipe=recipe, device=device, quiet=quiet,
                            on_epoch=on_epoch, checkpoint=checkpoint, **gene_info)

    # ------------------------------------------------------------------ matching data to the model
    def plan(self, var_names, var: pd.DataFrame | None = None) -> LandmarkPlan:
        """Find the landmarks among a data set's columns: by name; failing that by a symbol column of
        ``var`` (an L1000 GCT's ``pr_gene_symbol``); or by averaging the model's array probes.
        The strategy that finds the most landmarks wins."""
        from gengen.io.expression import match_by_key

        names = [str(v) for v in var_names]
        exact = _positions(names)
        candidates: list[tuple[str, dict[str, list[int]]]] = [("name", exact)]
        # exact names first; a landmark missing by name takes the one column whose Ensembl id differs
        # only in its version (as VAEModel.align does)
        by_key = match_by_key([g for g in self.landmarks if g not in exact], names)
        versionless = {g: exact.get(g) or ([by_key[g]] if g in by_key else []) for g in self.landmarks}
        candidates.append(("name without Ensembl version", versionless))
        if var is not None:
            for col in SYMBOL_COLUMNS:
                if col in var.columns:
                    candidates.append((f"var column {col!r}", _positions(var[col].astype(str).tolist())))
        best: LandmarkPlan | None = None
        for how, pos in candidates:
            keys = self.landmarks if how.startswith("name") else self.landmark_genes
            p = LandmarkPlan([pos.get(k, []) for k in keys], how)
            if best is None or (~p.missing).sum() > (~best.missing).sum():
                best = p
        if self.landmark_probes and (best.missing.any()):
            pos = _positions(names)
            p = LandmarkPlan(
                [sorted(i for q in probes for i in pos.get(q, [])) for probes in self.landmark_probes],
                "probes",
            )
            if (~p.missing).sum() > (~best.missing).sum():
                best = p
        return best

    def check_plan(self, plan: LandmarkPlan, data_names, fill_missing: bool, *, quiet: bool = True) -> None:
        """Error naming missing landmarks (unless ``fill_missing``: training mean, with a warning)."""
        from gengen.io.expression import mismatch_hint

        missing = [g for g, m in zip(self.landmarks, plan.missing, strict=True) if m]
        if len(missing) == len(self.landmarks):
            raise GengenError(
                f"none of the model's {len(self.landmarks)} landmark genes are in the data (landmarks start "
                f"{preview(self.landmarks, 3)}; data genes start {preview(list(data_names), 3)}); "
                "wrong model, or gene ids of another kind (Entrez, Ensembl: translate them with --gene-map FILE)?"
                + mismatch_hint(self.landmarks, list(data_names))
            )
        if missing and not fill_missing:
            raise GengenError(
                f"{len(missing)} of the model's {len(self.landmarks)} landmark genes are missing "
                f"from the data: "
                f"{preview(missing)}; pass --fill-missing to fill them with training means."
            )
        if missing:
            log(
                f"warning: filled {len(missing)} of {len(self.landmarks)} missing landmark gene(s) "
                f"with training "
                "means; predictions lean on the remaining landmarks.",
                quiet,
            )
        if plan.how != "name":
            log(f"matched {int((~plan.missing).sum())} landmarks by {plan.how}.", quiet)

    def align(self, adata: ad.AnnData, fill_missing: bool = False, quiet: bool = True) -> np.ndarray:
        """The model's landmarks, in the model's order, from ``adata`` (original units)."""
        plan = self.plan(adata.var_names, adata.var)
        self.check_plan(plan, adata.var_names, fill_missing, quiet=quiet)
        return plan.apply(np.asarray(adata.X, dtype=np.float32), self.landmark_fill)

    # ------------------------------------------------------------------ inference
    def predict_array(self, X: np.ndarray, batch_size: int = 8192, scaled: bool = False) -> np.ndarray:
        """Targets (n, n_targets) for aligned landmarks (n, n_landmarks) in original units.

        ``scaled=True`` returns the z-scored prediction (the scale the metrics use)."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != len(self.landmarks):
            raise GengenError(
                f"landmark matrix has shape {X.shape}; this model needs {len(self.landmarks)} columns."
            )
        xz = self.preprocessor.transform_x(X)
        self._check_query_scale(xz)
        # back to original units on the device (inverse_y is the target z-scorer's affine map)
        y = self.preprocessor.y_scaler
        affine = None if scaled else (y.std, y.mean)
        return predict_z(self.generator, xz, self.device, batch_size=batch_size, precision=self.recipe.precision, affine=affine)

    def _check_query_scale(self, xz: np.ndarray) -> None:
        """Warn once when query landmarks sit far outside the reference (z-scored against it, a typical
        value has |z| ~ 0.7): counts against a log reference, or another platform's units."""
        from gengen.io.expression import strided_sample

        if xz.size == 0:
            return
        typical = float(np.median(np.abs(strided_sample(xz))))
        if typical > 50 and xz.size >= 500:  # no query on the reference's scale lands here: noise out
            raise GengenError(
                f"the query's landmarks sit {typical:.0f} reference standard deviations from the reference's "
                "(median |z|; ~0.7 is typical): linear counts against a log-scale model? Transform them like "
                "the reference (e.g. log2(x + 1)), or train with --quantile across platforms."
            )
        if typical > 5 and not getattr(self, "_scale_warned", False):
            self._scale_warned = True
            log(f"warning: the query's landmarks sit far from the reference's (median |z| {typical:.1f} against "
                "~0.7 in training): another scale or platform? Predictions will be poor; give log-scale values "
                "like the reference's, or train with --quantile across platforms.")

    def predict(self, data, fill_missing: bool = False, quiet: bool = True) -> pd.DataFrame:
        """Samples x target genes (original units) for an AnnData or a samples x genes DataFrame.

        Parameters
        ----------
        data : query profiles, an AnnData or a samples x genes DataFrame (original units).
        fill_missing : fill missing landmark genes with training means instead of refusing.
        quiet : no status lines (the default for library calls).

        Returns
        -------
        Predictions, samples x target genes (original units).
        """
        import anndata as ad
        import pandas as pd

        from gengen.io.expression import validate_expression

        if isinstance(data, pd.DataFrame):
            data = ad.AnnData(
                X=data.to_numpy(dtype=np.float32),
                obs=pd.DataFrame(index=data.index.astype(str)),
                var=pd.DataFrame(index=data.columns.astype(str)),
            )
        data = validate_expression(data.copy() if data.is_view else data, quiet=quiet)
        Y = self.predict_array(self.align(data, fill_missing, quiet))
        return pd.DataFrame(Y, index=data.obs_names, columns=self.targets)

    def saved_model_note(self) -> str:
        """Which weights this model holds, in one line (the training plot's subtitle): the ridge start
        (and why no trained epoch replaced it) or the kept epoch, and whether it was refitted."""
        m, r = self.metrics or {}, self.recipe
        if "best_epoch" not in m or m.get("phase"):  # no training record, or an unfinished run
            return ""
        best = int(m["best_epoch"])
        refit = f"; refitted on all {m['n_train']} profiles" if m.get("refit") and m.get("n_train") else ""
        if r.ridge_init and best == 0:
            gain, rejected = m.get("gain_se"), int(m.get("rejected_epoch") or 0)
            why = (f"the best trained epoch ({rejected}) beat it on validation by only {gain:.1f} standard errors "
                   f"(< {r.start_margin:g})" if rejected and gain is not None
                   else "no trained epoch beat it on validation")
            return f"saved model: the ridge start, not a trained network ({why}){refit}"
        if best == 0:
            return f"saved model: the untrained start (no epoch had a lower validation MAE){refit}"
        gain = m.get("gain_se")
        better = f", {gain:.1f} standard errors better than the ridge start" if r.ridge_init and gain is not None else ""
        return f"saved model: the network of epoch {best} (lowest validation MAE{better}){refit}"

    def same_gene_targets(self) -> list[str]:
        """Targets that are the same gene as a landmark (another probe): scored separately."""
        lm = set(self.landmark_genes)
        return [t for t, g in zip(self.targets, self.target_genes, strict=True) if g in lm]

    # ------------------------------------------------------------------ persistence
    def config(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.cpu_threads is not None:
            extra["cpu_threads"] = self.cpu_threads
        if self.training is not None:
            extra["training"] = self.training
        return {
            **extra,
            "architecture": {"class": "Generator", **self.generator.arch()},
            "recipe": self.recipe.to_dict(),
            "seed": self.recipe.seed,
            "landmarks": self.landmarks,
            "targets": self.targets,
            "landmark_genes": self.landmark_genes,
            "target_genes": self.target_genes,
            "landmark_probes": self.landmark_probes,
            "preprocessing": {
                "quantile_normalisation": self.preprocessor.quantile,
                "zscore": "per gene, training split",
                "arrays": "model.safetensors preprocess.*",
            },
            "metrics": self.metrics,
        }

    def _save_parts(self) -> tuple[dict, dict, Callable[[Path], None]]:
        """model.safetensors (generator + preprocessing), config.json, history.csv, training.png."""
        return self._parts(self.generator.state_dict(), self.history)

    def _parts(self, weights: dict, history, plot: bool = True) -> tuple[dict, dict, Callable[[Path], None]]:
        """(tensors, config, extra files) of this model with the generator ``weights``."""
        import torch

        tensors = {f"generator.{k}": v for k, v in weights.items()}
        tensors.update({k: torch.as_tensor(v) for k, v in self.preprocessor.tensors().items()})
        tensors["preprocess.landmark_fill"] = torch.as_tensor(self.landmark_fill).clone()

        def extras(tmp: Path) -> None:
            if history is not None and len(history):
                history.to_csv(tmp / "history.csv", index=False)
                if plot:
                    m = self.metrics or {}
                    plot_history(history, tmp / "training.png", saved=self.saved_model_note(),
                                 start_mae=m.get("start_val_mae") if self.recipe.ridge_init else None,
                                 best_epoch=m.get("best_epoch"))

        return tensors, self.config(), extras

    def _checkpoint_parts(self, state) -> tuple[dict, dict, Callable[[Path], None]]:
        """A mid-training model (for :class:`gengen.training_state.TrainingCheckpoint`): the best
        generator so far (while no epoch beats the start, the start; in a refit, the current one)."""
        import pandas as pd
        import torch

        if not state.modules:  # a phase boundary: the generator holds the chosen weights
            weights = self.generator.state_dict()
        elif state.values.get("best_epoch"):
            weights = {k[5:]: v for k, v in state.tensors.items() if k.startswith("best.")}
        elif state.unsaved.get("start") and state.unsaved["start"][2] is not None:
            weights = state.unsaved["start"][2]
        else:
            weights = state.modules["generator"].state_dict()
        history = pd.DataFrame(state.history)
        self.metrics = {"phase": state.phase, "epochs_run": state.epoch, "device": describe_device(self.device),
                        **({"best_epoch": int(state.values["best_epoch"]), "best_val_mae": float(state.values["best_mae"])}
                           if "best_epoch" in state.values else {})}
        self.cpu_threads = torch.get_num_threads()
        return self._parts(weights, history, plot=False)

    @classmethod
    def _from_checkpoint(cls, checkpoint: LoadedCheckpoint, device: str) -> GGANModel:
        from gengen.ggan.model import Generator

        cfg, a, tensors = checkpoint.config, checkpoint.config["architecture"], checkpoint.tensors
        gen = Generator(
            int(a["n_in"]),
            int(a["n_out"]),
            tuple(a["hidden"]),
            dropout=float(a["dropout"]),
            activation=a["activation"],
            input_noise=float(a.get("input_noise", 0.0)),
            linear_skip=bool(a.get("linear_skip", False)),
        )
        if len(cfg["landmarks"]) != gen.n_in or len(cfg["targets"]) != gen.n_out:
            raise ValueError("gene lists do not match the network's sizes")
        gen.load_state_dict(checkpoint.prefixed("generator."), strict=True)
        model = cls(
            gen,
            cfg["landmarks"],
            cfg["targets"],
            preprocessor=Preprocessor.from_tensors(tensors),
            recipe=checkpoint.section(GGANRecipe, "recipe"),  # an unknown setting is an error, not dropped
            history=checkpoint.history(("epoch",)),
            metrics=cfg.get("metrics"),
            device=device,
            landmark_probes=cfg.get("landmark_probes"),
            landmark_genes=cfg.get("landmark_genes"),
            target_genes=cfg.get("target_genes"),
            landmark_fill=tensors["preprocess.landmark_fill"].numpy(),
        )
        model.cpu_threads = cfg.get("cpu_threads")
        model.training = checkpoint.training_section()
        return model


def _positions(names: list[str]) -> dict[str, list[int]]:
    pos: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        pos.setdefault(n, []).append(i)
    return pos


def plot_history(history: pd.DataFrame, path, *, saved: str = "", start_mae: float | None = None,
                 best_epoch: int | None = None) -> Path:
    """Losses and train/validation MAE per epoch, and which model the folder holds.

    ``saved`` (a line under the title) says what was kept (:meth:`GGANModel.saved_model_note`); the
    validation MAE of the ridge start (``start_mae``) is drawn as a line, labelled as the saved model
    when ``best_epoch`` is 0, else the kept epoch is marked: the curves alone show every trained
    epoch, and a reader would take the last one, or the lowest, for the model.
    """
    from gengen.plots import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.9), squeeze=False)
    panels = [("generator / discriminator loss", ["g_loss", "d_loss"]), ("MAE (z-scored targets)", ["train_mae", "val_mae"])]
    for ax, (title, cols) in zip(axes[0], panels, strict=True):
        for col in cols:
            if col in history.columns and history[col].notna().any():
                ax.plot(history["epoch"], history[col], label=col.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.set_title(title)
    mae = axes[0][1]
    if start_mae is not None:
        mae.axhline(start_mae, color="#c0392b", ls="--", lw=1.2,
                    label="ridge start, validation" + (": the saved model" if best_epoch == 0 else ""))
    if best_epoch:
        mae.axvline(best_epoch, color="k", ls=":", lw=1, label=f"epoch {best_epoch}: the saved model")
    for ax in axes[0]:
        ax.legend(frameon=False, fontsize=8)
    import textwrap

    fig.suptitle("\n".join(["GGAN training", *textwrap.wrap(saved, 100)]), fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
