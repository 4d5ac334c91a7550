"""``--objective model=FILE.pt[,output=K][,layout=NLC]``: any TorchScript model as a design objective.

FILE is a TorchScript archive (``torch.jit.save`` of ``torch.jit.script(model)`` or
``torch.jit.trace(model, example)``) mapping one-hot float32 ``(N, 4, L)`` in A, C, G, T order to
``(N,)`` or ``(N, K)``:

- ``output=K`` picks column K (0-based) of an ``(N, K)`` output, or by name when the archive carries
  output names: a ``gengen.json`` extra file (``torch.jit.save(m, path, _extra_files={"gengen.json":
  json.dumps({"output_names": [...]})})``) or an ``output_names`` list attribute of a scripted module.
  ``gengen.json`` may also record ``"length"``: the sequence length the model was trained on, which
  design then takes as its default and refuses others (as for ``dna-train-predictor`` models).
- ``layout=NLC`` for models that take ``(N, L, 4)``.

Safety: the archive is inspected before it is opened as a model: a pickle (``torch.save`` of a model
or of a ``state_dict``) is refused unopened, by its magic bytes and the archive's member names
(``torch.load`` is never called); TorchScript itself holds TorchScript code and tensors, not Python
objects. The model is checked on the design length by a forward pass on a few random sequences
before any work (the output's shape, finite values and, for gradient design, a gradient that reaches
the input); a failure names the lengths or layout it accepts when they can be found cheaply (the
length a traced archive was traced at, the length a fixed-size linear layer implies, the shortest
length that runs).

:func:`export_torchscript` writes such an archive from a torch model (``gengen dna-export-predictor``
for a ``dna-train-predictor`` model).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import re
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from gengen.dna.designer.objectives import Objective, ObjectiveContext, ObjectiveSpec
from gengen.errors import GengenError

METADATA = "gengen.json"  # the archive's extra file gengen reads: {"output_names": [...], "length": L}
LAYOUTS = ("NCL", "NLC")
PROBE_SEQUENCES = 3  # a batch size unlike the 4 bases, so a transposed or squeezed output shows
MAX_SEARCH_LENGTH = 2**17
SEARCH_SECONDS = 10.0  # at most this long looking for the lengths a model accepts
EXPORT_HINT = ("export the model as TorchScript: m = torch.jit.script(model) (or torch.jit.trace(model, "
               "example_one_hot)); m.save('model.pt')")


# --------------------------------------------------------------------------------------------------
# The model as an objective


class TorchModel(nn.Module):
    """A user's model as a design objective's predictor: one-hot ``(N, 4, L)`` in, ``(N,)`` float32 out.

    Puts the input in the model's ``layout`` and dtype, runs it (a TorchScript module without graph
    optimisations, so it computes exactly what eager PyTorch does) and picks ``output`` of an
    ``(N, K)`` output. :meth:`check` tries it on a sequence length before any work.

    Parameters
    ----------
    model : the model (an ``nn.Module`` or a TorchScript module).
    name : how messages name it.
    layout : ``"NCL"`` (``(N, 4, L)``) or ``"NLC"`` (``(N, L, 4)``).
    output : the column of an ``(N, K)`` output: an index, or a name from ``output_names``.
    output_names : the names of its K outputs, when known.
    length : the sequence length it was trained on, when known (only that length is scored).
    traced_length : called (once, only to explain a failure) for the length it was traced at.
    """

    def __init__(self, model: nn.Module, *, name: str, layout: str = "NCL", output: str | int | None = None,
                 output_names: list[str] | None = None, length: int | None = None,
                 traced_length: Callable[[], int | None] | None = None):
        super().__init__()
        self.model = model
        self.name = name
        self.layout = layout
        self.output = None if output is None else str(output)
        self.output_names = list(output_names) if output_names else None
        self.length = length
        self.column: int | None = None
        self.checked: dict[int, bool] = {}  # length -> whether the gradient was checked too
        self._traced_length = traced_length
        self._scripted = isinstance(model, torch.jit.ScriptModule)
        floating = [t.dtype for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
        self._dtype = floating[0] if floating else torch.float32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N,)`` float32 scores of one-hot ``x`` ``(N, 4, L)``."""
        return self._select(self._run(x))

    def _run(self, x: torch.Tensor, layout: str | None = None):
        if (layout or self.layout) == "NLC":
            x = x.transpose(1, 2)
        if x.dtype != self._dtype:
            x = x.to(self._dtype)
        # TorchScript's optimising executor may fuse or re-derive gradients; without it a scripted
        # model computes what eager PyTorch does, bit for bit (the same designs as the native model)
        with torch.jit.optimized_execution(False) if self._scripted else contextlib.nullcontext():
            return self.model(x)

    def _select(self, out) -> torch.Tensor:
        if isinstance(out, torch.Tensor) and out.ndim == 2:
            if self.column is None:
                self.column = self._column(out.shape[1])
            out = out[:, self.column]
        elif not isinstance(out, torch.Tensor) or out.ndim != 1:
            raise self._shape_error(out, None)
        return out if out.dtype == torch.float32 else out.float()

    def _device(self) -> torch.device:
        return next((t.device for t in (*self.model.parameters(), *self.model.buffers())), torch.device("cpu"))

    # ---------------------------------------------------------------------------------------- checks
    def check(self, length: int, *, gradient: bool = False) -> None:
        """Try the model on ``PROBE_SEQUENCES`` random sequences of ``length`` nt: it must run, return
        ``(N,)`` or ``(N, K)`` (one column chosen) of finite numbers, and with ``gradient`` pass a
        non-zero gradient back to the input. Each failure is one line saying what to do."""
        if self.checked.get(length) or (length in self.checked and not gradient):
            return
        x = _random_one_hot(PROBE_SEQUENCES, length, self._device())
        with torch.enable_grad() if gradient else torch.no_grad():
            x.requires_grad_(gradient)
            try:
                raw = self._run(x)
            except GengenError:
                raise
            except Exception as exc:  # the model's own error: explain it
                raise self._diagnose(length, exc) from None
            if not isinstance(raw, torch.Tensor) or raw.ndim not in (1, 2) or raw.shape[0] != PROBE_SEQUENCES:
                raise self._shape_error(raw, PROBE_SEQUENCES)
            if not raw.is_floating_point():
                raise GengenError(f"model {self.name!r} returns {raw.dtype} values; it must return floating-point "
                                  "scores (one number per sequence, or K).")
            if raw.ndim == 2 and self.output is None and raw.shape[1] == length and length > 1:
                raise GengenError(f"model {self.name!r} gives {length} numbers per {length}-nt sequence, one per "
                                  "position (a profile?); an objective needs one number per sequence: wrap the model "
                                  "to reduce it (e.g. sum over positions), or pick one with output=INDEX.")
            if raw.ndim == 1:  # names recorded for K outputs but one given: the names describe another model
                self._check_names(1)
            if raw.ndim == 1 and self.output not in (None, "0"):
                raise GengenError(f"model {self.name!r} gives one number per sequence (N,), so output={self.output} "
                                  "has nothing to pick: leave output= out.")
            out = self._select(raw)
            if not bool(torch.isfinite(out).all()):
                raise GengenError(f"model {self.name!r} gives NaN or infinite scores for random {length}-nt sequences; "
                                  "it must give a finite number for every sequence (check its weights, and that it "
                                  "takes one-hot input).")
            if gradient:
                self._check_gradient(x, out)
        self.checked[length] = gradient

    def _check_names(self, k: int) -> None:
        """Refuse output names whose count is not the ``k`` outputs the model gives per sequence."""
        names = self.output_names
        if names is not None and len(names) != k:
            raise GengenError(f"model {self.name!r} records {len(names)} output name(s) ({', '.join(names)}) but gives "
                              f"{k} output(s) per sequence; fix its output_names (attribute or {METADATA}) to "
                              f"name {k}.")

    def _column(self, k: int) -> int:
        names = self.output_names
        self._check_names(k)
        listed = f" ({', '.join(names)})" if names else ""
        if self.output is None:
            if k == 1:
                return 0
            raise GengenError(f"model {self.name!r} gives {k} outputs per sequence{listed}; pick one with "
                              f"output=INDEX (0-{k - 1})" + (" or output=NAME" if names else "") + " in the --objective.")
        if re.fullmatch(r"-?\d+", self.output):
            index = int(self.output)
            if not 0 <= index < k:
                raise GengenError(f"output={self.output} is out of range: model {self.name!r} gives {k} outputs per "
                                  f"sequence (0-{k - 1}){listed}.")
            return index
        if names is None:
            raise GengenError(f"output={self.output!r} names an output, but model {self.name!r} carries no output "
                              f"names; give an index 0-{k - 1}, or record names in the archive (docs/dna.md: "
                              "output_names).")
        if self.output not in names:
            raise GengenError(f"model {self.name!r} has no output named {self.output!r}; its outputs are "
                              f"{', '.join(names)}.")
        return names.index(self.output)

    def _shape_error(self, raw, n: int | None) -> GengenError:
        if isinstance(raw, (tuple, list)):
            got = f"a {type(raw).__name__} of {len(raw)} values"
        elif isinstance(raw, dict):
            got = f"a dict ({', '.join(map(str, list(raw)[:5]))})"
        elif isinstance(raw, torch.Tensor):
            got = f"shape {tuple(raw.shape)}" + (f" for a batch of {n} sequences" if n else "")
        else:
            got = f"a {type(raw).__name__}"
        return GengenError(f"model {self.name!r} returns {got}; an objective needs one tensor of shape (N,) or (N, K) "
                           "(one number per sequence, or K of them: pick one with output=K): wrap the model to return "
                           "that (e.g. a profile summed over positions, or one head of several).")

    def _check_gradient(self, x: torch.Tensor, out: torch.Tensor) -> None:
        reason = gradient_problem(x, out)
        if reason:
            raise GengenError(
                f"model {self.name!r} is not differentiable: {reason}, so gradient design cannot follow it. Design "
                "without gradients by greedy single-base substitutions, scored exactly by the model: dna-design "
                "--from START.fa --max-edits K --steps 0 (each design edits one start sequence, at most K bases).")

    # ------------------------------------------------------------------------------- explaining failures
    def _runs(self, length: int, layout: str | None = None) -> BaseException | None:
        """None when the model runs on one random sequence of ``length`` nt, else its error."""
        try:
            with torch.no_grad():
                self._run(_random_one_hot(1, length, self._device()), layout)
        except Exception as exc:
            return exc
        return None

    def _diagnose(self, length: int, exc: BaseException) -> GengenError:
        """The model's own error, explained by what it looks like: a device it was built for, a layout or
        length it takes (found by trying them), or else just the error; the lengths-and-layout hint only
        follows an error about shapes, where it can help."""
        reason = _reason(exc)
        device = self._device()
        if _DEVICE_ERROR.search(str(exc)):
            if device.type == "cpu" and re.search(r"cuda|nvidia", str(exc), re.IGNORECASE):
                return GengenError(
                    f"model {self.name!r} was built for CUDA: running on the CPU it still puts tensors on a GPU "
                    f"({reason}), as a model traced on a GPU or one that calls .cuda() does; run with --device cuda "
                    "on a machine with a GPU, or export it again on the CPU (model.cpu(), then torch.jit.script, or "
                    "torch.jit.trace on CPU input, and save).")
            return GengenError(f"model {self.name!r} fails on {device} with a device error ({reason}); export it again "
                               "on the device it is to run on, or pick that device with --device.")
        other = "NLC" if self.layout == "NCL" else "NCL"
        if self._runs(length, other) is None:
            fix = "add layout=NLC to the --objective" if other == "NLC" else "leave layout=NLC out of the --objective"
            return GengenError(f"model {self.name!r} takes {_shape(other, length)} input, not {_shape(self.layout, length)} "
                               f"(it fails on that: {reason}): {fix}.")
        shapes = bool(_SHAPE_ERROR.search(str(exc)))
        found = self._accepted_lengths(length, exc) if shapes else ""
        if found:
            return GengenError(f"model {self.name!r} does not take {length}-nt sequences ({reason}); it runs on {found}: "
                               "use sequences of that length (dna-design --length).")
        if shapes:
            return GengenError(f"model {self.name!r} fails on one-hot input of shape "
                               f"{_shape(self.layout, length, PROBE_SEQUENCES)} ({reason}); an objective takes one-hot "
                               "float32 (N, 4, L), A, C, G, T (layout=NLC for (N, L, 4)); check the lengths and layout "
                               "it was built for.")
        return GengenError(f"model {self.name!r} fails on one-hot input of shape "
                           f"{_shape(self.layout, length, PROBE_SEQUENCES)}: {reason} (the model's own error).")

    def _accepted_lengths(self, length: int, exc: BaseException) -> str:
        """The lengths the model runs on, as words, when a few forward passes find them ('' otherwise):
        the length it was traced at; the length a fixed-size linear layer implies (its input size
        grows linearly with the sequence, measured at two lengths); the shortest length that runs."""
        deadline = time.monotonic() + SEARCH_SECONDS
        tried: dict[int, bool] = {length: False}

        def runs(n: int) -> bool:
            if n not in tried:
                tried[n] = 1 <= n <= MAX_SEARCH_LENGTH and time.monotonic() < deadline and self._runs(n) is None
            return tried[n]

        traced = self._traced_length() if self._traced_length is not None else None
        if traced and runs(traced):
            return f"{traced} nt (the length it was traced at)"
        sizes = _sizes(exc)
        if sizes is not None:
            other = length + 32
            second = _sizes(self._runs(other)) if time.monotonic() < deadline else None
            if second is not None and second[1] == sizes[1] and second[0] != sizes[0]:
                slope = (second[0] - sizes[0]) / (other - length)
                guess = round(length + (sizes[1] - sizes[0]) / slope) if slope > 0 else 0
                for d in sorted(range(-8, 9), key=abs):
                    if guess + d >= 1 and runs(guess + d):
                        return f"{guess + d} nt (found by trying lengths)"
        longer = length * 2
        while longer <= MAX_SEARCH_LENGTH and time.monotonic() < deadline and not runs(longer):
            longer *= 2
        if longer > MAX_SEARCH_LENGTH or not tried.get(longer):
            return ""
        low, high = longer // 2, longer  # fails at low (or it was the asked length), runs at high
        while high - low > 1 and time.monotonic() < deadline:
            mid = (low + high) // 2
            low, high = (low, mid) if runs(mid) else (mid, high)
        return f"sequences of {high} nt or more (the shortest that ran, found by trying lengths)"


