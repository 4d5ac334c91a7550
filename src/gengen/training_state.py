"""Resumable training: a loop's whole state saved beside the model it trains, and restored exactly.

A training checkpoint is an ordinary model folder that inference can load at any time
(``model.safetensors`` + ``config.json``, written by :func:`gengen.checkpoint.save_checkpoint`: under
the output's write lock, hashed, swapped in atomically, so a ``kill -9`` at any moment leaves the
previous checkpoint or the new one) plus ``training_state.safetensors``, which holds what the loop
carries from one step to the next:

- the weights being trained (a pipeline may save its *best* weights as the model) and every
  optimiser's state, flattened into tensors (param groups as JSON: no pickle anywhere);
- the RNG streams: torch's global CPU generator (dropout, reparameterisation noise), the CUDA one on a
  GPU, and the loop's own generators (the per-epoch permutation) as they were when the current
  epoch began, so a resumed epoch draws the same permutation and skips the batches already done;
- the position (phase, epoch, batch), the history so far, the loop's running tensors (partial loss
  sums, best-so-far weights) and JSON values (early-stopping counters, best epoch, seconds);
- a JSON header (inside the safetensors file) with all of the above that is not a tensor.

``config.json`` gets a ``training`` section: ``complete`` (false while the run is unfinished), the
position, the recipe as given (before it adapted to the data) and a fingerprint of the training
data, which ``--resume`` checks before continuing. A finished run drops ``training_state.safetensors``
(its model is saved without the optimiser state) and keeps the section with ``complete: true``.

The contract, tested by killing real ``gengen vae-train`` / ``ggan-train`` / ``dna-train-predictor``
processes with SIGKILL:
a run killed at any moment and continued with ``--resume`` ends with the same weights, bit for bit,
as an uninterrupted run *on the CPU at the same thread count*. On a CUDA GPU a resumed run continues
correctly (the CUDA generator is restored too) but kernels there are not bit-reproducible.

How a loop uses it (see ``gengen.vae.train._fit_vae``, ``gengen.ggan.loop._fit`` and
``gengen.dna.predictor.training._fit``)::

    state = LoopState({"net": net}, {"adam": opt}, {"permutation": perm_gen})
    if checkpoint is not None:
        checkpoint.start(state)              # restores everything when resuming this phase
    for epoch in range(state.epoch, epochs):
        state.begin_epoch()                  # remembers the generators before the permutation
        perm = torch.randperm(n, generator=perm_gen)
        sums = state.running("sums", torch.zeros(2))   # restored mid-epoch, else the fresh one
        for b, idx in enumerate(batches(perm)):
            if b < state.batch:
                continue                     # done before the interruption
            ...one optimiser step...
            state.batch = b + 1
            checkpoint.after_batch(state)    # the minute rule, checked every step
        state.end_epoch(history_row)
        checkpoint.after_epoch(state, last=epoch + 1 == epochs)

A trainer (``VAEModel.train``, ``GGANModel.train_arrays``) opens the checkpoint with
:func:`open_training`, checks the recipe and the data, and gives it ``write_model``: a function of the
loop state returning ``(tensors, config, extra_files)`` for ``save_checkpoint``.

A model file may itself hold the whole training state: ``GANModel.train`` (``dna-train``) keeps its
critic, both optimisers and the RNG in ``model.safetensors`` beside the generator, so a finished run can
train on (``--resume --iterations`` more) and folders from before the ``training`` section resume too. It
opens the checkpoint with ``model_state=`` (a function reading that state back as a :class:`Snapshot`):
its saves then write no ``training_state.safetensors``, and it schedules them itself (:meth:`save`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gengen.checkpoint import CONFIG_NAME, TRAINING_SECTION, save_checkpoint
from gengen.errors import GengenError, preview
from gengen.runtime import log, read_json, read_regular

if TYPE_CHECKING:
    import numpy as np
    import torch

STATE_NAME = "training_state.safetensors"
SECTION = TRAINING_SECTION  # the config.json section
_META_KEY = "gengen_training"  # the JSON inside the state file's safetensors header
STATE_FORMAT = 1
# When to save, by default: after every DEFAULT_EVERY epochs and at least every DEFAULT_MINUTES of
# training. An epoch-rule save is skipped while the previous save is less than 1 / MAX_SHARE of its
# own duration ago, so checkpoints never cost more than ~5 % of the training time where epochs take
# milliseconds (a small cohort's thousands of short epochs, a GPU); the minute rule always applies.
DEFAULT_EVERY = 10
DEFAULT_MINUTES = 1.0
MAX_SHARE = 0.05
# How much of the training data the fingerprint reads: all of it up to this size, else evenly strided
# rows of that much (hashing runs at ~0.4 GB/s on a loaded 2-core machine: ~2.5 s at most, once a run).
FINGERPRINT_BYTES = 1 << 30
TRAINERS = {"vae": "vae-train", "ggan": "ggan-train", "dna-predictor": "dna-train-predictor", "dna-gan": "dna-train"}


@dataclass
class Checkpointing:
    """Where a trainer checkpoints, whether it continues from there, and how often it saves.

    Parameters
    ----------
    directory : the model folder; it always holds a loadable model (of the best or current weights)
        while training runs, and the finished model at the end.
    resume : continue the unfinished run saved in ``directory`` (an error when there is none, or when
        its recipe or training data differ from this run's).
    every : save after every ``every`` epochs; None: every 10, skipped while saving would cost more
        than ~5 % of the training time.
    minutes : save at least every ``minutes`` of training (mid-epoch if an epoch is longer); None: 1.
    """

    directory: str | os.PathLike
    resume: bool = False
    every: int | None = None
    minutes: float | None = None

    def validate(self) -> None:
        """Refuse intervals that are not positive (one line each), before any work."""
        check_intervals(self.every, self.minutes)


def check_intervals(every: int | None, minutes: float | None) -> None:
    """``--checkpoint-every`` must be a positive number of epochs, ``--checkpoint-minutes`` positive and finite."""
    if every is not None and every < 1:
        raise GengenError(f"--checkpoint-every must be a positive number of epochs, got {every}.")
    if minutes is not None and not (math.isfinite(minutes) and minutes > 0):
        raise GengenError(f"--checkpoint-minutes must be a positive number of minutes, got {minutes:g}.")


# ---------------------------------------------------------------------------------------- loop state
@dataclass
class LoopState:
    """Everything a training loop carries between steps (see the module docstring for the pattern).

    ``modules``, ``optimizers`` and ``generators`` are the live objects (saved and restored in
    place); ``tensors`` are the loop's own tensors (running loss sums, best weights), ``values`` its
    JSON-able counters; ``epoch`` counts finished epochs of ``phase``, ``batch`` finished batches of
    the current epoch (0 at an epoch boundary); ``seconds`` is the training time of earlier runs.
    """

    modules: dict[str, Any]
    optimizers: dict[str, Any]
    generators: dict[str, Any] = field(default_factory=dict)
    phase: str = "train"
    epoch: int = 0
    batch: int = 0
    history: list[dict] = field(default_factory=list)
    tensors: dict[str, Any] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    # live objects a model writer may read but that are not saved (rebuilt the same way on resume)
    unsaved: dict[str, Any] = field(default_factory=dict, repr=False)
    _epoch_start: dict[str, Any] = field(default_factory=dict, repr=False)

    def begin_epoch(self) -> None:
        """Call before the epoch draws from its generators: a mid-epoch checkpoint stores them as of now."""
        self._epoch_start = {name: g.get_state() for name, g in self.generators.items()}

    def running(self, name: str, fresh: torch.Tensor) -> torch.Tensor:
        """The running tensor ``name`` of this epoch: ``fresh``, holding the saved values when the
        epoch resumes mid-way. Update it in place: a mid-epoch save reads it."""
        saved = self.tensors.get(name)
        if self.batch and saved is not None:
            fresh.copy_(saved)
        self.tensors[name] = fresh
        return fresh

    def end_epoch(self, row: dict | None = None) -> None:
        """The epoch is done: count it, append its history row."""
        self.epoch += 1
        self.batch = 0
        if row is not None:
            self.history.append(row)

    def generator_states(self) -> dict[str, torch.Tensor]:
        """Each generator's state at the start of the current epoch (now, at an epoch boundary)."""
        if self.batch == 0 or not self._epoch_start:
            return {name: g.get_state() for name, g in self.generators.items()}
        return dict(self._epoch_start)


def flatten_optimizer(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """An optimiser's state as flat tensors ``{prefix}.{param}.{name}`` (safetensors) + its param
    groups (JSON). ``capturable`` is how this run stepped (CUDA graphs), not state: a resume on the
    CPU must not inherit it."""
    import torch

    sd = opt.state_dict()
    tensors = {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            tensors[f"{prefix}.{pid}.{key}"] = val if isinstance(val, torch.Tensor) else torch.tensor(val)
    groups = [{**g, "capturable": False} if "capturable" in g else dict(g) for g in sd["param_groups"]]
    return tensors, groups


def restore_optimizer(prefix: str, tensors: dict, groups: list[dict], *, opt: torch.optim.Optimizer) -> None:
    """Put a :func:`flatten_optimizer` state back into ``opt``.

    When ``opt`` already holds state of the same shapes (a CUDA graph captured its steps and reads
    those very tensors) the values are copied in place; otherwise ``load_state_dict`` builds it.
    """
    state: dict[int, dict] = {}
    for key, val in tensors.items():
        if key.startswith(prefix + "."):
            pid, name = key[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(pid), {})[name] = val
    current = opt.state_dict()
    in_place = bool(current["state"]) and set(current["state"]) == set(state) and all(
        set(current["state"][pid]) == set(state[pid])
        and all(getattr(current["state"][pid][k], "shape", None) == state[pid][k].shape for k in state[pid])
        for pid in state
    )
    if in_place:
        import torch

        params = [p for g in opt.param_groups for p in g["params"]]
        with torch.no_grad():
            for pid, saved in state.items():
                live = opt.state[params[pid]]
                for name, value in saved.items():
                    live[name].copy_(value)
        return
    clean = [{k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in g.items()} for g in groups]
    for live, saved in zip(opt.param_groups, clean, strict=True):
        if "capturable" in live:  # keep how this run steps (a graph-captured CUDA run needs True)
            saved["capturable"] = live["capturable"]
    opt.load_state_dict({"state": state, "param_groups": clean})


def pack_state(state: LoopState, device, extra: dict | None = None, *, seconds: float | None = None) -> bytes:
    """The loop state as the bytes of a safetensors file (tensors + a JSON header)."""
    import torch
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    for name, module in state.modules.items():
        tensors.update({f"module.{name}.{k}": v for k, v in module.state_dict().items()})
    groups = {}
    for name, opt in state.optimizers.items():
        flat, groups[name] = flatten_optimizer(f"optim.{name}", opt)
        tensors.update(flat)
    tensors["rng.torch"] = torch.get_rng_state()
    dev = torch.device(device)
    if dev.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(dev)
    tensors.update({f"rng.gen.{k}": v for k, v in state.generator_states().items()})
    tensors.update({f"loop.{k}": v for k, v in state.tensors.items()})
    meta = {
        "format": STATE_FORMAT,
        "phase": state.phase,
        "epoch": state.epoch,
        "batch": state.batch,
        "history": state.history,
        "values": state.values,
        "seconds": state.seconds if seconds is None else seconds,
        "optimizers": groups,
        "cpu_threads": torch.get_num_threads(),
        "device": str(dev),
        "carry": extra or {},
    }
    cpu = {k: v.detach().to("cpu").contiguous().clone() if v.is_cuda else v.detach().contiguous()
           for k, v in tensors.items()}
    return save(cpu, metadata={_META_KEY: json.dumps(meta, default=_json_default)})


@dataclass
class Snapshot:
    """A training state read back from ``training_state.safetensors``."""

    tensors: dict[str, Any]
    meta: dict[str, Any]

    @property
    def phase(self) -> str:
        return str(self.meta.get("phase", "train"))

    def prefixed(self, prefix: str) -> dict[str, Any]:
        n = len(prefix) + 1
        return {k[n:]: v for k, v in self.tensors.items() if k.startswith(prefix + ".")}


def unpack_state(raw: bytes, path: Path) -> Snapshot:
    """Read :func:`pack_state` bytes (``path`` names the file in errors)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        size = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + size])
        meta = json.loads(header["__metadata__"][_META_KEY])
        tensors = load(raw)
    except (SafetensorError, ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError) as exc:
        raise GengenError(f"--resume: cannot read {str(path)!r} ({str(exc)[:120]}); the checkpoint is corrupted.") from None
    if meta.get("format") != STATE_FORMAT:
        raise GengenError(f"--resume: {str(path)!r} has training-state format {meta.get('format')!r}, not "
                          f"{STATE_FORMAT}; resume it with the gengen that wrote it, or train anew.")
    return Snapshot(tensors, meta)


def restore(state: LoopState, snapshot: Snapshot, device) -> None:
    """Load ``snapshot`` into the live objects of ``state`` and its counters (same device or not)."""
    import torch

    dev = torch.device(device)
    for name, module in state.modules.items():
        module.load_state_dict(snapshot.prefixed(f"module.{name}"), strict=True)
    for name, opt in state.optimizers.items():
        restore_optimizer(f"optim.{name}", snapshot.tensors, snapshot.meta["optimizers"][name], opt=opt)
    for name, gen in state.generators.items():
        gen.set_state(snapshot.tensors[f"rng.gen.{name}"])
    torch.set_rng_state(snapshot.tensors["rng.torch"])
    if dev.type == "cuda" and "rng.cuda" in snapshot.tensors:
        torch.cuda.set_rng_state(snapshot.tensors["rng.cuda"], dev)
    state.tensors.update({k: v.to(dev) for k, v in snapshot.prefixed("loop").items()})
    m = snapshot.meta
    state.epoch, state.batch = int(m["epoch"]), int(m["batch"])
    state.history[:] = list(m["history"])
    state.values.update(m["values"])
    state.seconds = float(m["seconds"])


# ---------------------------------------------------------------------------------------- fingerprints
def data_fingerprint(*arrays: np.ndarray, names: tuple = ()) -> dict:
    """Shapes and a SHA-256 of the training data: every byte up to ``FINGERPRINT_BYTES`` in all, else
    evenly strided rows of about that size (``sampled``); ``names`` (sample and gene names, any
    sequences of strings) are hashed too."""
    import numpy as np

    total = sum(np.asarray(a).nbytes for a in arrays)
    stride = max(1, math.ceil(total / FINGERPRINT_BYTES))
    h = hashlib.sha256()
    for seq in names:
        h.update("\x1f".join(map(str, seq)).encode() + b"\x1e")
    shapes = []
    for a in arrays:
        a = np.asarray(a)
        shapes.append(list(a.shape))
        h.update(f"{a.shape}{a.dtype.str}".encode())
        part = a[::stride] if a.ndim and stride > 1 else a
        h.update(memoryview(np.ascontiguousarray(part)).cast("B"))
    return {"shapes": shapes, "sha256": h.hexdigest(), "sampled": stride > 1}


def recipe_differences(saved: dict, new: dict, ignore: tuple[str, ...] = ("notes",)) -> list[str]:
    """``"field new (checkpoint: saved)"`` for each field that differs."""
    out = []
    for key in sorted(set(saved) | set(new)):
        if key in ignore or _same(saved.get(key), new.get(key)):
            continue
        out.append(f"{key} {new.get(key)!r} (checkpoint: {saved.get(key)!r})")
    return out


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


# ---------------------------------------------------------------------------------------- the checkpointer
def read_training_section(directory: str | os.PathLike, pipeline: str, *, state_file: bool = True) -> dict:
    """config.json's training section of the checkpoint in ``directory``, checked cheaply (no weights
    read) so ``--resume`` can refuse a missing or foreign checkpoint before any data are read.

    ``state_file=False``: the model file holds the training state (see the module docstring), so a
    folder without a training section (saved before it existed) is a checkpoint too (``{"complete":
    False}``; reading the state says whether it can resume)."""
    path = Path(directory)
    cfg_path = path / CONFIG_NAME
    if not cfg_path.is_file():
        when = " (a run writes its first one within a minute or a few epochs)" if state_file else ""
        raise GengenError(f"--resume: no checkpoint in {str(path)!r} to resume from{when}; train without --resume."
                          if state_file else f"--resume: no checkpoint in {str(path)!r} to resume from.")
    try:
        cfg = read_json(cfg_path, "--resume: the checkpoint's config", fix="the checkpoint is corrupted")
    except OSError as exc:
        raise GengenError(f"--resume: cannot read {str(cfg_path)!r} ({str(exc)[:100]}); the checkpoint is corrupted.") from None
    found = cfg.get("pipeline") if isinstance(cfg, dict) else None
    if found != pipeline:
        raise GengenError(f"--resume: {str(path)!r} holds a {found!r} model, not a {pipeline!r} training run; "
                          "give the -o of the run to continue.")
    section = cfg.get(SECTION)
    if not state_file and not isinstance(section, dict):
        return {"complete": False, "config": cfg}
    if not isinstance(section, dict) or "complete" not in section:
        raise GengenError(f"--resume: {str(path)!r} holds no training state (saved without checkpoints, e.g. by "
                          "an older gengen or the library); train anew into it without --resume.")
    if state_file and not section["complete"] and not (path / STATE_NAME).is_file():
        raise GengenError(f"--resume: {str(path)!r} lacks {STATE_NAME}; the checkpoint is incomplete, train anew.")
    return {**section, "config": cfg}


class TrainingCheckpoint:
    """Saves a training run's state into its model folder on a schedule, and resumes it.

    Made by :func:`open_training`. The trainer sets :attr:`write_model` (loop state ->
    ``(tensors, config, extra_files)`` of a loadable model) and calls :meth:`start`,
    :meth:`after_batch` and :meth:`after_epoch` from its loop, and :meth:`finished` for the
    ``training`` section of the final model.

    ``model_state`` (folder -> :class:`Snapshot`): the model file holds the training state (see the
    module docstring); the trainer then calls :meth:`save` on its own schedule, the last time with
    ``complete``. ``unit``: what ``epoch`` counts, as messages and the section say it.
    """

    def __init__(self, plan: Checkpointing, pipeline: str, quiet: bool = False, *,
                 model_state: Callable[[Path], Snapshot] | None = None, unit: str = "epoch"):
        plan.validate()
        self.plan = plan
        self.directory = Path(plan.directory)
        self.pipeline = pipeline
        self.quiet = quiet
        self.model_state = model_state
        self.unit = unit
        self.every = plan.every if plan.every is not None else DEFAULT_EVERY
        self.throttle = plan.every is None
        self.seconds = 60.0 * (plan.minutes if plan.minutes is not None else DEFAULT_MINUTES)
        self.write_model: Callable[[LoopState], tuple[dict, dict, Callable | None]] | None = None
        self.phase = "train"
        self.carry: dict[str, Any] = {}  # JSON from finished phases, saved with every later state
        self.section: dict | None = None  # the saved training section when resuming
        self.snapshot: Snapshot | None = None
        self.recipe_given: dict | None = None
        self.fingerprint: dict | None = None
        self.total_epochs: int | None = None
        self.saves = 0
        self.save_seconds = 0.0
        self.state_bytes = 0
        self._t0 = self._last = time.perf_counter()
        self._last_epoch = 0
        self._last_cost = 0.0

    # -------------------------------------------------------------- opening, checking
    @property
    def resuming(self) -> bool:
        return self.plan.resume

    @property
    def complete(self) -> bool:
        """Resuming a run that had already finished: its model is the answer (with ``model_state``, a
        finished run can also train on: its state is read all the same)."""
        return bool(self.section and self.section.get("complete"))

    def finished_already(self, quiet: bool = True) -> bool:
        """Whether the run being resumed had already finished (:attr:`complete`), said in one line: the
        trainer then returns the saved model instead of training."""
        if self.complete:
            log(f"training in {str(self.directory)!r} is already complete; nothing to resume.", quiet)
        return self.complete

    def saved_recipe(self) -> dict | None:
        """The recipe the resumed run was given (before adapting to the data), or None."""
        return dict(self.section["recipe"]) if self.section and isinstance(self.section.get("recipe"), dict) else None

    def check_recipe(self, resolved: dict) -> None:
        """Refuse to resume when this run's resolved recipe differs from the checkpoint's."""
        if not self.resuming:
            return
        saved = self.section["config"].get("recipe") or {}
        diff = recipe_differences(saved, resolved)
        if diff:
            raise GengenError(
                f"--resume: this run's settings differ from the checkpoint's in {str(self.directory)!r}: "
                f"{preview(diff, 3)}; leave the options out (or give the checkpoint's) to continue it, or train "
                "into another -o."
            )

    def check_data(self, fingerprint: dict) -> None:
        """Record the data fingerprint; refuse to resume on other data (call first: other data would
        also resolve to other settings)."""
        self.fingerprint = fingerprint
        if not self.resuming:
            return
        saved = self.section.get("data") or {}
        if self.model_state is not None and not saved:  # a folder from before the check: nothing to compare
            return
        if saved.get("sha256") != fingerprint["sha256"] or saved.get("shapes") != fingerprint["shapes"]:
            shapes = (f" (shapes {fingerprint['shapes']}; the checkpoint's {saved.get('shapes')})"
                      if saved.get("shapes") != fingerprint["shapes"] else " (same shapes, other values)")
            raise GengenError(
                f"--resume: the training data differ from those of the checkpoint in {str(self.directory)!r}{shapes}; "
                "resume with the same input file and options, or train into another -o."
            )

    def ready(self, total_epochs: int | None = None) -> None:
        """Data and recipe checked: read the saved state to resume (none for a finished run)."""
        self.total_epochs = total_epochs
        if self.resuming and self.model_state is not None:
            self.snapshot = self.model_state(self.directory)  # the trainer says where it resumes
        elif self.resuming and not self.complete:
            self._load_snapshot()

    def _load_snapshot(self) -> None:
        path = self.directory / STATE_NAME
        try:
            raw = read_regular(path, "--resume: the training state")
        except OSError as exc:
            raise GengenError(f"--resume: cannot read {str(path)!r}: {exc.strerror}.") from None
        expected = self.section.get("state_sha256")
        if expected is not None and hashlib.sha256(raw).hexdigest() != expected:
            raise GengenError(f"--resume: {str(path)!r} does not match the SHA-256 in its config.json; the checkpoint "
                              "is corrupted (or half-copied): train anew.")
        self.snapshot = unpack_state(raw, path)
        self.carry = dict(self.snapshot.meta.get("carry") or {})
        m = self.snapshot.meta
        log(f"resuming {self.pipeline} training from {m['phase']} epoch {m['epoch']}"
            + (f", batch {m['batch']}" if m["batch"] else "") + f" ({str(self.directory)!r})", self.quiet)

    # -------------------------------------------------------------- the loop's calls
    def start(self, state: LoopState, device) -> bool:
        """At the top of a loop (after anything that builds optimiser state, e.g. a CUDA graph
        capture): restore ``state`` if the resumed checkpoint is in this phase. Returns whether it did."""
        import torch

        state.phase = self.phase
        self._t0 = self._last = time.perf_counter()
        snap = self.snapshot
        if snap is None or snap.phase != state.phase or not snap.prefixed("module"):
            self._last_epoch = state.epoch
            return False
        restore(state, snap, device)
        self.snapshot = None  # consumed: a later phase starts fresh
        self._last_epoch = state.epoch
        threads = snap.meta.get("cpu_threads")
        if torch.device(device).type == "cpu" and threads and threads != torch.get_num_threads():
            log(f"note: resuming with {torch.get_num_threads()} CPU thread(s) where the run used {threads}: the "
                "result will not be bit-identical to an uninterrupted run (--threads sets the count).", self.quiet)
        return True

    def after_batch(self, state: LoopState, device) -> None:
        """The minute rule, mid-epoch (cheap: one clock read)."""
        if time.perf_counter() - self._last >= self.seconds:
            self.save(state, device)

    def after_epoch(self, state: LoopState, device, last: bool = False) -> None:
        """The epoch and minute rules at an epoch boundary (``last``: the final save follows, skip)."""
        if last:
            return
        now = time.perf_counter()
        if now - self._last >= self.seconds:
            self.save(state, device)
        elif state.epoch - self._last_epoch >= self.every and (
            not self.throttle or now - self._last >= self._last_cost / MAX_SHARE
        ):
            self.save(state, device)

    def save(self, state: LoopState, device, *, complete: bool = False) -> None:
        """Write the model folder with the loop state beside it (atomic, under the output's lock).

        ``complete`` (with ``model_state`` only: the others end with :meth:`finished`): the run's last save."""
        from gengen import distributed

        if self.write_model is None:
            raise RuntimeError("TrainingCheckpoint.write_model is not set")
        if not distributed.is_main():  # under torchrun rank 0 writes (every rank holds the same weights)
            self._last, self._last_epoch = time.perf_counter(), state.epoch
            return
        t = time.perf_counter()
        seconds = state.seconds + (t - self._t0)
        raw = pack_state(state, device, self.carry, seconds=seconds) if self.model_state is None else None
        tensors, config, extras = self.write_model(state)
        config = dict(config)
        config[SECTION] = self._section(complete, state, sha=hashlib.sha256(raw).hexdigest() if raw else None)

        def write(tmp: Path) -> None:
            if extras is not None:
                extras(tmp)
            if raw is not None:
                (tmp / STATE_NAME).write_bytes(raw)

        save_checkpoint(self.directory, self.pipeline, tensors, config=config, extra_files=write)
        self._last_cost = time.perf_counter() - t
        self.state_bytes = len(raw) if raw is not None else 0
        self.saves += 1
        self.save_seconds += self._last_cost
        self._last = time.perf_counter()
        self._last_epoch = state.epoch

    def _section(self, complete: bool, state: LoopState | None = None, sha: str | None = None) -> dict:
        out: dict[str, Any] = {"complete": complete}
        if state is not None:
            out.update(phase=state.phase, epoch=state.epoch, batch=state.batch)
            if self.total_epochs is not None:
                out["epochs"] = self.total_epochs
        if self.unit != "epoch":
            out["unit"] = self.unit  # what epoch and epochs count
        if not complete:
            out["resume_with"] = f"{TRAINERS.get(self.pipeline, 'the trainer')} --resume -o {self.directory}"
        if sha is not None:
            out["state_sha256"] = sha
        out["recipe"] = self.recipe_given
        out["data"] = self.fingerprint
        if self.model_state is not None:  # saved when the trainer says (its own schedule), the state in the model
            out["checkpoints"] = {"saves": self.saves, "save_seconds": round(self.save_seconds, 3)}
        else:
            out["checkpoints"] = {"every_epochs": self.every, "throttled": self.throttle, "minutes": self.seconds / 60,
                                  "saves": self.saves, "save_seconds": round(self.save_seconds, 3),
                                  "last_state_mb": round(self.state_bytes / 1e6, 2)}
        return out

    def finished(self) -> dict:
        """The ``training`` section of the finished model (``complete: true``; no state file)."""
        return self._section(True)


def open_training(plan: Checkpointing | None, pipeline: str, quiet: bool = False, *,
                  model_state: Callable[[Path], Snapshot] | None = None,
                  unit: str = "epoch") -> TrainingCheckpoint | None:
    """A :class:`TrainingCheckpoint` for ``plan`` (None without one). Resuming, it reads the saved
    training section now (a missing or foreign checkpoint fails here); the recipe and data checks,
    and reading the state, follow with :meth:`~TrainingCheckpoint.check_recipe` and
    :meth:`~TrainingCheckpoint.check_data`. Not resuming, it notes when it will replace an unfinished run.
    ``model_state`` and ``unit``: see :class:`TrainingCheckpoint`.
    """
    if plan is None:
        return None
    ck = TrainingCheckpoint(plan, pipeline, quiet, model_state=model_state, unit=unit)
    if plan.resume:
        ck.section = read_training_section(plan.directory, pipeline, state_file=model_state is None)
    else:
        try:
            previous = read_training_section(plan.directory, pipeline, state_file=model_state is None)
        except GengenError:
            previous = None
        if previous is not None and not previous["complete"] and SECTION in previous["config"]:
            log(f"note: {str(plan.directory)!r} holds an unfinished run ({previous.get('phase')} "
                f"{previous.get('unit', 'epoch')} {previous.get('epoch')}); starting a new one over it (--resume "
                "would continue it).", quiet)
    return ck


def finish_model(model, checkpoint: TrainingCheckpoint | None, history):
    """The last step of a checkpointed trainer: record the thread count the loop ran at and, when the
    run has a checkpoint folder, write the finished model there (its training section marked complete).
    Returns ``model``."""
    from gengen import distributed

    model.cpu_threads = history.attrs.get("cpu_threads")
    if checkpoint is not None:
        model.training = checkpoint.finished()
        if distributed.is_main():  # under torchrun rank 0 writes the model
            model.save(checkpoint.directory)
        model.path = checkpoint.directory
    return model




def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj)}")
