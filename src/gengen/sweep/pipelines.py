"""What a sweep trains: one adapter per pipeline around that pipeline's own trainer.

Each adapter names the tunable recipe fields (:class:`~gengen.sweep.space.Param`), its built-in
search spaces, the validation metric its trainer already computes every epoch (the objective, and
what pruning watches), and how one trial trains: the pipeline's own ``train`` with an ``on_epoch``
callback, so a trial is exactly what ``gengen <pipeline>-train`` would do with those values.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gengen.errors import GengenError
from gengen.sweep.space import Param

OnEpoch = Callable[[int, dict], None]

# Sanity bounds of the open-ended parameters (Param.most): far above any published or useful setting
# (Tybalt: k <= 125, 100 epochs; D-GEX: 9,000 units, 3 layers), they turn a typo in a space file
# (epochs = 1e9, hidden = 1e12) into one line instead of a trial that never ends or cannot allocate.
EPOCHS_MOST = 100_000
WIDTH_MOST = 100_000  # latent size, hidden units, channels
BATCH_MOST = 10_000_000
GENES_MOST = 10_000_000
LAYERS_MOST = 100
KERNEL_MOST = 10_000
RATE_MOST = 10.0  # learning rates, weight decay
WEIGHT_MOST = 1e6  # loss weights, KL weights, noise scale


@dataclass
class TrialOutcome:
    """One trained trial: the objective, the model (anything with ``.save(dir)``) and extra columns."""

    value: float
    model: Any
    metrics: dict = field(default_factory=dict)


def _check_fraction(v: float) -> None:
    if not 0 < v < 1:
        raise GengenError(f"the validation fraction must be between 0 and 1 (a sweep scores every trial on held-out "
                          f"data), got {v}.")


def _sample_rows(X, n: int = 50) -> np.ndarray:
    """Up to ``n`` evenly spaced rows of a (possibly sparse) matrix: enough to tell two data sets apart."""
    rows = X[:: max(1, X.shape[0] // n)]
    return np.asarray(rows.toarray() if hasattr(rows, "toarray") else rows, dtype=np.float32)


def _hash(*arrays) -> str:
    h = hashlib.sha1()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        if a.dtype == object:
            h.update("\x1f".join(map(str, a.ravel())).encode())
        else:
            h.update(str(a.shape).encode() + a.dtype.str.encode())
            h.update(a.tobytes())
    return h.hexdigest()[:16]


class Pipeline:
    """Base adapter. Subclasses fill the class attributes and :meth:`train`."""

    name = ""
    checkpoint = ""  # the ``pipeline`` string its model folders carry (config.json)
    objective = ""  # history column reported per epoch, and the trial's value
    direction = "minimize"
    warmup_epochs = 10  # the median pruner judges a trial from this epoch on
    params: dict[str, Param] = {}
    spaces: dict[str, dict] = {}
    recipe_class: Any = None

    def recipe_fields(self, values: dict[str, Any]) -> dict[str, Any]:
        """Sweep names -> recipe attribute names."""
        return {self.params[k].attr: v for k, v in values.items()}

    def check_recipe(self, names: list[str]) -> None:
        """A recipe field this adapter names but the recipe lacks is a bug: fail before any training."""
        import dataclasses

        known = {f.name for f in dataclasses.fields(self.recipe_class)}
        missing = [self.params[n].attr for n in names if self.params[n].attr not in known]
        if missing:
            raise RuntimeError(f"{self.recipe_class.__name__} has no field(s) {missing}")

    def train(self, data: Any, values: dict[str, Any], *, seed: int, device: str, on_epoch: OnEpoch) -> TrialOutcome:
        raise NotImplementedError


def _params(*ps: Param) -> dict[str, Param]:
    return {p.name: p for p in ps}


# ------------------------------------------------------------------------------------------ VAE


@dataclass
class ExpressionData:
    """A VAE sweep's data: the expression AnnData, and the ``--by`` labels for kNN accuracy."""

    adata: Any
    labels: np.ndarray | None = None
    by: str | None = None
    val_fraction: float = 0.1
    log_transform: str = "auto"

    def __post_init__(self):
        _check_fraction(self.val_fraction)

    def fingerprint(self) -> dict:
        a = self.adata
        out = {"shape": [int(a.n_obs), int(a.n_vars)],
               "names": _hash(a.obs_names.to_numpy(dtype=object), a.var_names.to_numpy(dtype=object)),
               "values": _hash(_sample_rows(a.X))}
        if self.labels is not None:
            out["labels"] = _hash(np.asarray(self.labels, dtype=object))
        return out

    def options(self) -> dict:
        return {"by": self.by, "val_fraction": self.val_fraction, "log": self.log_transform}


