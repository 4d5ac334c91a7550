"""Predictors that design optimises: a PWM scanner and a small CNN regressor.

Both are ``nn.Module``\\ s mapping one-hot ``(N, 4, L)`` to scores ``(N,)``, so any torch model with
that signature (e.g. a tangermeme/bpnet-lite model wrapped to return one number) also works.
:func:`report_scores` is the exact, reportable score; ``forward`` may be a smooth surrogate.
Training the CNN is :mod:`gengen.dna.predictor.training`, the k-mer ridge baseline
:mod:`gengen.dna.predictor.baselines` and FASTA scoring :mod:`gengen.dna.predictor.scoring`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

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
        """One-hot ``(N, 4, L)`` -> ``(N,)``. (Each layer is let go as the next is made, unlike
        :meth:`strand_activations`, which keeps them all.)"""
        h = torch.relu(self.conv1(self._strands(x)))
        for conv in self.blocks:
            h = torch.relu(conv(h)) + h
        return self.head_of(h)

    def _strands(self, x: torch.Tensor) -> torch.Tensor:
        """``(2N, 4, L + flanks)``: the molecule (flanks around ``x``), then its reverse complement."""
        if self.left is not None:
            n = x.shape[0]
            x = torch.cat([self.left.expand(n, -1, -1), x, self.right.expand(n, -1, -1)], dim=2)
        return torch.cat([x, x.flip(1).flip(2)])

    def head_of(self, h: torch.Tensor) -> torch.Tensor:
        """``(N,)`` from the last layer's activations of both strands ``(2N, C, L_out)``: each filter's
        best strand at each position, pooled (max and mean over positions), through the head."""
        n = h.shape[0] // 2
        h = torch.maximum(h[:n], h[n:])  # a filter's best strand
        return self.head(torch.cat([h.amax(dim=2), h.mean(dim=2)], dim=1)).squeeze(1)

    def strand_activations(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every layer's activations of both strands of the molecule ``(2N, C, L_out)`` (forward strands
        first), before the strands are merged: (convolution's output, layer's output after the ReLU and
        the residual) of the first convolution, then of each residual block."""
        pre = self.conv1(self._strands(x))
        out = [(pre, torch.relu(pre))]
        for conv in self.blocks:
            pre = conv(out[-1][1])
            out.append((pre, torch.relu(pre) + out[-1][1]))
        return out

    def substitution_reference(self, x: torch.Tensor) -> _Reference:
        """What :meth:`substitution_outputs` reads of sequences ``x`` ``(N, 4, L)``: their activations, the
        blocks' kernels as transposed convolutions (what a change of a layer adds to the next one's
        convolution) and the last layer's strands' maximum."""
        layers = self.strand_activations(x)
        last = layers[-1][1]
        n = x.shape[0]
        merged = torch.maximum(last[:n], last[n:])
        # range maxima (a sparse table: maxima of 1, 2, 4, ... positions from each start) and running
        # sums of the merged layer, so that pooling outside the changed stretches costs O(1) per column
        spans = [merged]
        while 2 ** len(spans) <= merged.shape[2]:
            half = 2 ** (len(spans) - 1)
            spans.append(torch.maximum(spans[-1][:, :, :-half], spans[-1][:, :, half:]))
        sums = torch.nn.functional.pad(merged.double().cumsum(dim=2), (1, 0))
        return _Reference(layers, [conv.weight.flip(2).transpose(0, 1) for conv in self.blocks], merged, spans, sums)

    def substitution_outputs(self, x: torch.Tensor, reference: _Reference, column: int,
                             edits: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Outputs ``(M,)`` of sequences ``x`` ``(N, 4, L)`` with column ``column`` replaced, recomputing only
        the positions of each layer that the replaced column reaches (fastISM's idea, Nair et al. 2022).

        ``reference`` is :meth:`substitution_reference` of ``x``; ``edits`` is ``(rows (M,), new columns
        (M, 4))``: which sequence each edit changes and the column written. Exact up to float rounding:
        each layer's changed window is the same convolution, every other position is the reference's,
        and pooling outside the changed windows is the reference's, taken per sequence before it is
        spread over its edits.
        """
        rows, new = edits
        n, length = x.shape[0], x.shape[2]
        merged = reference.merged
        change = new - x[:, :, column].index_select(0, rows)  # (M, 4)
        windows = [self._changed_window(reference, rows + strand * n, col, delta)
                   for strand, (col, delta) in enumerate(((column, change), (length - 1 - column, change.flip(1))))]
        # the positions either strand changed: one stretch, or two when the strands' windows do not meet
        (flo, fhi, _), (rlo, rhi, _) = windows
        meet = max(flo, rlo) <= min(fhi, rhi) + 1
        stretches = [(min(flo, rlo), max(fhi, rhi))] if meet else sorted([(flo, fhi), (rlo, rhi)])
        top, total = reference.outside(stretches)
        top, total = top.index_select(0, rows), total.index_select(0, rows)
        for lo, hi in stretches:
            both = []
            for strand, (wlo, whi, window) in enumerate(windows):
                part = reference.layers[-1][1][:, :, lo : hi + 1].index_select(0, rows + strand * n)
                a, b = max(lo, wlo), min(hi, whi)
                if a <= b:
                    part[:, :, a - lo : b - lo + 1] = window[:, :, a - wlo : b - wlo + 1]
                both.append(part)
            stretch = torch.maximum(*both)
            top = torch.maximum(top, stretch.amax(dim=2))
            total = total + stretch.sum(dim=2)
        return self.head(torch.cat([top, total / merged.shape[2]], dim=1)).squeeze(1)

    def _changed_window(self, reference: _Reference, rows: torch.Tensor, col: int,
                        delta: torch.Tensor) -> tuple[int, int, torch.Tensor]:
        """``(lo, hi, window (M, C, hi - lo + 1))``: the last layer of one strand where a change ``delta``
        ``(M, 4)`` of that strand's column ``col`` reaches it (``rows``: the strand's reference rows).

        Each layer's convolution is linear: its output moves by the convolution of the change of its
        input, which is nonzero only where the layer below changed, so it is computed from that stretch
        alone (a transposed convolution of the change: about half the multiply-adds of convolving the
        whole input window again)."""
        w1 = self.conv1.weight  # (C, 4, W)
        width = w1.shape[2]
        pad = width // 2
        (pre, post), *blocks = reference.layers
        out_len = pre.shape[2]
        # the first convolution's output at t moves by W[:, :, col + pad - t] @ delta
        lo, hi = max(0, col + pad - width + 1), min(out_len - 1, col + pad)
        taps = w1[:, :, torch.arange(col + pad - lo, col + pad - hi - 1, -1, device=w1.device)]  # (C, 4, T)
        window = pre[:, :, lo : hi + 1].index_select(0, rows)
        window = torch.relu(window + torch.einsum("ckt,mk->mct", taps, delta))
        for (block_pre, block_post), conv, transposed in zip(blocks, self.blocks, reference.transposed):
            k, d, p = conv.kernel_size[0], conv.dilation[0], conv.padding[0]
            first = lo + p - (k - 1) * d  # where the transposed convolution's output starts
            olo, ohi = max(0, first), min(out_len - 1, hi + p)
            below = post[:, :, olo : ohi + 1].index_select(0, rows)  # the layer below, unchanged
            change = window - below[:, :, lo - olo : hi - olo + 1]
            moved = torch.nn.functional.conv_transpose1d(change, transposed, dilation=d)
            below[:, :, lo - olo : hi - olo + 1] = window  # the layer below, changed: the residual
            window = block_pre[:, :, olo : ohi + 1].index_select(0, rows) + moved[:, :, olo - first : ohi - first + 1]
            window = torch.relu(window) + below
            lo, hi, post = olo, ohi, block_post
        return lo, hi, window


class _Reference(NamedTuple):
    """One member's activations of the sequences being mutated (:meth:`_Member.substitution_reference`):
    each layer's (convolution's output, layer's output) ``(2N, C, L_out)``, the blocks' kernels as
    transposed convolutions, the last layer's strands' maximum ``merged`` ``(N, C, L_out)``, its maxima
    over 1, 2, 4, ... positions from each start (``spans``) and its running sums (float64, from 0)."""

    layers: list[tuple[torch.Tensor, torch.Tensor]]
    transposed: list[torch.Tensor]
    merged: torch.Tensor
    spans: list[torch.Tensor]
    sums: torch.Tensor

    def outside(self, stretches: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, C)`` maximum and sum of ``merged`` over the positions outside ``stretches`` (sorted,
        disjoint, inclusive): the pooling of what a substitution left as it was."""
        n, channels, length = self.merged.shape
        top = torch.full((n, channels), -torch.inf, dtype=self.merged.dtype, device=self.merged.device)
        total = torch.zeros((n, channels), dtype=torch.float64, device=self.merged.device)
        start = 0
        for lo, hi in [*stretches, (length, length)]:
            if lo > start:  # positions start .. lo - 1
                level = (lo - start).bit_length() - 1
                table = self.spans[level]
                top = torch.maximum(top, torch.maximum(table[:, :, start], table[:, :, lo - 2**level]))
                total += self.sums[:, :, lo] - self.sums[:, :, start]
            start = hi + 1
        return top, total.to(self.merged.dtype)


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

    @torch.no_grad()
    def substitution_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact in-silico saturation mutagenesis: the output of every single substitution of one-hot ``x``
        ``(N, 4, L)`` (a column may be fractional or all zero, e.g. an ``N``: every base is then a
        substitution).

        Only the positions of each layer that a substitution reaches are recomputed (fastISM's idea,
        Nair et al. 2022), batched over the sequences and bases of one position at a time: 0.4-0.7x the
        CPU seconds of whole forward passes at 50 nt, 0.07x at 200 nt, 0.02-0.03x at 1 kb (measured, one
        thread, the default 3-network predictor; docs/benchmarks.md). tangermeme's own fast
        path (``saturation_mutagenesis(fast=True)``, which captures any model) ran slower than whole
        passes on this network (measured: it recomputes one sequence's edits at a time), so gengen's CNN
        does it here; the results equal tangermeme's whole passes up to float rounding (tested).

        Parameters
        ----------
        x : one-hot sequences ``(N, 4, L)``.

        Returns
        -------
        (outputs ``(N,)`` of the sequences, ``table`` ``(N, 4, L)``: the output with base ``b`` written at
        position ``i``; at the observed base, the sequence's own output).
        """
        n, _, length = x.shape
        references = [m.substitution_reference(x) for m in self.members]
        base = torch.stack([m.head_of(r.layers[-1][1]) for m, r in zip(self.members, references)]).mean(dim=0)
        table = base[:, None, None].repeat(1, 4, length)
        eye = torch.eye(4, dtype=x.dtype, device=x.device)
        for column in range(length):
            rows, bases = (x[:, :, column] != 1).nonzero().unbind(1)  # the observed base is no substitution
            table[rows, bases, column] = torch.stack([m.substitution_outputs(x, r, column, (rows, eye[bases]))
                                                      for m, r in zip(self.members, references)]).mean(dim=0)
        return base * self.y_std + self.y_mean, table * self.y_std + self.y_mean

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
