"""The Typer app, the error boundary and status output (shared options: :mod:`gengen.cli._options`).

Command modules (``vae.py``, ``dna.py``, ``ggan.py``, ``demo.py``) add commands to :data:`app`.
They import heavy libraries (torch, anndata) inside the command body so ``gengen --help`` is instant.
"""

from __future__ import annotations

import errno
import gzip
import lzma
import math
import os
import sys
import zlib
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand, TyperGroup

from gengen import __version__
from gengen.errors import GengenError

_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_NO_MEMORY = ("not enough memory for this job{detail}; ask for less (-n, --length, --latent, --hidden, --batch-size, "
              "--chunk-size) or run it on a machine with more memory.")
_ENDED_EARLY = ("an input file is truncated or corrupted (its compressed data end early or do not decode); "
                "download or copy it again (`gzip -t FILE` checks a .gz).")


class GengenGroup(TyperGroup):
    """Turns :class:`GengenError` into one line on stderr and exit code 2 (no traceback).

    ``GENGEN_DEBUG=1`` re-raises for a full traceback.
    """

    def list_commands(self, ctx) -> list[str]:
        return list(self.commands)  # keep definition order: pipelines grouped as written

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode: bool = True, **extra):
        """Usage mistakes (unknown option, bad value) as one line too, instead of a rich error box."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except Exception as exc:  # click's UsageError/BadParameter/Abort, whichever click Typer ships
            if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
                hint = ""
                cmd = getattr(getattr(exc, "ctx", None), "command_path", "")
                if cmd:
                    hint = f" (see '{cmd} --help')"
                print(f"gengen: error: {exc.format_message()}{hint}", file=sys.stderr)
                sys.exit(exc.exit_code)
            if type(exc).__name__ == "Abort":
                if isinstance(exc.__cause__, EOFError):  # click turns an EOFError from a command into Abort
                    print(f"gengen: error: {_ENDED_EARLY}", file=sys.stderr)
                    sys.exit(GengenError.exit_code)
                print("gengen: aborted", file=sys.stderr)
                sys.exit(1)
            if isinstance(exc, gzip.BadGzipFile) and not os.environ.get("GENGEN_DEBUG"):
                # an OSError without a file name, so the command boundary lets it through: name the cause here
                print(f"gengen: error: {_ENDED_EARLY} (BadGzipFile: {str(exc)[:120]})", file=sys.stderr)
                sys.exit(GengenError.exit_code)
            raise
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx):
        import warnings

        from gengen.runtime import command_scope

        try:
            # planned outputs land only if the command succeeds; the group resolves which command runs
            with command_scope(lambda: ctx.invoked_subcommand), warnings.catch_warnings():
                # gengen reports duplicate names itself, in one line (an error for genes, a note for samples)
                warnings.filterwarnings("ignore", message=r"(Observation|Variable) names are not unique")
                return super().invoke(ctx)
        except GengenError as exc:
            if os.environ.get("GENGEN_DEBUG"):
                raise
            typer.echo(f"gengen: error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:  # the system refused a file (permission, disk full, ...): say which, in one line
            if os.environ.get("GENGEN_DEBUG") or (exc.filename is None and exc.errno not in _SPACE_ERRNOS):
                raise
            where = f"{os.fsdecode(exc.filename)!r}: " if exc.filename is not None else ""
            typer.echo(f"gengen: error: {where}{exc.strerror or exc}.", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("gengen: interrupted", err=True)
            raise typer.Exit(130) from None
        except (MemoryError, RuntimeError) as exc:  # an allocation that cannot succeed (numpy, torch CPU or CUDA)
            if os.environ.get("GENGEN_DEBUG") or not _out_of_memory(exc):
                raise
            detail = str(exc).splitlines()[0][:160] if str(exc) else ""
            typer.echo(f"gengen: error: {_NO_MEMORY.format(detail=f' ({detail})' if detail else '')}", err=True)
            raise typer.Exit(GengenError.exit_code) from None
        except (EOFError, zlib.error, lzma.LZMAError) as exc:
            # Readers name the file (gengen.io.files); this catches one that read around them. Without it
            # click would turn the EOFError of a truncated .gz into a bare "aborted", exit 1. (gzip's
            # BadGzipFile is an OSError: main() catches it, whatever OSError handling comes before.)
            if os.environ.get("GENGEN_DEBUG"):
                raise
            typer.echo(f"gengen: error: {_ENDED_EARLY} ({type(exc).__name__}: {str(exc)[:120]})", err=True)
            raise typer.Exit(GengenError.exit_code) from None


def unwrap_help(text: str | None) -> str | None:
    """A docstring as help text: each paragraph on one line, so the terminal wraps it.

    Typer's rich help keeps the source's line breaks after the first paragraph, which at 80 columns
    cut sentences in two ("at least once" / "a minute)")."""
    if not text:
        return text
    import inspect

    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(ln.strip() for ln in par.splitlines()) for par in paragraphs)


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says an allocation failed: MemoryError (numpy), torch's CPU allocator or CUDA OOM."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    message = str(exc)
    return "can't allocate memory" in message or "out of memory" in message.lower()


class GengenCommand(TyperCommand):
    """Every gengen command: no empty argument, and a float option must be a finite number.

    ``--lr nan``, ``--dropout inf`` or ``--val-fraction nan`` are never meant, and NaN slips through
    every ``< 0`` range check downstream (it compares false), so all are refused here, in one place,
    before the command runs. Only values the user gave are checked (a default may be ``inf`` on purpose).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.help = unwrap_help(self.help)

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        """An empty argument (``--model ""``, ``-o ''``, ``--landmarks=``) names no file, model or number
        (a path it would become is the current folder): refused before anything is parsed."""
        for i, arg in enumerate(args):
            option = args[i - 1] if i and args[i - 1].startswith("-") else None
            if arg.startswith("--") and arg.endswith("=") and len(arg) > 3:
                option, arg = arg[:-1], ""
            if not arg.strip():
                where = f"after {option}" if option else f"as argument {i + 1}"
                raise GengenError(f"an empty value was given {where}; give a value, or leave the option out.")
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        for param in self.params:
            value = ctx.params.get(param.name)
            source = ctx.get_parameter_source(param.name) if param.name else None
            if source is not None and source.name.startswith("DEFAULT"):
                continue
            if isinstance(value, float) and not math.isfinite(value):
                name = max(param.opts, key=len) if param.opts else param.name
                raise GengenError(f"{name} must be a finite number, got {value}.")
        return super().invoke(ctx)


