"""The published Tybalt decoder (Keras 2 HDF5) read into a gengen decoder-only model.

greenelab/tybalt shipped ``tybalt_decoder_onehidden.hdf5``: ``model_weights/dense_3/dense_3/kernel:0``
(100 x 5000) and ``bias:0`` (5000), genes in ``tybalt_genes_5000.txt`` order. Reading it lets users
run gengen's feature analysis on the paper's own weights (node 82 = sex, etc.).
"""

from __future__ import annotations

import os

import numpy as np

from gengen.errors import GengenError
from gengen.io.expression import read_gene_list


def read_keras_dense(hdf5_path: str | os.PathLike, layer: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) of a Dense layer in a Keras HDF5 file; default: the last layer with a kernel."""
    import h5py

    from gengen.io.files import check_input

    check_input(hdf5_path, "Keras HDF5 file")  # h5py would wait forever on a named pipe
    try:
        f = h5py.File(hdf5_path, "r")
    except OSError as exc:
        raise GengenError(f"cannot open {str(hdf5_path)!r} as a Keras HDF5 file: {exc}.") from None
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        found = []
        root.visititems(lambda name, obj: found.append(name) if name.endswith("kernel:0") else None)
        if not found:
            raise GengenError(f"{str(hdf5_path)!r} holds no Dense kernel; is it a Keras model?")
        kernel_name = next((n for n in found if n.split("/")[0] == layer), None) if layer else found[-1]
        if kernel_name is None:
            raise GengenError(f"layer {layer!r} not in {str(hdf5_path)!r}; found {[n.split('/')[0] for n in found]}.")
        kernel = np.asarray(root[kernel_name], dtype=np.float32)
        bias_name = kernel_name.replace("kernel:0", "bias:0")
        bias = np.asarray(root[bias_name], dtype=np.float32) if bias_name in root else np.zeros(kernel.shape[1], np.float32)
    return kernel, bias


def import_tybalt_decoder(hdf5_path: str | os.PathLike, genes_path: str | os.PathLike, device: str = "cpu"):
    """A decoder-only :class:`VAEModel` holding the published weights; scaler is the identity on [0, 1]
    (Tybalt's min/max were not published), so decoded values are in Tybalt's scaled units.

    Parameters
    ----------
    hdf5_path : the published Keras decoder (``tybalt_decoder_onehidden.hdf5``).
    genes_path : its 5,000 genes, one per line, in column order.
    device : where the model goes.

    Returns
    -------
    A decoder-only :class:`VAEModel` (it can decode and sample, not encode).
    """
    import torch

    from gengen.vae.core import VAEModel
    from gengen.vae.model import TybaltVAE
    from gengen.vae.preprocess import MinMaxScaler
    from gengen.vae.train import VAERecipe

    kernel, bias = read_keras_dense(hdf5_path)
    genes = read_gene_list(genes_path, unique=False)  # line i names output i: keep repeats to count them
    k, n = kernel.shape
    if len(genes) != n:
        raise GengenError(f"the decoder has {n} outputs but {str(genes_path)!r} lists {len(genes)} genes.")
    repeated = sorted({g for g in genes if genes.count(g) > 1}) if len(set(genes)) != n else []
    if repeated:
        from gengen.errors import preview

        raise GengenError(f"{str(genes_path)!r} names {len(repeated)} gene(s) more than once ({preview(repeated)}): "
                          "each decoder output needs its own gene; use the list published with the weights.")
    module = TybaltVAE(n, k)
    with torch.no_grad():
        module.decoder[0].weight.copy_(torch.from_numpy(kernel.T))
        module.decoder[0].bias.copy_(torch.from_numpy(bias))
    scaler = MinMaxScaler(np.zeros(n, np.float32), np.ones(n, np.float32))
    recipe = VAERecipe(latent_dim=k, n_genes=n, notes=[f"decoder imported from {os.fspath(hdf5_path)}"])
    return VAEModel(module, genes, scaler, recipe=recipe, metrics={"source": os.fspath(hdf5_path)}, device=device,
                    decoder_only=True)
