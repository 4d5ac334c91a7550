"""FASTA in and out, and DNA as tensors: integer codes ``(N, L)`` and one-hot ``(N, 4, L)``.

The one-hot layout is channels first with the alphabet A, C, G, T (tangermeme's convention), so
gengen's predictors plug into that ecosystem. Internally sequences travel as ``uint8`` codes
(A=0, C=1, G=2, T=3, anything ambiguous = 4): a million 50-nt windows take 50 MB, and one-hot
tensors are made per batch on the device.

Reading validates up front: an empty file, a binary file, a file that is not FASTA, and characters
that are not nucleotides are :class:`~gengen.errors.GengenError` naming the record. Lowercase
(soft-masked) bases are accepted. ``N`` and other IUPAC codes follow an explicit policy
(``ambiguous="skip"|"uniform"|"error"``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gengen.errors import GengenError, preview
from gengen.io.files import head_bytes, is_binary, open_text
from gengen.runtime import atomic_path

if TYPE_CHECKING:
    import torch
    from Bio.SeqRecord import SeqRecord

ALPHABET = "ACGT"
AMBIGUOUS_CODE = 4
IUPAC_AMBIGUOUS = "NRYSWKMBDHV"
AMBIGUOUS_POLICIES = ("skip", "uniform", "error")
WINDOW_MODES = ("random", "tiled")
SHORT_POLICIES = ("error", "skip", "pad")

_LUT = np.full(256, 255, dtype=np.uint8)  # 255 = not a nucleotide at all
for _i, _b in enumerate(ALPHABET):
    _LUT[ord(_b)] = _i
    _LUT[ord(_b.lower())] = _i
for _b in IUPAC_AMBIGUOUS:
    _LUT[ord(_b)] = AMBIGUOUS_CODE
    _LUT[ord(_b.lower())] = AMBIGUOUS_CODE
_LUT[ord("U")] = _LUT[ord("u")] = 3  # RNA input: U reads as T


@dataclass
class SequenceSet:
    """Sequences as ``ids`` plus equal-length ``codes`` ``(N, L)`` uint8 (A,C,G,T = 0..3, ambiguous 4).

    ``record_keys`` (from :func:`read_fasta`): per window, the :func:`sequence_key` of the whole record
    it was cut from, so held-out splits can keep identical records together (:func:`record_keys`).
    """

    ids: list[str]
    codes: np.ndarray
    record_keys: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def length(self) -> int:
        return int(self.codes.shape[1])

    def strings(self) -> list[str]:
        return decode_codes(self.codes)

    def one_hot(self, ambiguous: str = "uniform") -> torch.Tensor:
        return codes_to_one_hot(self.codes, ambiguous=ambiguous)


def _check_policy(value: str, allowed: Sequence[str], option: str) -> str:
    if value not in allowed:
        raise GengenError(f"{option} must be one of {', '.join(allowed)}, got {value!r}.")
    return value


def _open_text(path: Path):
    """Open plain or compressed text (recognised by content); binary junk is refused before Biopython
    sees it, and a truncated or corrupted .gz is named as such wherever it breaks off."""
    sample = head_bytes(path, 65536, what="FASTA file")
    if not sample.strip():
        raise GengenError(f"{str(path)!r} is empty; expected FASTA records ('>name' then sequence lines).")
    if is_binary(sample):
        raise GengenError(f"{str(path)!r} looks like a binary file, not FASTA text.")
    try:
        sample.decode("ascii")
    except UnicodeDecodeError:
        # A cut multi-byte character at the sample's end is fine; anything else is not text.
        try:
            sample[:-4].decode("utf-8")
        except UnicodeDecodeError:
            raise GengenError(
                f"{str(path)!r} is not text (binary or unknown encoding); expected FASTA."
            ) from None
    first = sample.lstrip()[:1]
    if first != b">":
        raise GengenError(
            f"{str(path)!r} does not look like FASTA: the first character is {first.decode(errors='replace')!r}, "
            "expected '>' starting a record header."
        )
    return open_text(path, what="FASTA file")


def encode_string(seq: str, name: str = "sequence") -> np.ndarray:
    """One sequence as uint8 codes; characters that are not nucleotides (or IUPAC codes) are an error."""
    arr = np.frombuffer(seq.encode("ascii", errors="replace"), dtype=np.uint8)
    codes = _LUT[arr]
    bad = codes == 255
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        chars = sorted({seq[i] for i in np.flatnonzero(bad)[:1000]})
        raise GengenError(
            f"record {name!r} holds non-nucleotide character(s) {preview(chars)} (first at position {pos + 1}); "
            "only A, C, G, T (any case) and IUPAC ambiguity codes are accepted."
        )
    return codes


def read_fasta_records(path: str | os.PathLike, *, quiet: bool = False) -> list[tuple[str, str]]:
    """``(id, sequence)`` pairs of a FASTA file (plain or ``.gz``), validated; at least one record.

    A record whose header is a bare ``>`` (Biopython's id ``''``) is named ``unnamed_<record number>``
    (1-based), said in a note: outputs keyed by id (scores, windows, designs) need a name for every row.
    """
    from Bio import SeqIO

    from gengen.runtime import log

    path = Path(path)
    if not path.exists():
        raise GengenError(f"input file {str(path)!r} does not exist.")
    if path.is_dir():
        raise GengenError(f"{str(path)!r} is a directory; expected a FASTA file.")
    out: list[tuple[str, str]] = []
    with _open_text(path) as fh:
        try:
            for rec in SeqIO.parse(fh, "fasta"):
                out.append((rec.id, str(rec.seq)))
        except ValueError as exc:
            raise GengenError(f"{str(path)!r} is not valid FASTA: {exc}.") from None
    if not out:
        raise GengenError(f"{str(path)!r} holds no FASTA records.")
    unnamed = [k for k, (name, _) in enumerate(out) if not name]
    if unnamed:
        taken = {name for name, _ in out}
        for k in unnamed:
            name, n = f"unnamed_{k + 1}", 2
            while name in taken:
                name, n = f"unnamed_{k + 1}_{n}", n + 1
            taken.add(name)
            out[k] = (name, out[k][1])
        where = ", ".join(f"#{k + 1}" for k in unnamed[:5]) + (", ..." if len(unnamed) > 5 else "")
        log(f"note: {str(path)!r}: {len(unnamed)} record(s) have no name after '>' (record {where}); named by "
            f"their position: {preview([out[k][0] for k in unnamed], 3)}.", quiet)
    _note_repeated_ids([name for name, _ in out], path, quiet)
    empty = [i for i, s in out if not s]
    if len(empty) == len(out):
        raise GengenError(f"{str(path)!r}: every record is empty (headers without sequence lines).")
    return out


def _note_repeated_ids(ids: list[str], path: Path, quiet: bool) -> None:
    """Say once that record ids repeat: outputs keyed by id (scores, windows, attributions) then hold rows
    of one id that only their order tells apart. The ids are kept as the file has them."""
    from collections import Counter

    from gengen.runtime import log

    counts = Counter(ids)
    repeated = {name: n for name, n in counts.items() if n > 1}
    if not repeated:
        return
    first = next(name for name in ids if name in repeated)
    log(f"note: {str(path)!r}: {sum(repeated.values())} records share {len(repeated)} id(s) (e.g. {first!r}, "
        f"{repeated[first]} times); they are kept as they are, so rows of one id are told apart by their order "
        "in the outputs; rename them in the file to tell them apart by id.", quiet)


def read_fasta(
    path: str | os.PathLike,
    length: int | None = None,
    windows: str = "tiled",
    *,
    ambiguous: str = "skip",
    short: str = "error",
    max_windows: int | None = None,
    seed: int = 0,
    quiet: bool = False,
) -> SequenceSet:
    """Read a FASTA into equal-length :class:`SequenceSet` codes.

    Parameters
    ----------
    length : window length L; ``None`` requires all records to have the same length.
    windows : ``"tiled"`` (non-overlapping windows from the start) or ``"random"`` (``max_windows``
        random windows overall, or one per L bases of each record) for records longer than L.
    ambiguous : ``"skip"`` drops windows containing N/IUPAC codes, ``"uniform"`` keeps them (they
        become 0.25 per base in one-hot), ``"error"`` refuses them.
    short : records shorter than L: ``"error"``, ``"skip"``, or ``"pad"`` (right-padded with N, which
        then follows ``ambiguous``: use ``uniform`` to keep padded records).
    max_windows : cap on the number of windows (a seeded random subset).
    seed : seed of the random windows and subsets.
    quiet : no notes on stderr (records without a name, see :func:`read_fasta_records`).

    Returns
    -------
    The :class:`SequenceSet`: ids and ``(N, L)`` uint8 codes (A, C, G, T = 0-3; ambiguous 4).
    """
    _check_policy(windows, WINDOW_MODES, "--windows")
    _check_policy(ambiguous, AMBIGUOUS_POLICIES, "--ambiguous")
    _check_policy(short, SHORT_POLICIES, "--short")
    if short == "pad" and length is not None and ambiguous != "uniform":
        raise GengenError(
            f"--short pad fills short records with N, which --ambiguous {ambiguous} "
            + ("then drops" if ambiguous == "skip" else "refuses")
            + ": add --ambiguous uniform to keep padded records, or use --short skip."
        )
    records = read_fasta_records(path, quiet=quiet)
    # an empty record (a header without sequence lines) is a record of length 0: named in the length
    # errors, a short record under --length, never dropped unsaid
    encoded = [(name, encode_string(seq, name)) for name, seq in records]
    empty = [name for name, seq in records if not seq]
    if ambiguous == "error":
        for name, codes in encoded:
            if (codes == AMBIGUOUS_CODE).any():
                pos = int(np.flatnonzero(codes == AMBIGUOUS_CODE)[0])
                raise GengenError(
                    f"record {name!r} has an ambiguous base (N or IUPAC) at position {pos + 1}; "
                    "use --ambiguous skip to drop such windows or uniform to keep them."
                )
    lengths = {len(c) for _, c in encoded}
    said_empty = (f"{len(empty)} record(s) are empty, a header without sequence lines ({preview(empty, 3)})"
                  if empty else "")
    if length is None:
        if len(lengths) == 2 and empty:
            raise GengenError(f"{str(path)!r}: {said_empty}; the others are {max(lengths)} nt: remove the empty ones.")
        if len(lengths) != 1:
            raise GengenError(
                f"{str(path)!r} holds sequences of different lengths ({min(lengths)}..{max(lengths)})"
                + (f"; {said_empty}" if empty else "") + "; give a window length (--length)"
                + (" and remove the empty records." if empty else ".")
            )
        length = lengths.pop()
    if length < 1:
        raise GengenError(f"--length must be positive, got {length}.")
    rng = np.random.default_rng(seed)
    ids: list[str] = []
    chunks: list[np.ndarray] = []
    keys: list[np.ndarray] = []  # per window, its record's sequence key (each record hashed once)
    too_short = []
    for (name, codes), key in zip(encoded, (sequence_key(seq) for _, seq in records)):
        n = len(codes)
        if n < length:
            too_short.append(name)
            if short == "pad" and n > 0:  # an empty record has no bases to pad: a window of N only
                padded = np.full(length, AMBIGUOUS_CODE, dtype=np.uint8)
                padded[:n] = codes
                ids.append(name)
                chunks.append(padded[None])
                keys.append(np.full(1, key, dtype=np.uint64))
            continue
        if n == length:
            ids.append(name)
            chunks.append(codes[None])
            keys.append(np.full(1, key, dtype=np.uint64))
            continue
        if windows == "tiled":
            starts = np.arange(0, n - length + 1, length)
        else:
            count = max(1, n // length)
            starts = np.sort(rng.integers(0, n - length + 1, size=count))
        view = np.lib.stride_tricks.sliding_window_view(codes, length)
        chunks.append(view[starts])
        keys.append(np.full(len(starts), key, dtype=np.uint64))
        ids.extend(f"{name}:{s + 1}-{s + length}" for s in starts)
    if too_short and short == "error":
        raise GengenError(
            f"{len(too_short)} record(s) are shorter than --length {length} ({preview(too_short, 3)})"
            + (f", {len(empty)} of them empty (a header without sequence lines)" if empty else "")
            + "; use --short skip or --short pad, or a smaller --length."
        )
    if empty and short == "pad":
        from gengen.runtime import log

        log(f"note: {str(path)!r}: {said_empty}; left out (no bases to pad).", quiet)
    if not chunks:
        raise GengenError(f"{str(path)!r}: no record is at least {length} bases long.")
    codes = np.concatenate(chunks).astype(np.uint8, copy=False)
    keep = np.ones(len(codes), dtype=bool)
    if ambiguous == "skip":
        keep = ~(codes == AMBIGUOUS_CODE).any(axis=1)
        if not keep.any():
            raise GengenError(
                f"{str(path)!r}: every window of length {length} contains N or another ambiguous base; "
                "use --ambiguous uniform to keep them."
            )
    idx = np.flatnonzero(keep)
    if max_windows is not None and len(idx) > max_windows:
        idx = np.sort(rng.choice(idx, size=max_windows, replace=False))
    return SequenceSet([ids[i] for i in idx], np.ascontiguousarray(codes[idx]), np.concatenate(keys)[idx])


def strings_to_codes(seqs: Iterable[str]) -> np.ndarray:
    """Equal-length strings -> ``(N, L)`` uint8 codes."""
    seqs = list(seqs)
    if not seqs:
        raise GengenError("no sequences given.")
    lengths = {len(s) for s in seqs}
    if len(lengths) != 1:
        raise GengenError(f"sequences must have equal length, got lengths {preview(sorted(lengths))}.")
    return np.stack([encode_string(s, f"#{i + 1}") for i, s in enumerate(seqs)])


def decode_codes(codes: np.ndarray) -> list[str]:
    """``(N, L)`` codes -> strings (ambiguous code 4 -> ``N``)."""
    table = np.frombuffer(b"ACGTN", dtype=np.uint8)
    arr = table[np.asarray(codes, dtype=np.uint8)]
    return [row.tobytes().decode("ascii") for row in arr]


def codes_to_one_hot(codes, ambiguous: str = "uniform", device=None) -> torch.Tensor:
    """``(N, L)`` uint8 codes (numpy or torch) -> float32 one-hot ``(N, 4, L)``.

    Ambiguous positions become 0.25 per base (``"uniform"``) or all zeros (``"zero"``).
    """
    import torch

    t = torch.as_tensor(np.asarray(codes) if not isinstance(codes, torch.Tensor) else codes)
    if device is not None:
        t = t.to(device)
    # one gather from a (4, 5) table: ~5x faster than one_hot + permute, which matters when a
    # chromosome is scanned (PWMPredictor.scan)
    table = torch.zeros(4, 5, device=t.device)
    table[:, :4] = torch.eye(4, device=t.device)
    if ambiguous == "uniform":
        table[:, AMBIGUOUS_CODE] = 0.25
    n, length = t.shape
    index = t.reshape(-1).to(torch.int32).clamp_(0, AMBIGUOUS_CODE)  # any code above 4 is ambiguous too
    return table.index_select(1, index).view(4, n, length).permute(1, 0, 2).contiguous()


def one_hot(seqs: Iterable[str], ambiguous: str = "uniform") -> torch.Tensor:
    """Strings -> float32 one-hot ``(N, 4, L)``, channels A, C, G, T."""
    return codes_to_one_hot(strings_to_codes(seqs), ambiguous=ambiguous)


def one_hot_to_codes(x) -> np.ndarray:
    """``(N, 4, L)`` one-hot (or soft) tensor -> argmax codes ``(N, L)`` uint8."""
    import torch

    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.argmax(dim=1).to(torch.uint8).cpu().numpy()


def gc_content(codes: np.ndarray) -> np.ndarray:
    """Fraction of G or C per sequence (ambiguous positions excluded)."""
    codes = np.asarray(codes)
    known = (codes < 4).sum(axis=1).clip(min=1)
    return ((codes == 1) | (codes == 2)).sum(axis=1) / known


def write_fasta(
    path: str | os.PathLike,
    ids: Sequence[str],
    seqs: Sequence[str],
    *,
    descriptions: Sequence[str] | None = None,
    protect: tuple = (),
    width: int = 80,
) -> Path:
    """Write FASTA atomically (no partial file on failure); ``protect`` inputs are never overwritten.

    Parameters
    ----------
    path : the output FASTA.
    ids : one id per sequence.
    seqs : the sequences.
    descriptions : text after each id (e.g. scores).
    protect : input paths the output must not replace.
    width : line width.

    Returns
    -------
    The written path.
    """
    import gzip

    opener = gzip.open if str(path).lower().endswith(".gz") else open  # a .gz name promises gzip
    with atomic_path(path, protect=protect) as tmp, opener(tmp, "wt") as fh:
        for i, (name, seq) in enumerate(zip(ids, seqs)):
            desc = f" {descriptions[i]}" if descriptions is not None and descriptions[i] else ""
            fh.write(f">{name}{desc}\n")
            for j in range(0, len(seq), width):
                fh.write(seq[j : j + width] + "\n")
    return Path(path)


def to_records(
    ids: Sequence[str], seqs: Sequence[str], descriptions: Sequence[str] | None = None
) -> list[SeqRecord]:
    """Biopython SeqRecords, for users who continue in Biopython."""
    from Bio.Seq import Seq
    from Bio.SeqRecord import SeqRecord

    return [
        SeqRecord(Seq(s), id=i, description=(descriptions[k] if descriptions is not None else ""))
        for k, (i, s) in enumerate(zip(ids, seqs))
    ]


def record_of(window_id: str) -> str:
    """The record a window id ``name:start-end`` came from."""
    head, sep, tail = window_id.rpartition(":")
    return head if sep and "-" in tail and tail.replace("-", "").isdigit() else window_id


HELDOUT_BY = ("sequence", "name")
# complement of each IUPAC code (U pairs with A; case is folded before)
_COMPLEMENT = str.maketrans("ACGTURYKMBVDHSWN", "TGCAAYRMKVBHDSWN")


def _digest(data: bytes) -> int:
    """A stable 64-bit hash (blake2b): the same on every run, machine and Python version."""
    import hashlib

    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def sequence_key(seq: str) -> int:
    """A stable 64-bit key that identical sequences share whatever their case or strand.

    The hash of the upper-cased sequence or of its reverse complement, whichever sorts first: two
    records with the same bases (soft-masking aside), or one the reverse complement of the other, get
    the same key; any other difference (an N, a base, the length) gives another. (Hashing the chosen
    strand keeps the key uniform; the smaller of two hashes would not be, and would hold out twice
    the asked fraction.)
    """
    upper = seq.upper()
    return _digest(min(upper, upper.translate(_COMPLEMENT)[::-1]).encode())


def code_keys(codes: np.ndarray) -> np.ndarray:
    """:func:`sequence_key`'s counterpart for ``(N, L)`` codes: one uint64 per row, equal for rows
    that are identical or reverse complements of each other."""
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    rc = np.where(codes < 4, 3 - codes, codes)[:, ::-1].copy()
    return np.array([_digest(min(f.tobytes(), r.tobytes())) for f, r in zip(codes, rc)], dtype=np.uint64)


def record_keys(seqs: SequenceSet) -> np.ndarray:
    """Per window, the key of the record it came from (uint64; see :func:`sequence_key`).

    :func:`read_fasta` records them; for a set built by hand, each record's windows (ids
    ``name:start-end``, in order) are joined and hashed, both strands.
    """
    if seqs.record_keys is not None:
        return seqs.record_keys
    names = [record_of(w) for w in seqs.ids]
    rows: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        rows.setdefault(name, []).append(i)
    key_of = {name: int(code_keys(seqs.codes[idx].reshape(1, -1))[0]) for name, idx in rows.items()}
    return np.array([key_of[n] for n in names], dtype=np.uint64)


def duplicate_records(seqs: SequenceSet) -> tuple[int, int]:
    """``(records, distinct sequences)`` among the records with windows in ``seqs`` (identical up to
    case and strand counts once): how many records the sequence split keeps together."""
    keys = record_keys(seqs)
    records = len(set(zip((record_of(w) for w in seqs.ids), keys.tolist())))
    return records, len(np.unique(keys))


def _group_fractions(ids: Sequence[str], fraction: float, keys: np.ndarray | None) -> np.ndarray:
    """A stable number in [0, 1) per window, shared by every window of its group: the record's
    sequence key with ``keys``, else a hash of the record's name."""
    import zlib

    if not 0 <= fraction < 1:
        raise GengenError(f"held-out fraction must be in [0, 1), got {fraction}.")
    if keys is not None:
        if len(keys) != len(ids):
            raise GengenError(f"{len(keys)} record keys for {len(ids)} windows.")
        return (np.asarray(keys, dtype=np.uint64) >> np.uint64(11)).astype(np.float64) / 2.0**53
    cache: dict[str, float] = {}
    out = np.empty(len(ids), dtype=np.float64)
    for i, w in enumerate(ids):
        r = record_of(w)
        if r not in cache:
            cache[r] = (zlib.crc32(r.encode()) % 100000) / 100000
        out[i] = cache[r]
    return out