class GengenTyper(typer.Typer):
    """A Typer app whose commands are :class:`GengenCommand` unless they name another class."""

    def command(self, name=None, *, cls=None, **kwargs):
        return super().command(name, cls=cls or GengenCommand, **kwargs)


def command_group(name: str, help: str, *, no_args_is_help: bool = True, typer_class: type = GengenTyper,  # noqa: A002
                  **settings) -> typer.Typer:
    """A command group (the app, ``gengen models``, ``gengen sweep``) with gengen's error boundary."""
    return typer_class(name=name, cls=GengenGroup, help=help, no_args_is_help=no_args_is_help, add_completion=False,
                       pretty_exceptions_enable=False, **settings)


app = command_group(
    "gengen", "Deep generative models for genomics: Tybalt VAE, Killoran DNA GAN + design, GGAN target inference.",
    context_settings={"help_option_names": ["-h", "--help"]})


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gengen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """Deep generative models for genomics."""


def input_path(path: Path) -> Path:
    """Early, clear error for a missing input (before any heavy import)."""
    if not Path(path).exists():
        raise GengenError(f"input file {str(path)!r} does not exist.")
    return Path(path)


def say(message: str, quiet: bool = False) -> None:
    """Status line on stderr."""
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def report(lines: list[str], paths: list[Path], quiet: bool = False) -> None:
    """After a command has written ``paths``: its status ``lines`` on stderr, then each path on stdout."""
    for line in lines:
        say(line, quiet)
    for path in paths:
        typer.echo(str(path))