# Tybalt's published sweeps (greenelab/tybalt config/parameter_sweep.tsv and
# config/z_parameter_sweep_tybalt.tsv): 5 x 4 x 4 x 4 = 320 and 5 x 3 x 2 x 3 x 6 = 540 configurations.
TYBALT_GRID = {
    "lr": [0.0005, 0.001, 0.0015, 0.002, 0.0025],
    "batch_size": [50, 100, 128, 200],
    "epochs": [10, 25, 50, 100],
    "kappa": [0.01, 0.05, 0.1, 1.0],
}
TYBALT_Z_GRID = {
    "latent": [5, 25, 50, 75, 100, 125],
    "lr": [0.0005, 0.001, 0.0015, 0.002, 0.0025],
    "batch_size": [50, 100, 150],
    "epochs": [50, 100],
    "kappa": [0.0, 0.5, 1.0],
}


class VAEPipeline(Pipeline):
    """Tybalt VAE: objective = held-out reconstruction (``val_recon``, BCE x genes), lower is better."""

    name = "vae"
    checkpoint = "vae"
    objective = "val_recon"
    direction = "minimize"

    def __init__(self):
        from gengen.vae.preprocess import GENE_RANKS
        from gengen.vae.train import VAERecipe

        self.recipe_class = VAERecipe
        self.params = _params(
            Param("latent", "latent_dim", "int", low=1, most=WIDTH_MOST, help="latent size k"),
            Param("lr", "learning_rate", "float", low=0, low_open=True, most=RATE_MOST, help="Adam learning rate"),
            Param("batch_size", "batch_size", "int", low=2, most=BATCH_MOST),
            Param("epochs", "epochs", "int", low=1, most=EPOCHS_MOST),
            Param("kappa", "kappa", "float", low=0, most=WEIGHT_MOST, help="KL warm-up per epoch (0: full KL weight from the start)"),
            Param("beta", "beta_max", "float", low=0, most=WEIGHT_MOST, help="final KL weight"),
            Param("hidden", "hidden", "int", low=1, most=WIDTH_MOST, help="hidden layer width (two-layer variant)"),
            Param("genes", "n_genes", "int", low=2, most=GENES_MOST, help="number of most variable genes"),
            Param("gene_rank", "gene_rank", "str", choices=tuple(GENE_RANKS)),
            Param("tybalt_compat", "tybalt_compat", "bool"),
        )
        self.spaces = {
            "default": {"lr": {"low": 1e-4, "high": 3e-3, "log": True}, "batch_size": [25, 50, 100],
                        "kappa": [0.01, 0.1, 1.0]},
            "tybalt": TYBALT_GRID,
            "tybalt-z": TYBALT_Z_GRID,
            "latent": {"latent": [5, 25, 50, 75, 100, 125]},
        }
        self._pca_cache: dict = {}

    def train(self, data: ExpressionData, values, *, seed, device, on_epoch) -> TrialOutcome:
        from gengen.vae.core import VAEModel

        recipe = self.recipe_class(**self.recipe_fields(values), seed=seed, val_fraction=data.val_fraction,
                                   log_transform=data.log_transform)
        model = VAEModel.train(data.adata, recipe, device=device, quiet=True, on_epoch=on_epoch)
        h = model.history
        metrics = {"latent_size": int(model.latent_dim), "train_recon": float(h["train_recon"].iloc[-1])}
        if data.labels is not None:
            metrics.update(self._knn(data, model, seed))
        return TrialOutcome(float(h["val_recon"].iloc[-1]), model, metrics)

    def _knn(self, data: ExpressionData, model, seed: int) -> dict:
        """kNN label accuracy of the VAE embedding, and of PCA at the same k on the same genes and split
        (BioBombe's comparison), with both methods' deterministic held-out reconstruction."""
        from gengen.training import split_indices
        from gengen.vae.compare import knn_accuracy
        from gengen.vae.core import bce_per_sample

        X = model.align(data.adata, quiet=True)
        train_idx, val_idx = split_indices(X.shape[0], model.recipe.val_fraction, model.recipe.seed)
        out = {"knn_accuracy": knn_accuracy(model.encode_array(X), data.labels, seed=seed)[0],
               "heldout_bce": model.reconstruction_bce(X[val_idx])}
        k = int(min(model.latent_dim, len(train_idx), X.shape[1]))
        key = (k, _hash(np.asarray(model.genes, dtype=object)), model.scaler.log2p1, seed)
        if key not in self._pca_cache:
            from sklearn.decomposition import PCA

            Xs = np.clip(model.scaler.transform(X), 0, 1)
            pca = PCA(n_components=k, random_state=seed).fit(Xs[train_idx])
            Z = pca.transform(Xs)
            self._pca_cache[key] = {
                "pca_knn_accuracy": knn_accuracy(Z, data.labels, seed=seed)[0],
                "pca_heldout_bce": bce_per_sample(Xs[val_idx], pca.inverse_transform(Z[val_idx])),
            }
        out.update(self._pca_cache[key])
        return out


