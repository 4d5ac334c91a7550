"""JASPAR 2024 offline: the motif collection discovered motifs are matched to (``dna-explain``) and designs
are annotated with (``dna-design --annotate``), read from the SQLite release ``pyjaspar`` ships.

The default collection is **JASPAR 2024 CORE vertebrates, non-redundant**: the CORE collection's
vertebrate profiles, latest version of each (what JASPAR calls non-redundant; 879 profiles), the usual
reference for motifs learned from vertebrate data. ``taxon`` and ``collection`` pick another part of the
release (``--jaspar-taxon plants``, ``--jaspar-collection UNVALIDATED``, ``--jaspar-taxon all``).

The release is fixed (JASPAR 2024, not pyjaspar's newest) so that a match reported today names the same
profile tomorrow; ``--motif MA0139.2`` keeps resolving ids from pyjaspar's newest release
(:func:`gengen.io.motifs.fetch_jaspar`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gengen.errors import GengenError

if TYPE_CHECKING:
    import numpy as np

JASPAR_RELEASE = "JASPAR2024"
DEFAULT_TAXON = "vertebrates"
DEFAULT_COLLECTION = "CORE"
COLLECTIONS = ("CORE", "UNVALIDATED")
# every tax_group of JASPAR 2024 (its MATRIX_ANNOTATION table), and "all"
TAXA = ("vertebrates", "plants", "insects", "nematodes", "fungi", "urochordates", "cnidaria", "diatoms",
        "dictyostelium", "oomycota", "trematodes", "all")


def release_name(release: str = JASPAR_RELEASE) -> str:
    """A pyjaspar release as messages name it: ``JASPAR2024`` -> ``JASPAR 2024``."""
    year = str(release).removeprefix("JASPAR")
    return f"JASPAR {year}" if year.isdigit() else str(release)


@dataclass(frozen=True)
class MotifDatabase:
    """Motifs to match against: ids, names, TF families and ``(4, W)`` count matrices (rows A, C, G, T)."""

    release: str
    collection: str
    taxon: str
    ids: tuple[str, ...]
    names: tuple[str, ...]
    families: tuple[str, ...]
    counts: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return len(self.ids)

    def probabilities(self) -> list[np.ndarray]:
        """Each profile's ``(4, W)`` base frequencies (columns sum to 1), float64, as TOMTOM and FIMO take them."""
        return [c / c.sum(axis=0, keepdims=True) for c in self.counts]

    def labels(self) -> list[str]:
        """``"MA0102.5 CEBPA"`` for each profile."""
        return [f"{i} {n}" for i, n in zip(self.ids, self.names)]

    def describe(self) -> str:
        """What the collection is, in words: release, collection, taxon and size."""
        taxon = "all taxa" if self.taxon == "all" else self.taxon
        return (f"{release_name(self.release)} {self.collection} {taxon}, non-redundant (latest version of each profile): "
                f"{len(self)} profiles")


@dataclass(frozen=True)
class JasparChoice:
    """Which JASPAR 2024 profiles a command matches or scans for, and the FIMO p-value of a hit, as a user
    names them (``--jaspar-taxon``, ``--jaspar-collection``, ``--annotate-pvalue``)."""

    jaspar_taxon: str = DEFAULT_TAXON
    jaspar_collection: str = DEFAULT_COLLECTION
    annotate_pvalue: float = 1e-4

    def check(self) -> JasparChoice:
        """The choice, checked (one line on a taxon, collection or p-value that is not one) before any work."""
        import math

        check_choice(self.jaspar_taxon, self.jaspar_collection)
        p = self.annotate_pvalue
        if not (math.isfinite(p) and 0 < p < 1):
            raise GengenError(f"--annotate-pvalue must be a p-value between 0 and 1 (e.g. 1e-4), got {p!r}.")
        return self

    def is_default(self) -> bool:
        return self == JasparChoice()

    def database(self) -> MotifDatabase:
        """The profiles (:func:`jaspar_database`)."""
        return jaspar_database(self.jaspar_taxon, self.jaspar_collection)


