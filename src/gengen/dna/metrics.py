"""How realistic and how diverse generated or designed sequences are.

- k-mer spectra and their Jensen-Shannon divergence (base 2, in [0, 1]) between two sets, for
  k = 1..6, with two baselines a generator must beat: i.i.d. bases at the real composition, and a
  Markov chain fitted to the training windows. Every set is compared at the same size against the
  same held-out windows, because the JS of finite samples is biased upward by sampling noise; a
  second draw of real windows gives that noise floor.
- Mean pairwise Hamming distance per base, optionally outside each sequence's motif hit.
- GC content.
"""

from __future__ import annotations

import numpy as np

from gengen.errors import GengenError


def kmer_index(codes: np.ndarray, k: int) -> np.ndarray:
    """Base-4 index of every k-mer, ``(N, L - k + 1)`` int64; ``-1`` where a window holds an ambiguous base."""
    codes = np.asarray(codes)
    n, length = codes.shape
    if k < 1 or k > length:
        raise GengenError(f"k must be between 1 and the sequence length {length}, got {k}.")
    m = length - k + 1
    idx = np.zeros((n, m), dtype=np.int64)
    bad = np.zeros((n, m), dtype=bool)
    for j in range(k):
        part = codes[:, j : j + m]
        idx = idx * 4 + np.minimum(part, 3)
        bad |= part > 3
    idx[bad] = -1
    return idx


def kmer_spectrum(codes: np.ndarray, k: int) -> np.ndarray:
    """Normalised k-mer frequencies ``(4**k,)`` pooled over all positions and sequences."""
    idx = kmer_index(codes, k).ravel()
    counts = np.bincount(idx[idx >= 0], minlength=4**k).astype(np.float64)
    total = counts.sum()
    return counts / total if total else counts


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits (0 = identical, 1 = disjoint)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a, b):
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / b[nz])))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def base_composition(codes: np.ndarray) -> np.ndarray:
    return kmer_spectrum(codes, 1)


def sample_iid(composition: np.ndarray, n: int, length: int, *, seed: int = 0) -> np.ndarray:
    """``(n, length)`` codes with independent bases at ``composition``."""
    rng = np.random.default_rng(seed)
    return rng.choice(4, size=(n, length), p=composition / composition.sum()).astype(np.uint8)


