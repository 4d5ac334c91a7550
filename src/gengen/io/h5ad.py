"""h5ad files: the expression matrix of one (``X`` or a named layer), and writing one so that a full
disk is one clean error.

Writing: HDF5 does not survive a write the system refuses. On a full disk its file close fails too,
and the dataset handles it leaves behind crash the interpreter when it exits (``H5D_close`` called
from ``H5_term_library``: a SIGSEGV after the error message, seen in 3 of 3 runs of
``infer-targets -o x.h5ad`` on a full disk). So :func:`write_h5ad` checks the free space first, when
the file's size is known (the arrays' bytes are a lower bound: anndata writes them uncompressed),
and then lets h5py write through a file object (:class:`_WriteSink`) that records a refused write and
discards the rest instead of failing it: HDF5 finishes a useless file and closes it normally, and
the recorded error (``No space left on device``) is raised afterwards, naming the file, so
:func:`gengen.runtime.atomic_path` removes the temporary and the command says it in one line.
"""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gengen.errors import GengenError, preview

if TYPE_CHECKING:
    import anndata as ad

_KEEP_AFTER_FAILURE = 1 << 20  # after a refused write, HDF5 metadata (small writes) is kept in memory for reads


class _WriteSink(io.RawIOBase):
    """A read-write file for h5py (its ``fileobj`` driver) that never fails a write: the first
    OSError is kept in :attr:`error`, later data are dropped (small blocks are kept in memory, in case
    HDF5 reads its own metadata back), and h5py sees every write succeed."""

    def __init__(self, fd: int):
        super().__init__()
        self.fd, self.pos = fd, 0
        self.error: OSError | None = None
        self._kept: list[tuple[int, bytes]] = []

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.pos, os.SEEK_END: os.fstat(self.fd).st_size}[whence]
        self.pos = base + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        size = given = len(view)
        if self.error is None:
            done = 0
            try:
                while done < size:
                    done += os.pwrite(self.fd, view[done:], self.pos + done)
            except OSError as exc:
                self.error = exc
                view = view[done:]
                self.pos += done
                size -= done
        if self.error is not None and 0 < len(view) <= _KEEP_AFTER_FAILURE:
            self._kept.append((self.pos, bytes(view)))
        self.pos += size
        return given

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        data = os.pread(self.fd, len(view), self.pos)  # HDF5 reads back metadata only: small blocks
        n = len(data)
        view[:n] = data
        if self._kept:
            end = max(off + len(blob) for off, blob in self._kept)
            wanted = min(len(view), max(0, end - self.pos))
            if wanted > n:
                view[n:wanted] = bytes(wanted - n)
                n = wanted
            for off, blob in self._kept:
                lo, hi = max(off, self.pos), min(off + len(blob), self.pos + n)
                if lo < hi:
                    view[lo - self.pos : hi - self.pos] = blob[lo - off : hi - off]
        self.pos += n
        return n

    def truncate(self, size: int | None = None) -> int:
        size = self.pos if size is None else size
        if self.error is None:
            try:
                os.ftruncate(self.fd, size)
            except OSError as exc:
                self.error = exc
        return size

    def flush(self) -> None:
        pass


def _array_bytes(value) -> int:
    """Bytes an array (dense or sparse) or a data frame of numbers occupies uncompressed (0 otherwise)."""
    import scipy.sparse as sp

    if sp.issparse(value):
        return int(value.data.nbytes + value.indices.nbytes + value.indptr.nbytes)
    if isinstance(value, np.ndarray):
        return int(value.nbytes) if value.dtype.kind in "biufc" else 0
    if hasattr(value, "select_dtypes"):  # a DataFrame in obsm
        return int(value.select_dtypes("number").memory_usage(index=False).sum())
    return 0


def h5ad_min_bytes(adata: ad.AnnData) -> int:
    """A lower bound of the h5ad's size: the bytes of its numeric arrays (``X``, layers, ``obsm``,
    ``varm``, ``obsp``, ``varp``), which anndata writes uncompressed."""
    parts = [adata.X, *adata.layers.values(), *adata.obsm.values(), *adata.varm.values(),
             *adata.obsp.values(), *adata.varp.values()]
    return sum(_array_bytes(p) for p in parts if p is not None)


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def check_free_space(path: str | os.PathLike, need: int) -> None:
    """Refuse (an ENOSPC OSError naming ``path``) when its filesystem has less than ``need`` bytes free
    for this user; silent where the filesystem does not say."""
    try:
        st = os.statvfs(Path(path).parent)
    except (OSError, AttributeError):
        return
    free = st.f_bavail * st.f_frsize
    if need > free:
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)}: it needs at least {_size(need)} and "
                      f"{_size(free)} are free there", str(path))


def _write_elem():
    try:
        from anndata.io import write_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import write_elem
    return write_elem