# ------------------------------------------------------------------------------------------ GGAN


@dataclass
class ReferenceData:
    """A GGAN sweep's data: the reference AnnData with its landmark and target genes."""

    adata: Any
    landmarks: list[str]
    targets: list[str] | None = None
    val_fraction: float = 0.1
    quantile: bool = False

    def __post_init__(self):
        from gengen.ggan.reference import landmarks_and_targets

        _check_fraction(self.val_fraction)
        self.landmarks, self.targets = landmarks_and_targets(self.adata, self.landmarks, self.targets)

    def fingerprint(self) -> dict:
        a = self.adata
        return {"shape": [int(a.n_obs), len(self.landmarks), len(self.targets)],
                "names": _hash(a.obs_names.to_numpy(dtype=object), np.asarray(self.landmarks, dtype=object),
                               np.asarray(self.targets, dtype=object)),
                "values": _hash(_sample_rows(a.X))}

    def options(self) -> dict:
        return {"val_fraction": self.val_fraction, "quantile": self.quantile}


class GGANPipeline(Pipeline):
    """GGAN: objective = best validation MAE on z-scored targets (``val_mae``), lower is better."""

    name = "ggan"
    checkpoint = "ggan"
    objective = "val_mae"
    direction = "minimize"

    def __init__(self):
        from gengen.ggan.model import ACTIVATIONS
        from gengen.ggan.train import GGANRecipe

        self.recipe_class = GGANRecipe
        self.params = _params(
            Param("lr", "learning_rate", "float", low=0, low_open=True, most=RATE_MOST),
            Param("d_lr", "d_learning_rate", "float", low=0, low_open=True, most=RATE_MOST, help="discriminator learning rate"),
            Param("batch_size", "batch_size", "int", low=1, most=BATCH_MOST),
            Param("epochs", "epochs", "int", low=1, most=EPOCHS_MOST),
            Param("hidden", "hidden", "int", low=1, most=WIDTH_MOST),
            Param("layers", "layers", "int", low=1, most=LAYERS_MOST),
            Param("dropout", "dropout", "float", low=0, high=1, high_open=True),
            Param("activation", "activation", "str", choices=tuple(ACTIVATIONS)),
            Param("l1", "l1_weight", "float", low=0, most=WEIGHT_MOST),
            Param("consistency", "consistency_weight", "float", low=0, most=WEIGHT_MOST),
            Param("adv_weight", "adv_weight", "float", low=0, most=WEIGHT_MOST),
            Param("d_hidden", "d_hidden", "int", low=1, most=WIDTH_MOST),
            Param("weight_decay", "weight_decay", "float", low=0, most=RATE_MOST),
            Param("input_noise", "input_noise", "float", low=0, most=WEIGHT_MOST),
            Param("linear_skip", "linear_skip", "bool"),
            Param("ridge_init", "ridge_init", "bool"),
            Param("loss", "loss", "str", choices=("gan", "mse")),
            Param("patience", "patience", "int", low=1, most=EPOCHS_MOST),
        )
        self.spaces = {
            "default": {"lr": {"low": 1e-4, "high": 2e-3, "log": True}, "hidden": [1000, 2000, 3000],
                        "dropout": [0.0, 0.1, 0.25], "l1": {"low": 1.0, "high": 100.0, "log": True}},
            # D-GEX's architecture sweep (Chen et al. 2016): widths x depths x dropout, MSE only
            "dgex": {"loss": "mse", "hidden": [3000, 6000, 9000], "layers": [1, 2, 3], "dropout": [0.0, 0.1, 0.25]},
        }

    def train(self, data: ReferenceData, values, *, seed, device, on_epoch) -> TrialOutcome:
        from gengen.ggan.core import GGANModel

        recipe = self.recipe_class(**self.recipe_fields(values), seed=seed, val_fraction=data.val_fraction,
                                   quantile=data.quantile, refit=False)
        model = GGANModel.train(data.adata, data.landmarks, data.targets, recipe=recipe, device=device, quiet=True,
                                on_epoch=on_epoch)
        m = model.metrics
        return TrialOutcome(float(m["best_val_mae"]), model, {"best_epoch": int(m["best_epoch"])})