def check_choice(taxon: str, collection: str) -> tuple[str, str]:
    """The taxon and collection, normalised, or a one-line error listing the choices."""
    t, c = str(taxon).strip().lower(), str(collection).strip().upper()
    if t not in TAXA:
        raise GengenError(f"--jaspar-taxon {taxon!r} is not a JASPAR 2024 taxon; use one of {', '.join(TAXA)}.")
    if c not in COLLECTIONS:
        raise GengenError(f"--jaspar-collection {collection!r} is not a JASPAR collection; use {' or '.join(COLLECTIONS)}.")
    return t, c


def jaspar_database(taxon: str = DEFAULT_TAXON, collection: str = DEFAULT_COLLECTION) -> MotifDatabase:
    """The JASPAR 2024 profiles of ``collection`` for ``taxon``, latest version of each (read once per process).

    Parameters
    ----------
    taxon : a JASPAR tax group (:data:`TAXA`), or ``"all"``.
    collection : ``"CORE"`` or ``"UNVALIDATED"``.

    Returns
    -------
    The :class:`MotifDatabase` (a one-line error when pyjaspar lacks the release or the choice is empty).
    """
    return _load(*check_choice(taxon, collection))


@functools.lru_cache(maxsize=4)
def _load(taxon: str, collection: str) -> MotifDatabase:
    import numpy as np

    try:
        from pyjaspar import jaspar_releases, jaspardb
    except ImportError:  # pragma: no cover - a declared dependency
        raise GengenError("JASPAR matching needs the 'pyjaspar' package (pip install 'pyjaspar>=3.0').") from None
    if JASPAR_RELEASE not in jaspar_releases:
        raise GengenError(f"the installed pyjaspar does not ship {release_name()}; install pyjaspar>=3.0.")
    with warnings.catch_warnings(), open(os.devnull, "w") as null:
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(null):  # pyjaspar prints instead of raising for a missing release
            db = jaspardb(release=JASPAR_RELEASE)
        found = db.fetch_motifs(collection=collection, tax_group=None if taxon == "all" else [taxon],
                                all_versions=False)
    if not found:
        raise GengenError(f"{release_name()} has no {collection} profiles for taxon {taxon!r}.")
    ids, names, families, counts = [], [], [], []
    for m in found:
        c = np.array([list(m.counts[b]) for b in "ACGT"], dtype=np.float64)
        if c.ndim != 2 or c.shape[1] == 0 or (c.sum(axis=0) <= 0).any():
            continue  # no profile of the release is like this; a damaged copy should not stop a run
        ids.append(str(m.matrix_id))
        names.append(str(m.name))
        fam = m.tf_family if isinstance(m.tf_family, (list, tuple)) else [m.tf_family]
        families.append("; ".join(dict.fromkeys(str(f) for f in fam if f)) or "")
        counts.append(c)
    return MotifDatabase(JASPAR_RELEASE, collection, taxon, tuple(ids), tuple(names), tuple(families), tuple(counts))


def write_meme_motifs(path: str | os.PathLike, names: list[str], probabilities: list[np.ndarray]) -> None:
    """Write ``(4, W)`` frequency matrices as a MEME minimal file (what TOMTOM, FIMO and JASPAR's tools read),
    with memelite's writer, atomically."""
    import numpy as np
    from memelite.io import write_meme

    from gengen.runtime import atomic_path

    with atomic_path(path) as tmp:
        write_meme(str(tmp), {n: np.asarray(p, dtype=np.float64) for n, p in zip(names, probabilities)})


def write_jaspar_motifs(path: str | os.PathLike, ids: list[str], names: list[str], *, counts: list[np.ndarray]) -> None:
    """Write ``(4, W)`` count matrices as one JASPAR file (``>ID NAME`` + ``A [ ... ]`` rows), with
    Biopython's writer, atomically; ``--motif FILE --motif-name ID`` reads any of them back."""
    from pathlib import Path

    import numpy as np
    from Bio import motifs
    from Bio.motifs import jaspar

    from gengen.runtime import atomic_path

    out = [jaspar.Motif("_".join(str(i).split()), "_".join(str(n).split()),
                        counts={b: list(np.asarray(c, dtype=np.float64)[k]) for k, b in enumerate("ACGT")})
           for i, n, c in zip(ids, names, counts)]
    with atomic_path(path) as tmp:
        Path(tmp).write_text(motifs.write(out, "jaspar") if out else "")