def write_h5ad(adata: ad.AnnData, path: str | os.PathLike) -> Path:
    """Write ``adata`` as h5ad at ``path`` (normally the temporary of :func:`gengen.runtime.atomic_path`);
    the file anndata's ``write_h5ad`` writes, but a full disk is one OSError naming ``path``.

    Parameters
    ----------
    adata : the data (string columns become categoricals, as anndata's ``write_h5ad`` does).
    path : the file to write (replaced).

    Returns
    -------
    ``path``.
    """
    import h5py

    path = Path(path)
    check_free_space(path, h5ad_min_bytes(adata))
    write_elem = _write_elem()
    adata.strings_to_categoricals()
    if adata.raw is not None:
        adata.strings_to_categoricals(adata.raw.var)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0),
                 0o666)
    sink = _WriteSink(fd)
    try:
        try:
            with h5py.File(sink, "w") as f:  # the layout of anndata's write_h5ad
                f.attrs["encoding-type"] = "anndata"
                f.attrs["encoding-version"] = "0.1.0"
                if adata.X is not None:
                    write_elem(f, "X", adata.X)
                if adata.raw is not None:
                    write_elem(f, "raw", adata.raw)
                write_elem(f, "obs", adata.obs)
                write_elem(f, "var", adata.var)
                for key in ("obsm", "varm", "obsp", "varp", "layers"):
                    write_elem(f, key, dict(getattr(adata, key)))
                write_elem(f, "uns", dict(adata.uns))
        except (OSError, RuntimeError) as exc:  # h5py's errors; HDF5 itself never saw a write fail
            if sink.error is None:
                detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
                raise OSError(errno.EIO, f"HDF5 could not write it ({detail})", str(path)) from None
    finally:
        os.close(fd)
    if sink.error is not None:
        raise OSError(sink.error.errno, sink.error.strerror or str(sink.error), str(path))
    return path


def h5ad_layer_names(path: str | os.PathLike) -> list[str]:
    """The names under ``layers`` of an h5ad file, without reading them."""
    import h5py

    with h5py.File(path, "r") as f:
        group = f.get("layers")
        return list(group.keys()) if isinstance(group, h5py.Group) else []


def _choices(layers: list[str]) -> str:
    return f"its layers are {preview(layers)}" if layers else "it has no layers either"


def pick_matrix(adata: ad.AnnData, layer: str | None, source: str) -> ad.AnnData:
    """``adata`` with ``X`` taken from ``layers[layer]`` when ``layer`` is given; without one, an AnnData
    whose ``X`` is missing is a GengenError that lists the layers to choose from (``--layer``)."""
    layers = list(adata.layers.keys())
    if layer is not None:
        if layer not in adata.layers:
            raise GengenError(f"{source}: no layer {layer!r}; {_choices(layers)}.")
        adata.X = adata.layers[layer]
        return adata
    if adata.X is None:
        raise GengenError(f"{source}: the h5ad has no X matrix; {_choices(layers)}"
                          + (": pick one with --layer NAME." if layers else "."))
    return adata


class H5adRows:
    """Row blocks of an h5ad's matrix (``X`` or ``layers[layer]``, dense or sparse) read from disk,
    for streaming a query of any size: ``with H5adRows(path, layer) as m: m[s:e]``."""

    def __init__(self, path: str | os.PathLike, layer: str | None = None):
        self.path, self.layer = Path(path), layer

    def __enter__(self) -> H5adRows:
        import h5py

        try:
            self.file = h5py.File(self.path, "r")
        except OSError as exc:
            raise GengenError(f"cannot read {str(self.path)!r} as h5ad: {str(exc).splitlines()[0][:200]}") from None
        try:
            name = "X" if self.layer is None else f"layers/{self.layer}"
            node = self.file.get(name)
            if node is None:
                layers = list(self.file["layers"].keys()) if isinstance(self.file.get("layers"), h5py.Group) else []
                if self.layer is not None:
                    raise GengenError(f"{self.path}: no layer {self.layer!r}; {_choices(layers)}.")
                raise GengenError(f"{self.path}: the h5ad has no X matrix; {_choices(layers)}"
                                  + (": pick one with --layer NAME." if layers else "."))
            if isinstance(node, h5py.Dataset):
                self.matrix = node
            else:
                try:
                    from anndata.io import sparse_dataset
                except ImportError:  # anndata < 0.11
                    from anndata.experimental import sparse_dataset
                self.matrix = sparse_dataset(node)
        except BaseException:
            self.file.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()

    @property
    def n_rows(self) -> int:
        return int(self.matrix.shape[0])

    def __getitem__(self, rows: slice) -> np.ndarray:
        import scipy.sparse as sp

        block = self.matrix[rows]
        return np.asarray(block.toarray() if sp.issparse(block) else block, dtype=np.float32)


def h5ad_frame(path: str | os.PathLike, key: str):
    """The ``obs`` or ``var`` data frame of an h5ad file, without reading its matrices."""
    import h5py

    try:
        from anndata.io import read_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import read_elem
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise GengenError(f"cannot read {str(path)!r} as h5ad: {str(exc).splitlines()[0][:200]}") from None
    with f:
        if key not in f:
            raise GengenError(f"{str(path)!r} has no {key!r} table; it is not a complete h5ad file.")
        return read_elem(f[key])
