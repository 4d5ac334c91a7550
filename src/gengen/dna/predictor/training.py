"""Training the CNN regressor of :mod:`gengen.dna.predictor.predictors` on labelled sequences (``dna-train-predictor``).

Labels are read by id from a CSV/TSV (:func:`read_labels`) and transformed (PBM intensities are
heavy-tailed: log by default); a seeded split holds out ``val_fraction`` for the reported Spearman rho
and Pearson r (beside a 6-mer ridge baseline's on the same split) and a further ``stop_fraction`` of
the training sequences picks the epoch whose weights are kept (by Spearman rho). The ensemble's
members are trained side by side on the same batches, each on its own squared error.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from gengen.dna.predictor.baselines import kmer_ridge_baseline
from gengen.dna.predictor.predictors import PIPELINE, CNNPredictor, predict
from gengen.errors import GengenError
from gengen.recipes import PredictorRecipe
from gengen.runtime import Progress, log, resolve_device, seed_everything

if TYPE_CHECKING:
    import pandas as pd

    from gengen.training_state import Checkpointing


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
class TrainedPredictor:
    """A fitted CNN with its held-out metrics and history (``training``: the resumable run's section)."""

    model: CNNPredictor
    recipe: PredictorRecipe
    length: int
    metrics: dict
    history: pd.DataFrame
    training: dict | None = None

    def report(self) -> str:
        """One line: held-out Spearman rho and Pearson r, each beside the 6-mer ridge baseline's on the
        same split, the epoch kept, time."""
        m = self.metrics
        line = "held-out "
        if "val_spearman" in m:  # (a run of a gengen before Spearman was recorded has Pearson r only)
            line += f"Spearman rho {m['val_spearman']:.4f}"
            if "val_spearman_6mer_ridge" in m:
                line += f" (6-mer ridge {m['val_spearman_6mer_ridge']:.4f}, {m['val_spearman'] - m['val_spearman_6mer_ridge']:+.4f})"
            line += ", "
        line += f"Pearson r {m['val_pearson']:.4f}"
        if "val_pearson_6mer_ridge" in m:
            line += f" (6-mer ridge {m['val_pearson_6mer_ridge']:.4f})"
        line += f" on {m['n_val']} held-out sequences ({m['transform']} labels"
        line += (f"; weights of epoch {m['best_epoch']}, chosen on {m['n_stop']} other sequences)"
                 if m.get("n_stop") else ")")
        members = int((self.recipe.members if self.recipe else 1) or 1)
        if members > 1:
            line += f"; {members} networks averaged"
        return line + f"; {m['train_seconds']:.1f} s on {m['device']}"

    def save(self, directory) -> Path:
        """Write the predictor with its length, recipe, metrics, history and training section
        (:meth:`CNNPredictor.save`); returns the folder."""
        _describe(self.model, self.recipe, self.length, self.metrics, self.history, self.training)
        return self.model.save(directory)


def _describe(model: CNNPredictor, recipe: PredictorRecipe, length: int, metrics: dict, history, training) -> None:
    """What a saved predictor's config.json says beside the weights (one place for the final and the
    mid-training folders)."""
    model.length, model.recipe, model.metrics = int(length), asdict(recipe), metrics
    model.history, model.training_record = history, training


def _load_trained(directory, device) -> TrainedPredictor:
    """A finished ``dna-train-predictor`` folder as a :class:`TrainedPredictor` (resuming a complete run)."""
    import pandas as pd

    model = CNNPredictor.load(directory, device=device)
    known = {k: v for k, v in (model.recipe or {}).items() if k in PredictorRecipe.__dataclass_fields__}
    return TrainedPredictor(model, PredictorRecipe(**known), int(model.length), dict(model.metrics),
                            model.history if model.history is not None else pd.DataFrame(), model.training_record)


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a = a.double() - a.double().mean()
    b = b.double() - b.double().mean()
    den = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else float("nan")


def _correlations(model, x: torch.Tensor, y: torch.Tensor, dev) -> tuple[float, float]:
    """(Pearson r, Spearman rho) of the model's predictions for ``x`` with the labels ``y``."""
    from scipy.stats import rankdata

    pred, y = predict(model, x, device=dev), y.cpu()
    if not len(pred):
        return float("nan"), float("nan")
    ranks = [torch.as_tensor(rankdata(v.double().numpy())) for v in (pred, y)]  # ties share their mean rank
    return _pearson(pred, y), _pearson(*ranks)


def train_predictor(
    codes: np.ndarray,
    labels: np.ndarray,
    recipe: PredictorRecipe | None = None,
    *,
    device: str = "auto",
    quiet: bool = True,
    baseline: bool = True,
    on_epoch: Callable[[int, dict], None] | None = None,
    checkpoint: Checkpointing | None = None,
) -> TrainedPredictor:
    """Fit a :class:`CNNPredictor` on ``(N, L)`` codes and labels; report held-out Spearman rho and Pearson r.

    The held-out set is a seeded ``val_fraction`` split, also used to score a 6-mer ridge baseline
    (``baseline=True``) so the CNN's figure has a reference. A further ``stop_fraction`` of the
    training sequences picks the epoch whose weights are kept, the one where the ensemble's Spearman
    rho there is highest (CNNs on PBM data overfit after a few epochs); the held-out set never takes
    part in that choice. ``on_epoch(epoch, row)`` is called after each epoch (1-based) with a copy of
    its history row (``stop_spearman`` / ``stop_pearson`` on the early-stopping split, ``val_*`` on the
    held-out one); an exception it raises (a sweep's pruning signal) stops training and propagates
    unchanged.

    ``checkpoint`` (:class:`gengen.training_state.Checkpointing`) makes the run resumable: its folder
    holds a loadable predictor (the best weights so far) plus the whole training state (weights,
    AdamW and one-cycle schedule, RNG streams, the early-stopping best), saved after every 10 epochs
    and at least once a minute by default, mid-epoch when an epoch is longer, and the finished model
    at the end. With ``resume=True`` the run continues the unfinished one saved there (``recipe=None``:
    with its settings); the result is bit-identical to an uninterrupted run on the CPU at the same
    thread count.

    Parameters
    ----------
    codes : sequences ``(N, L)``, uint8 codes 0-3.
    labels : one number per sequence (e.g. PBM intensity).
    recipe : the settings (default :class:`PredictorRecipe`).
    device : ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    quiet : no progress or status lines (the default for library calls).
    baseline : also score the 6-mer ridge baseline on the held-out set.
    on_epoch : called as ``on_epoch(epoch, history_row)``.
    checkpoint : makes the run resumable (see above).

    Returns
    -------
    A :class:`TrainedPredictor` (``.model``, ``.metrics``, ``.save(path)``).
    """
    if checkpoint is None:
        return _train(codes, labels, recipe, device, quiet, baseline, on_epoch, None)
    from gengen.checkpoint import overwrite_check
    from gengen.runtime import plan_outputs

    with plan_outputs(models={checkpoint.directory: overwrite_check(PIPELINE)}):  # locked from the start (no-op in the CLI)
        return _train(codes, labels, recipe, device, quiet, baseline, on_epoch, checkpoint)


def _check_recipe(r: PredictorRecipe) -> None:
    for name in ("epochs", "batch_size", "channels", "hidden", "width", "members"):
        if getattr(r, name) < 1:
            raise GengenError(f"--{name.replace('_', '-')} must be positive, got {getattr(r, name)}.")
    if not all(isinstance(d, int) and d >= 1 for d in r.dilations):
        raise GengenError(f"dilations must be positive integers, got {list(r.dilations)}.")
    if not 0 < r.val_fraction < 1 or not 0 <= r.stop_fraction < 1:
        raise GengenError(
            f"--val-fraction must be in (0, 1) and the stopping fraction in [0, 1); got "
            f"{r.val_fraction} and {r.stop_fraction}."
        )
    if r.learning_rate <= 0:
        raise GengenError(f"--lr must be positive, got {r.learning_rate}.")


def default_choices(recipe: PredictorRecipe) -> list[str]:
    """Why the network has the shape it has: one note for each default architecture choice the recipe
    keeps (``notes`` in config.json, printed as ``recipe: ...``).

    The figures are Spearman rho on the early-stopping split (never the held-out one) of the three
    shared PBM factors, Cebpa, Etv5 and Gata4, from the comparison docs/dna.md lists.

    Parameters
    ----------
    recipe : the run's settings.

    Returns
    -------
    The notes, in the order of the fields they explain.
    """
    default, notes = PredictorRecipe(), []
    if recipe.members == default.members:
        notes.append(f"{recipe.members} networks averaged (--members): independently initialised networks' errors "
                     "partly cancel (+0.013 to +0.018 Spearman rho over one network on PBM probes); --members 1 "
                     "trains about that many times faster")
    if recipe.flanks == default.flanks:
        notes.append("learned flanks (--flanks): an end base may count differently at either end, as at a PBM "
                     "probe's primer side and its free end (+0.02 to +0.18 Spearman rho over zero padding on PBM "
                     "probes); --no-flanks scores a sequence and its reverse complement alike")
    if tuple(recipe.dilations) == default.dilations and recipe.width == default.width:
        span = recipe.width + sum(4 * d for d in recipe.dilations)
        notes.append(f"residual convolutions at dilations {', '.join(map(str, recipe.dilations))}: each position "
                     f"reads {span} nt, a whole 36-nt PBM probe (+0.011 and +0.035 Spearman rho over dilation 2 "
                     "alone on Etv5 and Gata4 probes, none on Cebpa)")
    return notes


def _train(codes, labels, recipe, device, quiet, baseline, on_epoch, checkpoint) -> TrainedPredictor:
    import pandas as pd

    from gengen.io.sequences import code_keys, codes_to_one_hot, grouped_parts
    from gengen.training_state import data_fingerprint, open_training

    ck = open_training(checkpoint, PIPELINE, quiet)
    codes = np.asarray(codes)
    raw = np.asarray(labels, dtype=np.float64)
    if ck is not None:
        ck.check_data(data_fingerprint(codes, raw))
        if ck.resuming and recipe is None and ck.saved_recipe() is not None:
            saved = ck.saved_recipe()
            recipe = PredictorRecipe(**{k: v for k, v in saved.items() if k in PredictorRecipe.__dataclass_fields__})
    r = recipe or PredictorRecipe()
    y = transform_labels(raw, r.transform)
    if len(codes) != len(y):
        raise GengenError(f"{len(codes)} sequences but {len(y)} labels.")
    if len(codes) < 20:
        raise GengenError(f"need at least 20 labelled sequences to train and validate, got {len(codes)}.")
    _check_recipe(r)
    if not np.isfinite(y).all():
        raise GengenError("labels must be finite numbers.")
    if not np.ptp(y) > 0:
        raise GengenError(f"every label is the same ({y[0]:g} after the {r.transform!r} transform): there is nothing "
                          "to learn; check the scores file.")
    r = replace(r, notes=default_choices(r))  # recomputed, never appended: a resumed run's notes are the same
    if ck is not None:
        ck.check_recipe({**asdict(r), "notes": []})
        ck.recipe_given = asdict(r)
        ck.ready(r.epochs)
        if ck.finished_already(quiet):
            return _load_trained(ck.directory, device)
    for note in r.notes:
        log(f"recipe: {note}", quiet)
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
    keys = code_keys(codes)
    val_idx, stop_idx, tr_idx = grouped_parts(perm, keys, (n_val, n_stop))
    n_val, n_stop = len(val_idx), len(stop_idx)
    if len(tr_idx) < 10:  # a large group of copies fills the held-out part it starts in
        raise GengenError(
            f"only {len(np.unique(keys))} distinct sequences (either strand) among the {len(codes)}: copies stay in "
            f"one split part, which leaves {len(tr_idx)} for training; check the FASTA (the same sequence repeated?)."
        )
    x_all = codes_to_one_hot(codes, device=dev)
    y_all = torch.as_tensor(y, dtype=torch.float32, device=dev)
    model = CNNPredictor(r.channels, r.width, r.hidden, dilations=tuple(r.dilations), members=r.members,
                         flanks=r.flanks).to(dev)
    model.y_mean.fill_(float(y[tr_idx].mean()))
    model.y_std.fill_(float(y[tr_idx].std() or 1.0))
    if ck is not None:
        ck.write_model = _checkpoint_parts(model, r, int(codes.shape[1]), dev)
    split = _Split(x_all, y_all, torch.as_tensor(tr_idx, device=dev), stop_idx, val_idx)
    rows, best, seconds = _fit(model, split, r, dev, quiet, on_epoch, ck)
    if best is not None and best[0] != r.epochs:
        model.load_state_dict(best[2])
    model.eval()
    kept = best[0] if best is not None else r.epochs
    metrics = {
        "val_pearson": rows[kept - 1]["val_pearson"],
        "val_spearman": rows[kept - 1]["val_spearman"],
        "best_epoch": kept,
        "n_train": int(len(tr_idx)),
        "n_stop": int(n_stop),
        "n_val": int(n_val),
        "transform": r.transform,
        "train_seconds": seconds,
        "device": str(dev),
    }
    if baseline:
        pearson, spearman = kmer_ridge_baseline(codes, y, tr_idx, val_idx=val_idx, k=6, spearman=True)
        metrics["val_pearson_6mer_ridge"], metrics["val_spearman_6mer_ridge"] = pearson, spearman
    trained = TrainedPredictor(model, r, int(codes.shape[1]), metrics, pd.DataFrame(rows))
    if ck is not None:
        trained.training = ck.finished()
        trained.save(ck.directory)
    return trained


@dataclass
class _Split:
    """One-hot sequences and labels on the device, and the training / early-stopping / held-out rows."""

    x: torch.Tensor
    y: torch.Tensor
    train: torch.Tensor
    stop: np.ndarray
    val: np.ndarray


def _fit(model, split: _Split, r: PredictorRecipe, dev, quiet, on_epoch, checkpoint):
    """The epochs (resumed where ``checkpoint`` stopped); returns (history rows, best, seconds) where
    best is ``(epoch, early-stopping r, weights)`` or None without a stopping split."""
    from gengen.training_state import LoopState

    opt = torch.optim.AdamW(model.parameters(), lr=r.learning_rate, weight_decay=r.weight_decay)
    tr = split.train
    steps_per_epoch = max(1, math.ceil(len(tr) / r.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r.learning_rate, total_steps=r.epochs * steps_per_epoch)
    gen = torch.Generator(device="cpu").manual_seed(r.seed)
    rows: list[dict] = []
    best: tuple[int, float, dict] | None = None  # (epoch, early-stopping r, weights)
    state = LoopState({"cnn": model}, {"adamw": opt}, {"permutation": gen}, history=rows)
    state.values["scheduler"] = sched.state_dict()
    if checkpoint is not None and checkpoint.start(state, dev):
        sched.load_state_dict(state.values["scheduler"])
        if state.values.get("best_epoch"):
            weights = {k[5:]: v for k, v in state.tensors.items() if k.startswith("best.")}
            best = (int(state.values["best_epoch"]), float(state.values["best_r"]), weights)
    t0 = time.perf_counter()
    with Progress(r.epochs * steps_per_epoch, "train predictor", quiet) as bar:
        if state.epoch or state.batch:
            bar.update(state.epoch * steps_per_epoch + state.batch)  # resumed: the steps done before
        for epoch in range(state.epoch + 1, r.epochs + 1):
            model.train()
            state.begin_epoch()
            order = tr[torch.randperm(len(tr), generator=gen).to(dev)]
            total = state.running("total", torch.zeros((), device=dev))
            for i in range(state.batch, steps_per_epoch):  # (a resumed epoch skips the batches done)
                b = order[i * r.batch_size : (i + 1) * r.batch_size]
                pred = model.member_outputs(split.x[b])  # (members, batch): each member fits the labels
                target = ((split.y[b] - model.y_mean) / model.y_std).expand_as(pred)
                loss = torch.nn.functional.mse_loss(pred, target)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.detach()
                bar.update(1)
                if checkpoint is not None:
                    state.values["scheduler"] = sched.state_dict()
                    state.batch = i + 1
                    checkpoint.after_batch(state, dev)
            model.eval()
            row = {"epoch": epoch, "train_loss": float(total) / steps_per_epoch}
            if len(split.stop):
                row["stop_pearson"], row["stop_spearman"] = _correlations(model, split.x[split.stop],
                                                                          split.y[split.stop], dev)
                r_stop = row["stop_spearman"] if math.isfinite(row["stop_spearman"]) else -math.inf  # constant output
                if best is None or r_stop > best[1]:
                    best = (epoch, r_stop, {k: v.detach().clone() for k, v in model.state_dict().items()})
                    state.tensors.update({f"best.{k}": v for k, v in best[2].items()})
                    state.values.update(best_epoch=epoch, best_r=r_stop)
            row["val_pearson"], row["val_spearman"] = _correlations(model, split.x[split.val], split.y[split.val], dev)
            state.end_epoch(row)  # appends to rows
            bar.update(0, epoch=epoch, val_r=row["val_pearson"])
            if on_epoch is not None:
                on_epoch(epoch, dict(row))
            if checkpoint is not None:
                checkpoint.after_epoch(state, dev, last=epoch == r.epochs)
    return rows, best, state.seconds + time.perf_counter() - t0


def _checkpoint_parts(model: CNNPredictor, recipe: PredictorRecipe, length: int, dev):
    """The mid-training predictor a checkpoint folder holds: the best weights so far (else the
    current ones), the config and history.csv as the loop has them; no plot."""

    def parts(state) -> tuple[dict, dict, Callable[[Path], None]]:
        import pandas as pd

        best = {k[5:]: v for k, v in state.tensors.items() if k.startswith("best.")}
        history = pd.DataFrame(state.history)
        metrics = {"epochs_run": state.epoch, "best_epoch": state.values.get("best_epoch"), "device": str(dev)}

        def extras(tmp: Path) -> None:
            if len(history):
                history.to_csv(tmp / "history.csv", index=False)

        _describe(model, recipe, length, metrics, None, None)
        _, config, _ = model._save_parts()
        return best or model.state_dict(), config, extras

    return parts


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
