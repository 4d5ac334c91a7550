"""k-fold comparison of GGAN with the D-GEX paper's baselines on exactly the same splits.

Within each fold the landmark and target transforms (optional quantile normalisation, z-scores) are
fitted on the training profiles; every method is scored on the z-scored held-out targets, so the MAE
is comparable with the papers' figures. GGAN and D-GEX keep 10 % of the training fold aside to pick
their checkpoint by validation MAE. Targets that are the same gene as a landmark (another probe) are
left out of the averages and summarised on their own rows.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gengen.errors import GengenError
from gengen.ggan.metrics import METRICS, per_gene_metrics
from gengen.ggan.preprocess import Preprocessor, kfold_indices
from gengen.recipes import GGANRecipe
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


# What ``Evaluation.write(folder)`` / ``ggan-eval -o FOLDER`` writes (``evaluate(save_folds=)``: FOLDER/fold_results/)
EVAL_FILES = {"summary": "ggan_eval_summary.tsv", "folds": "ggan_eval_folds.tsv", "per_gene": "ggan_eval_per_gene.tsv",
              "figure": "ggan_eval.png", "info": "ggan_eval_info.json"}


def eval_outputs(folder: str | os.PathLike) -> dict[str, Path]:
    """The files :meth:`Evaluation.write` writes into ``folder``, by kind (the keys of ``EVAL_FILES``)."""
    return {kind: Path(folder) / name for kind, name in EVAL_FILES.items()}


@dataclass
class Evaluation:
    """Results: ``summary`` (method x metric mean ± sd over folds), ``folds`` (per fold), ``per_gene``;
    ``fold_results``: the folder :func:`evaluate` kept each finished fold in (``save_folds``), if any."""

    summary: pd.DataFrame
    folds: pd.DataFrame
    per_gene: pd.DataFrame
    info: dict = field(default_factory=dict)
    fold_results: Path | None = None

    def write(self, folder: str | os.PathLike, *, protect=()) -> dict[str, Path]:
        """The summary, per-fold and per-gene tables (TSV), the figure and the run's info (JSON) in ``folder``,
        each written atomically; ``protect``: input paths none of them may replace. Returns the paths by kind
        (:func:`eval_outputs`). When a write fails (a full disk) with finished folds kept in ``fold_results``,
        the error says so: resuming writes the tables from them."""
        import json

        from gengen.io.expression import write_table
        from gengen.runtime import atomic_path

        paths = eval_outputs(folder)
        try:
            write_table(self.summary, paths["summary"], protect=protect, index=False)
            write_table(self.folds, paths["folds"], protect=protect, index=False)
            write_table(self.per_gene, paths["per_gene"], protect=protect, index=False)
            plot_comparison(self, paths["figure"])
            with atomic_path(paths["info"], protect=protect) as tmp:
                tmp.write_text(json.dumps(self.info, indent=1, default=str) + "\n")
        except GengenError as exc:  # disk full, ...: the computed folds are kept, and said so
            if self.fold_results is None:
                raise
            raise GengenError(f"{str(exc).rstrip('.')}; the finished folds stay in {str(self.fold_results)!r}: the same "
                              "command with --resume writes the tables from them.") from None
        return paths

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
    save_folds: str | os.PathLike | None = None,
    resume: bool = False,
) -> Evaluation:
    """Score each method on the same ``folds`` splits of aligned arrays (original units).

    ``same_gene`` lists targets that are landmark genes too (reported separately). ``groups`` (one
    label per profile: subject, batch) makes the folds grouped, so every subject or batch is tested
    on models that never saw it (:func:`gengen.ggan.kfold_indices`). Recipe fields left at ``None``
    adapt to each training fold's size (:func:`gengen.ggan.resolve_ggan_recipe`); ``info["resolved_recipes"]``
    keeps the first fold's, with its notes.

    With ``save_folds`` every method's result on every fold is written to that folder as soon as it
    is finished (``fold<k>-<method>.npz``, atomically and synced to disk), so an interrupted
    comparison keeps its finished work; ``resume=True`` reads those back and computes only the rest,
    with the same folds and seeds, ending with the same tables as an uninterrupted run. Without
    ``resume`` earlier results there are replaced.

    Parameters
    ----------
    X : landmarks, profiles x landmark genes (original units).
    Y : targets, profiles x target genes (original units).
    targets : the target genes' names (Y's columns).
    same_gene : targets that are the same gene as a landmark.
    folds : cross-validation folds (the same splits for every method).
    recipe : GGAN's recipe (default: :class:`GGANRecipe` with ``seed``).
    dgex_recipe : D-GEX's recipe (default: ``recipe`` as the plain MLP trained with MSE).
    methods : names in :data:`~gengen.registry.GGAN_METHODS`; default: the default selection, less
        the baselines whose estimated cost exceeds GGAN's own on data of this size
        (:func:`default_methods`; ``info["skipped"]`` says which and why). :func:`register_baseline`
        adds one.
    seed : seed of the folds and of each fold's networks (seed + fold).
    device : where the networks train.
    quiet : no per-fold lines (the default for library calls).
    groups : one group label per profile for grouped folds.
    save_folds : folder for each finished fold's results (made if missing).
    resume : reuse the results in ``save_folds`` of this same comparison.

    Returns
    -------
    An :class:`Evaluation`: ``summary``, ``folds``, ``per_gene`` tables and ``info``.
    """
    import pandas as pd

    from gengen.ggan.core import GGANModel

    recipe = recipe or GGANRecipe(seed=seed)
    if methods is not None:
        methods = GGAN_METHODS.check(methods)
    splits = kfold_indices(X.shape[0], folds, seed, groups=groups)
    skipped: dict[str, str] = {}
    if methods is None:
        n_train = min(len(tr) for tr, _ in splits)
        methods, skipped = default_methods(n_train, X.shape[1], Y.shape[1], recipe=recipe)
        for m, why in skipped.items():
            log(f"skipped {GGAN_METHODS.label(m)}: {why}", quiet)
    recipes = {m: GGAN_METHODS[m].function()(recipe) for m in methods if GGAN_METHODS[m].kind == "network"}
    if dgex_recipe is not None and "dgex" in recipes:
        recipes["dgex"] = dgex_recipe
    same = np.array([t in set(same_gene or []) for t in targets])
    store = None
    if save_folds is not None:
        store = FoldResults(save_folds, _run_key(X, Y, targets, same, splits), targets)
        store.open(resume, {m: _method_key(m, recipes.get(m)) for m in methods}, quiet)
    elif resume:
        raise GengenError("resume=True needs save_folds, the folder the interrupted comparison wrote.")
    fold_rows, gene_frames = [], []
    seconds = {m: 0.0 for m in methods}
    info: dict = {m: [] for m in methods}
    resolved: dict = {}  # each network's recipe as resolved on the first fold (with its notes)
    computed, computed_folds = 0.0, 0  # seconds spent computing (not reading back), for the time-left line
    for f, (tr, te) in enumerate(splits):
        fold_computed = computed
        pre = None
        for m in methods:
            record = store.get(f, m) if store is not None else None
            if record is None:
                if pre is None:
                    pre = Preprocessor.fit(X[tr], Y[tr], quantile=recipe.quantile)
                    Xtr, Xte = pre.transform_x(X[tr]), pre.transform_x(X[te])
                    Ytr, Yte = pre.transform_y(Y[tr]), pre.transform_y(Y[te])
                t0 = time.perf_counter()
                detail: dict = {}
                resolved_recipe = None
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
                    resolved_recipe = model.recipe.to_dict()
                else:
                    pred = GGAN_METHODS[m].function()(Xtr, Ytr, Xte, seed=seed + f, info=detail)
                g = per_gene_metrics(Yte, pred, targets)
                record = FoldResult(f, m, time.perf_counter() - t0, detail, resolved_recipe, g)
                if store is not None:
                    store.put(record)
                computed += record.seconds
                where = ""
            else:
                where = "  (finished before: read back)"
            if f == 0 and record.resolved_recipe is not None:
                resolved[m] = record.resolved_recipe
            g = record.metrics
            seconds[m] += record.seconds
            info[m].append(record.detail)
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
                f"({record.seconds:.1f} s){'  ' + _detail_text(record.detail) if record.detail else ''}{where}",
                quiet,
            )
        computed_folds += computed > fold_computed
        if f + 1 < folds and computed - fold_computed > 1:
            left = computed / computed_folds * (folds - f - 1)
            log(f"fold {f + 1}/{folds} done; about {_duration(left)} left", quiet)
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
            "methods": list(methods),
            "skipped": {m: why for m, why in skipped.items()},
            "recipe": recipe.to_dict(),
            "resolved_recipes": resolved,
            "details": info,
            "resumed_results": store.reused if store is not None else 0,
        },
        Path(save_folds) if save_folds is not None else None,
    )


# ------------------------------------------------------------------------------- the default methods
# Estimated cost of one fold, in multiply-adds, of the methods whose cost grows faster than the data:
# a default comparison leaves out a baseline that would cost more than training GGAN itself.
def network_cost(n_train: int, n_landmarks: int, n_targets: int, *, recipe: GGANRecipe) -> float:
    """Multiply-adds of training the network of ``recipe`` (sized to ``n_train`` profiles) for its most
    epochs: ~6 per weight per profile per step (forward and backward), generator and discriminator,
    twice with the refit."""
    from gengen.ggan.defaults import resolve_ggan_recipe

    r = resolve_ggan_recipe(recipe, n_train)
    n_fit = n_train - (max(1, int(round(n_train * r.val_fraction))) if r.val_fraction > 0 else 0)
    steps = r.epochs * math.ceil(n_fit / r.batch_size)
    p, t, h, d = n_landmarks, n_targets, r.hidden, r.d_hidden
    generator = p * h + (r.layers - 1) * h * h + h * t + (p * t if r.linear_skip else 0)
    critic = (p + t) * d + d * (d // 2) if r.loss == "gan" else 0
    return 6.0 * steps * r.batch_size * (generator + critic) * (2 if r.refit else 1)


def lasso_cost(n_train: int, n_landmarks: int, n_targets: int) -> float:
    """Multiply-adds of :func:`gengen.ggan.baselines.lasso`: ~20 passes of coordinate descent per target
    (measured: 4.6 rounds of two full passes, on bladderbatch), on up to 1,000 targets for each of the
    7 α of the search, plus the QR reduction above ``n_landmarks`` profiles."""
    m = min(n_train, n_landmarks)
    reduce = 2.0 * n_train * n_landmarks * n_targets if n_train > n_landmarks else 0.0
    return 20.0 * m * n_landmarks * (n_targets + 7 * min(n_targets, 1000)) + reduce


def knn_cost(n_train: int, n_landmarks: int, n_targets: int) -> float:
    """Multiply-adds of :func:`gengen.ggan.baselines.knn`: all training-profile distances (its
    leave-one-out choice of k) and the running neighbour sums."""
    return float(n_train) ** 2 * n_landmarks + 30.0 * n_train * n_targets


BASELINE_COSTS: dict[str, Callable[[int, int, int], float]] = {"lasso": lasso_cost, "knn": knn_cost}


def default_methods(n_train: int, n_landmarks: int, n_targets: int,
                    *, recipe: GGANRecipe | None = None) -> tuple[tuple[str, ...], dict[str, str]]:
    """The default comparison for a reference of this size, and what it leaves out and why.

    Every method in the default selection, except a baseline whose estimated cost per fold
    (``BASELINE_COSTS``) exceeds that of training GGAN itself (:func:`network_cost`): such a
    baseline would make the comparison about itself. ``--methods`` still runs any method.

    Parameters
    ----------
    n_train : training profiles per fold (the smallest fold).
    n_landmarks : landmark genes.
    n_targets : target genes.
    recipe : GGAN's recipe (default :class:`GGANRecipe`).

    Returns
    -------
    (method names, {skipped method: reason}).
    """
    chosen = list(GGAN_METHODS.names(default_only=True))
    skipped: dict[str, str] = {}
    if "ggan" not in chosen:
        return tuple(chosen), skipped
    budget = network_cost(n_train, n_landmarks, n_targets, recipe=recipe or GGANRecipe())
    for m in list(chosen):
        cost = BASELINE_COSTS.get(m)
        if cost is None:
            continue
        c = cost(n_train, n_landmarks, n_targets)
        if c > budget:
            chosen.remove(m)
            skipped[m] = (
                f"~{c:.1e} multiply-adds per fold for {n_train:,} training profiles, {n_landmarks:,} landmarks "
                f"and {n_targets:,} targets, more than training GGAN itself (~{budget:.1e}); "
                f"--methods {','.join([*chosen, m])} runs it anyway"
            )
    return tuple(chosen), skipped


# ------------------------------------------------------------------------------------ finished folds
@dataclass
class FoldResult:
    """One method's result on one fold: per-target metrics, seconds, what it chose."""

    fold: int  # 0-based
    method: str
    seconds: float
    detail: dict
    resolved_recipe: dict | None
    metrics: pd.DataFrame  # per target: mae, ccc, pearson (index: gene)