def fit_markov(codes: np.ndarray, order: int, pseudocount: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Fit an order-``order`` Markov chain: (start distribution over ``order``-mers, transitions ``(4**order, 4)``)."""
    if order == 0:
        comp = kmer_spectrum(codes, 1)
        return np.ones(1), comp[None, :]
    idx = kmer_index(codes, order + 1).ravel()
    counts = np.bincount(idx[idx >= 0], minlength=4 ** (order + 1)).reshape(4**order, 4) + pseudocount
    trans = counts / counts.sum(axis=1, keepdims=True)
    start = kmer_index(codes[:, :order], order)[:, 0]
    start_p = np.bincount(start[start >= 0], minlength=4**order).astype(np.float64) + pseudocount
    return start_p / start_p.sum(), trans


def sample_markov(
    model: tuple[np.ndarray, np.ndarray], order: int, n: int, *, length: int, seed: int = 0
) -> np.ndarray:
    """Draw ``(n, length)`` codes from a chain fitted by :func:`fit_markov` (vectorised over sequences)."""
    start_p, trans = model
    rng = np.random.default_rng(seed)
    out = np.zeros((n, length), dtype=np.uint8)
    if order == 0:
        return rng.choice(4, size=(n, length), p=trans[0]).astype(np.uint8)
    state = rng.choice(len(start_p), size=n, p=start_p)
    for j in range(order):  # unpack the start k-mer into bases
        out[:, j] = (state // 4 ** (order - 1 - j)) % 4
    cdf = np.cumsum(trans, axis=1)
    mask = 4 ** (order - 1)
    for j in range(order, length):
        u = rng.random(n)[:, None]
        nxt = (u > cdf[state]).sum(axis=1).clip(max=3)
        out[:, j] = nxt
        state = (state % mask) * 4 + nxt if order > 0 else state
    return out


def kmer_js_table(
    generated: dict[str, np.ndarray],
    heldout: np.ndarray,
    train: np.ndarray,
    *,
    ks=(1, 2, 3, 4, 5, 6),
    n: int | None = None,
    seed: int = 0,
    quiet: bool = True,
) -> "pd.DataFrame":  # noqa: F821, UP037
    """JS divergence of k-mer spectra between each set and held-out real windows, with baselines.

    Columns: one per entry of ``generated`` (e.g. ``{"gan": codes}``), then ``iid`` (bases at the
    training composition), ``markov`` (a chain of order k-1 fitted to the training windows, which
    matches k-mer frequencies by construction: the strongest simple baseline) and ``real_train``
    (training windows: the sampling-noise floor). All sets are subsampled to the same size ``n``.
    ``quiet=False`` shows a progress bar over k (the Markov fits on a million windows take a while).
    """
    import pandas as pd

    from gengen.runtime import Progress

    rng = np.random.default_rng(seed)
    length = heldout.shape[1]
    sizes = [len(heldout), len(train)] + [len(v) for v in generated.values()]
    n = min(sizes) if n is None else min([n, *sizes])

    def pick(a):
        return a if len(a) == n else a[rng.choice(len(a), n, replace=False)]

    ref = pick(heldout)
    sets = {name: pick(v) for name, v in generated.items()}
    sets["iid"] = sample_iid(base_composition(train), n, length, seed=seed)
    sets["real_train"] = pick(train)
    rows = []
    with Progress(len(ks), "k-mer spectra", quiet) as bar:
        for k in ks:
            ref_spec = kmer_spectrum(ref, k)
            row = {"k": k}
            for name, codes in sets.items():
                row[name] = js_divergence(kmer_spectrum(codes, k), ref_spec)
            mk = sample_markov(fit_markov(train, k - 1), k - 1, n, length=length, seed=seed + k)
            row["markov"] = js_divergence(kmer_spectrum(mk, k), ref_spec)
            rows.append(row)
            bar.update(k=k)
    cols = ["k", *generated, "iid", "markov", "real_train"]
    table = pd.DataFrame(rows)[cols]
    table.attrs["n"] = n
    return table


def hamming_diversity(
    codes: np.ndarray, exclude: np.ndarray | None = None, max_n: int = 2000, *, seed: int = 0
) -> float:
    """Mean pairwise Hamming distance per base; ``exclude`` ``(N, L)`` bool masks positions (motif hits).

    For a pair, only positions outside both sequences' masks count. Above ``max_n`` sequences a
    seeded subset is used (the mean is estimated, not changed).
    """
    codes = np.asarray(codes)
    n = len(codes)
    if n < 2:
        return float("nan")
    keep = np.ones(codes.shape, dtype=bool) if exclude is None else ~np.asarray(exclude, dtype=bool)
    if n > max_n:
        sel = np.random.default_rng(seed).choice(n, max_n, replace=False)
        codes, keep, n = codes[sel], keep[sel], max_n
    m = keep.astype(np.float32)
    matches = np.zeros((n, n), dtype=np.float32)
    for b in range(4):
        xb = ((codes == b) & keep).astype(np.float32)
        matches += xb @ xb.T
    valid = m @ m.T
    iu = np.triu_indices(n, 1)
    v = valid[iu]
    ok = v > 0
    return float(np.mean((v[ok] - matches[iu][ok]) / v[ok])) if ok.any() else float("nan")


def hit_mask(length: int, starts: np.ndarray, width: int) -> np.ndarray:
    """``(N, length)`` bool mask of each sequence's motif hit ``[start, start + width)``."""
    pos = np.arange(length)[None, :]
    s = np.asarray(starts)[:, None]
    return (pos >= s) & (pos < s + width)


def dominance(designs: np.ndarray, reference: np.ndarray, maximise) -> dict:
    """How designs compare with reference sequences on several scores at once (a trade-off).

    A design *dominates* a reference sequence when it is at least as good on every score and better on
    one (``maximise[i]`` says whether higher is better for score ``i``).

    Parameters
    ----------
    designs : ``(N, K)`` scores of the designs.
    reference : ``(M, K)`` scores of the reference (e.g. every real probe, by the same models).
    maximise : ``K`` booleans.

    Returns
    -------
    ``dominate_all`` (share of designs dominating every reference sequence), ``not_dominated`` (share of
    designs no reference sequence dominates), ``mean_dominated`` (mean share of the reference each
    design dominates), and ``corner``: the best reference score on each axis taken separately (a
    design dominates every reference sequence exactly when it beats all of them).
    """
    sign = np.where(np.asarray(maximise, dtype=bool), 1.0, -1.0)
    d, r = np.asarray(designs, float) * sign, np.asarray(reference, float) * sign
    corner = r.max(axis=0)
    dominate_all = ((d >= corner).all(axis=1) & (d > corner).any(axis=1))
    dominated, share = np.zeros(len(d), dtype=bool), np.zeros(len(d))
    for i0 in range(0, len(d), 256):  # (256, M, K) at a time
        block = d[i0 : i0 + 256, None, :]
        ge, gt = (block >= r[None]).all(axis=2), (block > r[None]).any(axis=2)
        le, lt = (block <= r[None]).all(axis=2), (block < r[None]).any(axis=2)
        share[i0 : i0 + 256] = (ge & gt).mean(axis=1)
        dominated[i0 : i0 + 256] = (le & lt).any(axis=1)
    return {"dominate_all": float(dominate_all.mean()), "not_dominated": float((~dominated).mean()),
            "mean_dominated": float(share.mean()), "corner": corner * sign}
