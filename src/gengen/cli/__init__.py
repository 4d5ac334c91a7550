"""gengen's command line: thin commands that parse arguments, call the library and report."""

from __future__ import annotations

from gengen.cli import demo as _demo  # noqa: F401
from gengen.cli import dna as _dna  # noqa: F401
from gengen.cli import ggan as _ggan  # noqa: F401
from gengen.cli import sweep as _sweep  # noqa: F401
from gengen.cli import vae as _vae  # noqa: F401  (registers commands)

# isort: split
from gengen.cli import models as _models  # noqa: F401  (gengen models ...: listed after the pipelines)
from gengen.cli._app import app


def main() -> None:
    """Console-script entry point (under torchrun: the data-parallel trainers, see :mod:`gengen.distributed`)."""
    import os

    if all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")):  # started by torchrun
        from gengen import distributed

        distributed.main(app)
    else:
        app()


__all__ = ["app", "main"]
