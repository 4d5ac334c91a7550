"""Turn a reference data set and landmark/target lists into the gene matrix a model trains on.

Gene lists are plain names (one per line, or a table's first column). When they are D-GEX-style
probe maps (``symbol, Ensembl id, probe[,probe...]``) and the data are array probes (bladderbatch is
HG-U133A), the data are first collapsed to genes by averaging each gene's probes, as D-GEX does.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from gengen.errors import GengenError
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