FOLD_FORMAT = "gengen ggan-eval fold result 1"


class FoldResults:
    """The folder of finished ``(fold, method)`` results of one comparison (``fold<k>-<method>.npz``).

    Each file holds the per-target metrics (float64, so read back they give the same tables to the
    last bit) and a JSON header naming the comparison (a hash of the data, targets and splits) and
    the method's settings, so a resumed run uses only results of the same comparison. Files are
    written through a temporary name, synced and renamed: a kill leaves whole files or none.
    """

    def __init__(self, folder: str | os.PathLike, run_key: str, targets: list[str]):
        self.folder = Path(folder)
        self.run_key = run_key
        self.targets = [str(t) for t in targets]  # the metrics' rows (part of the run key: not stored)
        self.method_keys: dict[str, str] = {}
        self.found: dict[tuple[int, str], FoldResult] = {}
        self.reused = 0

    def path(self, fold: int, method: str) -> Path:
        return self.folder / f"fold{fold + 1}-{method}.npz"

    def _existing(self) -> list[Path]:
        return sorted(self.folder.glob("fold*-*.npz")) if self.folder.is_dir() else []

    def open(self, resume: bool, method_keys: dict[str, str], quiet: bool) -> None:
        """Resuming: read and check the finished results; else remove earlier ones (saying so)."""
        self.method_keys = method_keys
        existing = self._existing()
        if not resume:
            if existing:
                log(f"note: {str(self.folder)!r} holds {len(existing)} finished fold result(s) of an earlier "
                    "ggan-eval; starting over (--resume would continue it).", quiet)
                for path in existing:
                    path.unlink(missing_ok=True)
            return
        if not existing:
            raise GengenError(
                f"nothing to resume: {str(self.folder)!r} holds no finished folds of ggan-eval; run without --resume."
            )
        other = 0
        for path in existing:
            header, metrics = _read_fold_file(path, self.targets)
            if header.get("run") != self.run_key:
                other += 1
                continue
            m = header["method"]
            if m not in method_keys:
                continue  # a method not asked for this time: kept on disk, not used
            if header.get("method_key") != method_keys[m]:
                raise GengenError(
                    f"the finished {GGAN_METHODS.label(m)} folds in {str(self.folder)!r} were run with other "
                    f"settings; give the same options as that run, or run without --resume to start over."
                )
            f = int(header["fold"]) - 1
            self.found[(f, m)] = FoldResult(f, m, float(header["seconds"]), header.get("detail") or {},
                                            header.get("resolved_recipe"), metrics)
        if other and not self.found:
            raise GengenError(
                f"the finished folds in {str(self.folder)!r} belong to another comparison (other data, targets, "
                "folds, seed or groups); run without --resume to start over, or choose another -o."
            )
        log(f"resuming: {len(self.found)} finished fold result(s) read back from {str(self.folder)!r}", quiet)

    def get(self, fold: int, method: str) -> FoldResult | None:
        record = self.found.get((fold, method))
        if record is not None:
            self.reused += 1
        return record

    def put(self, record: FoldResult) -> None:
        """Write one finished result: temporary file, fsync, rename, fsync of the folder."""
        import io
        import json

        from gengen.runtime import atomic_path

        header = {
            "format": FOLD_FORMAT,
            "run": self.run_key,
            "method": record.method,
            "method_key": self.method_keys[record.method],
            "fold": record.fold + 1,
            "seconds": record.seconds,
            "detail": record.detail,
            "resolved_recipe": record.resolved_recipe,
        }
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            header=np.array(json.dumps(header, default=_json_value)),
            **{k: record.metrics[k].to_numpy(dtype=np.float64) for k in METRICS},
        )
        path = self.path(record.fold, record.method)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(buffer.getvalue())
                fh.flush()
                os.fsync(fh.fileno())
        try:
            fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)


