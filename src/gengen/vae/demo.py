"""VAE step of ``gengen demo``: scanpy's bundled pbmc68k_reduced (700 cells, cell-type labels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gengen.runtime import log


def load_pbmc68k():
    """700 PBMCs x 765 genes, log-normalised (``.raw``), with ``bulk_labels`` cell types; ships with scanpy."""
    import anndata as ad
    import scanpy as sc

    pbmc = sc.datasets.pbmc68k_reduced()
    raw = pbmc.raw.to_adata()
    return ad.AnnData(X=np.asarray(raw.X.toarray() if hasattr(raw.X, "toarray") else raw.X, dtype=np.float32),
                      obs=pbmc.obs[["bulk_labels", "louvain"]].copy(), var=raw.var[[]].copy())


def run(outdir: Path, seed: int = 0, quiet: bool = False) -> list[str]:
    """Train + encode, feature analysis, kNN accuracy vs PCA (whole matrix, and the VAE's own genes), and a
    t-SNE of the VAE embedding."""
    from sklearn.decomposition import PCA

    from gengen.io.expression import write_expression, write_table
    from gengen.plots import pyplot, save_figure
    from gengen.vae import VAERecipe, encode, knn_accuracy, separating_features, top_genes
    from gengen.vae.compare import pca_of_matrix
    from gengen.vae.features import plot_separating_features

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    adata = load_pbmc68k()
    embedded, model = encode(adata, recipe=VAERecipe(seed=seed), save_model=outdir / "model", device="auto", quiet=quiet)
    write_expression(embedded, outdir / "pbmc68k_vae.h5ad")
    write_table(top_genes(model.decoder_weights(), 10), outdir / "top_genes.tsv", index=False)
    z = embedded.obsm["X_vae"]
    labels = adata.obs["bulk_labels"].to_numpy()
    table = separating_features(z, labels)
    write_table(table, outdir / "separating_bulk_labels.tsv", index=False)
    plot_separating_features(z, labels, table, path=outdir / "separating_bulk_labels.png", label_name="bulk_labels")

    x01 = np.clip(model.scaler.transform(model.align(adata, quiet=quiet)), 0, 1)
    pca = PCA(n_components=model.latent_dim, random_state=seed).fit_transform(x01)
    acc_vae, sd_vae = knn_accuracy(z, labels, seed=seed)
    acc_pca, sd_pca = knn_accuracy(pca, labels, seed=seed)
    acc_all, sd_all = knn_accuracy(pca_of_matrix(adata.X, model.latent_dim, seed=seed), labels, seed=seed)

    log("demo: 2-D view of the embedding", quiet)
    plt = pyplot()
    from sklearn.manifold import TSNE

    xy = TSNE(n_components=2, random_state=seed, init="pca", perplexity=30).fit_transform(z)
    fig, ax = plt.subplots(figsize=(6, 5))
    for cls in sorted(set(labels)):
        m = labels == cls
        ax.scatter(xy[m, 0], xy[m, 1], s=6, label=cls)
    ax.set_title("pbmc68k_reduced: t-SNE of the VAE embedding (obsm['X_vae'])")
    ax.legend(fontsize=7, markerscale=2, frameon=False, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    save_figure(fig, outdir / "embedding_tsne.png")

    m = model.metrics
    best = table.sort_values("auroc", ascending=False).iloc[0]
    return [
        f"VAE: {adata.n_obs} PBMCs x {len(model.genes)} genes -> k={model.latent_dim} ({model.recipe.regime} recipe), trained in "
        f"{m['train_seconds']:.1f} s on {m['device']} ("
        + (f"validation recon {m['val_recon']:.1f})" if "val_recon" in m else f"training recon {m['train_recon']:.1f}; every sample trained)"),
        f"VAE: 5-fold kNN accuracy of cell type: VAE {acc_vae:.3f} +/- {sd_vae:.3f}; PCA at the same k: "
        f"of the whole matrix {acc_all:.3f} +/- {sd_all:.3f}, of the VAE's scaled genes {acc_pca:.3f} +/- {sd_pca:.3f}",
        f"VAE: best single feature: {best['feature']} separates {best['class']} with AUROC {best['auroc']:.3f}",
    ]
