"""Predictors that design optimises: a PWM scanner and a small CNN regressor.

Both are ``nn.Module``\\ s mapping one-hot ``(N, 4, L)`` to scores ``(N,)``, so any torch model with
that signature (e.g. a tangermeme/bpnet-lite model wrapped to return one number) also works.
:func:`report_scores` is the exact, reportable score; ``forward`` may be a smooth surrogate.
Training the CNN is :mod:`gengen.dna.predictor.training`, the k-mer ridge baseline
:mod:`gengen.dna.predictor.baselines` and FASTA scoring :mod:`gengen.dna.predictor.scoring`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from gengen.checkpoint import config_section
from gengen.errors import GengenError
from gengen.runtime import resolve_device
from gengen.saved_model import LoadedCheckpoint, SavedModel

if TYPE_CHECKING:
    from gengen.io.motifs import PWM

PIPELINE = "dna-predictor"
BANDED_MAX_LENGTH = 512  # longer sequences are scored in blocks (the whole banded matrix grows as L²)
SCAN_CHUNK = 2**20  # windows per block of PWMPredictor.scan: ~40 MB of working memory


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
        """``(4 L, 2 P)`` banded matrix whose column (strand, p) holds the PWM at window p (cached).

        Scoring all windows as one GEMM is ~10-30x faster on CPU than ``conv1d`` with 2 output
        channels, whose backward (a transposed convolution) dominates design time otherwise. The
        matrix grows as L², so only sequences up to :data:`BANDED_MAX_LENGTH` use it whole; longer
        ones go through :func:`window_products`, a block of windows at a time.
        """
        key = (length, like.device, like.dtype)
        cache = self.__dict__.setdefault("_banded_cache", {})
        if key not in cache:
            cache.clear()
            cache[key] = banded_matrix(self.weight.to(like.device, like.dtype), length, length - self.width + 1)
        return cache[key]

    def window_scores(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 2, L - W + 1)`` scores: forward strand, reverse strand.

        Up to :data:`BANDED_MAX_LENGTH` one GEMM with the whole banded matrix (as designs have always
        been scored); beyond, in O(N·L·W) time and memory (:func:`window_products`). Differentiable.
        """
        length = int(x.shape[-1])
        if length < self.width:
            self.pwm.check_fits(length)
        if length <= BANDED_MAX_LENGTH:
            m = self._banded(length, x)
            return (x.reshape(x.shape[0], -1) @ m).view(x.shape[0], 2, -1)
        return window_products(x, self.weight.to(x.device, x.dtype))

    @torch.no_grad()
    def scan(self, codes, ambiguous: str = "uniform", *, chunk: int = SCAN_CHUNK, on_block=None) -> dict[str, np.ndarray]:
        """The best window of every sequence of integer codes, in memory bounded by ``chunk``.

        What ``dna-score`` runs: a 100 Mb chromosome is scanned ``chunk`` windows at a time (plus the
        motif's width of overlap), so its working memory is ~40 bytes x ``chunk`` whatever its length.
        Ties go to the forward strand, then the leftmost window (as :meth:`exact`).

        Parameters
        ----------
        codes : ``(N, L)`` uint8 codes (A, C, G, T = 0..3, ambiguous 4), numpy or torch.
        ambiguous : ``"uniform"`` scores an ambiguous base as 0.25 of each; ``"skip"`` leaves out
            windows that hold one.
        chunk : windows scored per block.
        on_block : called with the number of windows of each block once it is scored (progress).

        Returns
        -------
        ``score`` ``(N,)`` float64 (NaN where no window can be scored: shorter than the motif, or
        every window skipped), ``hit_start`` 0-based (-1 without a hit) and ``hit_strand`` (0 = +, 1 = -).
        """
        from gengen.io.sequences import codes_to_one_hot

        codes = torch.as_tensor(np.asarray(codes) if not isinstance(codes, torch.Tensor) else codes)
        if codes.ndim != 2:
            raise GengenError(f"scan needs (sequences, length) codes, got shape {tuple(codes.shape)}.")
        n, length = codes.shape
        width = self.width
        dev = self.weight.device
        score = np.full(n, np.nan)
        start = np.full(n, -1, dtype=np.int64)
        strand = np.zeros(n, dtype=np.int64)
        n_pos = length - width + 1
        if n_pos < 1 or n == 0:
            return {"score": score, "hit_start": start, "hit_strand": strand}
        rows_per = max(1, chunk // max(n_pos, 1))
        step = max(1, min(chunk, n_pos))
        for r0 in range(0, n, rows_per):
            rows = codes[r0 : r0 + rows_per]
            best = torch.full((len(rows), 2), -torch.inf, dtype=torch.float64)
            where = torch.zeros((len(rows), 2), dtype=torch.long)
            for p0 in range(0, n_pos, step):
                part = rows[:, p0 : p0 + step + width - 1]
                s = self.window_scores(codes_to_one_hot(part, device=dev))  # (g, 2, windows)
                if ambiguous == "skip":
                    dirty = _windows_with_ambiguous(part, width)
                    s = s.masked_fill(dirty.to(s.device)[:, None, :], -torch.inf)
                if on_block is not None:
                    on_block(s.shape[0] * s.shape[2])
                value, index = s.max(dim=2)
                value, index = value.double().cpu(), index.cpu() + p0
                better = value > best
                best = torch.where(better, value, best)
                where = torch.where(better, index, where)
            reverse = best[:, 1] > best[:, 0]
            top = torch.where(reverse, best[:, 1], best[:, 0]).numpy()
            ok = np.isfinite(top)
            sl = slice(r0, r0 + len(rows))
            score[sl] = np.where(ok, top, np.nan)
            start[sl] = np.where(ok, torch.where(reverse, where[:, 1], where[:, 0]).numpy(), -1)
            strand[sl] = np.where(ok, reverse.long().numpy(), 0)
        return {"score": score, "hit_start": start, "hit_strand": strand}

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

    def exact_score(self, x: torch.Tensor) -> torch.Tensor:
        """The reportable score ``(N,)``: the exact best window (not the smooth maximum)."""
        return self.exact(x)[0]

    def report(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``score``, ``hit_start`` (0-based) and ``hit_strand`` (0 = +, 1 = -) of the best window."""
        score, start, strand = self.exact(x)
        return {"score": score, "hit_start": start, "hit_strand": strand}


def banded_matrix(weight: torch.Tensor, span: int, windows: int) -> torch.Tensor:
    """``(4 span, K windows)`` matrix whose column ``(k, p)`` holds ``weight[k]`` ``(4, W)`` at window ``p``
    of a ``span``-long sequence (flattened channels first, as ``x.reshape(N, -1)`` of ``(N, 4, span)``)."""
    k, _, width = weight.shape
    m = torch.zeros(4, span, k, windows, device=weight.device, dtype=weight.dtype)
    p = torch.arange(windows, device=weight.device)
    for j in range(width):
        m[:, p + j, :, p] = weight[:, :, j].T[None].expand(windows, 4, k)
    return m.reshape(4 * span, k * windows)


def window_products(x: torch.Tensor, weight: torch.Tensor, block: int | None = None) -> torch.Tensor:
    """``(N, K, L - W + 1)``: every window of ``x`` ``(N, 4, L)`` times each of ``weight``'s K ``(4, W)``
    matrices, in O(N·L·W·K) time and memory (the PWM scan of long sequences, the avoided-pattern counts).

    The sequence is cut into overlapping segments of ``block + W - 1`` positions (``block`` windows
    each; a strided view, copied once) and every segment is multiplied by :func:`banded_matrix` of
    one segment: one GEMM, as fast per window as the whole banded matrix without its L² size.
    ``block`` defaults to a few motif widths (32 for W <= 32, fastest measured). Differentiable.
    """
    n, _, length = x.shape
    k, _, width = weight.shape
    block = block or max(32, -(-width // 16) * 16)
    n_pos = length - width + 1
    n_blocks = -(-n_pos // block)
    span = block + width - 1
    padded = torch.nn.functional.pad(x, (0, n_blocks * block + width - 1 - length))
    rows = padded.unfold(2, span, block).permute(0, 2, 1, 3).reshape(n * n_blocks, 4 * span)
    s = (rows @ banded_matrix(weight, span, block)).view(n, n_blocks, k, block)
    return s.permute(0, 2, 1, 3).reshape(n, k, n_blocks * block)[:, :, :n_pos]


def _windows_with_ambiguous(codes: torch.Tensor, width: int) -> torch.Tensor:
    """``(N, L - W + 1)`` bool: which windows of codes ``(N, L)`` hold an ambiguous base (code >= 4)."""
    held = torch.nn.functional.pad((codes >= 4).to(torch.int32).cumsum(dim=1), (1, 0))
    return (held[:, width:] - held[:, :-width]) > 0


class _Member(nn.Module):
    """One network of a :class:`CNNPredictor`: conv(4 -> C, width W) - ReLU, then residual ReLU
    convolutions (C -> C, width 5) at the given dilations, max and mean pooling over positions of the
    strand-wise maximum, and a 2-layer head. Its output is in standardised label units.

    ``flanks``: the first convolution pads the sequence with W // 2 learned columns on each side
    instead of zeros, a constant context that is part of the molecule and read on both strands (PBM
    probes sit between a primer and the free end, MPRA inserts between adapters: what an edge base
    does depends on that context and on which end it is at, which a zero pad read on both strands
    cannot tell apart)."""

    def __init__(self, channels: int, width: int, hidden: int, dilations: tuple[int, ...], flanks: bool):
        super().__init__()
        pad = width // 2
        self.conv1 = nn.Conv1d(4, channels, width, padding=0 if flanks else pad)
        self.left = nn.Parameter(torch.zeros(4, pad)) if flanks else None
        self.right = nn.Parameter(torch.zeros(4, pad)) if flanks else None
        self.blocks = nn.ModuleList(nn.Conv1d(channels, channels, 5, padding=2 * d, dilation=d) for d in dilations)
        self.head = nn.Sequential(nn.Linear(2 * channels, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One-hot ``(N, 4, L)`` -> ``(N,)``."""
        n = x.shape[0]
        if self.left is not None:
            x = torch.cat([self.left.expand(n, -1, -1), x, self.right.expand(n, -1, -1)], dim=2)
        h = torch.relu(self.conv1(torch.cat([x, x.flip(1).flip(2)])))  # the molecule's two strands
        for conv in self.blocks:
            h = torch.relu(conv(h)) + h
        h = torch.maximum(h[:n], h[n:])  # a filter's best strand
        return self.head(torch.cat([h.amax(dim=2), h.mean(dim=2)], dim=1)).squeeze(1)


class CNNPredictor(SavedModel, nn.Module):
    """A CNN regressor for labelled sequences (the paper's PBM predictor role): the mean of ``members``
    independently initialised networks (a small ensemble: their errors partly cancel).

    Each member: conv(4 -> C, width W) - ReLU - residual dilated convs (C -> C, width 5, one per entry
    of ``dilations``) - ReLU, then max and mean pooling over positions of each filter's best strand
    (the reverse complement shares the weights), and a 2-layer head. Pooling makes it accept any length
    >= its receptive field. Without ``flanks`` the first convolution pads with zeros and a sequence
    and its reverse complement score alike; with ``flanks`` it pads with W // 2 learned columns on
    each side, a constant context read on both strands with the sequence (the molecule
    ``left + x + right``), so an edge base can count differently at either end, as on PBM probes.

    :func:`gengen.dna.train_predictor` fits one; ``save(path)`` writes a checkpoint folder and returns
    it, :meth:`load` reads one (a ``dna-train-predictor`` folder, including those of gengen versions
    before ensembles: one network, one dilated convolution, zero padding). ``length`` (the training
    sequences'), ``recipe``, ``metrics`` and ``history`` describe the training when known.
    """

    pipeline = PIPELINE
    required_keys = ("architecture", "length")
    # config.json's architecture["version"]: 2 = ``members.{k}.`` tensor keys; absent = the single
    # network of earlier versions (``conv1``, ``conv2``, ``head`` at the top level)
    layout_version = 2

    def __init__(self, channels: int = 64, width: int = 11, hidden: int = 64, *, dilations: tuple[int, ...] = (2,),
                 members: int = 1, flanks: bool = False):
        super().__init__()
        if members < 1:
            raise ValueError(f"an ensemble needs at least one member, got {members}")
        self.length: int | None = None
        self.recipe: dict | None = None
        self.metrics: dict = {}
        self.history = None  # pandas DataFrame of the training epochs, when known
        # config.json's training section (a resumable run, see training_state); not ``training``, which
        # nn.Module keeps for train/eval mode
        self.training_record: dict | None = None
        self.saved_config: dict | None = None  # config.json as loaded
        self.channels, self.width_, self.hidden = channels, width, hidden
        self.dilations, self.flanks = tuple(int(d) for d in dilations), bool(flanks)
        self.members = nn.ModuleList(_Member(channels, width, hidden, self.dilations, self.flanks)
                                     for _ in range(members))
        self.register_buffer("y_mean", torch.zeros(()))
        self.register_buffer("y_std", torch.ones(()))

    def member_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's prediction in standardised units ``(members, N)`` (what training fits)."""
        return torch.stack([m(x) for m in self.members])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted label in the training target's units (after its transform): the members' mean."""
        return self.member_outputs(x).mean(dim=0) * self.y_std + self.y_mean

    def config(self) -> dict:
        """The architecture (config.json's ``architecture`` section)."""
        return {"channels": self.channels, "width": self.width_, "hidden": self.hidden,
                "dilations": list(self.dilations), "members": len(self.members), "flanks": self.flanks,
                "version": self.layout_version}

    @torch.no_grad()
    def exact_score(self, x: torch.Tensor) -> torch.Tensor:
        """The reportable score ``(N,)``: the network's output (it has no smooth surrogate)."""
        return self(x)

    def report(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``score``: the network's output."""
        return {"score": self.exact_score(x)}

    def _save_parts(self):
        hist = self.history

        def extra(tmp: Path) -> None:
            if hist is None or not len(hist):
                return
            from gengen.plots import plot_curves

            hist.to_csv(tmp / "history.csv", index=False)
            plot_curves(
                hist,
                [("loss (MSE, standardised)", ["train_loss"]), ("Spearman rho", ["stop_spearman", "val_spearman"]),
                 ("Pearson r", ["stop_pearson", "val_pearson"])],
                tmp / "training.png",
                title="CNN predictor",
            )

        cfg = {"kind": "cnn", "architecture": self.config(), "length": self.length, "recipe": self.recipe or {},
               "metrics": self.metrics}
        if self.training_record is not None:
            from gengen.training_state import SECTION

            cfg[SECTION] = self.training_record
        return self.state_dict(), cfg, extra

    @classmethod
    def _from_checkpoint(cls, checkpoint: LoadedCheckpoint, device) -> CNNPredictor:
        arch = checkpoint.config["architecture"]
        arch = dict(arch) if isinstance(arch, dict) else arch
        version = arch.pop("version", 1) if isinstance(arch, dict) else None
        if version not in (1, cls.layout_version):
            raise GengenError(f"{str(checkpoint.directory)!r}: architecture version {version!r} is not one this gengen "
                              "reads; use the gengen that wrote it, or retrain.")
        model = config_section(cls, arch, checkpoint.directory, what="architecture")
        tensors = checkpoint.tensors
        if version == 1:  # one network at the top level, its dilated convolution named conv2
            if model.dilations != (2,) or len(model.members) != 1 or model.flanks:
                raise GengenError(f"{str(checkpoint.directory)!r}: a version-1 architecture has one member and one "
                                  "dilated convolution; the checkpoint is corrupted.")
            renamed = {"conv1.": "members.0.conv1.", "conv2.": "members.0.blocks.0.", "head.": "members.0.head."}
            tensors = {next((new + k[len(old):] for old, new in renamed.items() if k.startswith(old)), k): v
                       for k, v in tensors.items()}
        try:
            model.load_state_dict(tensors)
        except RuntimeError as exc:
            raise GengenError(
                f"{str(checkpoint.directory)!r}: weights do not match the recorded architecture ({exc})."
            ) from None
        cfg = checkpoint.config
        model.length = int(cfg["length"]) if cfg["length"] is not None else None
        model.recipe = cfg.get("recipe") if isinstance(cfg.get("recipe"), dict) else None
        model.metrics = dict(cfg.get("metrics") or {})
        model.history = checkpoint.history()
        training = cfg.get("training")
        model.training_record = training if isinstance(training, dict) else None
        model.saved_config = cfg
        dev = resolve_device(device) if isinstance(device, str) else device
        return model.to(dev).eval()


def exact_score(predictor: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The reportable score ``(N,)`` of one-hot ``x`` ``(N, 4, L)``: ``predictor.exact_score(x)`` when the
    predictor defines one (a PWM's exact best window instead of its smooth maximum), else its output
    (any torch model mapping ``(N, 4, L)`` to ``(N,)``).

    Parameters
    ----------
    predictor : the predictor.
    x : one-hot sequences ``(N, 4, L)`` on the predictor's device.

    Returns
    -------
    Scores ``(N,)``, without gradients.
    """
    with torch.no_grad():
        method = getattr(predictor, "exact_score", None)
        return method(x) if method is not None else predictor(x)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 4096, *, device=None) -> torch.Tensor:
    """Batched ``model(x)`` without gradients; returns a CPU tensor ``(N,)``."""
    device = device or next(iter(model.buffers()), torch.empty(0)).device
    out = [model(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0)


@torch.no_grad()
def report_scores(model: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> dict[str, np.ndarray]:
    """The reportable score of one-hot sequences: exact PWM max with hit position/strand, or the model output.

    Parameters
    ----------
    model : a predictor mapping one-hot ``(N, 4, L)`` to ``(N,)``.
    x : one-hot sequences ``(N, 4, L)``.
    batch_size : sequences per forward pass.

    Returns
    -------
    ``{"score": (N,)}``, plus ``hit_start`` and ``hit_strand`` for a predictor whose ``report`` gives them (a PWM).
    """
    dev = next(iter(model.buffers()), torch.empty(0)).device
    report = getattr(model, "report", None)
    if report is None:  # any torch model: its output
        return {"score": predict(model, x, batch_size, device=dev).numpy().astype(np.float64)}
    parts = [report(x[i : i + batch_size].to(dev)) for i in range(0, len(x), batch_size)] or [report(x[:0].to(dev))]
    out = {k: torch.cat([p[k].float() if k == "score" else p[k] for p in parts]).cpu().numpy() for k in parts[0]}
    return {k: v.astype(np.float64 if k == "score" else np.int64) for k, v in out.items()}



def load_predictor(path, device: str | torch.device = "cpu") -> tuple[CNNPredictor, dict]:
    """``(CNNPredictor.load(path, device), its config.json)``: the older form of :meth:`CNNPredictor.load`.

    Parameters
    ----------
    path : a ``dna-train-predictor`` folder or a store name.
    device : where the model goes.

    Returns
    -------
    (the model in evaluation mode, its config.json as a dict).
    """
    model = CNNPredictor.load(path, device)
    return model, model.saved_config


# names that lived here before the split, re-exported lazily (their modules import this one)
