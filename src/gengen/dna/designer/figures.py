"""Figures of the DNA pipeline: designs (logos, score curves, the trade-off between two objectives) and
latent interpolation paths. Written by :meth:`DesignResult.write <gengen.dna.designer.result.DesignResult.write>`
and :meth:`Interpolation.write <gengen.dna.gan.interpolate.Interpolation.write>`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from gengen.io.motifs import PWM


def _logo_frame(freqs: np.ndarray, background: np.ndarray | None = None) -> pd.DataFrame:
    """Information-content (bits) matrix for logomaker from ``(4, W)`` frequencies."""
    import pandas as pd

    p = np.clip(freqs / freqs.sum(axis=0, keepdims=True), 1e-9, 1)
    bg = np.full(4, 0.25) if background is None else background
    ic = (p * np.log2(p / bg[:, None])).sum(axis=0).clip(min=0)
    # positions 1-based, as every position gengen prints (hit starts, --fixed ranges)
    return pd.DataFrame((p * ic).T, columns=list("ACGT"), index=pd.RangeIndex(1, p.shape[1] + 1, name="position"))


def aligned_hit_frequencies(
    codes: np.ndarray, starts: np.ndarray, strands: np.ndarray, *, width: int
) -> np.ndarray:
    """``(4, width)`` base frequencies of each sequence's best hit, reverse-complemented on the - strand."""
    counts = np.zeros((4, width))
    comp = np.array([3, 2, 1, 0, 4])
    for c, s, st in zip(codes, starts, strands):
        w = c[s : s + width]
        if st == 1:
            w = comp[w[::-1]]
        for j, b in enumerate(w):
            if b < 4:
                counts[b, j] += 1
    return counts


