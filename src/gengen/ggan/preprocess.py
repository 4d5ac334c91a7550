"""GGAN / D-GEX preprocessing: probe -> gene mapping, quantile normalisation, per-gene z-scores.

D-GEX works on genes, not probes: a gene measured by several Affymetrix probes is their mean. Profiles
are then quantile-normalised and each gene z-scored. Everything fitted here is fitted on the training
split only and stored in the checkpoint, so inference applies exactly the same transform.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gengen.errors import GengenError, preview
from gengen.training import split_indices  # noqa: F401  (moved to gengen.training; old import path)

if TYPE_CHECKING:
    import anndata as ad

ProbeMap = list[tuple[str, list[str]]]


def read_probe_map(path: str | os.PathLike) -> ProbeMap:
    """(gene, [probes]) pairs from a D-GEX-style map: ``symbol <tab> ensembl <tab> p1,p2,...``.

    A two-column ``gene <tab> probes`` table works too; the last column always holds the probes.
    Order is kept (it is the model's gene order).
    """
    from gengen.io.files import check_input, open_text

    p = check_input(path, "probe map")
    out: ProbeMap = []
    with open_text(p, "probe map") as fh:
        text = fh.read()
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = [f.strip().strip('"') for f in line.split("\t")]
        if len(fields) < 2:
            raise GengenError(
                f"{str(p)!r} line {n}: a probe map needs 'gene<TAB>...<TAB>probe[,probe]' columns."
            )
        probes = [q.strip() for q in fields[-1].split(",") if q.strip()]
        if n == 1 and fields[0].lower() in ("gene", "symbol", "gene_symbol", "name"):
            continue
        out.append((fields[0], probes))
    if not out:
        raise GengenError(f"probe map {str(p)!r} is empty.")
    return out


def looks_like_probe_map(path: str | os.PathLike) -> bool:
    """True when the last tab-separated column of the first rows looks like Affymetrix probe ids."""
    import re

    pat = re.compile(r"^(\d+(_[a-z])?(_[a-z])?_at|AFFX-\S+)(,(\d+(_[a-z])?(_[a-z])?_at|AFFX-\S+))*$")
    from gengen.io.files import head_lines

    try:
        lines = head_lines(path, 20, what="gene list")  # a pipe or device is refused here, never read
    except OSError:
        return False
    rows = [ln.split("\t") for ln in lines]
    return bool(rows) and all(len(r) >= 2 and pat.match(r[-1].strip()) for r in rows[1:] or rows)


def map_probes(adata: ad.AnnData, *maps: ProbeMap, quiet: bool = True) -> ad.AnnData:
    """Average each gene's probes into one column, as D-GEX does.

    Columns are named by gene; a gene that reappears in a later map with other probes (D-GEX lists
    445 targets that are landmark genes measured by another probe) is named ``GENE@first_probe`` so
    names stay unique. ``var`` keeps ``gene`` (the symbol, used to spot target = landmark gene) and
    ``probes``. Probes the data lack are skipped; a gene with none of its probes is an error.
    """
    import anndata as ad
    import pandas as pd

    from gengen.runtime import log

    pos = {str(g): i for i, g in enumerate(adata.var_names)}
    X = np.asarray(adata.X, dtype=np.float32)
    names: list[str] = []
    genes: list[str] = []
    probe_str: list[str] = []
    cols: list[np.ndarray] = []
    used: set[str] = set()
    missing_genes: list[str] = []
    n_partial = 0
    for m in maps:
        for gene, probes in m:
            idx = [pos[p] for p in probes if p in pos]
            if not idx:
                missing_genes.append(gene)
                continue
            n_partial += len(idx) < len(probes)
            name = gene if gene not in used else f"{gene}@{probes[0]}"
            if name in used:
                continue  # the very same gene and probes listed twice
            used.add(name)
            names.append(name)
            genes.append(gene)
            probe_str.append(",".join(probes))
            cols.append(X[:, idx].mean(axis=1) if len(idx) > 1 else X[:, idx[0]])
    if missing_genes:
        total = sum(len(m) for m in maps)
        if len(missing_genes) == total:
            raise GengenError(
                f"none of the probe map's probes are in the data (data features start "
                f"{preview(adata.var_names, 3)}); "
                "is the data on the same array platform (e.g. HG-U133A probe ids)?"
            )
        raise GengenError(
            f"{len(missing_genes)} mapped gene(s) have none of their probes in the data: "
            f"{preview(missing_genes)}."
        )
    if n_partial:
        log(f"note: {n_partial} gene(s) averaged over only the probes present in the data.", quiet)
    var = pd.DataFrame({"gene": genes, "probes": probe_str}, index=pd.Index(names))
    return ad.AnnData(X=np.stack(cols, axis=1).astype(np.float32), obs=adata.obs.copy(), var=var)


@dataclass
class QuantileNormalizer:
    """Per-profile quantile normalisation onto a reference distribution (the mean sorted profile).

    Fitted on the training profiles' genes; a new profile's values are replaced, rank for rank, by the
    reference quantiles, so every profile ends up with the same distribution (D-GEX's preprocessing).
    """

    reference: np.ndarray  # (n_genes,) ascending

    @classmethod
    def fit(cls, X: np.ndarray) -> QuantileNormalizer:
        return cls(np.sort(np.asarray(X, dtype=np.float64), axis=1).mean(axis=0).astype(np.float32))

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.shape[1] != self.reference.shape[0]:
            raise GengenError(
                f"quantile normaliser expects {self.reference.shape[0]} genes, got {X.shape[1]}."
            )
        ranks = np.argsort(np.argsort(X, axis=1, kind="stable"), axis=1, kind="stable")
        return self.reference[ranks]


@dataclass
class ZScorer:
    """Per-gene (x − mean) / std. Constant genes store std ``constant_std``: 1 for inputs (they
    z-score to x − mean, as older gengen versions expect), 0 for targets (they map back to exactly
    their constant, whatever the network outputs)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray, floor: float = 1e-6, constant_std: float = 1.0) -> ZScorer:
        X = np.asarray(X, dtype=np.float64)
        std = X.std(axis=0)
        return cls(X.mean(axis=0).astype(np.float32), np.where(std > floor, std, constant_std).astype(np.float32))

    @property
    def constant(self) -> np.ndarray:
        """Genes without variance in the data the scaler was fitted on."""
        return self.std <= 0

    def transform(self, X: np.ndarray) -> np.ndarray:
        divisor = np.where(self.std > 0, self.std, 1.0).astype(np.float32)
        return ((np.asarray(X, dtype=np.float32) - self.mean) / divisor).astype(np.float32, copy=False)

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        return (np.asarray(Z, dtype=np.float32) * self.std + self.mean).astype(np.float32, copy=False)


@dataclass
class Preprocessor:
    """Landmark and target transforms of one model: optional quantile normalisation, then z-scores.

    Landmarks and targets are normalised separately because a query carries landmarks only; the
    predicted targets come back on the reference's (quantile-normalised) scale in original units.
    """

    x_scaler: ZScorer
    y_scaler: ZScorer
    x_quantile: QuantileNormalizer | None = None
    y_quantile: QuantileNormalizer | None = None

    @classmethod
    def fit(cls, X: np.ndarray, Y: np.ndarray, quantile: bool = False) -> Preprocessor:
        xq = QuantileNormalizer.fit(X) if quantile else None
        yq = QuantileNormalizer.fit(Y) if quantile else None
        return cls(
            ZScorer.fit(xq.transform(X) if xq else X),
            ZScorer.fit(yq.transform(Y) if yq else Y, constant_std=0.0),
            xq,
            yq,
        )

    @property
    def quantile(self) -> bool:
        return self.x_quantile is not None

    def transform_x(self, X: np.ndarray) -> np.ndarray:
        return self.x_scaler.transform(self.x_quantile.transform(X) if self.x_quantile else X)

    def transform_y(self, Y: np.ndarray) -> np.ndarray:
        return self.y_scaler.transform(self.y_quantile.transform(Y) if self.y_quantile else Y)

    def inverse_y(self, Z: np.ndarray) -> np.ndarray:
        return self.y_scaler.inverse_transform(Z)

    def tensors(self) -> dict[str, np.ndarray]:
        """Arrays for the safetensors file (prefix ``preprocess.``)."""
        out = {
            "preprocess.x_mean": self.x_scaler.mean,
            "preprocess.x_std": self.x_scaler.std,
            "preprocess.y_mean": self.y_scaler.mean,
            "preprocess.y_std": self.y_scaler.std,
        }
        if self.quantile:
            out["preprocess.x_quantiles"] = self.x_quantile.reference
            out["preprocess.y_quantiles"] = self.y_quantile.reference
        return out

    @classmethod
    def from_tensors(cls, t: dict) -> Preprocessor:
        def arr(k):
            return np.asarray(t[k].cpu().numpy() if hasattr(t[k], "cpu") else t[k], dtype=np.float32)

        xq = QuantileNormalizer(arr("preprocess.x_quantiles")) if "preprocess.x_quantiles" in t else None
        yq = QuantileNormalizer(arr("preprocess.y_quantiles")) if "preprocess.y_quantiles" in t else None
        return cls(
            ZScorer(arr("preprocess.x_mean"), arr("preprocess.x_std")),
            ZScorer(arr("preprocess.y_mean"), arr("preprocess.y_std")),
            xq,
            yq,
        )


def kfold_indices(
    n: int, folds: int, seed: int, *, groups=None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded k-fold (train, test) index pairs; every method is scored on exactly these splits.

    ``groups`` (one label per sample: subject, batch, donor) makes it a *group* k-fold: every group
    lands whole in one test fold, so no subject or batch is both trained on and tested on (random
    folds let a model that memorises a batch's offset look better than it will be on a new batch).
    Groups go largest first to the fold with the fewest samples so far (ties in seeded random order),
    as scikit-learn's ``GroupKFold`` does; missing labels count as one group.
    """
    if folds < 2:
        raise GengenError(f"--folds must be at least 2, got {folds}.")
    if groups is not None:
        return group_kfold_indices(groups, folds, seed)
    if n < 2 * folds:
        raise GengenError(f"{n} samples are too few for {folds}-fold cross-validation; use fewer folds.")
    perm = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(perm, folds)
    return [(np.sort(np.concatenate(parts[:k] + parts[k + 1 :])), np.sort(parts[k])) for k in range(folds)]


def group_kfold_indices(groups, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Group k-fold (train, test) index pairs: no group in both the training and the test part.

    See :func:`kfold_indices`; ``groups`` holds one label per sample.
    """
    import pandas as pd

    labels = pd.Series(np.asarray(groups, dtype=object)).astype("string").fillna("(missing)").to_numpy()
    if folds < 2:
        raise GengenError(f"--folds must be at least 2, got {folds}.")
    names, codes, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    if len(names) < folds:
        raise GengenError(
            f"only {len(names)} groups ({preview(list(names), 4)}) for {folds}-fold grouped cross-validation; "
            f"use --folds {len(names)} or fewer, or another --groups column."
        )
    if len(labels) - sizes.max() < 2:
        raise GengenError(f"group {names[sizes.argmax()]!r} holds nearly every sample: nothing left to train on.")
    shuffled = np.random.default_rng(seed).permutation(len(names))
    order = shuffled[np.argsort(-sizes[shuffled], kind="stable")]  # largest first, ties in seeded order
    load = np.zeros(folds, dtype=int)
    fold_of = np.empty(len(names), dtype=int)
    for g in order:
        f = int(np.argmin(load))
        fold_of[g] = f
        load[f] += sizes[g]
    sample_fold = fold_of[codes]
    return [(np.flatnonzero(sample_fold != k), np.flatnonzero(sample_fold == k)) for k in range(folds)]


def group_labels_from(obs, column: str) -> np.ndarray:
    """The sample annotation ``column`` (subject, donor, batch) as group labels for grouped folds.

    A clear error lists the available columns when it is absent.
    """
    if column not in obs.columns:
        raise GengenError(
            f"no column {column!r} in the reference's sample annotations; available: "
            f"{preview(list(obs.columns)) or 'none'} (a CSV reference has none: add them with --labels FILE)."
        )
    return obs[column].to_numpy()
