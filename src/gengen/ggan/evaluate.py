"""k-fold comparison of GGAN with the D-GEX paper's baselines on exactly the same splits.

Within each fold the landmark and target transforms (optional quantile normalisation, z-scores) are
fitted on the training profiles; every method is scored on the z-scored held-out targets, so the MAE
is comparable with the papers' figures. GGAN and D-GEX keep 10 % of the training fold aside to pick
their checkpoint by validation MAE. Targets that are the same gene as a landmark (another probe) are
left out of the averages and summarised on their own rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from gengen.ggan.metrics import METRICS, per_gene_metrics
from gengen.ggan.preprocess import Preprocessor, kfold_indices
from gengen.ggan.train import GGANRecipe
from gengen.registry import GGAN_METHODS
from gengen.runtime import log

if TYPE_CHECKING:
    import pandas as pd

METHODS = GGAN_METHODS  # the registry: iterate it for the names, register_baseline() adds one
PLAIN = {"linear_skip": False, "ridge_init": False, "refit": False, "notes": []}


def ggan_recipe(recipe: GGANRecipe) -> GGANRecipe:
    """``ggan``: the recipe as given."""
    return recipe


def plain_recipe(recipe: GGANRecipe) -> GGANRecipe:
    """``ggan-plain``: the GAN on the plain MLP generator (no linear path, no ridge start, no refit)."""
    return GGANRecipe.from_dict({**recipe.to_dict(), **PLAIN})


def dgex_recipe(recipe: GGANRecipe) -> GGANRecipe:
    """``dgex``: D-GEX as published, the plain MLP generator trained with MSE only."""
    return GGANRecipe.from_dict({**recipe.to_dict(), **PLAIN, "loss": "mse"})


def register_baseline(name: str, fit_predict: Callable, *, label: str | None = None, default: bool = True,
                      replace: bool = False) -> None:
    """Add a method to :func:`evaluate` and ``ggan-eval`` (its ``--methods`` and the tables and figure).

    Parameters
    ----------
    name : the method's name (``--methods NAME``).
    fit_predict : ``fit_predict(Xtr, Ytr, Xte, *, seed, info) -> Ŷte`` on z-scored arrays (training
        landmarks, training targets, test landmarks); ``info`` is a dict it may fill with what it chose.
        Accept ``**_`` to ignore keywords it does not use.
    label : the name in tables and figures (default: ``name``).
    default : in ``ggan-eval``'s default selection.
    replace : allow replacing a method of the same name.

    Returns
    -------
    None.
    """
    GGAN_METHODS.register(name, fit_predict, label=label, kind="baseline", default=default, replace=replace)


@dataclass
class Evaluation:
    """Results: ``summary`` (method x metric mean ± sd over folds), ``folds`` (per fold), ``per_gene``."""

    summary: pd.DataFrame
    folds: pd.DataFrame
    per_gene: pd.DataFrame
    info: dict = field(default_factory=dict)

    def table(self) -> str:
        """The printed comparison table."""
        s = self.summary
        w = max(16, *(len(str(x)) + 1 for x in s["label"]))
        lines = [f"{'method':<{w}}{'targets':>8}  {'MAE':>15}  {'CCC':>15}  {'Pearson r':>15}  {'seconds':>8}"]
        for _, r in s.iterrows():
            cells = "  ".join(
                f"{r[m + '_mean']:.4f} ± {r[m + '_sd']:.4f}" if r[m + "_mean"] == r[m + "_mean"] else f"{'—':^15}"
                for m in METRICS
            )
            lines.append(f"{r['label']:<{w}}{int(r['n_targets']):>8}  {cells}  {r['seconds']:>8.1f}")
        return "\n".join(lines)


def evaluate(
    X: np.ndarray,
    Y: np.ndarray,
    targets: list[str],
    *,
    same_gene: list[str] | None = None,
    folds: int = 5,
    recipe: GGANRecipe | None = None,
    dgex_recipe: GGANRecipe | None = None,
    methods: tuple[str, ...] | None = None,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = True,
    groups=None,
) -> Evaluation:
    """Score each method on the same ``folds`` splits of aligned arrays (original units).

    ``same_gene`` lists targets that are landmark genes too (reported separately). ``groups`` (one
    label per profile: subject, batch) makes the folds grouped, so every subject or batch is tested
    on models that never saw it (:func:`gengen.ggan.kfold_indices`). Recipe fields left at ``None``
    adapt to each training fold's size (:func:`gengen.ggan.resolve_ggan_recipe`); ``info["resolved_recipes"]``
    keeps the first fold's, with its notes.

    Parameters
    ----------
    X : landmarks, profiles x landmark genes (original units).
    Y : targets, profiles x target genes (original units).
    targets : the target genes' names (Y's columns).
    same_gene : targets that are the same gene as a landmark.
    folds : cross-validation folds (the same splits for every method).
    recipe : GGAN's recipe (default: :class:`GGANRecipe` with ``seed``).
    dgex_recipe : D-GEX's recipe (default: ``recipe`` as the plain MLP trained with MSE).
    methods : names in :data:`~gengen.registry.GGAN_METHODS` (default: every registered method);
        :func:`register_baseline` adds one.
    seed : seed of the folds and of each fold's networks (seed + fold).
    device : where the networks train.
    quiet : no per-fold lines (the default for library calls).
    groups : one group label per profile for grouped folds.

    Returns
    -------
    An :class:`Evaluation`: ``summary``, ``folds``, ``per_gene`` tables and ``info``.
    """
    import pandas as pd

    from gengen.ggan.core import GGANModel

    methods = GGAN_METHODS.names() if methods is None else GGAN_METHODS.check(methods)
    recipe = recipe or GGANRecipe(seed=seed)
    recipes = {m: GGAN_METHODS[m].function()(recipe) for m in methods if GGAN_METHODS[m].kind == "network"}
    if dgex_recipe is not None and "dgex" in recipes:
        recipes["dgex"] = dgex_recipe
    same = np.array([t in set(same_gene or []) for t in targets])
    splits = kfold_indices(X.shape[0], folds, seed, groups=groups)
    fold_rows, gene_frames = [], []
    seconds = {m: 0.0 for m in methods}
    info: dict = {m: [] for m in methods}
    resolved: dict = {}  # each network's recipe as resolved on the first fold (with its notes)
    for f, (tr, te) in enumerate(splits):
        pre = Preprocessor.fit(X[tr], Y[tr], quantile=recipe.quantile)
        Xtr, Xte = pre.transform_x(X[tr]), pre.transform_x(X[te])
        Ytr, Yte = pre.transform_y(Y[tr]), pre.transform_y(Y[te])
        for m in methods:
            t0 = time.perf_counter()
            detail: dict = {}
            if m in recipes:
                r = GGANRecipe.from_dict({**recipes[m].to_dict(), "seed": seed + f, "notes": []})
                model = GGANModel.train_arrays(
                    X[tr],
                    Y[tr],
                    landmarks=[f"x{i}" for i in range(X.shape[1])],
                    targets=list(targets),
                    recipe=r,
                    device=device,
                    quiet=True,
                )
                pred = pre.y_scaler.transform(model.predict_array(X[te]))
                detail = {
                    "best_epoch": model.metrics["best_epoch"],
                    "epochs_run": model.metrics["epochs_run"],
                    "gain_se": model.metrics["gain_se"],
                    "rejected_epoch": model.metrics["rejected_epoch"],
                }
                if f == 0:
                    resolved[m] = model.recipe.to_dict()
            else:
                pred = GGAN_METHODS[m].function()(Xtr, Ytr, Xte, seed=seed + f, info=detail)
            seconds[m] += time.perf_counter() - t0
            info[m].append(detail)
            g = per_gene_metrics(Yte, pred, targets)
            g["same_gene"] = same
            g["method"], g["fold"] = m, f + 1
            gene_frames.append(g.reset_index())
            for subset, mask in (("distinct", ~same), ("same_gene", same)):
                if mask.any():
                    sub = g[mask]
                    fold_rows.append(
                        {
                            "method": m,
                            "fold": f + 1,
                            "targets": subset,
                            "n_targets": int(mask.sum()),
                            "mae": sub["mae"].mean(),
                            "ccc": sub["ccc"].mean(),
                            "pearson": _nanmean(sub["pearson"]),
                        }
                    )
            log(
                f"fold {f + 1}/{folds} {GGAN_METHODS.label(m):<15} MAE {g.loc[~same, 'mae'].mean():.4f} "
                f"({time.perf_counter() - t0:.1f} s){'  ' + _detail_text(detail) if detail else ''}",
                quiet,
            )
    folds_df = pd.DataFrame(fold_rows)
    rows = []
    for (m, subset), grp in folds_df.groupby(["method", "targets"], sort=False):
        row = {
            "method": m,
            "label": GGAN_METHODS.label(m) + (" [same gene]" if subset == "same_gene" else ""),
            "targets": subset,
            "n_targets": int(grp["n_targets"].iloc[0]),
            "seconds": seconds[m],
        }
        for k in METRICS:
            row[f"{k}_mean"] = float(grp[k].mean())
            row[f"{k}_sd"] = float(grp[k].std(ddof=1)) if len(grp) > 1 else 0.0
        rows.append(row)
    summary = pd.DataFrame(rows)
    summary["_o"] = summary["targets"].eq("same_gene")
    summary = summary.sort_values(["_o", "mae_mean"]).drop(columns="_o").reset_index(drop=True)
    per_gene = (
        pd.concat(gene_frames)
        .groupby(["method", "gene"], sort=False)
        .agg(
            mae=("mae", "mean"),
            ccc=("ccc", "mean"),
            pearson=("pearson", _nanmean),
            same_gene=("same_gene", "first"),
        )
        .reset_index()
    )
    return Evaluation(
        summary,
        folds_df,
        per_gene,
        {
            "folds": folds,
            "seed": seed,
            "n_profiles": int(X.shape[0]),
            "grouped": groups is not None,
            "test_sizes": [len(te) for _, te in splits],
            "recipe": recipe.to_dict(),
            "resolved_recipes": resolved,
            "details": info,
        },
    )


def _nanmean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(x[np.isfinite(x)].mean()) if np.isfinite(x).any() else float("nan")


def plot_comparison(ev: Evaluation, path) -> None:
    """Bars of MAE, CCC and Pearson (mean ± sd over folds) per method, distinct targets only."""
    from gengen.plots import pyplot, save_figure

    plt = pyplot()
    s = ev.summary[ev.summary["targets"] == "distinct"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    colors = ["#c0392b" if m == "ggan" else "#7f8c8d" for m in s["method"]]
    for ax, k, title in zip(axes, METRICS, ("MAE (lower is better)", "Lin's CCC", "Pearson r"), strict=True):
        ax.bar(range(len(s)), s[f"{k}_mean"], yerr=s[f"{k}_sd"], color=colors, capsize=3)
        ax.set_xticks(range(len(s)))
        ax.set_xticklabels([GGAN_METHODS.label(m) for m in s["method"]], rotation=40, ha="right", fontsize=8)
        ax.set_title(title)
    fig.suptitle(
        f"{ev.info['folds']}-fold comparison, {int(s['n_targets'].iloc[0])} targets, {ev.info['n_profiles']} profiles"
    )
    fig.tight_layout()
    save_figure(fig, path)


def _detail_text(detail: dict) -> str:
    """A fold's choices for the log line, readable: ``alpha 177.8, best_epoch 0, gain_se 0.01``
    (the exact values are in ggan_eval_info.json)."""
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else ("-" if v is None else str(v))

    return ", ".join(f"{k} {fmt(v)}" for k, v in detail.items())