class ModelObjective(Objective):
    """An :class:`~gengen.dna.designer.objectives.Objective` over a :class:`TorchModel`: its length check is a
    forward pass (:meth:`TorchModel.check`)."""

    def check_length(self, length: int, *, gradient: bool = False) -> None:
        """Refuse a length, output or layout the model does not take, non-finite scores, and with
        ``gradient`` a model design cannot follow (one line each)."""
        self.predictor.check(length, gradient=gradient)


def gradient_problem(x: torch.Tensor, out: torch.Tensor) -> str:
    """Why ``out`` (computed from ``x``, which requires grad, under autograd) gives no usable gradient at
    ``x``, in words; "" when it does (design and gradient attributions need one)."""
    if not out.requires_grad:
        return ("its output carries no gradient (computed without autograd: under no_grad, detached, or through "
                "argmax, rounding or integer steps)")
    try:
        (grad,) = torch.autograd.grad(out.sum(), x, allow_unused=True)
    except RuntimeError as exc:
        return f"its backward pass fails ({_reason(exc)})"
    if grad is None:
        return "its output does not depend on the input through differentiable operations"
    if not bool(torch.isfinite(grad).all()):
        return "its gradient is NaN or infinite at random sequences"
    if not bool(grad.abs().sum() > 0):
        return "its gradient is zero at every random sequence tried (a constant or step-like model)"
    return ""


