"""Tybalt-style variational autoencoder over bulk expression (Way & Greene 2018).

>>> from gengen.vae import VAEModel, VAERecipe, encode
>>> embedded, model = encode(adata)          # trains with the Tybalt recipe, adds obsm["X_vae"]
>>> model.save("tybalt_model"); model.decoder_weights()
"""

from gengen.vae.compare import compare, knn_accuracy, register_comparison
from gengen.vae.core import EMBEDDING_KEY, VAEModel
from gengen.vae.encode import decode_to_anndata, encode
from gengen.vae.features import separating_features, top_abs_genes, top_genes
from gengen.vae.preprocess import MinMaxScaler, gene_dispersion, select_variable_genes
from gengen.vae.train import VAERecipe, resolve_vae_recipe
from gengen.vae.tybalt import import_tybalt_decoder

__all__ = [
    "EMBEDDING_KEY", "MinMaxScaler", "VAEModel", "VAERecipe", "compare", "decode_to_anndata", "encode",
    "gene_dispersion", "import_tybalt_decoder", "knn_accuracy", "register_comparison", "resolve_vae_recipe", "select_variable_genes",
    "separating_features", "top_abs_genes", "top_genes",
]