def _curve(ax, history, suffix: str, label: str, max_score: float | None, stop: int | None = None) -> None:
    h = history
    ax.fill_between(h["step"], h[f"relaxed_min{suffix}"], h[f"relaxed_max{suffix}"], alpha=0.2,
                    label="relaxed min-max")
    ax.plot(h["step"], h[f"relaxed_mean{suffix}"], label="relaxed mean")
    ax.plot(h["step"], h[f"onehot_mean{suffix}"], label="one-hot mean")
    if max_score:
        ax.axhline(max_score, color="k", ls="--", lw=0.8, label="consensus max")
    if stop is not None:
        ax.axvline(stop, color="0.4", ls=":", lw=1, label=f"stopped: plateau at {stop}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("score")
    ax.set_title(f"{label} vs iteration" if label else "score vs iteration")
    ax.legend(frameon=False, fontsize=7)


def _tradeoff(ax, result: Any) -> None:  # a DesignResult (figures sit below the result they draw)
    """Objective 1 against objective 2: the reference cloud (random or start sequences) and the designs."""
    names = [o.name for o in result.objectives]
    ref = result.reference_scores
    if ref is not None and len(ref):
        ax.scatter(ref[:, 0], ref[:, 1], s=3, c="0.7", alpha=0.5, lw=0, label=result.reference_label)
    init = result.initial_objective_scores
    if result.start_codes is not None and init is not None and ref is None:
        ax.scatter(init[:, 0], init[:, 1], s=4, c="0.6", lw=0, label="start sequences")
    s = result.objective_scores
    ax.scatter(s[:, 0], s[:, 1], s=6, c="C3", lw=0, label=f"designs ({len(s)})")
    t0, t1 = (o.target for o in result.objectives[:2])
    ax.set_xlabel(f"{names[0]} ({t0 if isinstance(t0, str) else f'target {t0:g}'})")
    ax.set_ylabel(f"{names[1]} ({t1 if isinstance(t1, str) else f'target {t1:g}'})")
    ax.set_title("trade-off: objective 1 vs 2")
    ax.legend(frameon=False, fontsize=7, markerscale=3)


def plot_design(result: Any, path, pwm: PWM | None = None, *, title: str = "") -> None:
    """The motif logo, the designed set's logo (aligned on best hits when a motif is known), and the
    score-versus-iteration curve of each objective (relaxed mean with min/max band, one-hot mean), as
    in the paper; with two or more objectives also objective 1 against objective 2, the designs over
    the cloud of reference sequences."""
    import logomaker

    from gengen.plots import pyplot, save_figure

    plt = pyplot()
    panels = []
    if pwm is not None:
        panels.append("motif")
    panels.append("logo")
    k = len(result.objectives) if result.objectives else 1
    if k >= 2 and result.objective_scores is not None:
        panels.append("tradeoff")
    panels += [f"curve{i}" for i in range(k)]
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.4 * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[len(panels):]:
        ax.axis("off")
    for panel, ax in zip(panels, flat):
        if panel == "motif":
            logomaker.Logo(_logo_frame(pwm.probabilities(), pwm.background), ax=ax, show_spines=False)
            ax.set_title(f"motif {pwm.name}")
            ax.set_ylabel("bits")
        elif panel == "logo":
            if result.hit_start is not None:
                freqs = aligned_hit_frequencies(result.codes, result.hit_start, result.hit_strand, width=result.motif_width)
                ax.set_title(f"designed set ({len(result.codes)}), aligned on best hits")
            else:
                freqs = np.stack([(result.codes == b).sum(axis=0) for b in range(4)]).astype(float)
                ax.set_title(f"designed set ({len(result.codes)}), by position")
            logomaker.Logo(_logo_frame(freqs + 1e-6), ax=ax, show_spines=False)
            ax.set_ylabel("bits")
        elif panel == "tradeoff":
            _tradeoff(ax, result)
        else:
            i = int(panel[5:])
            suffix = "" if i == 0 else f"_{i + 1}"
            label = result.objectives[i].name if k > 1 else ""
            max_score = result.max_score if i == 0 else None
            stop = result.settings.get("steps") if result.settings.get("stopped") == "plateau" else None
            _curve(ax, result.history, suffix, label, max_score, stop)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def plot_interpolation(table: pd.DataFrame, path, score_columns: list[str], *, title: str = "") -> None:
    """Along each latent path (x: step fraction t): each objective's score, or without objectives the
    GC content; and the Hamming distance from the path's first sequence."""
    from gengen.plots import pyplot, save_figure

    plt = pyplot()
    measures = list(score_columns) or ["gc"]
    panels = measures + ["distance_from_start"]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.4), squeeze=False)
    for ax, col in zip(axes[0], panels):
        for _, path_rows in table.groupby("path"):
            ax.plot(path_rows["t"], path_rows[col], lw=0.8, alpha=0.6)
        mean = table.groupby("step")[[col, "t"]].mean()
        ax.plot(mean["t"], mean[col], c="k", lw=2, label="mean over paths")
        ax.set_xlabel("t (0 = first latent point, 1 = second)")
        ax.set_ylabel(col.replace("_", " "))
        ax.set_title(col.replace("_", " ") + " along the paths")
        ax.legend(frameon=False, fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def _contribution_frame(values: np.ndarray, start: int = 1) -> pd.DataFrame:
    """``(4, L)`` contributions as logomaker's positions x ACGT frame (positions 1-based, or from ``start``)."""
    import pandas as pd

    return pd.DataFrame(np.asarray(values, dtype=np.float64).T, columns=list("ACGT"),
                        index=pd.RangeIndex(start, start + values.shape[1], name="position"))


def plot_attribution_logo(one_hot: np.ndarray, ism: np.ndarray, delta: np.ndarray, *, gradient: np.ndarray | None, path,
                          title: str = "", gradient_label: str = "gradient x input", start: int = 1) -> None:
    """One explained sequence (or a window of it): its ISM contributions as a logo (letters of the observed
    bases, height = attribution), the saturation-mutagenesis map (every substitution's score change,
    4 x L) and the gradient method's contributions as a logo (left out when ``gradient`` is None: a model
    without a gradient), on a shared axis of 1-based positions from ``start``."""
    import logomaker

    from gengen.plots import pyplot, save_figure

    plt = pyplot()
    length = one_hot.shape[1]
    panels = 3 if gradient is not None else 2
    fig, axes = plt.subplots(panels, 1, figsize=(max(6.0, 0.22 * length + 1.5), 6.4 if panels == 3 else 4.4),
                             sharex=True, gridspec_kw={"height_ratios": [1.2, 1.0, 1.2][:panels]})
    logos = [(axes[0], one_hot * ism, "ISM contribution")]
    if gradient is not None:
        logos.append((axes[2], one_hot * gradient, gradient_label))
    for ax, values, label in logos:
        logomaker.Logo(_contribution_frame(values, start), ax=ax, show_spines=False)
        ax.axhline(0, color="0.6", lw=0.5)
        ax.set_ylabel(label, fontsize=8)
    bound = float(np.abs(delta).max()) or 1.0
    im = axes[1].imshow(delta, aspect="auto", cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest",
                        extent=(start - 0.5, start + length - 0.5, 3.5, -0.5))
    axes[1].set_yticks(range(4), list("ACGT"))
    for i in range(length):  # the observed base of each column
        b = np.flatnonzero(one_hot[:, i])
        if len(b):
            axes[1].plot(start + i, b[0], marker=".", color="k", ms=2.5)
    axes[1].set_ylabel("ISM: score change", fontsize=8)
    fig.colorbar(im, ax=axes[1], fraction=0.02, pad=0.01)
    axes[-1].set_xlim(start - 0.5, start + length - 0.5)  # shared by the panels
    axes[-1].set_xlabel("position")
    if title:
        axes[0].set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def plot_motif_matches(motifs: list, matches: pd.DataFrame, database, *, path, title: str = "",
                       unmatched: dict[str, str] | None = None) -> None:
    """Each discovered motif's logo (bits, from its aligned seqlets) beside its best JASPAR match, the
    match drawn on the strand and at the offset TOMTOM aligned it (reverse-complemented for a - match);
    ``unmatched`` says, by motif name, why one has no match."""
    import logomaker

    from gengen.plots import pyplot, save_figure

    plt = pyplot()
    rows = max(1, len(motifs))
    fig, axes = plt.subplots(rows, 2, figsize=(10, 2.0 * rows + 0.6), squeeze=False)
    if not motifs:
        for ax in axes[0]:
            ax.axis("off")
        axes[0, 0].text(0.0, 0.5, "no motif was discovered in the attributions", fontsize=10, transform=axes[0, 0].transAxes)
    by_name = {r["motif"]: r for r in matches.to_dict("records")} if len(matches) else {}
    index = {mid: k for k, mid in enumerate(database.ids)} if database is not None else {}
    for (left, right), m in zip(axes, motifs):
        logomaker.Logo(_logo_frame(m.counts + 1e-6), ax=left, show_spines=False)
        left.set_ylim(0, 2)
        left.set_ylabel("bits")
        effect = "raises" if m.sign > 0 else "lowers"
        left.set_title(f"{m.name}: {m.n_seqlets} seqlets, {effect} the score", fontsize=9)
        row = by_name.get(m.name, {})
        mid = row.get("best_match_id")
        if not isinstance(mid, str) or mid not in index:
            right.axis("off")
            why = (unmatched or {}).get(m.name, "")
            right.text(0.0, 0.5, f"no JASPAR match ({why})" if why else "no JASPAR match", transform=right.transAxes,
                       wrap=True)
            continue
        counts = database.counts[index[mid]]
        if row.get("match_strand") == "-":
            counts = counts[::-1, ::-1]
        offset = int(row.get("match_offset", 0))
        logomaker.Logo(_logo_frame(counts + 1e-6).set_axis(
            np.arange(1 - offset, 1 - offset + counts.shape[1]), axis=0), ax=right, show_spines=False)
        lo = min(1, 1 - offset)
        hi = max(m.width, counts.shape[1] - offset)
        for ax in (left, right):
            ax.set_xlim(lo - 0.5, hi + 0.5)
        right.set_ylim(0, 2)
        strand = " (reverse complement)" if row.get("match_strand") == "-" else ""
        right.set_title(f"{mid} {row.get('best_match_name')}{strand}: p={row.get('match_pvalue'):.2g}, "
                        f"q={row.get('match_qvalue'):.2g}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
