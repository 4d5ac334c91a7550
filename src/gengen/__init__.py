"""gengen: deep generative models for genomics in one tool.

Pipelines live in sub-packages, imported on demand so ``import gengen`` (and ``gengen --help``)
stays fast: ``gengen.vae`` (Tybalt VAE), ``gengen.dna`` (Killoran DNA GAN + design),
``gengen.ggan`` (GGAN landmark -> target inference).
"""

from gengen.errors import GengenError

__version__ = "0.1.0"

__all__ = ["GengenError", "__version__"]