# ------------------------------------------------------------------------------------------ CNN predictor


@dataclass
class LabelledSequences:
    """A predictor sweep's data: ``(N, L)`` base codes and their raw labels."""

    codes: np.ndarray
    labels: np.ndarray
    transform: str = "log"
    val_fraction: float = 0.1

    def __post_init__(self):
        _check_fraction(self.val_fraction)

    def fingerprint(self) -> dict:
        return {"shape": list(map(int, self.codes.shape)), "values": _hash(self.codes, self.labels)}

    def options(self) -> dict:
        return {"transform": self.transform, "val_fraction": self.val_fraction}


class PredictorPipeline(Pipeline):
    """dna-train-predictor's CNN: objective = the early-stopping split's Pearson r (``stop_pearson``),
    higher is better; the held-out r (never used to choose) is reported beside it."""

    name = "predictor"
    checkpoint = "dna-predictor"
    objective = "stop_pearson"
    direction = "maximize"
    warmup_epochs = 2  # a few epochs per trial (8 by default)

    def __init__(self):
        from gengen.dna.predictor.training import PredictorRecipe

        self.recipe_class = PredictorRecipe
        self.params = _params(
            Param("lr", "learning_rate", "float", low=0, low_open=True, most=RATE_MOST),
            Param("batch_size", "batch_size", "int", low=1, most=BATCH_MOST),
            Param("epochs", "epochs", "int", low=1, most=EPOCHS_MOST),
            Param("channels", "channels", "int", low=1, most=WIDTH_MOST),
            Param("width", "width", "int", low=1, most=KERNEL_MOST, help="first convolution's width"),
            Param("hidden", "hidden", "int", low=1, most=WIDTH_MOST),
            Param("weight_decay", "weight_decay", "float", low=0, most=RATE_MOST),
        )
        self.spaces = {
            "default": {"lr": {"low": 5e-4, "high": 5e-3, "log": True}, "channels": [32, 64, 128],
                        "epochs": [4, 8, 12], "weight_decay": {"low": 1e-6, "high": 1e-3, "log": True}},
        }

    def train(self, data: LabelledSequences, values, *, seed, device, on_epoch) -> TrialOutcome:
        from gengen.dna.predictor.training import train_predictor

        recipe = self.recipe_class(**self.recipe_fields(values), seed=seed, val_fraction=data.val_fraction,
                                   transform=data.transform)
        trained = train_predictor(data.codes, data.labels, recipe, device=device, quiet=True, baseline=False,
                                  on_epoch=on_epoch)
        best = int(trained.metrics["best_epoch"])
        value = float(trained.history["stop_pearson"].iloc[best - 1])
        return TrialOutcome(value, trained, {"heldout_pearson": float(trained.metrics["val_pearson"]),
                                             "best_epoch": best})


PIPELINES: dict[str, type[Pipeline]] = {"vae": VAEPipeline, "ggan": GGANPipeline, "predictor": PredictorPipeline}


def get_pipeline(name: str) -> Pipeline:
    """The adapter for ``vae``, ``ggan`` or ``predictor``."""
    if name not in PIPELINES:
        raise GengenError(f"unknown pipeline {name!r}; sweeps run {', '.join(PIPELINES)}.")
    return PIPELINES[name]()
