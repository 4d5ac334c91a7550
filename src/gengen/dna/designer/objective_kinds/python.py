"""``--objective python=MODULE_OR_FILE.py:FACTORY[,key=value...]``: the user's own Python code returns the model.

This **runs the user's code** (it is imported, and the factory called, with the user's rights): it is
how a model that needs its own Python (a gReLU or tangermeme model, a Lightning checkpoint, anything
that is not TorchScript) plugs in, and is meant for code the user wrote or trusts. ``FACTORY`` is a
function (or class) of ``MODULE_OR_FILE`` (a ``.py`` file, or an importable module name) returning an
``nn.Module`` that maps one-hot ``(N, 4, L)`` (A, C, G, T) to ``(N,)`` or ``(N, K)``. The spec's other
keys are passed to it as keyword arguments (numbers, ``true``/``false`` and Python literals are
converted, anything else stays a string; values cannot hold commas), except gengen's own:
``target``, ``weight``, ``output`` and ``layout``, which mean what they mean for ``model=``. An
``output_names`` list attribute on the returned module names its outputs.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from torch import nn

from gengen.dna.designer.objective_kinds.model import ModelObjective, TorchModel, check_output_names, parse_layout
from gengen.dna.designer.objectives import ObjectiveContext, ObjectiveSpec
from gengen.errors import GengenError

OWN_KEYS = ("output", "layout")  # gengen's; every other key is the factory's


def _split(spec: ObjectiveSpec) -> tuple[str, str]:
    where, _, factory = spec.source.rpartition(":")
    if not where or not factory or not all(part.isidentifier() for part in factory.split(".")):
        raise GengenError(f"{spec.where}: python= takes MODULE_OR_FILE.py:FACTORY, e.g. python=my_models.py:make_model "
                          "(a function returning a torch.nn.Module).")
    return where, factory


def parse(spec: ObjectiveSpec) -> ObjectiveSpec:
    """``MODULE_OR_FILE.py:FACTORY``; ``output`` and ``layout`` as for ``model=``; every other key is the
    factory's keyword argument."""
    where, _ = _split(spec)
    parse_layout(spec)
    spec.inputs = (where,) if where.endswith(".py") else ()
    return spec


def factory_arguments(spec: ObjectiveSpec) -> dict[str, Any]:
    """The spec's keys that are not gengen's, as keyword arguments (literals converted)."""
    out = {}
    for key, text in spec.options.items():
        if key in OWN_KEYS:
            continue
        if not key.isidentifier():
            raise GengenError(f"{spec.where}: {key!r} cannot be a keyword argument of the factory.")
        lowered = text.lower()
        if lowered in ("true", "false", "none"):
            out[key] = {"true": True, "false": False, "none": None}[lowered]
            continue
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            out[key] = text
    return out


@contextlib.contextmanager
def _your_code(spec: ObjectiveSpec, doing: str) -> Iterator[None]:
    """Run the user's code: a :class:`GengenError` passes as it is, any other exception becomes one line
    naming what was being done (``GENGEN_DEBUG=1``: the exception itself, with its traceback). A
    ``SystemExit`` (``sys.exit`` in a script's main code or a factory) is one too: it would otherwise end
    gengen with the user's exit code and no word of why."""
    try:
        yield
    except GengenError:
        raise
    except (Exception, SystemExit) as exc:
        from gengen.runtime.progress import _TERMINATED

        if os.environ.get("GENGEN_DEBUG") or (isinstance(exc, SystemExit) and _TERMINATED):
            raise  # a SIGTERM that landed in the user's code is the command's stop, not their sys.exit()
        if isinstance(exc, SystemExit):
            detail = f"exit code {exc.code!r}; sys.exit() or exit() ran"
        else:
            detail = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise GengenError(f"{spec.where}: {doing} raised {type(exc).__name__}" + (f": {detail}" if detail else "")
                          + " (your code; GENGEN_DEBUG=1 shows the traceback).") from None


def import_user_module(spec: ObjectiveSpec, where: str):
    """The module ``where`` names: a ``.py`` file (imported under a name of its own, its folder put on
    ``sys.path`` so it can import its neighbours) or an importable module (the current folder is
    searched too). Runs its code."""
    if where.endswith(".py"):
        from gengen.io.files import check_input

        path = check_input(where, "python file").resolve()
        name = f"gengen_user_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        if name in sys.modules:
            return sys.modules[name]
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        with _your_code(spec, f"importing {where}"):
            try:
                module_spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
        return module
    with _your_code(spec, f"importing {where}"):
        try:
            try:
                return importlib.import_module(where)
            except ModuleNotFoundError as exc:
                if exc.name != where.split(".")[0] or os.getcwd() in sys.path:
                    raise
                sys.path.insert(0, os.getcwd())
                return importlib.import_module(where)
        except ModuleNotFoundError as exc:
            if exc.name == where.split(".")[0]:
                raise GengenError(f"{spec.where}: no module {where!r} (give a .py file, or a module importable from "
                                  "here).") from None
            raise


def build(spec: ObjectiveSpec, context: ObjectiveContext) -> ModelObjective:
    """Import the module, call the factory with the spec's arguments, wrap the ``nn.Module`` it returns."""
    from gengen.runtime import log, resolve_device

    where, factory_name = _split(spec)
    kwargs = factory_arguments(spec)
    module = import_user_module(spec, where)
    factory: Any = module
    for part in factory_name.split("."):
        if not hasattr(factory, part):
            raise GengenError(f"{spec.where}: {where} has no {factory_name!r}.")
        factory = getattr(factory, part)
    if not callable(factory):
        raise GengenError(f"{spec.where}: {factory_name} in {where} is not a function (its type is "
                          f"{type(factory).__name__}).")
    shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    log(f"running your code: {factory_name}({shown}) from {where}", context.quiet)
    with _your_code(spec, f"{factory_name}({shown})"):
        model = factory(**kwargs)
    if not isinstance(model, nn.Module):
        raise GengenError(f"{spec.where}: {factory_name}() returned an object of type {type(model).__name__}, not a "
                          "torch.nn.Module.")
    names = getattr(model, "output_names", None)
    if names is not None:
        names = check_output_names(list(names) if isinstance(names, (list, tuple)) else names,
                                   f"{spec.where}: the model's output_names")
    device = resolve_device(context.device) if isinstance(context.device, str) else context.device
    model = model.to(device).eval()
    output = spec.options.get("output")
    name = f"{Path(where).stem}.{factory_name}" + (f":{output}" if output is not None else "")
    wrapped = TorchModel(model, name=name, layout=spec.options["layout"], output=output, output_names=names)
    return ModelObjective(wrapped, spec.target, spec.weight, name=name)