def heldout_mask(ids: Sequence[str], fraction: float, *, keys: np.ndarray | None = None) -> np.ndarray:
    """Hold out whole records (genes), not windows, so evaluation never sees training sequence.

    Parameters
    ----------
    ids : window ids (``name:start-end``) or record names.
    fraction : share of records held out, in [0, 1).
    keys : per window, its record's sequence key (:func:`record_keys`): records with identical
        sequences (up to case and strand) share a key and fall on the same side, so a promoter listed
        under two transcript names cannot be both trained on and tested on. None: by a hash of the
        record's name (the split of models trained before gengen kept identical records together).

    Returns
    -------
    Boolean mask, True for held-out windows. Stable across runs, file orders and window settings, so
    ``dna-train`` and ``dna-eval`` agree without storing id lists.
    """
    return _group_fractions(ids, fraction, keys) < fraction


def heldout_split(
    ids: Sequence[str], fraction: float, *, keys: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Split the held-out records of :func:`heldout_mask` (same ``keys``) into (validation, test) halves.

    Training picks its best checkpoint on the validation genes; ``dna-eval`` reports on the test genes,
    so the reported figure is not flattered by the selection.
    """
    u = _group_fractions(ids, fraction, keys)
    return u < fraction / 2, (u >= fraction / 2) & (u < fraction)


def grouped_parts(order: np.ndarray, keys: np.ndarray, sizes: Sequence[int]) -> list[np.ndarray]:
    """Cut a shuffled ``order`` of rows into consecutive parts of about ``sizes`` (the rest is the last
    part), keeping rows with the same key (e.g. :func:`code_keys`: identical sequences, either strand)
    in one part, so a validation set never holds a copy of a training sequence.

    Parameters
    ----------
    order : a permutation of the row indices (the seeded shuffle).
    keys : per row, its group key.
    sizes : target sizes of the leading parts (e.g. validation, early stopping).

    Returns
    -------
    ``len(sizes) + 1`` index arrays. Groups are laid out whole, in the order of their first row in
    ``order``, and each goes to the part where it starts: with all keys distinct the parts are exactly
    ``order``'s slices; a group straddling a cut makes its part larger by at most its size - 1.
    """
    order = np.asarray(order)
    _, first, inverse, counts = np.unique(
        np.asarray(keys)[order], return_index=True, return_inverse=True, return_counts=True
    )
    rank = np.argsort(first, kind="stable")  # groups in the order they first appear
    start = np.empty(len(counts), dtype=np.int64)
    start[rank] = np.cumsum(counts[rank]) - counts[rank]  # where each group starts when laid out whole
    part = np.searchsorted(np.cumsum(sizes), start, side="right")[inverse.ravel()]
    return [order[part == p] for p in range(len(sizes) + 1)]
