"""``gengen demo`` step for GGAN: landmark -> target inference on scanpy's bundled PBMC cells.

Uses ``sc.datasets.pbmc68k_reduced()`` (700 cells, log-normalised values in ``.raw``), which
installs with scanpy, so the demo needs no download. The 100 most variable genes are the landmarks
and the next 300 the targets; GGAN trains with its default recipe (for 560 cells: a 3 x 512 generator
started from the ridge map, kept only where it beats ridge on validation) and predicts held-out cells.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gengen.runtime import log


def run(outdir: Path, seed: int = 0, quiet: bool = False) -> list[str]:
    """Train briefly, infer held-out cells, print the metric table; returns summary lines."""
    import anndata as ad
    import pandas as pd
    import scanpy as sc

    from gengen.ggan.baselines import knn, mean_predictor, ridge
    from gengen.ggan.core import GGANModel
    from gengen.ggan.metrics import summarize
    from gengen.io.expression import write_table
    from gengen.recipes import GGANRecipe

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    raw = sc.datasets.pbmc68k_reduced().raw
    X = raw.X.toarray() if hasattr(raw.X, "toarray") else np.asarray(raw.X)
    X = X.astype(np.float32)
    order = np.argsort(-X.var(axis=0))
    names = np.asarray(raw.var_names.astype(str))
    landmarks, targets = names[order[:100]].tolist(), names[order[100:400]].tolist()
    cells = np.asarray(raw.obs_names.astype(str))
    adata = ad.AnnData(
        X[:, order[:400]], obs=pd.DataFrame(index=cells), var=pd.DataFrame(index=landmarks + targets)
    )
    test = np.random.default_rng(seed).permutation(adata.n_obs)[: adata.n_obs // 5]
    is_test = np.zeros(adata.n_obs, bool)
    is_test[test] = True
    train, held = adata[~is_test].copy(), adata[is_test].copy()
    log(
        f"GGAN demo: {train.n_obs} training / {held.n_obs} held-out PBMC cells, {len(landmarks)} landmark -> "
        f"{len(targets)} target genes",
        quiet,
    )
    recipe = GGANRecipe(seed=seed)  # the defaults, sized to the 560 training cells (see docs/ggan.md)
    model = GGANModel.train(train, landmarks, targets, recipe=recipe, device="cpu", quiet=True)
    model.save(outdir / "ggan_pbmc_model")
    pred = model.predict(held[:, landmarks].copy(), quiet=True)
    write_table(pred, outdir / "heldout_predicted_targets.csv")
    truth = held[:, targets].X
    pre = model.preprocessor
    z = pre.transform_y
    xtr, xte = pre.transform_x(train[:, landmarks].X), pre.transform_x(held[:, landmarks].X)
    ytr = z(train[:, targets].X)
    rows = [("GGAN", z(pred.to_numpy()))]
    rows += [
        (name, f(xtr, ytr, xte, seed=seed))
        for name, f in (("ridge", ridge), ("KNN-GE", knn), ("mean predictor", mean_predictor))
    ]
    lines = [
        f"ggan: {held.n_obs} held-out PBMC cells, {len(landmarks)} landmarks -> {len(targets)} targets "
        "(z-scored; mean over genes)",
        f"  {'method':<16}{'MAE':>8}{'CCC':>8}{'Pearson':>9}",
    ]
    for name, p in rows:
        s = summarize(z(truth), p)
        lines.append(f"  {name:<16}{s['mae']:>8.4f}{s['ccc']:>8.4f}{s['pearson']:>9.4f}")
    lines.append(f"  recipe: {model.recipe.notes[-1]}")
    lines.append(
        f"  model: {outdir / 'ggan_pbmc_model'}; predictions: {outdir / 'heldout_predicted_targets.csv'}"
    )
    return lines