def _read_fold_file(path: Path, targets: list[str]) -> tuple[dict, pd.DataFrame]:
    """(header, per-target metrics) of a fold result; a damaged or foreign file is one line."""
    import json
    import zipfile

    import pandas as pd

    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["header"]))
            columns = {k: z[k] for k in METRICS}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise GengenError(f"cannot read the fold result {str(path)!r} ({exc}); remove it, or run without --resume.") from None
    if not isinstance(header, dict) or header.get("format") != FOLD_FORMAT:
        raise GengenError(f"{str(path)!r} is not a ggan-eval fold result; remove it, or run without --resume.")
    if header.get("run") is not None and any(len(v) != len(targets) for v in columns.values()):
        header = {**header, "run": None}  # another comparison's (other targets): counted as such
        return header, pd.DataFrame()
    return header, pd.DataFrame(columns, index=pd.Index(list(targets), name="gene"))


def _run_key(X: np.ndarray, Y: np.ndarray, targets, same: np.ndarray, splits) -> str:
    """What makes two comparisons the same: the arrays, the target names and the test folds."""
    import hashlib

    h = hashlib.sha256()
    for a in (X, Y):
        a = np.ascontiguousarray(a, dtype=np.float32)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    h.update("\0".join(map(str, targets)).encode())
    h.update(np.packbits(same).tobytes())
    for _, te in splits:
        h.update(np.asarray(te, dtype=np.int64).tobytes() + b"|")
    return h.hexdigest()


def _method_key(method: str, recipe: GGANRecipe | None) -> str:
    """A method's settings: a network's recipe (less the per-fold seed and notes); a baseline's function."""
    import hashlib
    import json

    if recipe is not None:
        spec = {k: v for k, v in recipe.to_dict().items() if k not in ("seed", "notes")}
    else:
        run = GGAN_METHODS[method].run
        spec = run if isinstance(run, str) else f"{getattr(run, '__module__', '')}:{getattr(run, '__qualname__', repr(run))}"
    return hashlib.sha256(json.dumps({"method": method, "spec": spec}, sort_keys=True, default=str).encode()).hexdigest()


def _json_value(v):
    if isinstance(v, np.generic):
        return v.item()
    return str(v)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


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