def _random_one_hot(n: int, length: int, device) -> torch.Tensor:
    """``n`` uniform random one-hot sequences of ``length`` nt (seeded by the length)."""
    from gengen.dna.designer.objectives import random_codes
    from gengen.io.sequences import codes_to_one_hot

    return codes_to_one_hot(random_codes(n, length, seed=length), device=device)


def _shape(layout: str, length: int, n: int | str = "N") -> str:
    return f"({n}, 4, {length})" if layout == "NCL" else f"({n}, {length}, 4)"


def _reason(exc: BaseException | None) -> str:
    """A model error in a few words: TorchScript's errors carry the serialized code's traceback before
    the message, so the last line that names an error is kept."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    named = [ln for ln in lines if re.match(r"^[A-Za-z_.]*(Error|Exception):", ln)]
    text = (named or lines or [type(exc).__name__])[-1]
    if not re.match(r"^[A-Za-z_.]*(Error|Exception):", text):
        text = f"{type(exc).__name__}: {text}"
    return text[:200]


# What a model's error is about, from its text: where it ran, or the shape of what it was given
_DEVICE_ERROR = re.compile(r"\bcuda\b|cudnn|nvidia|not linked with support for \w+ devices|same device|\bmps\b",
                           re.IGNORECASE)
_SHAPE_ERROR = re.compile(r"shape|size|dimension|\bdims?\b|channels?\b|mat1|mat2|\bexpected\b.*\binput\b|"
                          r"must match|out of (bounds|range)|kernel|padding|too small|length", re.IGNORECASE)

_SIZE_PATTERNS = (
    re.compile(r"mat1 and mat2 shapes cannot be multiplied \(\d+x(\d+) and (\d+)x\d+\)"),
    re.compile(r"shape '\[-1, (\d+)\]' is invalid for input of size (\d+)"),
)


def _sizes(exc: BaseException | None) -> tuple[int, int] | None:
    """(the features a linear layer got, the features it takes) from a size-mismatch error."""
    if exc is None:
        return None
    text = str(exc)
    m = _SIZE_PATTERNS[0].search(text)
    if m:
        return int(m.group(1)), int(m.group(2))
    m = _SIZE_PATTERNS[1].search(text)
    if m:
        return int(m.group(2)), int(m.group(1))  # one sequence per probe: its size is the features it got
    return None


# --------------------------------------------------------------------------------------------------
# Reading an archive


def _open_model_file(path: str, what: str = "model file"):
    from gengen.runtime import open_regular

    if Path(path).is_dir():
        raise GengenError(f"{what} {path!r} is a folder; model= takes a TorchScript file (torch.jit.save); a "
                          "dna-train-predictor folder is predictor=.")
    try:
        return os.fdopen(open_regular(path, what), "rb")
    except FileNotFoundError:
        raise GengenError(f"{what} {path!r} does not exist.") from None


def archive_members(path: str) -> list[str]:
    """The member names of the TorchScript archive at ``path``, or a one-line error saying what the file
    is instead (a pickle or ``state_dict`` from ``torch.save``, a ``torch.export`` archive, safetensors,
    another file) and how to export a model. The file is never unpickled."""
    with _open_model_file(path) as fh:
        head = fh.read(16)
        fh.seek(0)
        if not head:
            raise GengenError(f"model file {path!r} is empty; {EXPORT_HINT}.")
        if not head.startswith(b"PK\x03\x04"):
            raise GengenError(f"model file {path!r} is {_not_zip(head)}, not a TorchScript archive; {EXPORT_HINT}.")
        try:
            names = zipfile.ZipFile(fh).namelist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise GengenError(f"model file {path!r} is a damaged zip archive ({exc}); copy or export it again.") from None
    parts = {n.split("/", 1)[1] if "/" in n else n for n in names}
    if any(p.startswith("code/") for p in parts) and "constants.pkl" in parts:
        return names
    if "archive_format" in parts or any(p.startswith("models/") for p in parts):
        raise GengenError(f"model file {path!r} is a torch.export archive (.pt2), not TorchScript; {EXPORT_HINT}.")
    if "data.pkl" in parts:
        raise GengenError(f"model file {path!r} was written by torch.save (a pickled model or state_dict: weights "
                          "without the network, readable only by unpickling, which can run any code; gengen never "
                          f"does); {EXPORT_HINT}.")
    raise GengenError(f"model file {path!r} is a zip archive but not TorchScript (no code/ and constants.pkl); "
                      f"{EXPORT_HINT}.")


def _not_zip(head: bytes) -> str:
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (torch.save of a model or state_dict; unpickling can run any code, so gengen never does)"
    if len(head) >= 9 and head[8:9] == b"{":
        return "a safetensors file (weights without the network)"
    if head.startswith(b"\x89HDF"):
        return "an HDF5 file (Keras weights?)"
    return "not a zip archive"


def read_metadata(path: str, members: list[str] | None = None) -> dict:
    """The archive's ``gengen.json`` (``{}`` when it has none), checked: ``output_names`` a list of
    distinct names, ``length`` a positive whole number. Read with zipfile, without loading the model."""
    import json

    members = archive_members(path) if members is None else members
    member = next((m for m in members if m.endswith(f"/extra/{METADATA}")), None)
    if member is None:
        return {}
    with _open_model_file(path) as fh, zipfile.ZipFile(fh) as z:
        if z.getinfo(member).file_size > 2**20:
            raise GengenError(f"model file {path!r}: its {METADATA} is over 1 MB; it holds a few names and numbers.")
        raw = z.read(member)
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise GengenError(f"model file {path!r}: its {METADATA} is not valid JSON; save it again (docs/dna.md).") from None
    if not isinstance(meta, dict):
        raise GengenError(f"model file {path!r}: its {METADATA} must be a JSON object, e.g. "
                          '{"output_names": ["a", "b"], "length": 200}.')
    names, length = meta.get("output_names"), meta.get("length")
    if names is not None:
        check_output_names(names, f"model file {path!r}: {METADATA}")
    if length is not None and not (isinstance(length, int) and not isinstance(length, bool) and length > 0):
        raise GengenError(f"model file {path!r}: {METADATA} length must be a positive whole number, got {length!r}.")
    return meta


def check_output_names(names, where: str) -> list[str]:
    """``names`` as a list of distinct non-empty strings, or a one-line error naming ``where``."""
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names) \
            or len(set(names)) != len(names):
        raise GengenError(f"{where}: output_names must be a list of distinct names, got {names!r}.")
    return list(names)


def _traced_length(path: str, layout: str) -> int | None:
    """The sequence length a traced archive was traced at (its stored example input), or None."""
    if "_restore_shapes" not in inspect.signature(torch.jit.load).parameters:
        return None
    try:
        with _open_model_file(path) as fh:
            module = torch.jit.load(fh, map_location="cpu", _restore_shapes=True)
        sizes = list(module.graph.inputs())[1].type().sizes()
    except Exception:
        return None
    if not sizes or len(sizes) != 3:
        return None
    return int(sizes[2] if layout == "NCL" else sizes[1])


def load_torchscript(path: str, device: str | torch.device = "cpu") -> tuple[torch.jit.ScriptModule, dict, list[str]]:
    """(the TorchScript module at ``path`` in eval mode on ``device``, its checked ``gengen.json``, the
    archive's member names); what is not a TorchScript archive is refused before it is opened
    (:func:`archive_members`)."""
    from gengen.runtime import resolve_device

    members = archive_members(path)
    meta = read_metadata(path, members)
    dev = resolve_device(device) if isinstance(device, str) else device
    with _open_model_file(path) as fh:
        try:
            module = torch.jit.load(fh, map_location=dev)
        except Exception as exc:
            raise GengenError(f"model file {path!r} could not be loaded as TorchScript ({_reason(exc)}); it may be "
                              f"damaged or saved by a newer PyTorch than this one ({torch.__version__}).") from None
    attribute = getattr(module, "output_names", None) if hasattr(module, "output_names") else None
    if meta.get("output_names") is None and attribute is not None:
        meta["output_names"] = check_output_names(list(attribute), f"model file {path!r}: output_names attribute")
    return module.eval(), meta, members


# --------------------------------------------------------------------------------------------------
# The kind: parse / build / trained_length


def parse_layout(spec: ObjectiveSpec) -> None:
    """``layout=NCL|NLC`` (default NCL), upper-cased in ``spec.options``."""
    layout = spec.options.get("layout", "NCL").upper()
    if layout not in LAYOUTS:
        raise GengenError(f"{spec.where}: layout must be NCL ((N, 4, L), the default) or NLC ((N, L, 4)), got "
                          f"{spec.options['layout']!r}.")
    spec.options["layout"] = layout


def parse(spec: ObjectiveSpec) -> ObjectiveSpec:
    """Keys ``output`` (an index or a name) and ``layout`` (NCL or NLC)."""
    spec.refuse_options(("output", "layout"))
    parse_layout(spec)
    return spec


def objective_name(stem: str, output: str | None) -> str:
    """The objective's name: the model's, with the output picked (``m:counts``)."""
    return stem if output is None else f"{stem}:{output}"


def build(spec: ObjectiveSpec, context: ObjectiveContext) -> ModelObjective:
    """The TorchScript model at ``spec.source`` as an objective."""
    from gengen.runtime import log

    module, meta, members = load_torchscript(spec.source, context.device)
    layout, output = spec.options["layout"], spec.options.get("output")
    traced = (lambda: _traced_length(spec.source, layout)) if any(m.endswith("/traced_inputs.pkl") for m in members) \
        else None
    name = objective_name(Path(spec.source).stem, output)
    model = TorchModel(module, name=name, layout=layout, output=output, output_names=meta.get("output_names"),
                       length=meta.get("length"), traced_length=traced)
    log(f"model {name}: TorchScript from {spec.source}" + (f", trained on {model.length} nt" if model.length else "")
        + (f", outputs {', '.join(model.output_names)}" if model.output_names else ""), context.quiet)
    return ModelObjective(model, spec.target, spec.weight, name=name)


def trained_length(spec: ObjectiveSpec) -> tuple[str, int] | None:
    """(name, the length its ``gengen.json`` says it was trained on), read without loading the model; None
    when it records none or the file cannot be read (loading it says why)."""
    try:
        length = read_metadata(spec.source).get("length")
    except (GengenError, OSError):
        return None
    return (objective_name(Path(spec.source).stem, spec.options.get("output")), length) if length else None


# --------------------------------------------------------------------------------------------------
# Export


def export_torchscript(model: nn.Module, path: str | os.PathLike, *, length: int | None = None,
                       output_names: list[str] | None = None, check_length: int | None = None) -> Path:
    """Save ``model`` as a TorchScript archive that ``--objective model=PATH`` (and any PyTorch tool) reads.

    The model is scripted (``torch.jit.script``), or traced on one-hot input of ``length`` (or
    ``check_length``) nt when it does not script; the archive must give the model's own outputs on
    random one-hot sequences (to float32 rounding) or nothing is written. ``length`` and
    ``output_names`` go in the archive's ``gengen.json``. Written atomically.

    Parameters
    ----------
    model : a torch model mapping one-hot ``(N, 4, L)`` to ``(N,)`` or ``(N, K)`` (e.g. a
        :class:`~gengen.dna.predictor.predictors.CNNPredictor`).
    path : the archive to write (``.pt``).
    length : the sequence length the model was trained on (recorded: design then uses it).
    output_names : names of its K outputs (recorded: ``output=NAME`` picks one).
    check_length : the length of the sequences the export is checked (or traced) on (default:
        ``length``, else 50).

    Returns
    -------
    The path written.
    """
    import json

    from gengen.runtime import atomic_path

    n = check_length or length or 50
    was_training = model.training
    model = model.eval()
    x = _random_one_hot(8, n, next((p.device for p in model.parameters()), torch.device("cpu")))
    try:
        try:
            scripted = torch.jit.script(model)
        except Exception:  # code TorchScript cannot compile: record the operations it runs instead
            scripted = torch.jit.trace(model, x[:2], check_trace=False)
        with torch.no_grad():
            expected, got = model(x), scripted(x)
    finally:
        model.train(was_training)
    if not (isinstance(got, torch.Tensor) and got.shape == expected.shape and torch.allclose(got, expected, atol=1e-5)):
        raise GengenError("the TorchScript export does not reproduce the model's outputs on random sequences; the "
                          "model may branch on its input in Python (trace cannot follow that): make it scriptable.")
    meta = {k: v for k, v in (("length", length), ("output_names", output_names)) if v is not None}
    buffer = io.BytesIO()  # (saved to a file, the archive's folder would be named after the temporary file)
    torch.jit.save(scripted, buffer, _extra_files={METADATA: json.dumps(meta)})
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(buffer.getvalue())
    return Path(path)
