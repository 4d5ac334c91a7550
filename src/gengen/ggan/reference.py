"""Turn a reference data set and landmark/target lists into the gene matrix a model trains on, check
the lists against it (:func:`landmarks_and_targets`) and take out the landmark and target matrices
(:func:`reference_arrays`, what training and ``ggan-eval`` start from).

Gene lists are plain names (one per line, or a table's first column). When they are D-GEX-style
probe maps (``symbol, Ensembl id, probe[,probe...]``) and the data are array probes (bladderbatch is
HG-U133A), the data are first collapsed to genes by averaging each gene's probes, as D-GEX does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gengen.errors import GengenError, preview
from gengen.ggan.preprocess import looks_like_probe_map, map_probes, read_probe_map
from gengen.io.expression import read_gene_list
from gengen.runtime import log

if TYPE_CHECKING:
    import anndata as ad


def _wants_probe_map(adata: ad.AnnData, path, probe_map: bool | None) -> bool:
    if probe_map is not None:
        return probe_map
    if not looks_like_probe_map(path):
        return False
    pm = read_probe_map(path)
    names = set(map(str, adata.var_names))
    by_name = sum(g in names for g, _ in pm)
    by_probe = sum(any(p in names for p in probes) for _, probes in pm)
    return by_probe > by_name


def prepare_reference(
    adata: ad.AnnData,
    landmarks: str | os.PathLike | list[str],
    targets: str | os.PathLike | list[str] | None = None,
    *,
    probe_map: bool | None = None,
    quiet: bool = True,
) -> tuple[ad.AnnData, list[str], list[str] | None]:
    """(data, landmark names, target names or None = all others), probe-mapped when needed.

    ``probe_map=None`` maps automatically when the landmark file is a probe map whose probes, not
    its gene names, are in the data.

    Parameters
    ----------
    adata : the reference, samples x genes (or probes).
    landmarks : landmark names, or a gene list / D-GEX probe-map file.
    targets : target names or file (default: every other gene).
    probe_map : treat the files as probe maps (None: detect).
    quiet : no status lines (the default for library calls).

    Returns
    -------
    (the reference, probe-averaged when mapped; landmark names; target names or None).
    """
    if isinstance(landmarks, list):
        if probe_map:
            raise GengenError("probe mapping needs the landmark list as a probe-map file.")
        tg = targets if isinstance(targets, list) or targets is None else read_gene_list(targets)
        return adata, landmarks, tg
    if not _wants_probe_map(adata, landmarks, probe_map):
        tg = targets if isinstance(targets, list) or targets is None else read_gene_list(targets)
        return adata, read_gene_list(landmarks), tg
    lmap = read_probe_map(landmarks)
    if targets is None:
        used = {p for _, probes in lmap for p in probes}
        tmap = [(str(g), [str(g)]) for g in adata.var_names if str(g) not in used]
    elif isinstance(targets, list):
        tmap = [(g, [g]) for g in targets]
    else:
        tmap = read_probe_map(targets)
    mapped = map_probes(adata, lmap, tmap, quiet=quiet)
    n_l = sum(1 for g, _ in lmap)
    lm = mapped.var_names[:n_l].tolist()
    tg = mapped.var_names[n_l:].tolist()
    same = int(mapped.var["gene"].iloc[n_l:].isin(set(mapped.var["gene"].iloc[:n_l])).sum())
    log(
        f"probe map: {adata.n_vars} probes -> {len(lm)} landmark and {len(tg)} target genes (probes "
        f"of a gene "
        f"averaged); {same} targets are landmark genes measured by another probe.",
        quiet,
    )
    return mapped, lm, tg


def landmarks_and_targets(
    adata: ad.AnnData, landmarks: list[str], targets: list[str] | None
) -> tuple[list[str], list[str]]:
    """Validate landmark/target names against a reference; targets default to all other genes."""
    names = set(map(str, adata.var_names))
    landmarks = list(dict.fromkeys(map(str, landmarks)))
    if not landmarks:
        raise GengenError("the landmark list is empty.")
    missing = [g for g in landmarks if g not in names]
    if len(missing) == len(landmarks):
        raise GengenError(
            f"none of the {len(landmarks)} landmark genes ({preview(landmarks, 3)}) are in the reference "
            f"(its genes start {preview(adata.var_names, 3)}); name genes as the reference does, or, for array "
            "probes, give a probe map (gene<TAB>Ensembl id<TAB>probe[,probe] per line, as D-GEX's "
            "dgex_landmarks_943.tsv) as the list."
        )
    if missing:
        raise GengenError(
            f"{len(missing)} of {len(landmarks)} landmark genes are not in the reference: "
            f"{preview(missing)}; remove them from the list."
        )
    lset = set(landmarks)
    if targets is None:
        targets = [str(g) for g in adata.var_names if str(g) not in lset]
    else:
        targets = list(dict.fromkeys(map(str, targets)))
        tmiss = [g for g in targets if g not in names]
        if tmiss:
            raise GengenError(
                f"{len(tmiss)} of {len(targets)} target genes are not in the reference: {preview(tmiss)}."
            )
        both = [g for g in targets if g in lset]
        if both:
            raise GengenError(f"{len(both)} gene(s) are both landmark and target: {preview(both)}.")
    if not targets:
        raise GengenError("no target genes: the reference holds only landmark genes.")
    for role, genes in (("landmark", landmarks), ("target", targets)):
        X = adata[:, genes].X
        X = X.toarray() if hasattr(X, "toarray") else np.asarray(X)
        if X.shape[0] and not np.ptp(X, axis=0).any():
            raise GengenError(
                f"every {role} gene is constant across the {X.shape[0]} reference profiles (e.g. an all-zero "
                "matrix): there is nothing to learn; check the reference file."
            )
    return landmarks, targets


@dataclass
class ReferenceArrays:
    """A reference's landmark and target matrices (original units) with their names, and the gene symbols
    and probes the reference's ``var`` holds for them (a probe-mapped reference: :func:`prepare_reference`)."""

    X: np.ndarray
    Y: np.ndarray
    landmarks: list[str]
    targets: list[str]
    landmark_genes: list[str] | None = None
    target_genes: list[str] | None = None
    landmark_probes: list[list[str]] | None = None

    def gene_info(self) -> dict:
        """The gene symbols and probes a model keeps (:meth:`gengen.ggan.GGANModel.train_arrays`'s ``gene_info``)."""
        return {"landmark_probes": self.landmark_probes, "landmark_genes": self.landmark_genes,
                "target_genes": self.target_genes}

    def same_gene_targets(self) -> list[str]:
        """Targets that are the same gene as a landmark (another probe): scored separately."""
        if self.landmark_genes is None or self.target_genes is None:
            return []
        lgenes = set(self.landmark_genes)
        return [t for t, g in zip(self.targets, self.target_genes, strict=True) if g in lgenes]


def reference_arrays(adata: ad.AnnData, landmarks: list[str], targets: list[str] | None = None) -> ReferenceArrays:
    """The landmark and target matrices of a reference, the lists checked first (:func:`landmarks_and_targets`).

    Parameters
    ----------
    adata : the reference, samples x genes (original units).
    landmarks : landmark gene names.
    targets : target gene names (default: every other gene).

    Returns
    -------
    :class:`ReferenceArrays`: ``X`` (samples x landmarks) and ``Y`` (samples x targets) as float32.
    """
    lm, tg = landmarks_and_targets(adata, landmarks, targets)
    X = np.asarray(adata[:, lm].X, dtype=np.float32)
    Y = np.asarray(adata[:, tg].X, dtype=np.float32)
    var = adata.var
    lgenes = var.loc[lm, "gene"].astype(str).tolist() if "gene" in var.columns else None
    tgenes = var.loc[tg, "gene"].astype(str).tolist() if "gene" in var.columns else None
    probes = [str(p).split(",") for p in var.loc[lm, "probes"]] if "probes" in var.columns else None
    return ReferenceArrays(X, Y, lm, tg, lgenes, tgenes, probes)
