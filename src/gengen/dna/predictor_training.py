"""Training the CNN regressor of :mod:`gengen.dna.predictors` on labelled sequences (``dna-train-predictor``).

Labels are read by id from a CSV/TSV (:func:`read_labels`) and transformed (PBM intensities are
heavy-tailed: log by default); a seeded split holds out ``val_fraction`` for the reported Pearson r
and a further ``stop_fraction`` of the training sequences picks the epoch whose weights are kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from gengen.dna.baselines import kmer_ridge_baseline
from gengen.dna.predictors import PIPELINE, CNNPredictor, load_predictor, predict  # noqa: F401 (old path)
from gengen.errors import GengenError
from gengen.runtime import Progress, resolve_device, seed_everything

if TYPE_CHECKING:
    import pandas as pd


TRANSFORMS = ("log", "rank", "none")


def transform_labels(y: np.ndarray, how: str) -> np.ndarray:
    """PBM intensities are heavy-tailed: ``log`` = log(y - min + 1), ``rank`` = rank / N, ``none``."""
    y = np.asarray(y, dtype=np.float64)
    if how == "log":
        return np.log(y - y.min() + 1.0)
    if how == "rank":
        from scipy.stats import rankdata

        return rankdata(y) / len(y)
    if how == "none":
        return y
    raise GengenError(f"--transform must be one of {', '.join(TRANSFORMS)}, got {how!r}.")


@dataclass
class PredictorRecipe:
    """Training settings for :class:`CNNPredictor`; defaults suit ~40k PBM probes on a CPU."""

    channels: int = 64
    width: int = 11
    hidden: int = 64
    epochs: int = 8
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 1e-5
    val_fraction: float = 0.1
    # share of the training sequences that picks the best epoch, so the reported held-out r (on the
    # val_fraction split) is not flattered by the choice
    stop_fraction: float = 0.1
    transform: str = "log"
    seed: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class TrainedPredictor:
    """A fitted CNN with its held-out metrics and history."""

    model: CNNPredictor
    recipe: PredictorRecipe
    length: int
    metrics: dict
    history: pd.DataFrame

    def report(self) -> str:
        """One line: held-out Pearson r, the epoch kept, the 6-mer ridge baseline, time."""
        m = self.metrics
        line = f"held-out Pearson r {m['val_pearson']:.4f} ({m['n_val']} sequences, {m['transform']} labels"
        line += f"; weights of epoch {m['best_epoch']}, chosen on {m['n_stop']} other sequences)" if m.get("n_stop") else ")"
        if "val_pearson_6mer_ridge" in m:
            line += f"; 6-mer ridge baseline r {m['val_pearson_6mer_ridge']:.4f}"
        return line + f"; {m['train_seconds']:.1f} s on {m['device']}"

    def save(self, directory) -> Path:
        """Write the predictor with its length, recipe, metrics and history (:meth:`CNNPredictor.save`)."""
        m = self.model
        m.length, m.recipe, m.metrics, m.history = self.length, dict(vars(self.recipe)), self.metrics, self.history
        return m.save(directory)


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a = a.double() - a.double().mean()
    b = b.double() - b.double().mean()
    den = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else float("nan")


def train_predictor(
    codes: np.ndarray,
    labels: np.ndarray,
    recipe: PredictorRecipe | None = None,
    *,
    device: str = "auto",
    quiet: bool = True,
    baseline: bool = True,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> TrainedPredictor:
    """Fit a :class:`CNNPredictor` on ``(N, L)`` codes and labels; report held-out Pearson r.

    The held-out set is a seeded ``val_fraction`` split, also used to score a 6-mer ridge baseline
    (``baseline=True``) so the CNN's figure has a reference. A further ``stop_fraction`` of the
    training sequences picks the epoch whose weights are kept (CNNs on PBM data overfit after a few
    epochs); the held-out set never takes part in that choice. ``on_epoch(epoch, row)`` is called
    after each epoch (1-based) with a copy of its history row (``stop_pearson`` is the early-stopping
    r); an exception it raises (a sweep's pruning signal) stops training and propagates unchanged.

    Parameters
    ----------
    codes : sequences ``(N, L)``, uint8 codes 0-3.
    labels : one number per sequence (e.g. PBM intensity).
    recipe : the settings (default :class:`PredictorRecipe`).
    device : ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    quiet : no progress or status lines (the default for library calls).
    baseline : also score the 6-mer ridge baseline on the held-out set.
    on_epoch : called as ``on_epoch(epoch, history_row)``.

    Returns
    -------
    A :class:`TrainedPredictor` (``.model``, ``.metrics``, ``.save(path)``).
    """
    import pandas as pd

    from gengen.io.sequences import code_keys, codes_to_one_hot, grouped_parts

    r = recipe or PredictorRecipe()
    codes = np.asarray(codes)
    y = transform_labels(np.asarray(labels, dtype=np.float64), r.transform)
    if len(codes) != len(y):
        raise GengenError(f"{len(codes)} sequences but {len(y)} labels.")
    if len(codes) < 20:
        raise GengenError(f"need at least 20 labelled sequences to train and validate, got {len(codes)}.")
    for name in ("epochs", "batch_size", "channels", "hidden", "width"):
        if getattr(r, name) < 1:
            raise GengenError(f"--{name.replace('_', '-')} must be positive, got {getattr(r, name)}.")
    if not 0 < r.val_fraction < 1 or not 0 <= r.stop_fraction < 1:
        raise GengenError(
            f"--val-fraction must be in (0, 1) and the stopping fraction in [0, 1); got "
            f"{r.val_fraction} and {r.stop_fraction}."
        )
    if r.learning_rate <= 0:
        raise GengenError(f"--lr must be positive, got {r.learning_rate}.")
    if not np.isfinite(y).all():
        raise GengenError("labels must be finite numbers.")
    if not np.ptp(y) > 0:
        raise GengenError(f"every label is the same ({y[0]:g} after the {r.transform!r} transform): there is nothing "
                          "to learn; check the scores file.")
    seed_everything(r.seed)
    dev = resolve_device(device)
    rng = np.random.default_rng(r.seed)
    perm = rng.permutation(len(codes))
    n_val = max(5, int(round(r.val_fraction * len(codes))))
    n_stop = max(5, int(round(r.stop_fraction * len(codes)))) if r.stop_fraction > 0 else 0
    if len(codes) - n_val - n_stop < 10:
        raise GengenError(
            f"{len(codes)} sequences leave {max(0, len(codes) - n_val - n_stop)} for training after the held-out "
            f"({n_val}) and early-stopping ({n_stop}) splits; lower the validation / stopping fractions or add data."
        )
    # identical probes (either strand) share a part, so none is both trained on and validated on
    val_idx, stop_idx, tr_idx = grouped_parts(perm, code_keys(codes), (n_val, n_stop))
    n_val, n_stop = len(val_idx), len(stop_idx)
    x_all = codes_to_one_hot(codes, device=dev)
    y_all = torch.as_tensor(y, dtype=torch.float32, device=dev)
    model = CNNPredictor(r.channels, r.width, r.hidden).to(dev)
    model.y_mean.fill_(float(y[tr_idx].mean()))
    model.y_std.fill_(float(y[tr_idx].std() or 1.0))
    opt = torch.optim.AdamW(model.parameters(), lr=r.learning_rate, weight_decay=r.weight_decay)
    tr = torch.as_tensor(tr_idx, device=dev)
    steps_per_epoch = max(1, math.ceil(len(tr_idx) / r.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=r.learning_rate, total_steps=r.epochs * steps_per_epoch
    )
    gen = torch.Generator(device="cpu").manual_seed(r.seed)
    rows = []
    best: tuple[int, float, dict] | None = None  # (epoch, early-stopping r, weights)
    t0 = time.perf_counter()
    with Progress(r.epochs * steps_per_epoch, "train predictor", quiet) as bar:
        for epoch in range(1, r.epochs + 1):
            model.train()
            order = tr[torch.randperm(len(tr), generator=gen).to(dev)]
            total = torch.zeros((), device=dev)
            for i in range(steps_per_epoch):
                b = order[i * r.batch_size : (i + 1) * r.batch_size]
                pred = (model(x_all[b]) - model.y_mean) / model.y_std
                loss = torch.nn.functional.mse_loss(pred, (y_all[b] - model.y_mean) / model.y_std)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.detach()
                bar.update(1)
            model.eval()
            row = {"epoch": epoch, "train_loss": float(total) / steps_per_epoch}
            if n_stop:
                row["stop_pearson"] = _pearson(predict(model, x_all[stop_idx], device=dev), y_all[stop_idx].cpu())
                r_stop = row["stop_pearson"] if math.isfinite(row["stop_pearson"]) else -math.inf  # constant output
                if best is None or r_stop > best[1]:
                    best = (epoch, r_stop, {k: v.detach().clone() for k, v in model.state_dict().items()})
            row["val_pearson"] = _pearson(predict(model, x_all[val_idx], device=dev), y_all[val_idx].cpu())
            rows.append(row)
            bar.update(0, epoch=epoch, val_r=row["val_pearson"])
            if on_epoch is not None:
                on_epoch(epoch, dict(row))
    if best is not None and best[0] != r.epochs:
        model.load_state_dict(best[2])
    model.eval()
    kept = best[0] if best is not None else r.epochs
    metrics = {
        "val_pearson": rows[kept - 1]["val_pearson"],
        "best_epoch": kept,
        "n_train": int(len(tr_idx)),
        "n_stop": int(n_stop),
        "n_val": int(n_val),
        "transform": r.transform,
        "train_seconds": time.perf_counter() - t0,
        "device": str(dev),
    }
    if baseline:
        metrics["val_pearson_6mer_ridge"] = kmer_ridge_baseline(codes, y, tr_idx, val_idx, k=6)
    return TrainedPredictor(model, r, int(codes.shape[1]), metrics, pd.DataFrame(rows))


def read_labels(path, ids: list[str]) -> np.ndarray:
    """Labels for ``ids`` from a CSV/TSV with an id column and a numeric column (``id,signal``)."""
    import pandas as pd

    from gengen.io.expression import pandas_sep, table_separator
    from gengen.io.files import check_input, head_bytes, is_binary, open_bytes

    p = check_input(path, "scores file")
    if len(set(ids)) != len(ids):
        from gengen.errors import preview

        seen: set[str] = set()
        dup = list(dict.fromkeys(i for i in ids if i in seen or seen.add(i)))
        raise GengenError(
            f"{len(dup)} sequence id(s) appear more than once in the FASTA: {preview(dup)}; each record needs its "
            f"own id to be matched with a score in {str(p)!r}."
        )
    if is_binary(head_bytes(p, what="scores file")):
        raise GengenError(f"scores file {str(p)!r} is binary; give a CSV/TSV with a header such as 'id,signal'.")
    try:
        with open_bytes(p, "scores file") as fh:  # delimiter sniffed: a TSV saved as .csv still reads
            df = pd.read_csv(fh, sep=pandas_sep(table_separator(p)))
    except GengenError:
        raise
    except Exception as exc:
        raise GengenError(f"cannot read scores file {str(p)!r}: {str(exc).splitlines()[0][:160]}.") from None
    if df.shape[1] < 2:
        raise GengenError(
            f"{str(p)!r} needs two columns, sequence id and score, comma- or tab-separated (e.g. 'id,signal')."
        )
    id_col = df.columns[0]
    num = [c for c in df.columns[1:] if pd.api.types.is_numeric_dtype(df[c])]
    if not num:
        raise GengenError(f"{str(p)!r} has no numeric score column.")
    df[id_col] = df[id_col].astype(str)
    clash = df.groupby(id_col)[num[0]].nunique(dropna=False)
    if (clash > 1).any():
        from gengen.errors import preview

        bad = clash.index[clash > 1].tolist()
        raise GengenError(
            f"{len(bad)} id(s) appear more than once in {str(p)!r} with different scores: {preview(bad)}; "
            "keep one row per sequence."
        )
    s = df.drop_duplicates(id_col).set_index(id_col)[num[0]]
    missing = [i for i in ids if i not in s.index]
    if missing:
        from gengen.errors import preview

        hint = ""
        try:
            float(str(df.columns[1]))
            hint = " (its first line looks like data: the file needs a header line such as 'id,signal')"
        except ValueError:
            pass
        raise GengenError(
            f"{len(missing)} sequence id(s) have no score in {str(p)!r}{hint}: {preview(missing)}."
        )
    y = s.loc[ids].to_numpy(dtype=np.float64)
    if not np.isfinite(y).all():
        raise GengenError(f"{str(p)!r}: scores must be finite numbers.")
    return y
