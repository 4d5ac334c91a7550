"""Interpreting latent features: top decoder-weight genes (Tybalt's gene-weight analysis) and the
feature that best separates each class of a label (AUROC with direction)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gengen.errors import GengenError, preview

if TYPE_CHECKING:
    import pandas as pd


def top_genes(weights: pd.DataFrame, n_top: int = 20) -> pd.DataFrame:
    """Per latent feature, the ``n_top`` genes with the largest positive and most negative weights.

    ``weights`` is (features x genes), e.g. :meth:`VAEModel.decoder_weights`. Returns a long table:
    feature, direction (positive/negative), rank (1 = most extreme), gene, weight. A direction lists
    only genes of that sign (fewer than ``n_top`` when fewer exist).
    """
    import pandas as pd

    if n_top < 1:
        raise GengenError(f"--top must be positive, got {n_top}.")
    rows = []
    W = weights.to_numpy()
    genes = np.asarray(weights.columns)
    n_top = min(n_top, W.shape[1])
    for i, feature in enumerate(weights.index):
        order = np.argsort(W[i], kind="stable")
        for direction, idx in (("positive", order[::-1][:n_top]), ("negative", order[:n_top])):
            idx = [j for j in idx if (W[i, j] > 0 if direction == "positive" else W[i, j] < 0)]
            for rank, j in enumerate(idx, start=1):
                rows.append((feature, direction, rank, genes[j], float(W[i, j])))
    return pd.DataFrame(rows, columns=["feature", "direction", "rank", "gene", "weight"])


def top_abs_genes(weights: pd.DataFrame, feature: str, n_top: int) -> pd.Series:
    """The ``n_top`` genes of one feature by |weight|, signed weights, largest first."""
    w = weights.loc[feature]
    return w.reindex(w.abs().sort_values(ascending=False, kind="stable").index[:n_top])


def separating_features(embedding: np.ndarray, labels, feature_names: list[str] | None = None) -> pd.DataFrame:
    """For each class (one-vs-rest), the latent feature with the highest AUROC.

    AUROC is reported oriented (>= 0.5) with ``direction`` saying whether the class is high (+) or
    low (-) on the feature. Samples with a missing label are ignored; a class needs >= 1 sample and
    the rest >= 1 sample.

    Parameters
    ----------
    embedding : ``(n_samples, k)``.
    labels : one label per sample.
    feature_names : names of the k features (default ``vae_1 .. vae_k``).

    Returns
    -------
    One row per class: the best feature, its AUROC and direction.
    """
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    labels = pd.Series(np.asarray(labels, dtype=object))
    keep = labels.notna().to_numpy() & (labels.astype(str) != "nan").to_numpy()
    Z = np.asarray(embedding)[keep]
    y = labels[keep].astype(str).to_numpy()
    classes = sorted(set(y))
    if len(classes) < 2:
        raise GengenError(f"the label has {len(classes)} class(es) after dropping missing values; need at least 2.")
    names = feature_names or [f"vae_{i + 1}" for i in range(Z.shape[1])]
    rows = []
    for cls in classes:
        target = (y == cls).astype(int)
        aucs = np.array([roc_auc_score(target, Z[:, j]) if np.ptp(Z[:, j]) > 0 else 0.5 for j in range(Z.shape[1])])
        oriented = np.maximum(aucs, 1 - aucs)
        j = int(np.argmax(oriented))
        rows.append({"class": cls, "n": int(target.sum()), "feature": names[j], "auroc": float(oriented[j]),
                     "direction": "+" if aucs[j] >= 0.5 else "-",
                     "mean_in_class": float(Z[target == 1, j].mean()), "mean_rest": float(Z[target == 0, j].mean())})
    return pd.DataFrame(rows)


def panel_titles(names, width: int = 24, lines: int = 2) -> list[str]:
    """Class names as panel titles of at most ``lines`` lines of ``width`` characters, each different.

    Wrapped where they fit; a longer name keeps its start and its end around an ellipsis (classes
    often differ only at the end: 'steroid-phenotype-high' / '-low', where a cut at 14 characters made
    every title 'steroid-phenot'); titles still alike get their position appended.
    """
    import textwrap

    def fit(name: str) -> str:
        wrapped = textwrap.wrap(name, width, break_on_hyphens=True) or [""]
        if len(wrapped) <= lines:
            return "\n".join(wrapped)
        room = width * lines - 1
        short = name[: room - room // 2] + "\u2026" + name[-(room // 2):]
        wrapped = textwrap.wrap(short, width, break_on_hyphens=True)
        if len(wrapped) > lines:  # no good break: cut it in fixed widths
            wrapped = [short[i : i + width] for i in range(0, len(short), width)]
        return "\n".join(wrapped)

    titles = [fit(str(n)) for n in names]
    seen: dict[str, int] = {}
    for t in titles:
        seen[t] = seen.get(t, 0) + 1
    return [f"{t} (#{i + 1})" if seen[t] > 1 else t for i, t in enumerate(titles)]


def plot_separating_features(embedding: np.ndarray, labels, table: pd.DataFrame, *, path, label_name: str = "label"):
    """One panel per class: its best feature's values, in-class vs the rest (strip + box); the
    class's name (wrapped, never cut to the same prefix) is the panel's title."""
    import pandas as pd

    from gengen.plots import pyplot, save_figure

    plt = pyplot()
    labels = pd.Series(np.asarray(labels, dtype=object)).astype(str).to_numpy()
    n = len(table)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.4 * rows), squeeze=False)
    rng = np.random.default_rng(0)
    titles = panel_titles(table["class"])
    for ax, (_, row), title in zip(axes.flat, table.iterrows(), titles):
        j = int(str(row["feature"]).rsplit("_", 1)[1]) - 1
        groups = [embedding[labels == row["class"], j], embedding[(labels != row["class"]) & (labels != "nan"), j]]
        ax.boxplot(groups, showfliers=False)
        ax.set_xticks([1, 2], [f"class (n={len(groups[0])})", f"rest (n={len(groups[1])})"], fontsize=8)
        for k, g in enumerate(groups, start=1):
            ax.scatter(k + rng.uniform(-0.15, 0.15, len(g)), g, s=6, alpha=0.6)
        ax.set_ylabel(str(row["feature"]), fontsize=8)
        ax.set_title(f"{title}\n{row['feature']}  AUROC {row['auroc']:.2f} ({row['direction']})", fontsize=9)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"best-separating latent feature per {label_name} class")
    fig.tight_layout()
    return save_figure(fig, path)


def labels_from(adata, by: str):
    """The ``obs`` column ``by``, with a clear error listing the columns when absent."""
    import pandas as pd

    if by not in adata.obs.columns:
        raise GengenError(f"no column {by!r} in the data's obs; available: {preview(adata.obs.columns) or 'none'}.")
    col = adata.obs[by]
    n_classes = col.nunique(dropna=True)
    if n_classes < 2:
        raise GengenError(f"{by!r} has {n_classes} distinct value(s) among the samples; --by compares at least 2 classes.")
    continuous = pd.api.types.is_float_dtype(col) and not np.all(np.mod(col.dropna().to_numpy(), 1) == 0)
    if (continuous and n_classes > max(20, len(col) // 5)) or n_classes > max(20, len(col) // 2):
        kind = "numeric" if pd.api.types.is_numeric_dtype(col) else "a label"
        raise GengenError(
            f"{by!r} is {kind} with {n_classes} distinct values among {len(col)} samples; --by compares "
            "categorical labels (e.g. cancer type). Bin it into groups first if that is what you mean."
        )
    return col.to_numpy()
