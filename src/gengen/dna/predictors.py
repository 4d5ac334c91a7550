"""Predictors that design optimises: a PWM scanner and a small CNN regressor.

Both are ``nn.Module``\\ s mapping one-hot ``(N, 4, L)`` to scores ``(N,)``, so any torch model with
that signature (e.g. a tangermeme/bpnet-lite model wrapped to return one number) also works.
:func:`report_scores` is the exact, reportable score; ``forward`` may be a smooth surrogate.
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
from torch import nn

from gengen.errors import GengenError
from gengen.runtime import Progress, resolve_device, seed_everything

if TYPE_CHECKING:
    import pandas as pd

    from gengen.io.motifs import PWM

PIPELINE = "dna-predictor"


class PWMPredictor(nn.Module):
    """Best PWM log-odds match over positions and both strands.

    ``forward`` returns the *smooth* maximum ``tau * logsumexp(s / tau)`` over all windows and both
    strands (differentiable everywhere, and at most ``tau * log(2 * windows)`` above the exact
    maximum) so that design gets gradient from every window; :meth:`exact` returns the true maximum
    with the winning position and strand, which is what gengen reports.
    """

    def __init__(self, pwm: PWM, tau: float = 0.5):
        super().__init__()
        self.pwm = pwm
        self.tau = float(tau)
        w = torch.as_tensor(pwm.log_odds, dtype=torch.float32)  # (4, W)
        # Reverse complement of a window == forward strand of the flipped matrix with complemented rows.
        weight = torch.stack([w, w.flip(0).flip(1)])  # (2, 4, W)
        self.register_buffer("weight", weight)

    @property
    def width(self) -> int:
        return int(self.weight.shape[-1])

    def _banded(self, length: int, like: torch.Tensor) -> torch.Tensor:
        """``(4 L, 2 P)`` banded matrix whose column (strand, p) holds the PWM at window p.

        Scoring all windows as one GEMM is ~10-30x faster on CPU than ``conv1d`` with 2 output
        channels, whose backward (a transposed convolution) dominates design time otherwise.
        """
        key = (length, like.device, like.dtype)
        cache = self.__dict__.setdefault("_banded_cache", {})
        if key not in cache:
            w = self.weight.to(like.device, like.dtype)  # (2, 4, W)
            n_pos = length - self.width + 1
            m = torch.zeros(4, length, 2, n_pos, device=like.device, dtype=like.dtype)
            p = torch.arange(n_pos, device=like.device)
            for j in range(self.width):
                m[:, p + j, :, p] = w[:, :, j].T[None].expand(n_pos, 4, 2)
            cache.clear()
            cache[key] = m.reshape(4 * length, 2 * n_pos)
        return cache[key]

    def window_scores(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 2, L - W + 1)`` scores: forward strand, reverse strand."""
        length = int(x.shape[-1])
        if length < self.width:
            self.pwm.check_fits(length)
        m = self._banded(length, x)
        return (x.reshape(x.shape[0], -1) @ m).view(x.shape[0], 2, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.window_scores(x).flatten(1)
        if self.tau <= 0:
            return s.max(dim=1).values
        return self.tau * torch.logsumexp(s / self.tau, dim=1)

    @torch.no_grad()
    def exact(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Exact best score, its 0-based start position and strand (0 = +, 1 = -), each ``(N,)``."""
        s = self.window_scores(x)
        n_pos = s.shape[-1]
        best, idx = s.flatten(1).max(dim=1)
        return best, idx % n_pos, idx // n_pos


class CNNPredictor(nn.Module):
    """A small CNN regressor for labelled sequences (the paper's PBM predictor role).

    conv(4 -> C, width 11) - ReLU - conv(C -> C, width 5, dilation 2) - ReLU, then max and mean
    pooling over positions on both strands (the reverse complement shares weights), and a 2-layer
    head. Pooling makes it accept any length >= its receptive field.
    """

    def __init__(self, channels: int = 64, width: int = 11, hidden: int = 64):
        super().__init__()
        self.channels, self.width_, self.hidden = channels, width, hidden
        self.conv1 = nn.Conv1d(4, channels, width, padding=width // 2)
        self.conv2 = nn.Conv1d(channels, channels, 5, padding=4, dilation=2)
        self.head = nn.Sequential(nn.Linear(2 * channels, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.register_buffer("y_mean", torch.zeros(()))
        self.register_buffer("y_std", torch.ones(()))

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv1(x))
        h = torch.relu(self.conv2(h)) + h
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted label in the training target's units (after its transform)."""
        both = torch.cat([x, x.flip(1).flip(2)])  # forward + reverse complement
        h = self._features(both)
        n = x.shape[0]
        h = torch.maximum(h[:n], h[n:])
        pooled = torch.cat([h.amax(dim=2), h.mean(dim=2)], dim=1)
        return self.head(pooled).squeeze(1) * self.y_std + self.y_mean

    def config(self) -> dict:
        return {"channels": self.channels, "width": self.width_, "hidden": self.hidden}


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 4096, device=None) -> torch.Tensor:
    """Batched ``model(x)`` without gradients; returns a CPU tensor ``(N,)``."""
    device = device or next(iter(model.buffers()), torch.empty(0)).device
    out = [model(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0)


@torch.no_grad()
def report_scores(model: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> dict[str, np.ndarray]:
    """The reportable score of one-hot sequences: exact PWM max with hit position/strand, or the model output."""
    dev = next(iter(model.buffers()), torch.empty(0)).device
    if isinstance(model, PWMPredictor):
        parts = [model.exact(x[i : i + batch_size].to(dev)) for i in range(0, len(x), batch_size)]
        score, pos, strand = (torch.cat([p[k] for p in parts]).cpu().numpy() for k in range(3))
        return {
            "score": score.astype(np.float64),
            "hit_start": pos.astype(np.int64),
            "hit_strand": strand.astype(np.int64),
        }
    return {"score": predict(model, x, batch_size, dev).numpy().astype(np.float64)}


def score_records(
    records: list[tuple[str, str]],
    pwm: PWM | None = None,
    model: nn.Module | None = None,
    ambiguous: str = "uniform",
) -> tuple[pd.DataFrame, list[str]]:
    """Score FASTA records of any lengths with a motif (best window, both strands) and/or a predictor.

    Returns a table in record order (id, length, gc, motif_score, fraction_of_max, hit_start 1-based,
    hit_strand, predictor_score) and notes for the user. Records that cannot be scored get NaN rather
    than stopping the whole file: shorter than the motif (or empty). ``ambiguous``: ``uniform`` scores
    N/IUPAC positions as 0.25 per base; ``skip`` scores only motif windows free of them (NaN when none
    is) and gives no predictor score to records that hold any; ``error`` refuses such records.
    """
    import pandas as pd

    from gengen.io.sequences import codes_to_one_hot, encode_string, gc_content

    if ambiguous not in ("uniform", "skip", "error"):
        raise GengenError(f"--ambiguous must be uniform, skip or error, got {ambiguous!r}.")
    if not records:
        raise GengenError("no sequences to score.")
    codes_list = []
    for name, seq in records:
        c = encode_string(seq, name)
        if ambiguous == "error" and (c == 4).any():
            raise GengenError(f"record {name!r} has ambiguous bases; use --ambiguous uniform or skip.")
        codes_list.append(c)
    by_len: dict[int, list[int]] = {}
    for i, c in enumerate(codes_list):
        by_len.setdefault(len(c), []).append(i)
    scorer = PWMPredictor(pwm) if pwm is not None else None
    notes: list[str] = []
    parts = []
    for length, idx in by_len.items():
        codes = np.stack([codes_list[i] for i in idx]) if length else np.zeros((len(idx), 0), np.uint8)
        has_n = (codes == 4).any(axis=1)
        cols: dict = {"id": [records[i][0] for i in idx], "length": length,
                      "gc": gc_content(codes) if length else np.full(len(idx), np.nan)}
        x = codes_to_one_hot(codes) if length else None
        if scorer is not None:
            score = np.full(len(idx), np.nan)
            start = np.full(len(idx), -1)
            strand = np.zeros(len(idx), dtype=np.int64)
            if length >= scorer.width:
                with torch.no_grad():
                    s = scorer.window_scores(x)  # (n, 2, positions)
                if ambiguous == "skip":
                    n_in = np.concatenate([np.zeros((len(idx), 1)), np.cumsum(codes == 4, axis=1)], axis=1)
                    dirty = (n_in[:, scorer.width :] - n_in[:, : -scorer.width]) > 0  # window holds an N
                    s = s.masked_fill(torch.as_tensor(dirty)[:, None, :], float("-inf"))
                best, flat = s.flatten(1).max(dim=1)
                ok = torch.isfinite(best).numpy()
                score[ok] = best.numpy()[ok]
                start[ok] = (flat % s.shape[-1]).numpy()[ok]
                strand[ok] = (flat // s.shape[-1]).numpy()[ok]
            cols["motif_score"] = score
            cols["fraction_of_max"] = score / pwm.max_score
            cols["hit_start"] = pd.array(np.where(start >= 0, start + 1, 0), dtype="Int64")
            cols["hit_start"][start < 0] = pd.NA  # no hit: empty in the TSV, not position 0
            cols["hit_strand"] = np.where(start < 0, "", np.where(strand == 0, "+", "-"))
        if model is not None:
            pred = np.full(len(idx), np.nan)
            if length:
                pred = report_scores(model, x)["score"]
                if ambiguous == "skip":
                    pred[has_n] = np.nan
            cols["predictor_score"] = pred
        parts.append(pd.DataFrame(cols).set_index(pd.Index(idx)))
    table = pd.concat(parts).sort_index() if parts else pd.DataFrame()
    if scorer is not None:
        short = int((table["length"] < scorer.width).sum())
        if short:
            notes.append(f"{short} record(s) shorter than the {scorer.width}-bp motif have no motif score (NaN)")
        if ambiguous == "skip":
            free = int((table["length"] >= scorer.width).sum()) - int(table["motif_score"].notna().sum())
            if free:
                notes.append(f"{free} record(s) have no motif window free of N/IUPAC bases (NaN; --ambiguous skip)")
    if model is not None and ambiguous == "skip" and int(table["predictor_score"].isna().sum()):
        notes.append(f"{int(table['predictor_score'].isna().sum())} record(s) with N/IUPAC bases or no bases "
                     "have no predictor score (NaN; --ambiguous skip)")
    elif model is not None and int((table["length"] == 0).sum()):
        notes.append(f"{int((table['length'] == 0).sum())} empty record(s) have no predictor score (NaN)")
    return table, notes


# --------------------------------------------------------------------------------------------------
# Training the CNN regressor


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

    def save(self, directory) -> Path:
        from gengen.checkpoint import save_checkpoint
        from gengen.plots import plot_curves

        hist = self.history

        def extra(tmp: Path) -> None:
            hist.to_csv(tmp / "history.csv", index=False)
            plot_curves(
                hist,
                [("loss (MSE, standardised)", ["train_loss"]), ("Pearson r", ["stop_pearson", "val_pearson"])],
                tmp / "training.png",
                title="CNN predictor",
            )

        cfg = {
            "kind": "cnn",
            "architecture": self.model.config(),
            "length": self.length,
            "recipe": {k: v for k, v in vars(self.recipe).items()},
            "metrics": self.metrics,
        }
        return save_checkpoint(directory, PIPELINE, self.model.state_dict(), cfg, extra)


def load_predictor(path, device: str | torch.device = "cpu") -> tuple[CNNPredictor, dict]:
    """Load a ``dna-train-predictor`` checkpoint; returns (model in eval mode, config)."""
    from gengen.checkpoint import config_section, load_checkpoint, require_keys

    tensors, cfg, directory = load_checkpoint(path, PIPELINE)
    require_keys(cfg, ["architecture", "length"], directory)
    model = config_section(CNNPredictor, cfg["architecture"], directory, what="architecture")
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        raise GengenError(
            f"{str(directory)!r}: weights do not match the recorded architecture ({exc})."
        ) from None
    dev = resolve_device(device) if isinstance(device, str) else device
    return model.to(dev).eval(), cfg


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a = a.double() - a.double().mean()
    b = b.double() - b.double().mean()
    den = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else float("nan")


def train_predictor(
    codes: np.ndarray,
    labels: np.ndarray,
    recipe: PredictorRecipe | None = None,
    device: str = "auto",
    quiet: bool = False,
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
    """
    import pandas as pd

    from gengen.io.sequences import codes_to_one_hot

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
    val_idx, stop_idx, tr_idx = perm[:n_val], perm[n_val : n_val + n_stop], perm[n_val + n_stop :]
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


def kmer_counts(codes: np.ndarray, k: int):
    """Sparse ``(N, 4**k)`` k-mer count matrix (both strands pooled by reverse-complement symmetry)."""
    from scipy import sparse

    from gengen.dna.metrics import kmer_index

    idx = kmer_index(codes, k)  # (N, L-k+1), -1 where ambiguous
    rc = kmer_index(np.array([3, 2, 1, 0, 4], dtype=np.uint8)[codes[:, ::-1]], k)
    n, m = idx.shape
    rows = np.repeat(np.arange(n), 2 * m)
    cols = np.concatenate([idx, rc], axis=1).ravel()
    ok = cols >= 0
    return sparse.csr_matrix((np.ones(ok.sum()), (rows[ok], cols[ok])), shape=(n, 4**k))


def kmer_ridge_baseline(
    codes: np.ndarray, y: np.ndarray, tr_idx, val_idx, k: int = 6, alpha: float = 10.0
) -> float:
    """Held-out Pearson r of ridge regression on k-mer counts: the reference a CNN must beat."""
    from sklearn.linear_model import Ridge

    X = kmer_counts(codes, k)
    model = Ridge(alpha=alpha).fit(X[tr_idx], y[tr_idx])
    pred = model.predict(X[val_idx])
    return float(np.corrcoef(pred, y[val_idx])[0, 1])


def independent_check(
    probe_codes: np.ndarray,
    y: np.ndarray,
    designed_codes: np.ndarray,
    k: int = 6,
    alpha: float = 10.0,
) -> dict:
    """Score designs with an independent model: ridge regression on k-mer counts fitted on *all*
    labelled probes (a different model family from the CNN that guided the design, and trained on
    every probe rather than a 90 % split). ``y`` should already be transformed (e.g. log).

    Returns the ridge's predictions for the designs and the probes, and a summary: designs' mean/min,
    the best probe by the same model, the fraction of designs above it, and the in-sample Pearson r.
    Probes are scored in-sample (the ridge was fitted to them), which favours the probes.
    """
    probe_codes = np.asarray(probe_codes, dtype=np.uint8)
    designed_codes = np.asarray(designed_codes, dtype=np.uint8)
    y = np.asarray(y, dtype=np.float64)
    if len(probe_codes) != len(y):
        raise GengenError(f"{len(probe_codes)} probes but {len(y)} labels.")
    if len(designed_codes) == 0:
        raise GengenError("no designed sequences to score.")
    if designed_codes.shape[1] != probe_codes.shape[1]:
        raise GengenError(
            f"the sequences are {designed_codes.shape[1]} nt but the independent probes {probe_codes.shape[1]} nt: "
            "k-mer counts of other lengths are not comparable; score sequences of the probes' length."
        )
    from sklearn.linear_model import Ridge

    X = kmer_counts(probe_codes, k)
    model = Ridge(alpha=alpha).fit(X, y)
    probe_pred = model.predict(X)
    design_pred = model.predict(kmer_counts(designed_codes, k))
    best = float(probe_pred.max())
    top = np.sort(probe_pred)[-max(1, len(probe_pred) // 100) :]
    return {
        "design_pred": design_pred,
        "probe_pred": probe_pred,
        "design_mean": float(design_pred.mean()),
        "design_min": float(design_pred.min()),
        "best_probe": best,
        "top1pct_probe_mean": float(top.mean()),
        "fraction_above_best_probe": float((design_pred > best).mean()),
        "measured_best_probe_pred": float(probe_pred[int(np.argmax(y))]),
        "in_sample_pearson": float(np.corrcoef(probe_pred, y)[0, 1]),
        "k": k,
    }


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
