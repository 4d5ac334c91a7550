"""A bad-input suite that stays (issue 11): every command, fed files and options broken the ways they
break in practice, must fail the way the README promises.

Each case runs one command in-process (Typer's CliRunner, ``-q``) in its own empty folder, with the
broken inputs it names written there and the good inputs read from shared fixtures built once per
session (tiny trained models of the four pipelines, tiny data files of every supported format).
Every case asserts:

- exit code 2 and exactly one stderr line, starting ``gengen: error:``; nothing on stdout; no traceback;
- no output left: the case folder, the shared fixtures and the model store list the same paths
  before and after, recursively, dotfiles included (temporaries ``.X.gengen-tmp-*``, locks
  ``.X.gengen-lock``, empty folders);
- every input byte-identical afterwards (SHA-256 of every file before and after).

Add a case by appending a :class:`Case` to :data:`CASES` (``add(case(...))``): ``argv`` names shared
fixtures as ``@name`` (``@vae`` is the tiny VAE model folder, ``@expr.csv`` a good table, ...); ``files``
maps names in the case folder to their bytes (or to a function of the fixture folder returning them, a
:class:`Link`, or a :class:`Fifo`: a named pipe, which a reader that opens it waits on forever); ``dirs``
makes folders there; ``seconds`` bounds the case's run (a hang is a failure, not a stuck suite); ``env`` sets variables; ``patch(monkeypatch, folder)``
makes the filesystem say no (read-only, disk full, a lock held by another run) for the command only;
``needle`` is a word the error line must hold; ``keeps`` lists the paths (glob patterns, relative to the
case folder) a failed run may leave on purpose: the finished work of a resumable command. The store ``$GENGEN_HOME/models`` exists in every case
folder (as after a first training). A test fails when a command has no case at all.

Where the suite found defects, the fixes are general: float options must be finite and arguments
non-empty for every command (``GengenCommand``), seeds are range-checked once (``SeedOpt``), a failed
allocation is one line (``GengenGroup``), checkpoints refuse NaN weights and name pickles, declared
outputs land as soon as the last is written (``OutputPlan``).
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import json
import os
import pickle
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dna_fixtures import JASPAR_TEXT, MEME_TEXT, PFM_T_TEXT, PFM_TEXT, SITES_TEXT, TRANSFAC_TEXT, random_seqs, write_fa

CASE_SECONDS = 60  # a case that runs longer accepted something it should have refused
FX_NAME = "bad_inputs_fixtures"

HOMER_TEXT = ">GCGAG\tTOY\t5.0\n0.25\t0.125\t0.5\t0.125\n0\t1\t0\t0\n0\t0\t1\t0\n0.75\t0\t0.125\t0.125\n0.125\t0.125\t0.625\t0.125\n"
N_GENES, N_SAMPLES = 12, 40
LANDMARKS = [f"LM{i}" for i in range(5)]
TARGETS = [f"TG{i}" for i in range(4)]


# --------------------------------------------------------------------------------------- fixtures
def _expression() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    factors = rng.standard_normal((N_SAMPLES, 2))
    X = 6 + factors @ rng.standard_normal((2, N_GENES)) + 0.3 * rng.standard_normal((N_SAMPLES, N_GENES))
    return pd.DataFrame(X.astype(np.float32), index=[f"s{i}" for i in range(N_SAMPLES)],
                        columns=[f"G{j}" for j in range(N_GENES)])


def _reference() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    X = rng.standard_normal((N_SAMPLES, len(LANDMARKS)))
    Y = 5 + np.tanh(X @ rng.standard_normal((len(LANDMARKS), len(TARGETS)))) + 0.05 * rng.standard_normal((N_SAMPLES, len(TARGETS)))
    return pd.DataFrame(np.c_[X + 7, Y].astype(np.float32), index=[f"r{i}" for i in range(N_SAMPLES)],
                        columns=LANDMARKS + TARGETS)


def _write_gct(path: Path, df: pd.DataFrame) -> None:
    lines = ["#1.2", f"{df.shape[1]}\t{df.shape[0]}", "\t".join(["Name", "Description", *df.index])]
    lines += ["\t".join([g, "na", *(f"{v:.5f}" for v in df[g])]) for g in df.columns]
    path.write_text("\n".join(lines) + "\n")


def _write_gctx(path: Path, df: pd.DataFrame) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["version"] = "GCTX1.0"
        f.create_dataset("0/DATA/0/matrix", data=df.to_numpy(np.float32))  # HDF5 rows = samples
        f.create_dataset("0/META/ROW/id", data=np.array([g.encode() for g in df.columns], dtype="S"))
        f.create_dataset("0/META/COL/id", data=np.array([s.encode() for s in df.index], dtype="S"))


def _write_archs4(path: Path, df: pd.DataFrame) -> None:
    """The expression table as ARCHS4 counts (genes x samples), with series_id and tissue sample fields."""
    from gengen.io.archs4 import write_archs4

    counts = np.rint(np.exp2(df.to_numpy(np.float64))).astype(np.uint32).T
    fields = {"series_id": np.where(np.arange(len(df)) < 20, "GSE1", "GSE2"), "tissue": np.where(np.arange(len(df)) % 2, "lung", "liver")}
    write_archs4(path, counts, list(df.columns), samples=[f"GSM{i}" for i in range(len(df))], sample_fields=fields,
                 chunks=(N_GENES, 10))


def _archs4_bad_chunk(fx: Path) -> bytes:
    """The ARCHS4 fixture with one compressed chunk of its counts overwritten (a damaged download):
    its names read fine, the matrix fails part-way through."""
    import h5py

    data = bytearray((fx / "archs4.h5").read_bytes())
    with h5py.File(fx / "archs4.h5", "r") as h5:
        info = h5["data/expression"].id.get_chunk_info(2)
    for i in range(info.byte_offset, info.byte_offset + min(info.size, 64)):
        data[i] ^= 0xFF
    return bytes(data)


def _write_keras_decoder(path: Path, k: int, n: int) -> None:
    import h5py

    rng = np.random.default_rng(2)
    with h5py.File(path, "w") as f:
        f.create_dataset("model_weights/dense_3/dense_3/kernel:0", data=rng.standard_normal((k, n)).astype(np.float32))
        f.create_dataset("model_weights/dense_3/dense_3/bias:0", data=np.zeros(n, np.float32))


def _train(runner: CliRunner, app, *argv) -> None:
    res = runner.invoke(app, [str(a) for a in argv], env={"GENGEN_THREADS": "1"})
    assert res.exit_code == 0, (argv, res.output, res.exception)


def build_fixtures(fx: Path) -> Path:
    """Every good input the cases lean on, in ``fx`` (a few seconds: tiny models, tiny files)."""
    from gengen.cli import app

    runner = CliRunner()
    fx.mkdir(parents=True, exist_ok=True)
    df = _expression()
    import anndata as ad

    adata = ad.AnnData(df.copy())
    adata.obs["group"] = np.repeat(["a", "b"], N_SAMPLES // 2)
    adata.write_h5ad(fx / "expr.h5ad")
    df.to_csv(fx / "expr.csv")
    df.to_csv(fx / "expr.tsv", sep="\t")
    df.to_parquet(fx / "expr.parquet")
    _write_gct(fx / "expr.gct", df)
    _write_gctx(fx / "expr.gctx", df)
    (fx / "expr.csv.gz").write_bytes(gzip.compress((fx / "expr.csv").read_bytes(), mtime=0))
    (fx / "expr.tsv.gz").write_bytes(gzip.compress((fx / "expr.tsv").read_bytes(), mtime=0))
    pd.DataFrame({"sample": df.index, "group": adata.obs["group"].to_numpy()}).to_csv(fx / "labels.tsv", sep="\t", index=False)
    (fx / "genes.txt").write_text("\n".join(df.columns) + "\n")
    _write_keras_decoder(fx / "decoder.hdf5", 3, N_GENES)
    _write_archs4(fx / "archs4.h5", df)
    (fx / "archs4_landmarks.txt").write_text("\n".join(df.columns[:4]) + "\n")

    ref = _reference()
    ref.to_csv(fx / "ref.csv")
    ref.iloc[:10, : len(LANDMARKS)].to_csv(fx / "query.csv")
    (fx / "landmarks.txt").write_text("\n".join(LANDMARKS) + "\n")
    (fx / "targets.txt").write_text("\n".join(TARGETS) + "\n")
    pd.DataFrame({"id": [f"E{i}" for i in range(len(LANDMARKS))], "symbol": LANDMARKS}).to_csv(fx / "genemap.csv", index=False)

    write_fa(fx / "train.fa", random_seqs(40, 30, seed=3), prefix="gene")
    write_fa(fx / "train.fa.gz", random_seqs(40, 30, seed=3), prefix="gene", gz=True)
    probes = random_seqs(60, 12, seed=4)
    write_fa(fx / "probes.fa", probes, prefix="p")
    rng = np.random.default_rng(5)
    pd.DataFrame({"id": [f"p{i}" for i in range(60)], "signal": rng.uniform(1, 100, 60).round(3)}).to_csv(
        fx / "scores.csv", index=False)
    for name, text in (("m.jaspar", JASPAR_TEXT), ("m.meme", MEME_TEXT), ("m.transfac", TRANSFAC_TEXT),
                       ("m.pfm", PFM_TEXT), ("m_cols.txt", PFM_T_TEXT), ("m.sites", SITES_TEXT), ("m.homer", HOMER_TEXT)):
        (fx / name).write_text(text)

    _train(runner, app, "vae-train", fx / "expr.h5ad", "-o", fx / "vae", "--latent", 2, "--epochs", 1, "--batch-size", 20,
           "--device", "cpu", "-q")
    _train(runner, app, "ggan-train", fx / "ref.csv", "--landmarks", fx / "landmarks.txt", "-o", fx / "ggan", "--hidden", 8,
           "--layers", 1, "--epochs", 1, "--batch-size", 16, "--d-hidden", 8, "--device", "cpu", "-q")
    _train(runner, app, "dna-train", fx / "train.fa", "-o", fx / "gan", "--length", 12, "--iterations", 2, "--channels", 4,
           "--batch-size", 8, "--sample-every", 1, "--heldout-fraction", 0.2, "--device", "cpu", "-q")
    _train(runner, app, "dna-train-predictor", fx / "probes.fa", "--scores", fx / "scores.csv", "-o", fx / "pred",
           "--epochs", 1, "--no-baseline", "--device", "cpu", "-q")
    return fx


# ------------------------------------------------------------------------------- case building
Content = bytes | str | Callable[[Path], "bytes | str"]


@dataclass(frozen=True)
class Case:
    """One bad invocation: ``argv`` (``@name`` = shared fixture), the broken ``files`` and ``dirs`` it
    needs in its own folder, and optionally words the error line must contain."""

    id: str
    argv: tuple[str, ...]
    files: dict[str, Content] = field(default_factory=dict)
    dirs: tuple[str, ...] = ()
    needle: str = ""
    env: dict[str, str] = field(default_factory=dict)
    patch: Callable | None = None  # patch(monkeypatch, work) before the run: a filesystem that says no
    seconds: int = CASE_SECONDS
    keeps: tuple[str, ...] = ()  # resumable work a failed run keeps on purpose (glob patterns, case folder)


@dataclass(frozen=True)
class Link:
    """A symbolic link to ``target`` (``@name`` = a shared fixture), as a value of ``Case.files``."""

    target: str


@dataclass(frozen=True)
class Fifo:
    """A named pipe with no writer, as a value of ``Case.files``: opening it to read blocks forever."""


FIFO_SECONDS = 20  # a case with a named pipe must fail at once; before the fix it waited forever
DEEP_JSON = "[" * 100_000 + "]" * 100_000  # Python's JSON parser recurses: RecursionError, not ValueError


def case(id: str, argv: str | list[str], files: dict | None = None, dirs: tuple[str, ...] = (), needle: str = "",
         env: dict[str, str] | None = None, patch: Callable | None = None, seconds: int | None = None,
         keeps: tuple[str, ...] = ()) -> Case:
    """``argv`` as one string is split on spaces (fixtures and files here have no spaces in their names).
    A case with a :class:`Fifo` gets :data:`FIFO_SECONDS` unless ``seconds`` says otherwise."""
    args = tuple(argv.split()) if isinstance(argv, str) else tuple(argv)
    files = dict(files or {})
    if seconds is None:
        seconds = FIFO_SECONDS if any(isinstance(v, Fifo) for v in files.values()) else CASE_SECONDS
    return Case(id, args, files, dirs, needle, dict(env or {}), patch, seconds, keeps)


def fixture(name: str) -> Callable[[Path], bytes]:
    """A shared fixture's bytes."""
    return lambda fx: (fx / name).read_bytes()


def truncated(name: str, keep: float = 0.5) -> Callable[[Path], bytes]:
    """A shared fixture cut off part-way (a download that stopped)."""
    def cut(fx: Path) -> bytes:
        data = (fx / name).read_bytes()
        return data[: max(1, int(len(data) * keep))]
    return cut


def junk(n: int = 4000, seed: int = 0, head: bytes = b"") -> bytes:
    """Random bytes (starting with ``head``, e.g. a format's magic number)."""
    return head + np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def gz(content: Content) -> Callable[[Path], bytes]:
    def pack(fx: Path) -> bytes:
        data = _resolve(content, fx)
        return gzip.compress(data if isinstance(data, bytes) else data.encode(), mtime=0)
    return pack


def flipped(name: str, at: float = 0.6, n: int = 16) -> Callable[[Path], bytes]:
    """A shared fixture with ``n`` bytes inverted ``at`` a fraction of its length (bit rot, a bad copy)."""
    def flip(fx: Path) -> bytes:
        data = bytearray((fx / name).read_bytes())
        start = int(len(data) * at)
        for i in range(start, min(len(data), start + n)):
            data[i] ^= 0xFF
        return bytes(data)
    return flip


def table(edit: Callable[[pd.DataFrame], pd.DataFrame] | None = None, sep: str = ",", source: Callable[[], pd.DataFrame] = _expression) -> Callable[[Path], bytes]:
    """The good expression table (or another ``source``), edited, as CSV/TSV text."""
    def write(fx: Path) -> bytes:
        df = source().astype(object)
        if edit is not None:
            df = edit(df)
        return df.to_csv(sep=sep).encode()
    return write


def set_value(row: int, col: int, value) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df.iloc[row, col] = value
        return df
    return edit


def rename_columns(mapping: Callable[[list[str]], list[str]]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df.columns = mapping(list(df.columns))
        return df
    return edit


def parquet_of(edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], bytes]:
    def write(fx: Path) -> bytes:
        import io

        buf = io.BytesIO()
        edit(_expression()).to_parquet(buf)
        return buf.getvalue()
    return write


def h5ad_of(edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], bytes]:
    def write(fx: Path) -> bytes:
        import tempfile

        import anndata as ad

        df = edit(_expression())
        with tempfile.TemporaryDirectory() as d:
            ad.AnnData(df.to_numpy(np.float32), obs=pd.DataFrame(index=df.index), var=pd.DataFrame(index=df.columns)).write_h5ad(
                Path(d) / "x.h5ad")
            return (Path(d) / "x.h5ad").read_bytes()
    return write


def model_copy(src: str, dst: str = "m", *, config: Callable[[dict], dict | bytes] | None = None,
               weights: Content | None = None, rehash: bool = False, drop: tuple[str, ...] = (),
               add: dict[str, Content] | None = None) -> dict[str, Content]:
    """The files of the shared model folder ``src`` copied to ``dst``, edited: ``config`` maps the
    parsed config.json to a new one (or to raw bytes), ``weights`` replaces model.safetensors (with
    ``rehash`` the config records the new weights' SHA-256, so the checks after the hash are reached)."""
    names = {"vae": ("config.json", "model.safetensors", "history.csv"),
             "ggan": ("config.json", "model.safetensors", "history.csv"),
             "gan": ("config.json", "model.safetensors", "history.csv"),
             "pred": ("config.json", "model.safetensors", "history.csv")}[src]
    files: dict[str, Content] = {}
    for name in names:
        if name in drop:
            continue
        files[f"{dst}/{name}"] = fixture(f"{src}/{name}")
    if config is not None or rehash:
        def edited(fx: Path, _edit=config) -> bytes:
            cfg = json.loads((fx / src / "config.json").read_text())
            if rehash:
                data = _resolve(weights, fx)
                cfg["weights_sha256"] = hashlib.sha256(data if isinstance(data, bytes) else data.encode()).hexdigest()
            out = _edit(cfg) if _edit is not None else cfg
            return out if isinstance(out, bytes) else json.dumps(out).encode()
        files[f"{dst}/config.json"] = edited
    if weights is not None:
        files[f"{dst}/model.safetensors"] = weights
    for name, content in (add or {}).items():
        files[f"{dst}/{name}"] = content
    return files


def with_key(path: str, value) -> Callable[[dict], dict]:
    """config.json with ``path`` (``a.b``) set to ``value``."""
    def edit(cfg: dict) -> dict:
        *parents, last = path.split(".")
        node = cfg
        for p in parents:
            node = node[p]
        node[last] = value
        return cfg
    return edit


def without_key(key: str) -> Callable[[dict], dict]:
    def edit(cfg: dict) -> dict:
        cfg.pop(key, None)
        return cfg
    return edit


def pickled(obj=None) -> bytes:
    """A (harmless) pickle, as a careless conversion would leave in place of weights or config."""
    return pickle.dumps(obj if obj is not None else {"weight": np.zeros((2, 2), np.float32)})


def torch_saved(src: str) -> Callable[[Path], bytes]:
    """The shared model's weights as ``torch.save`` writes them (a zip of pickles)."""
    def save(fx: Path) -> bytes:
        import io

        import torch
        from safetensors.torch import load_file

        buf = io.BytesIO()
        torch.save(load_file(str(fx / src / "model.safetensors")), buf)
        return buf.getvalue()
    return save


def resaved_weights(src: str, edit: Callable[[dict], dict]) -> Callable[[Path], bytes]:
    """The shared model's tensors edited (a tensor dropped, a shape changed) and saved again as safetensors."""
    def save(fx: Path) -> bytes:
        from safetensors.torch import load_file, save

        return save(edit(load_file(str(fx / src / "model.safetensors"))))
    return save


def _h5(datasets: dict[str, np.ndarray]) -> bytes:
    """An HDF5 file holding ``datasets`` (path -> array), as bytes."""
    import tempfile

    import h5py

    with tempfile.TemporaryDirectory() as d:
        with h5py.File(Path(d) / "x.h5", "w") as f:
            for name, value in datasets.items():
                f.create_dataset(name, data=value)
        return (Path(d) / "x.h5").read_bytes()


def _latent_h5ad(k: int) -> bytes:
    """An h5ad whose obsm['X_vae'] has ``k`` columns."""
    import tempfile

    import anndata as ad

    a = ad.AnnData(np.zeros((3, 2), np.float32), obs=pd.DataFrame(index=["a", "b", "c"]), var=pd.DataFrame(index=["G0", "G1"]))
    a.obsm["X_vae"] = np.zeros((3, k), np.float32)
    with tempfile.TemporaryDirectory() as d:
        a.write_h5ad(Path(d) / "z.h5ad")
        return (Path(d) / "z.h5ad").read_bytes()


def _read_only(folder: str) -> Callable:
    """The system refuses writes in ``folder`` (as for a read-only mount; chmod does not stop root)."""
    def patch(monkeypatch, work: Path) -> None:
        import errno

        real_access, real_open, real_mkdir = os.access, os.open, os.mkdir
        ro = str(work / folder)

        def inside(path) -> bool:
            return os.path.abspath(os.fsdecode(path)).startswith(ro + os.sep) or os.path.abspath(os.fsdecode(path)) == ro

        def access(path, mode, *a, **k):
            return False if inside(path) and mode & os.W_OK else real_access(path, mode, *a, **k)

        def open_(path, flags, *a, **k):
            if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))
            return real_open(path, flags, *a, **k)

        def mkdir(path, *a, **k):
            if inside(path):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))
            return real_mkdir(path, *a, **k)

        monkeypatch.setattr(os, "access", access)
        monkeypatch.setattr(os, "open", open_)
        monkeypatch.setattr(os, "mkdir", mkdir)
    return patch


def _fold_result(run: str) -> bytes:
    """A well-formed ggan-eval fold result (``fold_results/fold1-mean.npz``) of the comparison ``run``."""
    import io

    from gengen.ggan.evaluate import FOLD_FORMAT

    header = {"format": FOLD_FORMAT, "run": run, "method": "mean", "method_key": "", "fold": 1, "seconds": 0.1,
              "detail": {}, "resolved_recipe": None}
    buffer = io.BytesIO()
    np.savez(buffer, header=np.array(json.dumps(header)), **{k: np.zeros(len(TARGETS)) for k in ("mae", "ccc", "pearson")})
    return buffer.getvalue()


def _disk_full_at(name: str) -> Callable:
    """Moving a finished output named ``name`` into place fails with ENOSPC (the others have landed)."""
    def patch(monkeypatch, work: Path) -> None:
        import errno

        real_replace = os.replace

        def replace(src, dst, *a, **k):
            if os.path.basename(os.fsdecode(dst)) == name:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fsdecode(dst))
            return real_replace(src, dst, *a, **k)

        monkeypatch.setattr(os, "replace", replace)
    return patch


def _locked(name: str) -> Callable:
    """Another gengen run holds the write lock of ``name`` (its lock file, flocked from another descriptor)."""
    def patch(monkeypatch, work: Path) -> None:
        import fcntl

        path = work / f".{name}.gengen-lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        os.write(fd, b"4242 otherhost\n")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _HELD.append(fd)  # closed (the lock released) when the case ends
    return patch


_HELD: list[int] = []


def _resolve(content: Content, fx: Path) -> bytes | str:
    return content(fx) if callable(content) else content


# ------------------------------------------------------------------------------------------ cases
VAE_FAST = "--latent 2 --epochs 1 --batch-size 20"
GGAN_FAST = "--hidden 8 --layers 1 --epochs 1 --batch-size 16 --d-hidden 8"
GAN_FAST = "--length 12 --iterations 2 --channels 4 --batch-size 8 --sample-every 1"
DESIGN = "dna-design -n 2 --steps 2 --length 12 -o d.fa"
GGAN_REF = "@ref.csv --landmarks @landmarks.txt"

EXPRESSION_FORMATS = ("h5ad", "csv", "tsv", "parquet", "gct", "gctx", "csv.gz", "tsv.gz")
MOTIF_FORMATS = ("jaspar", "meme", "transfac", "pfm", "sites", "homer")


def _drop_first_tensor(tensors: dict) -> dict:
    tensors.pop(sorted(tensors)[0])
    return tensors


def _shrink_first_tensor(tensors: dict) -> dict:
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].flatten()[:1].clone()
    return tensors


def _nan_weights(tensors: dict) -> dict:
    for t in tensors.values():
        if t.is_floating_point():
            t.fill_(float("nan"))
    return tensors


def _reference_table(edit=None, sep=","):
    return table(edit, sep=sep, source=_reference)


def _constant(value: float, columns: slice = slice(None)):
    def edit(df):
        df.iloc[:, columns] = value
        return df
    return edit


def _first_rows(n: int):
    return lambda df: df.iloc[:n]


def _first_cols(n: int):
    return lambda df: df.iloc[:, :n]


def _rename(old: str, new: str):
    return rename_columns(lambda cols: [new if c == old else c for c in cols])


def _numeric(edit):
    """An edit of a float frame (for binary formats, which keep dtypes)."""
    def apply(df):
        return edit(df.astype(np.float32))
    return apply


CASES: list[Case] = []
add = CASES.append

# --- expression files of every format: zero-byte, truncated, junk (vae-train reads them all)
for ext in EXPRESSION_FORMATS:
    add(case(f"vae-train-zero-byte-{ext}", f"vae-train x.{ext} -o out {VAE_FAST}", {f"x.{ext}": b""}))
    add(case(f"vae-train-truncated-{ext}", f"vae-train x.{ext} -o out {VAE_FAST}", {f"x.{ext}": truncated(f"expr.{ext}")}))
    add(case(f"vae-train-junk-{ext}", f"vae-train x.{ext} -o out {VAE_FAST}", {f"x.{ext}": junk(seed=len(ext))}))
add(case("vae-train-junk-gz-magic", f"vae-train x.csv.gz -o out {VAE_FAST}", {"x.csv.gz": junk(head=b"\x1f\x8b\x08\x00")}))
add(case("vae-train-bz2-truncated", f"vae-train x.csv.bz2 -o out {VAE_FAST}",
         {"x.csv.bz2": lambda fx: __import__("bz2").compress((fx / "expr.csv").read_bytes())[:900]}))
add(case("vae-train-zip-archive", f"vae-train x.csv -o out {VAE_FAST}", {"x.csv": junk(head=b"PK\x03\x04")}))
add(case("vae-train-empty-gz", f"vae-train x.csv.gz -o out {VAE_FAST}", {"x.csv.gz": gz(b"")}))
add(case("vae-train-missing-file", f"vae-train nothere.csv -o out {VAE_FAST}"))
add(case("vae-train-data-is-folder", f"vae-train adir -o out {VAE_FAST}", dirs=("adir",)))
add(case("vae-train-format-unknown", f"vae-train @expr.csv --format xlsx -o out {VAE_FAST}"))
add(case("vae-train-format-forced-wrong", f"vae-train @expr.csv --format h5ad -o out {VAE_FAST}"))
add(case("ggan-train-zero-byte-h5ad", f"ggan-train x.h5ad --landmarks @landmarks.txt -o out {GGAN_FAST}", {"x.h5ad": b""}))
add(case("ggan-train-truncated-csv-gz", f"ggan-train x.csv.gz --landmarks @landmarks.txt -o out {GGAN_FAST}",
         {"x.csv.gz": lambda fx: gz(_reference_table())(fx)[:700]}))
add(case("ggan-eval-truncated-tsv-gz", "ggan-eval x.tsv.gz --landmarks @landmarks.txt --folds 2 --methods mean -o ev",
         {"x.tsv.gz": lambda fx: gz(_reference_table(sep="\t"))(fx)[:700]}))
add(case("infer-targets-zero-byte-csv", "infer-targets q.csv --model @ggan -o p.csv", {"q.csv": b""}))
add(case("infer-targets-truncated-parquet", "infer-targets q.parquet --model @ggan -o p.csv", {"q.parquet": truncated("expr.parquet")}))
add(case("infer-targets-junk-gctx", "infer-targets q.gctx --model @ggan -o p.csv", {"q.gctx": junk(head=b"\x89HDF\r\n\x1a\n")}))
add(case("infer-targets-truncated-gctx", "infer-targets q.gctx --model @ggan -o p.csv", {"q.gctx": truncated("expr.gctx")}))
add(case("infer-targets-truncated-gct", "infer-targets q.gct --model @ggan -o p.csv", {"q.gct": truncated("expr.gct", 0.6)}))
add(case("vae-encode-truncated-h5ad", "vae-encode x.h5ad --model @vae -o e.h5ad", {"x.h5ad": truncated("expr.h5ad")}))
add(case("vae-compare-junk-tsv", f"vae-compare x.tsv {VAE_FAST}", {"x.tsv": junk(seed=7)}))
add(case("vae-features-zero-byte-data", "vae-features --model @vae --data x.csv --by group -o feats", {"x.csv": b""}))
add(case("ggan-train-landmarks-from-junk", f"ggan-train @ref.csv --landmarks-from q.parquet -o out {GGAN_FAST}", {"q.parquet": junk()}))

# --- what the matrices hold: NaN / inf / text, duplicate / missing / mismatched genes, constant data, shapes
add(case("vae-train-nan", f"vae-train x.csv -o out {VAE_FAST}", {"x.csv": table(set_value(3, 4, "nan"))}))
add(case("vae-train-inf", f"vae-train x.csv -o out {VAE_FAST}", {"x.csv": table(set_value(3, 4, "inf"))}))
add(case("vae-train-minus-inf-tsv", f"vae-train x.tsv -o out {VAE_FAST}", {"x.tsv": table(set_value(0, 0, "-inf"), sep="\t")}))
add(case("vae-train-text-value", f"vae-train x.csv -o out {VAE_FAST}", {"x.csv": table(set_value(5, 2, "high"))}))
add(case("vae-train-nan-parquet", f"vae-train x.parquet -o out {VAE_FAST}", {"x.parquet": parquet_of(_numeric(set_value(1, 1, np.nan)))}))
add(case("vae-train-inf-h5ad", f"vae-train x.h5ad -o out {VAE_FAST}", {"x.h5ad": h5ad_of(_numeric(set_value(1, 1, np.inf)))}))
add(case("vae-train-duplicate-genes", f"vae-train x.csv -o out {VAE_FAST}", {"x.csv": table(_rename("G1", "G0"))}))
add(case("vae-train-duplicate-genes-h5ad", f"vae-train x.h5ad -o out {VAE_FAST}", {"x.h5ad": h5ad_of(_rename("G1", "G0"))}))
add(case("vae-train-all-zero", f"vae-train x.csv -o out {VAE_FAST}", {"x.csv": table(_constant(0.0))}))
add(case("vae-train-constant", f"vae-train x.csv -o out {VAE_FAST}", {"x.csv": table(_constant(5.0))}))
add(case("vae-train-header-only", f"vae-train x.csv -o out {VAE_FAST}", {"x.csv": table(_first_rows(0))}))
add(case("vae-train-one-column", f"vae-train x.csv -o out {VAE_FAST}", {"x.csv": "sample\ns1\ns2\ns3\n"}))
add(case("vae-train-ragged-row", f"vae-train x.csv -o out {VAE_FAST}",
         {"x.csv": lambda fx: (fx / "expr.csv").read_text().replace("\ns3,", "\ns3,1.0,", 1)}))
add(case("vae-train-one-sample", f"vae-train x.csv -o out {VAE_FAST}", {"x.csv": table(_first_rows(1))}))
add(case("vae-train-one-gene", f"vae-train x.csv -o out {VAE_FAST}", {"x.csv": table(_first_cols(1))}))
add(case("vae-encode-missing-genes", "vae-encode x.csv --model @vae -o e.h5ad", {"x.csv": table(_first_cols(6))}))
add(case("vae-encode-mismatched-genes", "vae-encode x.csv --model @vae -o e.h5ad",
         {"x.csv": table(rename_columns(lambda cols: [c.replace("G", "ENSG") for c in cols]))}))
add(case("vae-encode-duplicate-genes", "vae-encode x.csv --model @vae -o e.h5ad", {"x.csv": table(_rename("G1", "G0"))}))
add(case("vae-encode-nan", "vae-encode x.csv --model @vae -o e.h5ad", {"x.csv": table(set_value(2, 2, "nan"))}))
add(case("vae-encode-inf", "vae-encode x.csv --model @vae -o e.h5ad", {"x.csv": table(set_value(2, 2, "inf"))}))
add(case("vae-features-mismatched-genes", "vae-features --model @vae --data x.csv --by group --labels @labels.tsv -o feats",
         {"x.csv": table(rename_columns(lambda cols: [c + "_x" for c in cols]))}))
add(case("infer-targets-missing-landmark", "infer-targets q.csv --model @ggan -o p.csv",
         {"q.csv": _reference_table(lambda df: df.iloc[:10, 1:5])}))
add(case("infer-targets-mismatched-genes", "infer-targets q.csv --model @ggan -o p.csv",
         {"q.csv": _reference_table(lambda df: df.iloc[:10, :5].rename(columns=lambda c: c.lower() + "x"))}))
add(case("infer-targets-duplicate-landmark", "infer-targets q.csv --model @ggan -o p.csv",
         {"q.csv": _reference_table(lambda df: df.iloc[:10, :5].set_axis(["LM0", "LM0", "LM2", "LM3", "LM4"], axis=1))}))
add(case("infer-targets-text-value", "infer-targets q.csv --model @ggan -o p.csv",
         {"q.csv": _reference_table(lambda df: set_value(1, 1, "n/a?")(df.iloc[:10, :5]))}))
add(case("infer-targets-inf", "infer-targets q.csv --model @ggan -o p.csv",
         {"q.csv": _reference_table(lambda df: set_value(1, 1, "inf")(df.iloc[:10, :5]))}))
add(case("infer-targets-header-only", "infer-targets q.csv --model @ggan -o p.csv",
         {"q.csv": _reference_table(lambda df: df.iloc[:0, :5])}))
add(case("ggan-train-nan-target", f"ggan-train x.csv --landmarks @landmarks.txt -o out {GGAN_FAST}",
         {"x.csv": _reference_table(set_value(4, 6, "nan"))}))
add(case("ggan-train-text-landmark", f"ggan-train x.csv --landmarks @landmarks.txt -o out {GGAN_FAST}",
         {"x.csv": _reference_table(set_value(4, 1, "abc"))}))
add(case("ggan-train-constant", f"ggan-train x.csv --landmarks @landmarks.txt -o out {GGAN_FAST}",
         {"x.csv": _reference_table(_constant(3.0))}))
add(case("ggan-train-duplicate-genes", f"ggan-train x.csv --landmarks @landmarks.txt -o out {GGAN_FAST}",
         {"x.csv": _reference_table(_rename("TG1", "TG0"))}))
add(case("ggan-train-two-samples", f"ggan-train x.csv --landmarks @landmarks.txt -o out {GGAN_FAST}",
         {"x.csv": _reference_table(_first_rows(2))}))
add(case("ggan-eval-constant-landmarks", "ggan-eval x.csv --landmarks @landmarks.txt --folds 2 --methods mean,ridge -o ev",
         {"x.csv": _reference_table(_constant(1.0, columns=slice(0, len(LANDMARKS))))}))

# --- gene lists, gene maps, label and score tables
add(case("ggan-train-landmarks-zero-byte", f"ggan-train @ref.csv --landmarks lm.txt -o out {GGAN_FAST}", {"lm.txt": b""}))
add(case("ggan-train-landmarks-blank-lines", f"ggan-train @ref.csv --landmarks lm.txt -o out {GGAN_FAST}", {"lm.txt": "\n\n  \n"}))
add(case("ggan-train-landmarks-junk", f"ggan-train @ref.csv --landmarks lm.txt -o out {GGAN_FAST}", {"lm.txt": junk(600)}))
add(case("ggan-train-landmarks-truncated-gz", f"ggan-train @ref.csv --landmarks lm.txt.gz -o out {GGAN_FAST}",
         {"lm.txt.gz": lambda fx: gz(fixture("landmarks.txt"))(fx)[:25]}))
add(case("ggan-train-landmarks-not-in-data", f"ggan-train @ref.csv --landmarks lm.txt -o out {GGAN_FAST}", {"lm.txt": "FOO\nBAR\nBAZ\n"}))
add(case("ggan-train-landmarks-are-all-genes", f"ggan-train @ref.csv --landmarks lm.txt -o out {GGAN_FAST}",
         {"lm.txt": "\n".join(LANDMARKS + TARGETS) + "\n"}))
add(case("ggan-train-targets-not-in-data", f"ggan-train {GGAN_REF} --targets tg.txt -o out {GGAN_FAST}", {"tg.txt": "NOPE1\nNOPE2\n"}))
add(case("ggan-train-targets-are-landmarks", f"ggan-train {GGAN_REF} --targets @landmarks.txt -o out {GGAN_FAST}"))
add(case("ggan-train-landmarks-and-from", f"ggan-train {GGAN_REF} --landmarks-from @query.csv -o out {GGAN_FAST}"))
add(case("ggan-train-no-landmarks", f"ggan-train @ref.csv -o out {GGAN_FAST}"))
add(case("ggan-eval-landmarks-missing-file", "ggan-eval @ref.csv --landmarks nothere.txt --folds 2 --methods mean -o ev"))
add(case("infer-targets-gene-map-zero-byte", "infer-targets @query.csv --model @ggan --gene-map map.csv -o p.csv", {"map.csv": b""}))
add(case("infer-targets-gene-map-one-column", "infer-targets @query.csv --model @ggan --gene-map map.csv -o p.csv",
         {"map.csv": "id\nE0\nE1\n"}))
add(case("infer-targets-gene-map-junk", "infer-targets @query.csv --model @ggan --gene-map map.csv -o p.csv", {"map.csv": junk(800)}))
add(case("infer-targets-gene-map-header-only", "infer-targets @query.csv --model @ggan --gene-map map.csv -o p.csv",
         {"map.csv": "id,symbol\n"}))
add(case("infer-targets-gene-map-no-match", "infer-targets @query.csv --model @ggan --gene-map map.csv -o p.csv",
         {"map.csv": "id,symbol\nQ1,Z1\nQ2,Z2\n"}))
add(case("vae-compare-labels-zero-byte", f"vae-compare @expr.csv --labels lab.tsv --by group {VAE_FAST}", {"lab.tsv": b""}))
add(case("vae-compare-labels-junk", f"vae-compare @expr.csv --labels lab.tsv --by group {VAE_FAST}", {"lab.tsv": junk(900)}))
add(case("vae-compare-labels-no-shared-samples", f"vae-compare @expr.csv --labels lab.tsv --by group {VAE_FAST}",
         {"lab.tsv": "sample\tgroup\nzz1\ta\nzz2\tb\n"}))
add(case("vae-compare-labels-missing-column", f"vae-compare @expr.csv --labels @labels.tsv --by tissue {VAE_FAST}"))
add(case("vae-features-labels-truncated-gz", "vae-features --model @vae --data @expr.csv --by group --labels lab.tsv.gz -o feats",
         {"lab.tsv.gz": lambda fx: gz(fixture("labels.tsv"))(fx)[:60]}))
add(case("vae-features-by-without-data", "vae-features --model @vae --by group -o feats"))
add(case("vae-import-genes-zero-byte", "vae-import-tybalt @decoder.hdf5 --genes g.txt -o imp", {"g.txt": b""}))
add(case("vae-import-genes-count-mismatch", "vae-import-tybalt @decoder.hdf5 --genes g.txt -o imp", {"g.txt": "A\nB\nC\n"}))
add(case("vae-import-decoder-junk", "vae-import-tybalt dec.hdf5 --genes @genes.txt -o imp", {"dec.hdf5": junk()}))
add(case("vae-import-decoder-zero-byte", "vae-import-tybalt dec.hdf5 --genes @genes.txt -o imp", {"dec.hdf5": b""}))
add(case("vae-import-decoder-truncated", "vae-import-tybalt dec.hdf5 --genes @genes.txt -o imp", {"dec.hdf5": truncated("decoder.hdf5")}))
add(case("vae-import-decoder-not-keras", "vae-import-tybalt @expr.gctx --genes @genes.txt -o imp"))
add(case("vae-decode-latent-wrong-width", "vae-decode z.csv --model @vae -o dec.h5ad", {"z.csv": "id,a,b,c,d\nx,1,2,3,4\n"}))
add(case("vae-decode-latent-text", "vae-decode z.csv --model @vae -o dec.h5ad", {"z.csv": "id,a,b\nx,1,oops\n"}))
add(case("vae-decode-latent-nan", "vae-decode z.csv --model @vae -o dec.h5ad", {"z.csv": "id,a,b\nx,1,nan\n"}))
add(case("vae-decode-latent-zero-byte", "vae-decode z.csv --model @vae -o dec.h5ad", {"z.csv": b""}))
add(case("vae-decode-latent-junk", "vae-decode z.parquet --model @vae -o dec.h5ad", {"z.parquet": junk(head=b"PAR1")}))
add(case("vae-decode-h5ad-without-x-vae", "vae-decode @expr.h5ad --model @vae -o dec.h5ad"))
PRED = "dna-train-predictor @probes.fa -o out --epochs 1 --no-baseline"
add(case("dna-train-predictor-scores-zero-byte", f"{PRED} --scores s.csv", {"s.csv": b""}))
add(case("dna-train-predictor-scores-junk", f"{PRED} --scores s.csv", {"s.csv": junk(700)}))
add(case("dna-train-predictor-scores-text", f"{PRED} --scores s.csv",
         {"s.csv": "id,signal\n" + "".join(f"p{i},{'high' if i == 3 else i + 1}\n" for i in range(60))}))
add(case("dna-train-predictor-scores-missing-ids", f"{PRED} --scores s.csv", {"s.csv": "id,signal\np0,1.5\np1,2.5\n"}))
add(case("dna-train-predictor-scores-one-column", f"{PRED} --scores s.csv", {"s.csv": lambda fx: "\n".join(f"p{i}" for i in range(60)) + "\n"}))
add(case("dna-train-predictor-scores-nan", f"{PRED} --scores s.csv",
         {"s.csv": lambda fx: (fx / "scores.csv").read_text().replace("\np5,", "\np5,nan\np5_old,", 1)}))
add(case("dna-train-predictor-scores-truncated-gz", f"{PRED} --scores s.csv.gz", {"s.csv.gz": lambda fx: gz(fixture("scores.csv"))(fx)[:200]}))
add(case("dna-train-predictor-scores-conflicting-duplicates", f"{PRED} --scores s.csv",
         {"s.csv": lambda fx: (fx / "scores.csv").read_text() + "p0,12345\n"}))
add(case("dna-train-predictor-scores-constant", f"{PRED} --scores s.csv",
         {"s.csv": lambda fx: "id,signal\n" + "".join(f"p{i},7\n" for i in range(60))}))
add(case("dna-score-independent-scores-junk", "dna-score @probes.fa --independent-probes @probes.fa --independent-scores s.csv -o t.tsv",
         {"s.csv": junk(500)}))

# --- models: wrong pipeline, truncated, corrupted, future, pickled, incomplete
WRONG_PIPELINE = [
    ("vae-sample-ggan-model", "vae-sample --model @ggan -n 2 -o s.h5ad"),
    ("vae-encode-gan-model", "vae-encode @expr.csv --model @gan -o e.h5ad"),
    ("infer-targets-vae-model", "infer-targets @query.csv --model @vae -o p.csv"),
    ("dna-generate-predictor-model", "dna-generate --model @pred -n 2 -o g.fa"),
    ("dna-design-gan-as-predictor", f"{DESIGN} --predictor @gan"),
    ("dna-design-predictor-as-gan", f"{DESIGN} --motif @m.jaspar --gan @pred"),
    ("dna-score-vae-as-predictor", "dna-score @probes.fa --predictor @vae -o t.tsv"),
    ("dna-eval-ggan-model", "dna-eval @train.fa --model @ggan -n 20"),
]
for cid, argv in WRONG_PIPELINE:
    add(case(cid, argv))
CONSUMERS = {  # one command that loads each pipeline's model from folder m
    "vae": "vae-sample --model m -n 2 -o s.h5ad",
    "ggan": "infer-targets @query.csv --model m -o p.csv",
    "gan": "dna-generate --model m -n 2 -o g.fa",
    "pred": f"{DESIGN} --predictor m",
}
OTHER_CONSUMERS = {
    "vae": "vae-features --model m -o feats",
    "ggan": "infer-targets @query.csv --model m -o p.parquet",
    "gan": f"{DESIGN} --motif @m.jaspar --gan m",
    "pred": "dna-score @probes.fa --predictor m -o t.tsv",
}
for src, argv in CONSUMERS.items():
    other = OTHER_CONSUMERS[src]
    add(case(f"{src}-model-truncated-weights", argv, model_copy(src, weights=truncated(f"{src}/model.safetensors"))))
    add(case(f"{src}-model-flipped-bytes", argv, model_copy(src, weights=flipped(f"{src}/model.safetensors"))))
    add(case(f"{src}-model-future-format", other, model_copy(src, config=with_key("format_version", 99))))
    add(case(f"{src}-model-config-pickle", argv, model_copy(src, config=lambda cfg: pickle.dumps(cfg)), needle="pickle"))
    add(case(f"{src}-model-weights-pickle", other, model_copy(src, weights=pickled(), rehash=True), needle="pickle"))
    add(case(f"{src}-model-weights-torch-save", argv, model_copy(src, weights=torch_saved(src)), needle="pickle"))
    add(case(f"{src}-model-pytorch-bin", argv, model_copy(src, drop=("model.safetensors",),
                                                          add={"pytorch_model.bin": torch_saved(src)}), needle="pickle"))
    if src in ("vae", "gan", "ggan"):  # the sections each pipeline rebuilds its model from
        add(case(f"{src}-model-unknown-recipe-key", other, model_copy(src, config=with_key("recipe.frobnicate", 3))))
    add(case(f"{src}-model-missing-tensor", argv,
             model_copy(src, weights=resaved_weights(src, _drop_first_tensor), rehash=True)))
    add(case(f"{src}-model-wrong-tensor-shape", other,
             model_copy(src, weights=resaved_weights(src, _shrink_first_tensor), rehash=True)))
    add(case(f"{src}-model-nan-weights", argv, model_copy(src, weights=resaved_weights(src, _nan_weights), rehash=True)))
add(case("vae-model-truncated-weights-unhashed", "vae-decode @expr.csv --model m -o d.h5ad",
         model_copy("vae", weights=truncated("vae/model.safetensors"), config=without_key("weights_sha256"))))
add(case("gan-model-weights-pickle-unhashed", "dna-eval @train.fa --model m -n 20",
         model_copy("gan", weights=pickled(), config=without_key("weights_sha256")), needle="pickle"))
add(case("pred-model-pt-file", "dna-score @probes.fa --predictor m -o t.tsv",
         model_copy("pred", drop=("model.safetensors",), add={"model.pt": torch_saved("pred")}), needle="pickle"))
add(case("vae-model-config-missing", "vae-sample --model m -n 2 -o s.h5ad", model_copy("vae", drop=("config.json",))))
add(case("ggan-model-config-empty", "infer-targets @query.csv --model m -o p.csv", model_copy("ggan", config=lambda cfg: b"")))
add(case("gan-model-config-truncated", "dna-generate --model m -n 2 -o g.fa",
         model_copy("gan", config=lambda cfg: json.dumps(cfg).encode()[:300])))
add(case("pred-model-unknown-architecture-key", "dna-score @probes.fa --predictor m -o t.tsv",
         model_copy("pred", config=with_key("architecture.frobnicate", 3))))
add(case("pred-model-config-is-list", "dna-score @probes.fa --predictor m -o t.tsv", model_copy("pred", config=lambda cfg: [cfg])))
add(case("vae-model-no-genes", "vae-sample --model m -n 2 -o s.h5ad", model_copy("vae", config=without_key("genes"))))
add(case("ggan-model-no-landmarks", "infer-targets @query.csv --model m -o p.csv", model_copy("ggan", config=without_key("landmarks"))))
add(case("gan-model-bad-recipe-value", "dna-generate --model m -n 2 -o g.fa", model_copy("gan", config=with_key("recipe.length", "long"))))
add(case("vae-model-format-version-string", "vae-sample --model m -n 2 -o s.h5ad", model_copy("vae", config=with_key("format_version", "1"))))
add(case("vae-model-is-a-file", "vae-sample --model afile -n 2 -o s.h5ad", {"afile": "not a model\n"}))
add(case("vae-model-empty-folder", "vae-sample --model m -n 2 -o s.h5ad", dirs=("m",)))
add(case("vae-model-unknown-name", "vae-sample --model no-such-model -n 2 -o s.h5ad"))
add(case("vae-sample-no-default-model", "vae-sample -n 2 -o s.h5ad"))
add(case("infer-targets-no-default-model", "infer-targets @query.csv -o p.csv"))
add(case("dna-generate-no-default-model", "dna-generate -n 2 -o g.fa"))
add(case("vae-sample-broken-defaults-json", "vae-sample -n 2 -o s.h5ad", {"gengen_home/defaults.json": b"{not json"}))
add(case("vae-train-store-broken-defaults-json", f"vae-train @expr.csv {VAE_FAST}", {"gengen_home/defaults.json": b"\x00\x01"}))

# --- FASTA
GAN_TRAIN = f"dna-train x.fa -o out {GAN_FAST}"
add(case("dna-train-zero-byte", GAN_TRAIN, {"x.fa": b""}))
add(case("dna-train-no-header", GAN_TRAIN, {"x.fa": "ACGTACGTACGTACGTACGT\nACGTACGTACGTAAAACCCC\n"}))
add(case("dna-train-empty-records", GAN_TRAIN, {"x.fa": ">a\n>b\n>c\n"}))
add(case("dna-train-non-acgt", GAN_TRAIN, {"x.fa": "".join(f">r{i}\nEFILPQEFILPQEFILPQEFILPQ\n" for i in range(10))}))
add(case("dna-train-digits-and-dashes", GAN_TRAIN, {"x.fa": "".join(f">r{i}\nACGT12--ACGT12--ACGT12--\n" for i in range(10))}))
add(case("dna-train-junk", GAN_TRAIN, {"x.fa": junk()}))
add(case("dna-train-truncated-gz", f"dna-train x.fa.gz -o out {GAN_FAST}", {"x.fa.gz": truncated("train.fa.gz")}))
add(case("dna-train-empty-gz", f"dna-train x.fa.gz -o out {GAN_FAST}", {"x.fa.gz": gz(b"")}))
add(case("dna-train-fastq", GAN_TRAIN, {"x.fa": "@r1\nACGTACGTACGTACGT\n+\nIIIIIIIIIIIIIIII\n"}))
add(case("dna-train-all-too-short", f"dna-train @train.fa -o out {GAN_FAST.replace('--length 12', '--length 100')}"))
add(case("dna-train-all-n-skipped", GAN_TRAIN, {"x.fa": "".join(f">r{i}\n{'N' * 30}\n" for i in range(10))}))
add(case("dna-train-n-with-error-policy", f"{GAN_TRAIN} --ambiguous error", {"x.fa": ">r0\nACGTNACGTACGTACGTACG\n>r1\nACGTACGTACGTACGTACGT\n"}))
add(case("dna-train-bad-policy", f"dna-train @train.fa -o out {GAN_FAST} --windows diagonal"))
add(case("dna-score-zero-byte", "dna-score x.fa --motif @m.jaspar -o t.tsv", {"x.fa": b""}))
add(case("dna-score-no-header", "dna-score x.fa --motif @m.jaspar -o t.tsv", {"x.fa": "ACGTACGTACGT\n"}))
add(case("dna-score-junk", "dna-score x.fa --motif @m.jaspar -o t.tsv", {"x.fa": junk(seed=3)}))
add(case("dna-score-truncated-gz", "dna-score x.fa.gz --motif @m.jaspar -o t.tsv", {"x.fa.gz": truncated("train.fa.gz", 0.3)}))
add(case("dna-score-empty-records", "dna-score x.fa --motif @m.jaspar -o t.tsv", {"x.fa": ">a\n>b\n"}))
add(case("dna-eval-junk-data", "dna-eval x.fa --model @gan -n 20", {"x.fa": junk(seed=4)}))
add(case("dna-eval-samples-truncated-gz", "dna-eval @train.fa --model @gan -n 20 --samples s.fa.gz", {"s.fa.gz": truncated("train.fa.gz", 0.4)}))
add(case("dna-eval-samples-non-acgt", "dna-eval @train.fa --model @gan -n 20 --samples s.fa", {"s.fa": ">a\nEFILPQEFILPQ\n"}))
add(case("dna-train-predictor-unequal-lengths", "dna-train-predictor x.fa --scores s.csv -o out --epochs 1 --no-baseline",
         {"x.fa": ">p0\nACGTACGTACGT\n>p1\nACGTAC\n", "s.csv": "id,signal\np0,1\np1,2\n"}))
add(case("dna-train-predictor-zero-byte-fasta", "dna-train-predictor x.fa --scores @scores.csv -o out --epochs 1", {"x.fa": b""}))

# --- motifs of every kind: zero-byte, junk, truncated; malformed matrices
for ext in MOTIF_FORMATS:
    add(case(f"dna-design-motif-zero-byte-{ext}", f"{DESIGN} --motif x.{ext}", {f"x.{ext}": b""}))
    add(case(f"dna-design-motif-junk-{ext}", f"{DESIGN} --motif x.{ext}", {f"x.{ext}": junk(900, seed=11)}))
    add(case(f"dna-design-motif-truncated-{ext}", f"{DESIGN} --motif x.{ext} --motif-format {'minimal' if ext == 'meme' else ext}",
             {f"x.{ext}": truncated(f"m.{ext}", 0.55 if ext == "pfm" else 0.4)}))
add(case("dna-design-motif-truncated-gz", f"{DESIGN} --motif x.jaspar.gz", {"x.jaspar.gz": lambda fx: gz(fixture("m.jaspar"))(fx)[:60]}))
add(case("dna-design-motif-forced-wrong-format", f"{DESIGN} --motif @m.jaspar --motif-format transfac"))
add(case("dna-design-motif-format-unknown", f"{DESIGN} --motif @m.jaspar --motif-format png"))
add(case("dna-design-motif-unknown-jaspar-id", f"{DESIGN} --motif MA9999.9"))
add(case("dna-design-motif-not-a-file-or-id", f"{DESIGN} --motif nothere.jaspar"))
add(case("dna-design-motif-name-absent", f"{DESIGN} --motif @m.meme --motif-name CTCF"))
add(case("dna-design-jaspar-negative-counts", f"{DESIGN} --motif x.jaspar",  # (a plain table with negatives is log-odds)
         {"x.jaspar": ">MA9000.1 TOY\nA [ 1 -4 1 ]\nC [ 4 3 1 ]\nG [ 1 1 9 ]\nT [ 2 2 1 ]\n"}))
add(case("dna-design-motif-text-in-matrix", f"{DESIGN} --motif x.pfm", {"x.pfm": "1 4 1 2 8\n4 x 1 2 1\n1 1 9 2 1\n2 2 1 8 1\n"}))
add(case("dna-design-motif-three-rows", f"{DESIGN} --motif x.pfm --motif-format pfm-four-rows", {"x.pfm": "1 4 1 2 8\n4 3 1 2 1\n1 1 9 2 1\n"}))
add(case("dna-design-motif-all-zero", f"{DESIGN} --motif x.pfm", {"x.pfm": "0 0 0 0 0\n0 0 0 0 0\n0 0 0 0 0\n0 0 0 0 0\n"}))
add(case("dna-design-motif-zero-column", f"{DESIGN} --motif x.pfm", {"x.pfm": "1 0 1 2 8\n4 0 1 2 1\n1 0 9 2 1\n2 0 1 8 1\n"}))
add(case("dna-design-motif-nan", f"{DESIGN} --motif x.pfm", {"x.pfm": "1 4 1 2 8\n4 nan 1 2 1\n1 1 9 2 1\n2 2 1 8 1\n"}))
add(case("dna-design-motif-inf", f"{DESIGN} --motif x.pfm", {"x.pfm": "1 4 1 2 8\n4 inf 1 2 1\n1 1 9 2 1\n2 2 1 8 1\n"}))
add(case("dna-design-sites-unequal", f"{DESIGN} --motif x.sites --motif-format sites", {"x.sites": "GCGAG\nGCG\nACGAGTT\n"}))
add(case("dna-design-sites-non-acgt", f"{DESIGN} --motif x.sites --motif-format sites", {"x.sites": "GCXAG\nGCJAG\nEFILP\n"}))
add(case("dna-design-jaspar-no-rows", f"{DESIGN} --motif x.jaspar --motif-format jaspar", {"x.jaspar": ">MA0001.1 X\n"}))
add(case("dna-design-meme-no-motif", f"{DESIGN} --motif x.meme", {"x.meme": "MEME version 4\n\nALPHABET= ACGT\n"}))
add(case("dna-score-motif-junk", "dna-score @probes.fa --motif x.jaspar -o t.tsv", {"x.jaspar": junk(700, seed=12)}))
add(case("dna-score-motif-longer-than-every-record", "dna-score @probes.fa --motif x.pfm -o t.tsv",
         {"x.pfm": "\n".join(" ".join("3" for _ in range(40)) for _ in range(4)) + "\n"}))

# --- out-of-range numeric options
for opt in ("--epochs 0", "--epochs -3", "--latent 0", "--batch-size 0", "--genes 0", "--hidden 0", "--lr 0", "--lr -1",
            "--lr nan", "--lr inf", "--kappa -1", "--beta -0.5", "--beta nan", "--val-fraction -0.1", "--val-fraction 1",
            "--val-fraction nan", "--threads 0", "--threads -2"):
    add(case(f"vae-train{opt.replace(' ', '')}", f"vae-train @expr.csv -o out --latent 2 --epochs 1 {opt}"))
add(case("vae-encode-latent-huge", "vae-encode @expr.csv -o e.h5ad --epochs 1 --latent 100000000000"))
add(case("vae-compare-repeats-0", f"vae-compare @expr.csv {VAE_FAST} --repeats 0"))
add(case("vae-compare-epochs-nan-lr", f"vae-compare @expr.csv {VAE_FAST} --lr nan"))
for opt in ("-n 0", "-n -5", "-n 1000000000000"):
    add(case(f"vae-sample{opt.replace(' ', '')}", f"vae-sample --model @vae -o s.h5ad {opt}"))
for opt in ("--top 0", "--top -1"):
    add(case(f"vae-features{opt.replace(' ', '')}", f"vae-features --model @vae -o feats {opt}"))
for opt in ("--length 0", "--length -5", "--length 100000000000", "--iterations 0", "--channels 0", "--batch-size 0",
            "--critic-steps 0", "--lr -1", "--lr nan", "--sample-every 0", "--sample-every -1", "--heldout-fraction 1",
            "--heldout-fraction -0.5", "--heldout-fraction nan", "--max-windows 0", "--time-limit -1", "--time-limit nan"):
    add(case(f"dna-train{opt.replace(' ', '')}", f"dna-train @train.fa -o out {GAN_FAST} {opt}"))
for opt in ("-n 0", "-n -5", "-n 1000000000000"):
    add(case(f"dna-generate{opt.replace(' ', '')}", f"dna-generate --model @gan -o g.fa {opt}"))
for opt in ("-n 0", "--length 0", "--length 100000000000", "--steps -1", "--lr -1", "--lr 0", "--lr nan",
            "--pseudocount -1", "--pseudocount nan", "--target nan", "--target inf", "--target abc", "-n 1000000000000"):
    add(case(f"dna-design{opt.replace(' ', '')}", f"{DESIGN} --motif @m.jaspar {opt}"))
for opt in ("--lr nan", "--prior-weight -1", "--prior-weight nan", "--grad-noise -1", "--grad-noise inf", "-n 1000000000000"):
    add(case(f"dna-design-gan{opt.replace(' ', '')}", f"{DESIGN} --motif @m.jaspar --gan @gan {opt}"))
add(case("dna-design-gan-and-direct", f"{DESIGN} --motif @m.jaspar --gan @gan --direct"))
add(case("dna-design-length-not-the-predictors", "dna-design -n 2 --steps 2 --length 20 -o d.fa --predictor @pred",
         needle="differs from the 12 nt the predictor 'pred' was trained on"))
add(case("dna-design-objective-length-not-the-predictors", "dna-design -n 2 --steps 2 --length 13 -o d.fa --objective predictor=m",
         model_copy("pred"), needle="--length 13 differs from the 12 nt the predictor 'm'"))
add(case("dna-design-nothing-to-design-for", DESIGN))
# issue 18 item 14: one length check for every command that scores with a trained predictor
add(case("dna-score-records-not-the-predictors-length", "dna-score @train.fa --predictor @pred -o t.tsv",
         needle="records of 30 nt differ from the 12 nt the predictor 'pred' was trained on"))
add(case("dna-score-predictor-windows-without-predictor", "dna-score @probes.fa --motif @m.jaspar --predictor-windows -o t.tsv",
         needle="--predictor-windows"))
add(case("dna-generate-predictor-not-the-gans-length", "dna-generate --model @gan --predictor m -o g.fa",
         model_copy("pred", config=with_key("length", 20)), needle="the GAN's length 12 differs from the 20 nt"))
add(case("dna-design-max-steps-0", "dna-design -n 2 --length 12 -o d.fa --motif @m.jaspar --max-steps 0",
         needle="--max-steps"))
for opt in ("--epochs 0", "--val-fraction 0", "--val-fraction 1", "--val-fraction nan", "--transform square", "--members 0"):
    add(case(f"dna-train-predictor{opt.replace(' ', '')}", f"{PRED} --scores @scores.csv {opt}"))
for opt in ("-n 0", "--heldout-fraction 0", "--heldout-fraction 1.5", "--heldout-fraction nan"):
    add(case(f"dna-eval{opt.replace(' ', '')}", f"dna-eval @train.fa --model @gan {opt}"))
add(case("dna-score-transform-bad", "dna-score @probes.fa --independent-probes @probes.fa --independent-scores @scores.csv --transform cube"))
add(case("dna-score-ambiguous-bad", "dna-score @probes.fa --motif @m.jaspar --ambiguous maybe"))

# --- issue 19: any model as an objective (--objective model=FILE.pt / python=FILE.py:FACTORY), dna-export-predictor
def _scripted(kind: str, *, trace: bool = False, meta: dict | None = None) -> Callable[[Path], bytes]:
    """A small TorchScript model of ``kind`` (see :func:`_toy_model`), as torch.jit.save writes it."""
    def save(fx: Path) -> bytes:
        import io

        import torch

        model = _toy_model(kind)
        example = torch.eye(4)[torch.randint(0, 4, (2, 24))].transpose(1, 2)
        module = torch.jit.trace(model, example) if trace else torch.jit.script(model)
        buf = io.BytesIO()
        torch.jit.save(module, buf, _extra_files={"gengen.json": json.dumps(meta)} if meta is not None else None)
        return buf.getvalue()
    return save


def _toy_model(kind: str):
    """One-hot (N, 4, L) models broken one way each (``ok``: a good one)."""
    import torch
    from torch import nn

    class Toy(nn.Module):
        def __init__(self, kind: str, k: int = 1):
            super().__init__()
            torch.manual_seed(0)
            self.conv = nn.Conv1d(4, 4, 3, padding=1)
            self.head = nn.Linear(4 * 24 if kind == "fixed" else 4, 3 if kind == "three" else 1)
            self.kind = kind

        def forward(self, x):
            if self.kind == "nlc":
                x = x.transpose(1, 2)
            h = torch.relu(self.conv(x))
            if self.kind == "fixed":
                return self.head(torch.flatten(h, 1)).squeeze(1)
            y = self.head(h.mean(dim=2))
            if self.kind == "three":
                return y
            if self.kind == "nan":
                return y.squeeze(1) * float("nan")
            if self.kind == "step":
                return (x.argmax(dim=1) == 2).float().sum(dim=1)
            if self.kind == "profile":
                return h.sum(dim=1)
            return y.squeeze(1)

    return Toy(kind).eval()


def _torch_saved_module(fx: Path) -> bytes:
    import io

    import torch

    buf = io.BytesIO()
    torch.save(torch.nn.Linear(4, 1), buf)
    return buf.getvalue()


def _torch_saved_state(fx: Path) -> bytes:
    import io

    import torch

    buf = io.BytesIO()
    torch.save(torch.nn.Linear(4, 1).state_dict(), buf)
    return buf.getvalue()


def _safetensors(fx: Path) -> bytes:
    import torch
    from safetensors.torch import save

    return save({"w": torch.zeros(2, 2)})


MODEL_DESIGN = "dna-design -n 2 --steps 2 --length 12 -o d.fa --objective"
for cid, spec, files, needle in (
    ("state-dict", "model=m.pt", {"m.pt": _torch_saved_state}, "torch.save"),
    ("whole-module-torch-save", "model=m.pt", {"m.pt": _torch_saved_module}, "torch.jit.script"),
    ("plain-pickle", "model=m.pt", {"m.pt": pickled()}, "pickle"),
    ("safetensors", "model=m.safetensors", {"m.safetensors": _safetensors}, "safetensors"),
    ("junk", "model=m.pt", {"m.pt": junk(300, seed=21)}, "not a TorchScript archive"),
    ("zero-byte", "model=m.pt", {"m.pt": b""}, "empty"),
    ("zip-not-torchscript", "model=m.pt", {"m.pt": lambda fx: _zip_of({"a/readme.txt": b"hi"})}, "not TorchScript"),
    ("truncated", "model=m.pt", {"m.pt": lambda fx: _scripted("ok")(fx)[:400]}, "model file"),
    ("fifo", "model=m.pt", {"m.pt": Fifo()}, ""),
    ("folder", "model=mdir", {}, "folder"),
    ("missing", "model=nothere.pt", {}, "does not exist"),
    ("nan-output", "model=m.pt", {"m.pt": _scripted("nan")}, "NaN"),
    ("tuple-or-profile-output", "model=m.pt", {"m.pt": _scripted("profile")}, "one per position"),
    ("several-outputs-none-picked", "model=m.pt", {"m.pt": _scripted("three")}, "output=INDEX"),
    ("output-out-of-range", "model=m.pt,output=7", {"m.pt": _scripted("three")}, "out of range"),
    ("output-name-unknown", "model=m.pt,output=fold", {"m.pt": _scripted("three", meta={"output_names": ["a", "b", "c"]})},
     "its outputs are a, b, c"),
    ("output-names-bad", "model=m.pt", {"m.pt": _scripted("ok", meta={"output_names": "abc"})}, "output_names"),
    ("metadata-length-bad", "model=m.pt", {"m.pt": _scripted("ok", meta={"length": -3})}, "length"),
    ("non-differentiable", "model=m.pt", {"m.pt": _scripted("step")}, "--max-edits K --steps 0"),
    ("layout-mismatch", "model=m.pt", {"m.pt": _scripted("nlc")}, "layout=NLC"),
    ("layout-given-wrongly", "model=m.pt,layout=NLC", {"m.pt": _scripted("ok")}, "leave layout=NLC out"),
    ("fixed-length-traced", "model=m.pt", {"m.pt": _scripted("fixed", trace=True)}, "runs on 24 nt (the length it was traced at)"),
    ("fixed-length-scripted", "model=m.pt", {"m.pt": _scripted("fixed")}, "runs on 24 nt"),
    ("layout-value-bad", "model=m.pt,layout=NHWC", {"m.pt": _scripted("ok")}, "layout must be"),
    ("key-unknown", "model=m.pt,colour=red", {"m.pt": _scripted("ok")}, "unknown key 'colour'"),
    ("python-factory-raises", "python=mine.py:make", {"mine.py": "def make():\n    raise ValueError('no weights')\n"},
     "raised ValueError: no weights"),
    ("python-import-fails", "python=mine.py:make", {"mine.py": "import nonexistent_module_xyz\n"}, "ModuleNotFoundError"),
    # user test, item 5: sys.exit in the factory or at import ended gengen with the user's code and no message
    ("python-factory-sys-exit", "python=mine.py:make", {"mine.py": "def make():\n    raise SystemExit(3)\n"},
     "make() raised SystemExit: exit code 3"),
    ("python-import-sys-exit", "python=mine.py:make", {"mine.py": "import sys\nsys.exit()\n"},
     "importing mine.py raised SystemExit: exit code None"),
    # user test, item 2: names for two outputs on an (N,) model
    ("output-names-count", "model=m.pt", {"m.pt": _scripted("ok", meta={"output_names": ["a", "b"]})},
     "records 2 output name(s) (a, b) but gives 1 output(s)"),
    ("python-syntax-error", "python=mine.py:make", {"mine.py": "def make(:\n"}, "SyntaxError"),
    ("python-not-a-module", "python=mine.py:make", {"mine.py": "def make():\n    return 3\n"}, "not a torch.nn.Module"),
    ("python-no-factory", "python=mine.py:build", {"mine.py": "def make():\n    return 3\n"}, "has no 'build'"),
    ("python-bad-argument", "python=mine.py:make,depth=3", {"mine.py": "def make():\n    return 3\n"}, "unexpected keyword"),
    ("python-no-colon", "python=mine.py", {"mine.py": "x = 1\n"}, "MODULE_OR_FILE.py:FACTORY"),
    ("python-file-missing", "python=nothere.py:make", {}, "does not exist"),
    ("python-module-missing", "python=no_such_module_xyz:make", {}, "no module"),
):
    add(case(f"dna-design-model-{cid}", f"{MODEL_DESIGN} {spec}", files, dirs=("mdir",) if cid == "folder" else (),
             needle=needle))
add(case("dna-design-gan-model-non-differentiable", f"{MODEL_DESIGN} model=m.pt --gan @gan", {"m.pt": _scripted("step")},
         needle="not differentiable"))
add(case("dna-design-model-with-constraints-nan", f"{MODEL_DESIGN} model=m.pt --gc 0.3-0.6 --avoid GAATTC",
         {"m.pt": _scripted("nan")}, needle="NaN"))
add(case("dna-design-model-and-motif-layout", f"{MODEL_DESIGN} model=m.pt --objective motif=t.jaspar",
         {"m.pt": _scripted("nlc"), "t.jaspar": JASPAR_TEXT}, needle="layout=NLC"))
add(case("dna-score-model-nan", "dna-score @probes.fa --objective model=m.pt -o t.tsv", {"m.pt": _scripted("nan")},
         needle="NaN"))
add(case("dna-score-model-state-dict", "dna-score @probes.fa --objective model=m.pt -o t.tsv",
         {"m.pt": _torch_saved_state}, needle="torch.save"))
add(case("dna-score-model-fixed-length", "dna-score @train.fa --objective model=m.pt -o t.tsv",
         {"m.pt": _scripted("fixed")}, needle="does not take 30-nt sequences"))
add(case("dna-score-model-layout", "dna-score @probes.fa --objective model=m.pt -o t.tsv", {"m.pt": _scripted("nlc")},
         needle="layout=NLC"))
add(case("dna-score-model-several-outputs", "dna-score @probes.fa --objective model=m.pt", {"m.pt": _scripted("three")},
         needle="output=INDEX"))
# dna-explain takes the same model objectives: each refused in one line before any work
EXPLAIN_MODEL = "dna-explain @probes.fa -o ex --objective"
for cid, spec, files, extra, needle in (
    ("nan-output", "model=m.pt", {"m.pt": _scripted("nan")}, "", "NaN"),
    ("state-dict", "model=m.pt", {"m.pt": _torch_saved_state}, "", "torch.save"),
    ("fixed-length", "model=m.pt", {"m.pt": _scripted("fixed")}, "", "does not take 12-nt sequences"),
    ("layout-mismatch", "model=m.pt", {"m.pt": _scripted("nlc")}, "", "layout=NLC"),
    ("several-outputs-none-picked", "model=m.pt", {"m.pt": _scripted("three")}, "", "output=INDEX"),
    ("metadata-length-differs", "model=m.pt", {"m.pt": _scripted("ok", meta={"length": 30})}, "",
     "records of 12 nt differ from the 30 nt"),
    ("non-differentiable-saliency", "model=m.pt", {"m.pt": _scripted("step")}, "--gradient saliency",
     "leave --gradient out"),
    ("non-differentiable-motifs-from-gradient", "model=m.pt", {"m.pt": _scripted("step")}, "--motifs-from gradient",
     "leave --motifs-from out"),
    ("python-not-a-module", "python=mine.py:make", {"mine.py": "def make():\n    return 3\n"}, "", "not a torch.nn.Module"),
):
    add(case(f"dna-explain-model-{cid}", f"{EXPLAIN_MODEL} {spec} {extra}".strip(), files, needle=needle))
add(case("dna-export-predictor-output-not-pt", "dna-export-predictor @pred -o p.txt", needle=".pt"))
add(case("dna-export-predictor-gan-as-predictor", "dna-export-predictor @gan -o p.pt"))
add(case("dna-export-predictor-missing", "dna-export-predictor nothere -o p.pt"))
add(case("dna-export-predictor-output-is-folder", "dna-export-predictor @pred -o p.pt", dirs=("p.pt",)))
add(case("dna-export-predictor-nan-weights", "dna-export-predictor m -o p.pt",
         model_copy("pred", weights=resaved_weights("pred", _nan_weights), rehash=True)))


def _zip_of(members: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()
for opt in ("--hidden 0", "--layers 0", "--layers -1", "--dropout 1", "--dropout -0.1", "--dropout nan", "--epochs 0",
            "--batch-size 0", "--lr -1", "--lr nan", "--l1 -1", "--consistency -1", "--adv-weight nan", "--d-hidden 0",
            "--val-fraction 1", "--val-fraction nan", "--patience -1", "--start-margin -1", "--input-noise -1", "--weight-decay -1",
            "--precision fp8", "--activation sigmoidal", "--hidden 100000000000"):
    add(case(f"ggan-train{opt.replace(' ', '')}", f"ggan-train {GGAN_REF} -o out {GGAN_FAST} {opt}"))
for opt in ("--chunk-size 0", "--chunk-size -1", "--precision fp8"):
    add(case(f"infer-targets{opt.replace(' ', '')}", f"infer-targets @query.csv --model @ggan -o p.csv {opt}"))
for opt in ("--folds 0", "--folds 1", "--folds 1000", "--methods bogus", "--methods ,", "--dropout 2"):
    add(case(f"ggan-eval{opt.replace(' ', '')}", f"ggan-eval {GGAN_REF} -o ev {GGAN_FAST} {opt}"))

# --- issue 19: dna-explain (what to explain, the sequences, the folder, its options) and dna-design --annotate
EXPLAIN = "dna-explain @probes.fa -o ex"
add(case("dna-explain-nothing-to-explain", EXPLAIN, needle="give what to explain"))
add(case("dna-explain-motif-and-predictor", f"{EXPLAIN} --motif @m.jaspar --predictor @pred", needle="--objective"))
add(case("dna-explain-zero-byte-fasta", "dna-explain x.fa --motif @m.jaspar -o ex", {"x.fa": b""}))
add(case("dna-explain-empty-records", "dna-explain x.fa --motif @m.jaspar -o ex", {"x.fa": ">a\n>b\n"}))
add(case("dna-explain-one-empty-record", "dna-explain x.fa --motif @m.jaspar -o ex",
         {"x.fa": ">a\nACGTACGTACGT\n>b\n>c\nACGTACGTAAGT\n"}, needle="empty"))
add(case("dna-explain-non-acgt", "dna-explain x.fa --motif @m.jaspar -o ex",
         {"x.fa": "".join(f">r{i}\nEFILPQEFILPQ\n" for i in range(5))}))
add(case("dna-explain-n-with-error-policy", "dna-explain x.fa --motif @m.jaspar -o ex --ambiguous error",
         {"x.fa": ">r0\nACGTNACGTACG\n>r1\nACGTACGTACGT\n"}, needle="ambiguous"))
add(case("dna-explain-all-n-skipped", "dna-explain x.fa --motif @m.jaspar -o ex --ambiguous skip",
         {"x.fa": ">r0\nNNNNNNNNNNNN\n>r1\nACGTANNNACGT\n"}))
add(case("dna-explain-unequal-lengths", "dna-explain x.fa --motif @m.jaspar -o ex",
         {"x.fa": ">r0\nACGTACGTACGT\n>r1\nACGTAC\n"}, needle="--length"))
add(case("dna-explain-output-is-a-file", "dna-explain @probes.fa --motif @m.jaspar -o afile", {"afile": "x\n"},
         needle="is a file"))
add(case("dna-explain-output-under-a-file", "dna-explain @probes.fa --motif @m.jaspar -o afile/ex", {"afile": "x\n"}))
add(case("dna-explain-output-is-the-fasta", "dna-explain x.fa --motif @m.jaspar -o x.fa", {"x.fa": fixture("probes.fa")}))
add(case("dna-explain-summary-is-a-folder", "dna-explain @probes.fa --motif @m.jaspar -o ex", dirs=("ex/summary.tsv",)))
add(case("dna-explain-records-not-the-predictors-length", "dna-explain @train.fa --predictor @pred -o ex",
         needle="records of 30 nt differ from the 12 nt the predictor 'pred' was trained on"))
add(case("dna-explain-motif-longer-than-the-records", "dna-explain @probes.fa --motif x.pfm -o ex",
         {"x.pfm": "\n".join(" ".join("3" for _ in range(20)) for _ in range(4)) + "\n"}, needle="20 bp long"))
add(case("dna-explain-gan-as-predictor", f"{EXPLAIN} --predictor @gan"))
add(case("dna-explain-objective-bad", f"{EXPLAIN} --objective motif=@m.jaspar,weight=-1"))
for opt in ("--top 0", "--top -3", "--logos -1", "--matches 0", "--annotate-pvalue 0", "--annotate-pvalue 1.5",
            "--annotate-pvalue nan", "--jaspar-taxon martians", "--jaspar-collection PHYLOFACTS", "--motif-method kmeans",
            "--motifs-from deeplift", "--gradient integrated", "--length 0", "--target sideways", "--seed -1"):
    add(case(f"dna-explain{opt.replace(' ', '')}", f"{EXPLAIN} --motif @m.jaspar {opt}"))
add(case("dna-design-annotate-pvalue-without-annotate", f"{DESIGN} --motif @m.jaspar --annotate-pvalue 1e-3",
         needle="add --annotate"))
for opt in ("--annotate-pvalue 0", "--annotate-pvalue nan", "--jaspar-taxon martians", "--jaspar-collection X"):
    add(case(f"dna-design-annotate{opt.replace(' ', '')}", f"{DESIGN} --motif @m.jaspar --annotate {opt}"))

# --- outputs: unwritable, colliding, overwriting an input
add(case("vae-train-output-under-a-file", f"vae-train @expr.csv -o afile/model {VAE_FAST}", {"afile": "x\n"}))
add(case("vae-train-output-is-user-folder", f"vae-train @expr.csv -o mine {VAE_FAST}", {"mine/notes.txt": "keep me\n"}))
add(case("vae-train-output-is-other-pipeline", f"vae-train @expr.csv -o m {VAE_FAST}", model_copy("ggan")))
add(case("vae-train-output-is-a-file", f"vae-train @expr.csv -o afile {VAE_FAST}", {"afile": "x\n"}))
add(case("vae-train-output-holds-input", f"vae-train m/x.csv -o m {VAE_FAST}", {**model_copy("vae"), "m/x.csv": fixture("expr.csv")}))
add(case("vae-encode-output-is-input", "vae-encode x.h5ad --model @vae -o x.h5ad", {"x.h5ad": fixture("expr.h5ad")}))
add(case("vae-encode-output-is-folder", "vae-encode @expr.csv --model @vae -o adir.h5ad", dirs=("adir.h5ad",)))
add(case("vae-encode-output-bad-extension", "vae-encode @expr.csv --model @vae -o e.xlsx"))
add(case("vae-encode-save-model-is-output", f"vae-encode @expr.csv -o e.h5ad --save-model e.h5ad {VAE_FAST}"))
add(case("vae-encode-default-output-beside-readonly-input", f"vae-encode afile/x.csv {VAE_FAST}", {"afile": "x\n"}))
add(case("vae-decode-output-is-latent", "vae-decode z.csv --model @vae -o z.csv", {"z.csv": "id,a,b\nx,1,2\n"}))
add(case("vae-sample-output-under-a-file", "vae-sample --model @vae -n 2 -o afile/s.h5ad", {"afile": "x\n"}))
add(case("vae-sample-output-is-folder", "vae-sample --model @vae -n 2 -o adir", dirs=("adir",)))
add(case("vae-sample-output-into-model", "vae-sample --model m -n 2 -o m/config.json", model_copy("vae")))
add(case("vae-features-output-is-a-file", "vae-features --model @vae -o afile", {"afile": "x\n"}))
add(case("vae-features-output-is-model", "vae-features --model m -o m", model_copy("vae", add={"top_genes.tsv": "old\n"})))
add(case("vae-compare-output-h5ad", f"vae-compare @expr.csv {VAE_FAST} -o c.h5ad"))
add(case("vae-compare-output-is-input", f"vae-compare x.csv {VAE_FAST} -o x.csv", {"x.csv": fixture("expr.csv")}))
add(case("vae-import-output-is-genes-folder", "vae-import-tybalt @decoder.hdf5 --genes g/genes.txt -o g", {"g/genes.txt": fixture("genes.txt")}))
add(case("dna-train-output-under-a-file", f"dna-train @train.fa -o afile/gan {GAN_FAST}", {"afile": "x\n"}))
add(case("dna-train-resume-without-output", f"dna-train @train.fa --resume {GAN_FAST}"))
add(case("dna-train-resume-other-pipeline", f"dna-train @train.fa -o m --resume {GAN_FAST}", model_copy("pred")))
add(case("dna-train-resume-empty-folder", f"dna-train @train.fa -o m --resume {GAN_FAST}", dirs=("m",)))
add(case("dna-train-resume-other-architecture", f"dna-train @train.fa -o m --resume {GAN_FAST.replace('--channels 4', '--channels 6')}",
         model_copy("gan")))
# --resume (vae-train, ggan-train, dna-train-predictor): nothing to resume, another pipeline's folder, other data or settings, no or a
# damaged training state; checkpoint intervals that are not positive
add(case("vae-train-resume-without-output", f"vae-train @expr.csv --resume {VAE_FAST}", needle="name it with -o"))
add(case("vae-train-resume-no-checkpoint", "vae-train @expr.csv -o m --resume", needle="no checkpoint"))
add(case("vae-train-resume-empty-folder", "vae-train @expr.csv -o m --resume", dirs=("m",), needle="no checkpoint"))
add(case("vae-train-resume-other-pipeline", "vae-train @expr.csv -o m --resume", model_copy("ggan")))
add(case("vae-train-resume-other-data", "vae-train x.csv -o m --resume",
         {**model_copy("vae"), "x.csv": table(set_value(3, 4, 9.5))}, needle="training data differ"))
add(case("vae-train-resume-other-genes", "vae-train x.csv -o m --resume",
         {**model_copy("vae"), "x.csv": table(_first_cols(N_GENES - 1))}, needle="differ"))
add(case("vae-train-resume-other-settings", "vae-train @expr.h5ad -o m --resume --epochs 3", model_copy("vae"),
         needle="epochs 3 (checkpoint: 1)"))
add(case("vae-train-resume-no-training-state", "vae-train @expr.h5ad -o m --resume",
         model_copy("vae", config=without_key("training")), needle="holds no training state"))
add(case("vae-train-resume-state-file-missing", "vae-train @expr.h5ad -o m --resume",
         model_copy("vae", config=with_key("training.complete", False)), needle="training_state.safetensors"))
add(case("vae-train-resume-state-file-corrupted", "vae-train @expr.h5ad -o m --resume",
         model_copy("vae", config=lambda cfg: with_key("training.state_sha256", "0" * 64)(with_key("training.complete", False)(cfg)),
                    add={"training_state.safetensors": junk(300)}), needle="SHA-256"))
add(case("ggan-train-resume-without-output", f"ggan-train {GGAN_REF} --resume {GGAN_FAST}", needle="name it with -o"))
add(case("ggan-train-resume-no-checkpoint", f"ggan-train {GGAN_REF} -o m --resume", needle="no checkpoint"))
add(case("ggan-train-resume-other-pipeline", f"ggan-train {GGAN_REF} -o m --resume", model_copy("vae")))
add(case("ggan-train-resume-other-data", "ggan-train x.csv --landmarks @landmarks.txt -o m --resume",
         {**model_copy("ggan"), "x.csv": _reference_table(set_value(2, 6, 1.25))}, needle="training data differ"))
add(case("ggan-train-resume-other-settings", f"ggan-train {GGAN_REF} -o m --resume --hidden 12", model_copy("ggan"),
         needle="hidden 12 (checkpoint: 8)"))
PRED_RESUME = "dna-train-predictor @probes.fa --scores @scores.csv -o m --resume"
add(case("dna-train-predictor-resume-without-output", f"{PRED} --scores @scores.csv --resume".replace("-o out ", ""),
         needle="name it with -o"))
add(case("dna-train-predictor-resume-no-checkpoint", PRED_RESUME, needle="no checkpoint"))
add(case("dna-train-predictor-resume-empty-folder", PRED_RESUME, dirs=("m",), needle="no checkpoint"))
add(case("dna-train-predictor-resume-other-pipeline", PRED_RESUME, model_copy("vae")))
add(case("dna-train-predictor-resume-other-data", "dna-train-predictor @probes.fa --scores x.csv -o m --resume",
         {**model_copy("pred"), "x.csv": lambda fx: (fx / "scores.csv").read_text().replace("\np3,", "\np3,1").encode()},
         needle="training data differ"))
add(case("dna-train-predictor-resume-other-settings", f"{PRED_RESUME} --epochs 3", model_copy("pred"),
         needle="epochs 3 (checkpoint: 1)"))
add(case("dna-train-predictor-resume-no-training-state", PRED_RESUME, model_copy("pred", config=without_key("training")),
         needle="holds no training state"))
add(case("dna-train-predictor-resume-state-file-missing", PRED_RESUME,
         model_copy("pred", config=with_key("training.complete", False)), needle="training_state.safetensors"))
add(case("dna-train-predictor-resume-state-file-corrupted", PRED_RESUME,
         model_copy("pred", config=lambda cfg: with_key("training.state_sha256", "0" * 64)(with_key("training.complete", False)(cfg)),
                    add={"training_state.safetensors": junk(300)}), needle="SHA-256"))
for opt in ("--checkpoint-every 0", "--checkpoint-every -1", "--checkpoint-minutes 0", "--checkpoint-minutes -0.5",
            "--checkpoint-minutes nan"):
    add(case(f"vae-train{opt.replace(' ', '')}", f"vae-train @expr.csv -o out {VAE_FAST} {opt}"))
    add(case(f"ggan-train{opt.replace(' ', '')}", f"ggan-train {GGAN_REF} -o out {GGAN_FAST} {opt}"))
    add(case(f"dna-train-predictor{opt.replace(' ', '')}", f"{PRED} --scores @scores.csv {opt}"))
add(case("dna-generate-output-not-fasta", "dna-generate --model @gan -n 2 -o g.txt"))
add(case("dna-generate-output-is-folder", "dna-generate --model @gan -n 2 -o adir.fa", dirs=("adir.fa",)))
add(case("dna-design-output-is-motif", "dna-design -n 2 --steps 2 --length 12 --motif x.fa --motif-format sites -o x.fa",
         {"x.fa": "GCGAG\nGCGAG\nACGAG\n"}))
add(case("dna-design-side-table-is-motif", "dna-design -n 2 --steps 2 --length 12 --motif x.tsv -o x.fa", {"x.tsv": PFM_T_TEXT}))
add(case("dna-design-side-table-is-folder", f"{DESIGN} --motif @m.jaspar", dirs=("d.tsv",)))
add(case("dna-design-side-png-under-file", "dna-design -n 2 --steps 2 --length 12 --motif @m.jaspar -o afile/d.fa", {"afile": "x\n"}))
add(case("dna-score-output-is-data", "dna-score x.tsv --motif @m.jaspar -o x.tsv", {"x.tsv": ">a\nACGTACGTACGT\n"}))
add(case("dna-score-output-not-table", "dna-score @probes.fa --motif @m.jaspar -o t.fa"))
add(case("dna-eval-output-is-folder", "dna-eval @train.fa --model @gan -n 20 -o adir.tsv", dirs=("adir.tsv",)))
add(case("dna-train-predictor-output-is-scores-folder", "dna-train-predictor @probes.fa --scores m/s.csv -o m --epochs 1",
         {"m/s.csv": fixture("scores.csv")}))
add(case("ggan-train-output-under-a-file", f"ggan-train {GGAN_REF} -o afile/m {GGAN_FAST}", {"afile": "x\n"}))
add(case("ggan-train-output-is-landmarks-folder", f"ggan-train @ref.csv --landmarks lm/l.txt -o lm {GGAN_FAST}",
         {"lm/l.txt": fixture("landmarks.txt")}))
add(case("infer-targets-output-is-query", "infer-targets q.csv --model @ggan -o q.csv", {"q.csv": fixture("query.csv")}))
add(case("infer-targets-output-bad-extension", "infer-targets @query.csv --model @ggan -o p.json"))
add(case("infer-targets-output-is-gene-map", "infer-targets @query.csv --model @ggan --gene-map map.csv -o map.csv",
         {"map.csv": fixture("genemap.csv")}))
add(case("ggan-eval-output-is-a-file", f"ggan-eval {GGAN_REF} -o afile --folds 2 --methods mean", {"afile": "x\n"}))
add(case("ggan-eval-resume-nothing", f"ggan-eval {GGAN_REF} -o ev --folds 2 --methods mean --resume", needle="nothing to resume"))
add(case("ggan-eval-resume-damaged-fold", f"ggan-eval {GGAN_REF} -o ev --folds 2 --methods mean --resume",
         {"ev/fold_results/fold1-mean.npz": b"PK\x03\x04 cut short"}, needle="cannot read the fold result"))
add(case("ggan-eval-resume-another-comparison", f"ggan-eval {GGAN_REF} -o ev --folds 2 --methods mean --resume",
         {"ev/fold_results/fold1-mean.npz": lambda fx: _fold_result("another run's hash")}, needle="another comparison"))
add(case("ggan-eval-output-holds-data", "ggan-eval ev/ggan_eval_summary.tsv --landmarks @landmarks.txt -o ev --folds 2 --methods mean",
         {"ev/ggan_eval_summary.tsv": _reference_table(sep="\t")}))
add(case("demo-output-is-a-file", "demo -o afile --only vae", {"afile": "x\n"}))
add(case("demo-output-under-a-file", "demo -o afile/demo --only vae", {"afile": "x\n"}))
add(case("demo-unknown-pipeline", "demo -o out --only protein"))

# --- sweeps: every bad option refused before a study is created or a trial trained
SWEEP_SPACE_BAD = "[params]\nlatent_dim = [2, 3]\nno_such_knob = [1, 2]\n"
SWEEP_SPACE_EMPTY = "[params]\nlatent_dim = []\n"
SWEEP_SPACE_RANGE = "[params]\nlearning_rate = { low = 0.01, high = 0.001, log = true }\n"
add(case("sweep-vae-trials-zero", "sweep vae @expr.csv --trials 0 -o sw", needle="--trials"))
add(case("sweep-vae-unknown-space", "sweep vae @expr.csv --trials 2 --space nonesuch -o sw"))
add(case("sweep-vae-space-unknown-param", "sweep vae @expr.csv --trials 2 --space s.toml -o sw", {"s.toml": SWEEP_SPACE_BAD},
         needle="no_such_knob"))
add(case("sweep-vae-space-empty-list", "sweep vae @expr.csv --trials 2 --space s.toml -o sw", {"s.toml": SWEEP_SPACE_EMPTY}))
add(case("sweep-vae-space-empty-range", "sweep vae @expr.csv --trials 2 --space s.toml -o sw", {"s.toml": SWEEP_SPACE_RANGE}))
add(case("sweep-vae-space-junk", "sweep vae @expr.csv --trials 2 --space s.toml -o sw", {"s.toml": b"\x00\x01 not toml ["}))
add(case("sweep-vae-unknown-sampler", "sweep vae @expr.csv --trials 2 --sampler annealing -o sw"))
add(case("sweep-vae-unknown-pruner", "sweep vae @expr.csv --trials 2 --pruner hopeful -o sw"))
add(case("sweep-vae-storage-without-study", "sweep vae @expr.csv --trials 2 --storage sqlite:///x.db -o sw"))
add(case("sweep-vae-unreachable-db", "sweep vae @expr.csv --trials 2 --storage postgresql://u:p@127.0.0.1:1/x --study s -o sw",
         needle="127.0.0.1"))
add(case("sweep-vae-resume-without-study", "sweep vae @expr.csv --trials 2 --resume -o sw"))
add(case("sweep-vae-output-is-a-file", "sweep vae @expr.csv --trials 2 -o afile", {"afile": "x\n"}))
add(case("sweep-vae-output-holds-files", "sweep vae @expr.csv --trials 2 -o sw", {"sw/notes.txt": "mine\n"}))
add(case("sweep-vae-bad-register-name", "sweep vae @expr.csv --trials 2 --register ../evil -o sw"))
add(case("sweep-vae-heartbeat-zero", "sweep vae @expr.csv --trials 2 --heartbeat 0 -o sw"))
add(case("sweep-vae-by-missing-column", "sweep vae @expr.csv --trials 2 --by nosuch -o sw"))
add(case("sweep-ggan-trials-negative", f"sweep ggan {GGAN_REF} --trials -3 -o sw"))
add(case("sweep-ggan-missing-landmarks", "sweep ggan @ref.csv --landmarks nothere.txt --trials 2 -o sw"))
add(case("sweep-predictor-missing-scores", "sweep predictor @probes.fa --scores nothere.csv --trials 2 -o sw"))
add(case("sweep-predictor-trials-zero", "sweep predictor @probes.fa --scores @scores.csv --trials 0 -o sw"))
# storage URLs that name no usable study file or database: refused before any file or folder is made
SWEEP_PG = "sweep vae @expr.csv --trials 2 --study s -o sw --storage"
add(case("sweep-vae-storage-sqlite-no-path", f"{SWEEP_PG} sqlite://", needle="names no file"))
add(case("sweep-vae-storage-sqlite-empty-path", f"{SWEEP_PG} sqlite:///", needle="names no file"))
add(case("sweep-vae-storage-sqlite-memory", f"{SWEEP_PG} sqlite:///:memory:", needle="names no file"))
add(case("sweep-vae-storage-sqlite-options", f"{SWEEP_PG} sqlite:///s.db?mode=ro", needle="path only"))
add(case("sweep-vae-storage-unknown-database", f"{SWEEP_PG} foo://host/db", needle="'foo' is not a database"))
add(case("sweep-vae-storage-port-not-a-number", f"{SWEEP_PG} postgresql://u@127.0.0.1:abc/x", needle="not a database URL"))
add(case("sweep-vae-storage-is-the-input", "sweep vae in.csv --trials 2 --study s -o sw --storage sqlite:///in.csv",
         {"in.csv": fixture("expr.csv")}, needle="is not an SQLite database"))
add(case("sweep-vae-storage-is-a-folder", f"{SWEEP_PG} sqlite:///adir", dirs=("adir",), needle="is a folder"))
add(case("sweep-vae-storage-is-dev-null", f"{SWEEP_PG} sqlite:////dev/null", needle="not a regular file"))
add(case("sweep-vae-storage-under-a-file", f"{SWEEP_PG} sqlite:///afile/s.db", {"afile": "x\n"}, needle="is a file"))
add(case("sweep-vae-storage-is-a-link", f"{SWEEP_PG} sqlite:///s.db", {"s.db": Link("@expr.csv")}, needle="symbolic link"))
# refused after the old code had made the study file, its <db>.lock and folders: check first, create last
add(case("sweep-vae-new-storage-folder-bad-data", "sweep vae bad.csv --trials 2 --study s -o sw --storage sqlite:///new/deep/s.db",
         {"bad.csv": "not,a\nmatrix\n"}))
add(case("sweep-vae-trials-over-the-grid", "sweep vae @expr.csv --space latent --trials 100 -o new/sw", needle="more than the 6 points"))
# space values that are not numbers a trainer can use, and grids too large to build
SWEEP_SPACE = "sweep vae @expr.csv -o sw --space s.toml"
add(case("sweep-vae-space-epochs-inf", SWEEP_SPACE, {"s.toml": "latent = [2, 3]\nepochs = inf\n"}, needle="finite"))
add(case("sweep-vae-space-epochs-nan", SWEEP_SPACE, {"s.toml": "latent = [2, 3]\nepochs = nan\n"}, needle="finite"))
add(case("sweep-vae-space-epochs-negative", SWEEP_SPACE, {"s.toml": "latent = [2, 3]\nepochs = -5\n"}, needle=">= 1"))
add(case("sweep-vae-space-epochs-absurd", SWEEP_SPACE, {"s.toml": "latent = [2, 3]\nepochs = 1e300\n"}, needle="at most"))
add(case("sweep-vae-space-epochs-huge-int", SWEEP_SPACE, {"s.toml": f"latent = [2, 3]\nepochs = {10**30}\n"}, needle="at most"))
add(case("sweep-vae-space-latent-range-absurd", SWEEP_SPACE, {"s.toml": "latent = { low = 1, high = 1000000000000 }\n"},
         needle="at most"))
add(case("sweep-vae-space-step-nan", SWEEP_SPACE, {"s.toml": "lr = { low = 0.001, high = 0.002, step = nan }\n"}, needle="step"))
add(case("sweep-vae-space-step-inf", SWEEP_SPACE, {"s.toml": "lr = { low = 0.001, high = 0.002, step = inf }\n"}, needle="step"))
add(case("sweep-vae-grid-axis-too-wide", f"{SWEEP_SPACE} --sampler grid", {"s.toml": "latent = { low = 1, high = 5000 }\n"},
         needle="at most 1,000 values"))
SWEEP_GRID_1E10 = ("lr = { low = 0.001, high = 0.1, step = 0.001 }\nkappa = { low = 0.0, high = 0.99, step = 0.01 }\n"
                   "beta = { low = 0.01, high = 1.0, step = 0.01 }\nlatent = { low = 2, high = 101 }\n"
                   "batch_size = { low = 16, high = 115 }\n")
add(case("sweep-vae-grid-1e10-points", SWEEP_SPACE, {"s.toml": SWEEP_GRID_1E10},
         needle="the grid has 10,000,000,000 points; give --trials"))
add(case("sweep-vae-heartbeat-1e308", "sweep vae @expr.csv --trials 2 --heartbeat 1e308 -o sw", needle="between 1 and 3600"))
add(case("sweep-vae-heartbeat-tiny", "sweep vae @expr.csv --trials 2 --heartbeat 0.001 -o sw", needle="between 1 and 3600"))
# a sweep folder whose sweep.json is not what gengen wrote: one line, the folder untouched
add(case("sweep-vae-marker-nested-deep", "sweep vae @expr.csv --trials 2 -o sw",
         {"sw/sweep.json": "[" * 100_000 + "]" * 100_000}, needle="nested deeper"))
add(case("sweep-vae-marker-not-json", "sweep vae @expr.csv --trials 2 -o sw", {"sw/sweep.json": "{study: 1"},
         needle="not valid JSON"))

# --- the model store
add(case("models-list-unknown-pipeline", "models list --pipeline protein"))
add(case("models-show-unknown", "models show no-such"))
add(case("models-remove-unknown", "models remove no-such"))
add(case("models-remove-path", "models remove ../m", model_copy("vae")))
add(case("models-default-unknown-pipeline", "models default protein"))
add(case("models-default-unknown-name", "models default vae no-such"))
add(case("models-default-wrong-pipeline", "models default vae g1", model_copy("ggan", "gengen_home/models/g1")))
add(case("models-add-missing-path", "models add nothere"))
add(case("models-add-not-a-model", "models add mine", {"mine/notes.txt": "keep\n"}))
add(case("models-add-a-file", "models add afile", {"afile": "x\n"}))
add(case("models-add-bad-name", "models add m --name ../evil", model_copy("vae")))
add(case("models-add-name-taken", "models add m --name v1", {**model_copy("vae"), **model_copy("vae", "gengen_home/models/v1")}))
add(case("models-add-corrupted-config", "models add m", model_copy("vae", config=lambda cfg: b"\x80\x04junk")))
add(case("models-show-broken-config", "models show v1", model_copy("vae", "gengen_home/models/v1", config=lambda cfg: b"{")))


# --- more ways real files and runs go wrong
LONG = "x" * 300
add(case("vae-train-series-matrix-no-table", f"vae-train x.txt -o out {VAE_FAST}",
         {"x.txt": '!Series_title\t"t"\n!Sample_geo_accession\t"GSM1"\t"GSM2"\n'}))
add(case("vae-train-series-matrix-empty-table", f"vae-train x.txt -o out {VAE_FAST}",
         {"x.txt": '!Sample_geo_accession\t"GSM1"\t"GSM2"\n!series_matrix_table_begin\n"ID_REF"\t"GSM1"\t"GSM2"\n'
                   '!series_matrix_table_end\n'}))
add(case("vae-train-series-matrix-forced-on-csv", f"vae-train @expr.csv --format series-matrix -o out {VAE_FAST}"))
add(case("vae-train-gct-wrong-dims", f"vae-train x.gct -o out {VAE_FAST}",
         {"x.gct": lambda fx: (fx / "expr.gct").read_text().replace(f"{N_GENES}\t{N_SAMPLES}", f"{N_GENES + 5}\t{N_SAMPLES}", 1)}))
add(case("vae-train-gct-bad-version", f"vae-train x.gct -o out {VAE_FAST}",
         {"x.gct": lambda fx: (fx / "expr.gct").read_text().replace("#1.2", "#9.9", 1)}))
add(case("vae-train-gct-text-value", f"vae-train x.gct -o out {VAE_FAST}",
         {"x.gct": lambda fx: (fx / "expr.gct").read_text().replace("\tna\t", "\tna\toops", 1)}))
add(case("vae-train-gctx-no-matrix", f"vae-train x.gctx -o out {VAE_FAST}",
         {"x.gctx": lambda fx: _h5({"0/META/ROW/id": np.array([b"G0"]), "0/META/COL/id": np.array([b"s0"])})}))
add(case("vae-train-gctx-ids-mismatch", f"vae-train x.gctx -o out {VAE_FAST}",
         {"x.gctx": lambda fx: _h5({"0/DATA/0/matrix": np.ones((4, 3), np.float32), "0/META/ROW/id": np.array([b"G0", b"G1"]),
                                    "0/META/COL/id": np.array([b"s0", b"s1", b"s2", b"s3"])})}))
add(case("vae-train-h5ad-no-genes", f"vae-train x.h5ad -o out {VAE_FAST}", {"x.h5ad": h5ad_of(_first_cols(0))}))

# --- compendium files (issue 20): ARCHS4 nearly right, sample choices that cannot work, a damaged download
_A4_IDS = np.array([b"GSM0", b"GSM1", b"GSM2"])
add(case("vae-train-archs4-no-gene-symbol", f"vae-train x.h5 -o out {VAE_FAST}",
         {"x.h5": lambda fx: _h5({"data/expression": np.ones((4, 3), np.uint32), "meta/genes/ensembl_gene": np.array([b"E1", b"E2", b"E3", b"E4"]),
                                  "meta/samples/geo_accession": _A4_IDS})}, needle="meta/genes/gene_symbol"))
add(case("vae-train-archs4-no-sample-ids", f"vae-train x.h5 -o out {VAE_FAST}",
         {"x.h5": lambda fx: _h5({"data/expression": np.ones((4, 3), np.uint32), "meta/genes/gene_symbol": np.array([b"A", b"B", b"C", b"D"]),
                                  "meta/samples/title": np.array([b"t0", b"t1", b"t2"])})}, needle="meta/samples/geo_accession"))
add(case("ggan-train-archs4-samples-x-genes", f"ggan-train x.h5 --landmarks @archs4_landmarks.txt -o out {GGAN_FAST}",
         {"x.h5": lambda fx: _h5({"data/expression": np.ones((3, 4), np.uint32), "meta/genes/gene_symbol": np.array([b"A", b"B", b"C", b"D"]),
                                  "meta/samples/geo_accession": _A4_IDS})}, needle="genes x samples"))
add(case("infer-targets-archs4-no-expression", "infer-targets x.h5 --model @ggan -o p.csv",
         {"x.h5": lambda fx: _h5({"meta/genes/gene_symbol": np.array([b"A"]), "meta/samples/geo_accession": _A4_IDS})},
         needle="data/expression"))
add(case("vae-train-archs4-truncated", f"vae-train x.h5 -o out {VAE_FAST}", {"x.h5": truncated("archs4.h5", 0.6)}))
add(case("vae-train-archs4-damaged-chunk", f"vae-train x.h5 -o out {VAE_FAST}", {"x.h5": _archs4_bad_chunk},
         needle="truncated or corrupted"))
add(case("vae-train-archs4-damaged-chunk-streamed", f"vae-train x.h5 -o out --stream on {VAE_FAST}", {"x.h5": _archs4_bad_chunk},
         needle="truncated or corrupted"))
add(case("infer-targets-archs4-damaged-chunk", "infer-targets x.h5 --model @ggan -o p.parquet", {"x.h5": _archs4_bad_chunk}))
add(case("vae-train-where-missing-column", f"vae-train @archs4.h5 -o out --where disease=flu {VAE_FAST}", needle="'tissue'"))
add(case("ggan-train-where-missing-column", f"ggan-train @archs4.h5 --landmarks @archs4_landmarks.txt --where organ=lung -o out {GGAN_FAST}",
         needle="'series_id'"))
add(case("vae-train-where-no-sample", f"vae-train @archs4.h5 -o out --where tissue=brain {VAE_FAST}", needle="selects no sample"))
add(case("vae-train-where-and-samples-disjoint", f"vae-train @archs4.h5 -o out --where series_id=GSE2 --samples ids.txt {VAE_FAST}",
         {"ids.txt": "GSM0\nGSM1\n"}, needle="keeps no sample"))
add(case("vae-encode-samples-none-found", "vae-encode @archs4.h5 --model @vae -o e.h5ad --samples ids.txt", {"ids.txt": "GSM999\n"}))
add(case("ggan-eval-where-no-sample", "ggan-eval @archs4.h5 --landmarks @archs4_landmarks.txt --folds 2 --methods mean -o ev "
         "--where series_id=GSE9", needle="selects no sample"))
add(case("infer-targets-where-missing-column", "infer-targets @archs4.h5 --model @ggan -o p.csv --where cell=T", needle="columns"))
add(case("vae-train-where-malformed", f"vae-train @archs4.h5 -o out --where tissue {VAE_FAST}", needle="COLUMN=VALUE"))
add(case("vae-train-samples-missing-file", f"vae-train @archs4.h5 -o out --samples nothere.txt {VAE_FAST}"))
add(case("vae-train-stream-on-csv", f"vae-train @expr.csv -o out --stream on {VAE_FAST}", needle="by chunks"))
add(case("vae-train-stream-bad", f"vae-train @archs4.h5 -o out --stream sometimes {VAE_FAST}"))
add(case("vae-train-archs4-layer", f"vae-train @archs4.h5 -o out --layer counts {VAE_FAST}", needle="leave --layer out"))
add(case("vae-encode-streamed-reconstruct", "vae-encode @archs4.h5 --model @vae --stream on --reconstruct -o e.h5ad",
         needle="--reconstruct"))
add(case("ggan-train-normalize-bad", f"ggan-train {GGAN_REF} -o out --normalize tpm {GGAN_FAST}"))
add(case("vae-train-normalize-cpm-on-log-values", f"vae-train x.csv -o out --normalize cpm {VAE_FAST}",
         {"x.csv": table(lambda df: df - 6)}, needle="needs counts"))
add(case("vae-train-parquet-text-column", f"vae-train x.parquet -o out {VAE_FAST}",
         {"x.parquet": parquet_of(lambda df: df.assign(G3=["a"] * len(df)))}))
add(case("vae-train-two-samples", f"vae-train x.csv -o out {VAE_FAST}", {"x.csv": table(_first_rows(2))}))
add(case("vae-train-store-bad-data", f"vae-train x.csv {VAE_FAST}", {"x.csv": b""}))
add(case("vae-train-store-home-is-a-file", f"vae-train @expr.csv {VAE_FAST}", {"afile": "x\n"}, env={"GENGEN_HOME": "afile"}))
add(case("dna-train-store-bad-fasta", f"dna-train x.fa {GAN_FAST}", {"x.fa": ">a\n"}))
add(case("vae-train-threads-env-junk", f"vae-train @expr.csv -o out {VAE_FAST}", env={"GENGEN_THREADS": "many"}))
add(case("vae-train-device-tpu", f"vae-train @expr.csv -o out {VAE_FAST} --device tpu"))
add(case("vae-train-device-bad-cuda-index", f"vae-train @expr.csv -o out {VAE_FAST} --device cuda:99"))
add(case("vae-train-log-bad", f"vae-train @expr.csv -o out {VAE_FAST} --log maybe"))
add(case("vae-train-gene-rank-bad", f"vae-train @expr.csv -o out {VAE_FAST} --gene-rank loudest"))
for cmd in ("vae-train @expr.csv -o out " + VAE_FAST, "vae-sample --model @vae -n 2 -o s.h5ad", "dna-generate --model @gan -n 2 -o g.fa",
            f"{DESIGN} --motif @m.jaspar", f"dna-train @train.fa -o out {GAN_FAST}", f"ggan-train {GGAN_REF} -o out {GGAN_FAST}"):
    name = cmd.split()[0]
    add(case(f"{name}-seed-negative", f"{cmd} --seed -1"))
    add(case(f"{name}-seed-huge", f"{cmd} --seed 100000000000000000000000"))
add(case("vae-encode-forced-wrong-orientation", "vae-encode @expr.csv --model @vae --genes-in-rows -o e.h5ad"))
add(case("vae-encode-fill-missing-nothing-shared", "vae-encode x.csv --model @vae --fill-missing -o e.h5ad",
         {"x.csv": table(rename_columns(lambda cols: [c + "_x" for c in cols]))}))
add(case("infer-targets-fill-missing-nothing-shared", "infer-targets q.csv --model @ggan --fill-missing -o p.csv",
         {"q.csv": _reference_table(lambda df: df.iloc[:10, :5].rename(columns=lambda c: c + "_x"))}))
add(case("infer-targets-all-nan-landmark", "infer-targets q.csv --model @ggan -o p.csv",
         {"q.csv": _reference_table(lambda df: df.iloc[:10, :5].assign(LM2="nan"))}))
add(case("ggan-train-landmarks-from-nothing-shared", f"ggan-train @ref.csv --landmarks-from q.csv -o out {GGAN_FAST}",
         {"q.csv": "id,A1,A2\nx,1,2\n"}))
add(case("vae-compare-labels-one-class", f"vae-compare @expr.csv --labels lab.tsv --by group {VAE_FAST}",
         {"lab.tsv": "sample\tgroup\n" + "".join(f"s{i}\tsame\n" for i in range(N_SAMPLES))}))
add(case("vae-features-labels-one-class", "vae-features --model @vae --data @expr.csv --by group --labels lab.tsv -o feats",
         {"lab.tsv": "sample\tgroup\n" + "".join(f"s{i}\tsame\n" for i in range(N_SAMPLES))}))
add(case("vae-compare-labels-conflicting-duplicates", f"vae-compare @expr.csv --labels lab.tsv --by group {VAE_FAST}",
         {"lab.tsv": lambda fx: (fx / "labels.tsv").read_text() + "s0\tzzz\n"}))
add(case("vae-import-genes-duplicated", "vae-import-tybalt @decoder.hdf5 --genes g.txt -o imp",
         {"g.txt": "\n".join(["G0"] * N_GENES) + "\n"}, needle="more than once"))
add(case("dna-train-predictor-duplicate-fasta-ids", "dna-train-predictor x.fa --scores @scores.csv -o out --epochs 1 --no-baseline",
         {"x.fa": lambda fx: (fx / "probes.fa").read_text().replace(">p1\n", ">p0\n", 1)}))
add(case("dna-score-independent-probes-other-length",
         "dna-score @train.fa --independent-probes @probes.fa --independent-scores @scores.csv -o t.tsv"))
add(case("dna-eval-samples-too-short", "dna-eval @train.fa --model @gan -n 20 --samples s.fa", {"s.fa": ">a\nACGT\n>b\nACG\n"}))
add(case("dna-eval-n-huge", "dna-eval @train.fa --model @gan -n 1000000000000"))
add(case("dna-design-length-shorter-than-motif", "dna-design -n 2 --steps 2 --length 3 -o d.fa --motif @m.jaspar"))
add(case("dna-design-weights-bad", f"{DESIGN} --motif @m.jaspar --gan @gan --weights newest"))
add(case("dna-design-meme-protein", f"{DESIGN} --motif x.meme",
         {"x.meme": lambda fx: (fx / "m.meme").read_text().replace("ALPHABET= ACGT", "ALPHABET= ACDEFGHIKLMNPQRSTVWY")
          .replace("alength= 4", "alength= 20")}))
add(case("dna-design-transfac-no-po", f"{DESIGN} --motif x.transfac --motif-format transfac",
         {"x.transfac": "AC  MA9000.1\nXX\nID  TOY\nXX\n//\n"}))
add(case("dna-design-jaspar-ragged", f"{DESIGN} --motif x.jaspar --motif-format jaspar",
         {"x.jaspar": ">MA9000.1 TOY\nA [ 1 2 3 ]\nC [ 1 2 ]\nG [ 1 2 3 ]\nT [ 1 2 3 ]\n"}))
add(case("dna-design-homer-three-columns", f"{DESIGN} --motif x.homer --motif-format homer",
         {"x.homer": ">GCG\tTOY\t5.0\n0.2\t0.3\t0.5\n0.1\t0.8\t0.1\n"}))
add(case("models-add-corrupted-weights", "models add m", model_copy("vae", weights=flipped("vae/model.safetensors"))))
add(case("models-add-pickled-weights", "models add m", model_copy("gan", weights=pickled()), needle="pickle"))
# outputs: names too long, broken links, links onto inputs, a side file that is a folder, '' as a path
add(case("vae-sample-output-name-too-long", f"vae-sample --model @vae -n 2 -o {LONG}.h5ad"))
add(case("dna-generate-output-name-too-long", f"dna-generate --model @gan -n 2 -o {LONG}.fa"))
add(case("vae-train-output-name-too-long", f"vae-train @expr.csv -o {LONG} {VAE_FAST}"))
add(case("dna-design-output-name-too-long", f"dna-design -n 2 --steps 2 --length 12 --motif @m.jaspar -o {'d' * 254}.fa"))
add(case("infer-targets-output-under-broken-link", "infer-targets @query.csv --model @ggan -o gone/p.csv", {"gone": Link("nowhere")}))
add(case("infer-targets-output-links-to-query", "infer-targets q.csv --model @ggan -o p.csv",
         {"q.csv": fixture("query.csv"), "p.csv": Link("q.csv")}))
add(case("vae-encode-output-links-to-fixture", "vae-encode @expr.csv --model @vae -o e.csv", {"e.csv": Link("@expr.csv")}))
add(case("vae-sample-output-empty-name", ["vae-sample", "--model", "@vae", "-n", "2", "-o", ""]))
add(case("vae-train-output-empty-name", ["vae-train", "@expr.csv", "-o", "", *VAE_FAST.split()]))
add(case("vae-train-output-is-cwd", ["vae-train", "@expr.csv", "-o", ".", *VAE_FAST.split()], {"notes.txt": "keep\n"}))
add(case("ggan-eval-side-file-is-folder", f"ggan-eval {GGAN_REF} -o ev --folds 2 --methods mean", dirs=("ev/ggan_eval.png",)))
add(case("dna-score-output-under-a-file", "dna-score @probes.fa --motif @m.jaspar -o afile/t.tsv", {"afile": "x\n"}))
add(case("vae-sample-output-gct", "vae-sample --model @vae -n 2 -o s.gct"))
add(case("dna-generate-output-into-model", "dna-generate --model m -n 2 -o m/samples.fa",
         model_copy("gan", add={"samples.fa": ">a\nACGT\n"})))
add(case("vae-decode-output-is-model-folder", "vae-decode z.csv --model m -o m", {**model_copy("vae"), "z.csv": "id,a,b\nx,1,2\n"}))
add(case("dna-train-predictor-output-is-gan", "dna-train-predictor @probes.fa --scores @scores.csv -o m --epochs 1", model_copy("gan")))

# --- paths that are not files: '' (the current folder), a folder, /dev/null; text in UTF-16 without a byte-order mark (with one it reads: test_motif_layouts)
PATH_OPTIONS = (  # one option of each command that reads a path: these must refuse what is not a regular file
    ("ggan-train-landmarks", f"ggan-train @ref.csv --landmarks {{}} -o out {GGAN_FAST}"),
    ("dna-train-predictor-scores", "dna-train-predictor @probes.fa --scores {} -o out --epochs 1"),
    ("vae-compare-labels", f"vae-compare @expr.csv --labels {{}} --by group {VAE_FAST}"),
    ("infer-targets-gene-map", "infer-targets @query.csv --model @ggan --gene-map {} -o p.csv"),
    ("dna-design-motif", f"{DESIGN} --motif {{}}"),
    ("vae-import-genes", "vae-import-tybalt @decoder.hdf5 --genes {} -o imp"),
    ("dna-score-fasta", "dna-score {} --motif @m.jaspar -o t.tsv"),
    ("vae-encode-model", "vae-encode @expr.csv --model {} -o e.h5ad"),
)
for cid, argv in PATH_OPTIONS:
    add(case(f"{cid}-is-empty-path", [a if a != "{}" else "" for a in argv.split()]))
    add(case(f"{cid}-is-a-folder", argv.replace("{}", "adir"), dirs=("adir",)))
for cid, argv in (("vae-train", f"vae-train /dev/null -o out {VAE_FAST}"), ("dna-train", f"dna-train /dev/null -o out {GAN_FAST}"),
                  ("dna-design-motif", f"{DESIGN} --motif /dev/null"), ("infer-targets", "infer-targets /dev/null --model @ggan -o p.csv")):
    add(case(f"{cid}-dev-null", argv))

# --- issue 18: a named pipe or a device where a file is read (it blocked forever, or never ended), links
# planted at the names gengen writes (a lock file wrote "PID host" into the link's target), links and special
# files in a model folder copied into the store, JSON nested 100,000 deep (RecursionError)
for cid, argv in PATH_OPTIONS:
    add(case(f"{cid}-is-a-fifo", argv.replace("{}", "apipe"), {"apipe": Fifo()}))
    add(case(f"{cid}-is-dev-zero", argv.replace("{}", "/dev/zero"), seconds=FIFO_SECONDS))
add(case("vae-train-data-is-a-fifo", f"vae-train x.csv -o out {VAE_FAST}", {"x.csv": Fifo()}, needle="named pipe"))
add(case("vae-import-decoder-is-a-fifo", "vae-import-tybalt apipe --genes @genes.txt -o imp", {"apipe": Fifo()},
         needle="named pipe"))
add(case("vae-encode-h5ad-is-a-fifo", "vae-encode x.h5ad --model @vae -o e.csv", {"x.h5ad": Fifo()}, needle="named pipe"))
add(case("vae-encode-model-config-is-a-fifo", "vae-encode @expr.csv --model m -o e.csv",
         {**model_copy("vae", drop=("config.json",)), "m/config.json": Fifo()}, needle="named pipe"))
add(case("vae-encode-model-weights-is-a-fifo", "vae-encode @expr.csv --model m -o e.csv",
         {**model_copy("vae", drop=("model.safetensors",)), "m/model.safetensors": Fifo()}, needle="named pipe"))
add(case("infer-targets-model-config-is-a-fifo", "infer-targets @query.csv --model m -o p.csv",
         {**model_copy("ggan", drop=("config.json",)), "m/config.json": Fifo()}, needle="named pipe"))
add(case("models-show-config-is-a-fifo", "models show v1",
         {**model_copy("vae", "gengen_home/models/v1", drop=("config.json",)), "gengen_home/models/v1/config.json": Fifo()},
         needle="named pipe"))
add(case("models-add-config-is-a-fifo", "models add m", {**model_copy("vae", drop=("config.json",)), "m/config.json": Fifo()},
         needle="named pipe"))
add(case("models-add-fifo-in-folder", "models add m", model_copy("vae", add={"pipe": Fifo()}), needle="named pipe"))
add(case("models-add-link-leaving-folder", "models add m", {**model_copy("vae", add={"notes.txt": Link("../secret.txt")}),
                                                            "secret.txt": "key\n"}, needle="outside"))
add(case("models-add-link-to-dev-zero", "models add m", model_copy("vae", add={"zero": Link("/dev/zero")}), needle="outside"))
add(case("models-add-broken-link-in-folder", "models add m", model_copy("vae", add={"gone": Link("nowhere")}), needle="broken"))
add(case("models-add-defaults-lock-is-a-link", "models add m",
         {**model_copy("vae"), "v.txt": "keep\n", "gengen_home/.defaults.json.gengen-lock": Link("../v.txt")}, needle="lock file"))
add(case("dna-generate-defaults-is-a-fifo", "dna-generate -n 2 -o g.fa", {"gengen_home/defaults.json": Fifo()}, needle="named pipe"))
add(case("vae-encode-lock-is-a-link-to-a-file", "vae-encode @expr.csv --model @vae -o e.csv",
         {"v.txt": "keep\n", ".e.csv.gengen-lock": Link("v.txt")}, needle="lock file"))
add(case("vae-encode-lock-is-a-link-to-the-input", "vae-encode x.csv --model @vae -o e.csv",
         {"x.csv": fixture("expr.csv"), ".e.csv.gengen-lock": Link("x.csv")}, needle="lock file"))
add(case("vae-encode-lock-is-a-broken-link", "vae-encode @expr.csv --model @vae -o e.csv",
         {".e.csv.gengen-lock": Link("nowhere")}, needle="lock file"))
add(case("vae-encode-lock-is-a-fifo", "vae-encode @expr.csv --model @vae -o e.csv", {".e.csv.gengen-lock": Fifo()},
         needle="lock file"))
add(case("vae-train-lock-is-a-link", f"vae-train @expr.csv -o out {VAE_FAST}", {"v.txt": "keep\n", ".out.gengen-lock": Link("v.txt")},
         needle="lock file"))
add(case("vae-train-store-defaults-lock-is-a-link", f"vae-train @expr.csv {VAE_FAST}",
         {"v.txt": "keep\n", "gengen_home/.defaults.json.gengen-lock": Link("../v.txt")}, needle="lock file"))
add(case("vae-encode-model-config-nested-deep", "vae-encode @expr.csv --model m -o e.csv",
         model_copy("vae", config=lambda cfg: DEEP_JSON.encode()), needle="nested deeper"))
add(case("models-show-config-nested-deep", "models show v1",
         model_copy("vae", "gengen_home/models/v1", config=lambda cfg: DEEP_JSON.encode()), needle="nested deeper"))
add(case("models-add-config-nested-deep", "models add m", model_copy("vae", config=lambda cfg: DEEP_JSON.encode()),
         needle="nested deeper"))
add(case("dna-generate-defaults-nested-deep", "dna-generate -n 2 -o g.fa", {"gengen_home/defaults.json": DEEP_JSON},
         needle="nested deeper"))
add(case("dna-train-resume-config-nested-deep", f"dna-train @train.fa -o m --resume {GAN_FAST}",
         model_copy("gan", config=lambda cfg: DEEP_JSON.encode()), needle="nested deeper"))
add(case("sweep-vae-marker-is-a-fifo", "sweep vae @expr.csv --trials 2 -o sw", {"sw/sweep.json": Fifo()}, needle="named pipe"))
add(case("vae-train-utf16-csv", f"vae-train x.csv -o out {VAE_FAST}", {"x.csv": lambda fx: (fx / "expr.csv").read_text().encode("utf-16-le")}))
add(case("ggan-train-landmarks-utf16", f"ggan-train @ref.csv --landmarks lm.txt -o out {GGAN_FAST}",
         {"lm.txt": lambda fx: (fx / "landmarks.txt").read_text().encode("utf-16-le")}))
add(case("vae-decode-x-vae-wrong-width", "vae-decode z.h5ad --model @vae -o d.h5ad", {"z.h5ad": lambda fx: _latent_h5ad(5)}))
# the filesystem says no: a folder the system will not write to (os.access mocked: tests may run as root), a disk
# that fills up as the outputs land (the last of three files), an output another run is writing (its lock held)
add(case("vae-sample-read-only-folder", "vae-sample --model @vae -n 2 -o ro/s.h5ad", dirs=("ro",), patch=_read_only("ro")))
add(case("dna-train-read-only-folder", f"dna-train @train.fa -o ro/gan {GAN_FAST}", dirs=("ro",), patch=_read_only("ro")))
add(case("dna-design-disk-full-at-last-file", f"{DESIGN} --motif @m.jaspar", patch=_disk_full_at("d.png")))
# issue 18 item 15: the designed motif (.motif.jaspar) and the hits (.hits.bed) are declared outputs like the rest
add(case("dna-design-disk-full-at-hits-bed", f"{DESIGN} --motif @m.jaspar", patch=_disk_full_at("d.hits.bed")))
add(case("dna-design-motif-file-is-folder", f"{DESIGN} --motif @m.jaspar", dirs=("d.motif.jaspar",)))
add(case("dna-score-hits-bed-is-folder", "dna-score @probes.fa --motif @m.jaspar -o t.tsv", dirs=("t.hits.bed",)))
add(case("dna-score-disk-full-at-hits-bed", "dna-score @probes.fa --motif @m.jaspar -o t.tsv", patch=_disk_full_at("t.hits.bed")))
# the finished folds stay (ggan-eval --resume writes the tables from them once there is space), and only they
add(case("ggan-eval-disk-full-at-last-file", f"ggan-eval {GGAN_REF} -o ev --folds 2 --methods mean", patch=_disk_full_at("ggan_eval_info.json"),
         needle="--resume", keeps=("ev", "ev/fold_results", "ev/fold_results/fold[12]-mean.npz")))
add(case("vae-sample-output-locked", "vae-sample --model @vae -n 2 -o s.h5ad", patch=_locked("s.h5ad")))
add(case("vae-train-output-locked", f"vae-train @expr.csv -o out {VAE_FAST}", patch=_locked("out")))

# --- issue 18: silent acceptance (dates, true/false, empty names), h5ad without X, an h5ad that fills the disk
def _h5ad_layers_only(fx: Path) -> bytes:
    """The good expression as an h5ad whose X is gone, kept only as layers 'counts' and 'lognorm'."""
    import tempfile

    import anndata as ad

    a = ad.read_h5ad(fx / "expr.h5ad")
    a.layers["lognorm"], a.layers["counts"] = a.X.copy(), np.round(2 ** a.X)
    a.X = None
    with tempfile.TemporaryDirectory() as d:
        a.write_h5ad(Path(d) / "x.h5ad")
        return (Path(d) / "x.h5ad").read_bytes()


def _h5ad_disk_full(monkeypatch, work: Path) -> None:
    """Every write into an h5ad fails with ENOSPC (gengen writes h5ad files through os.pwrite only)."""
    import errno

    def pwrite(fd, data, offset):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", pwrite)


for cmd in ("vae-train x.h5ad -o out " + VAE_FAST, "infer-targets x.h5ad --model @ggan -o p.csv",
            "ggan-train x.h5ad --landmarks @landmarks.txt -o out " + GGAN_FAST,
            "vae-features --model @vae --data x.h5ad --by group -o feats"):
    add(case(f"{cmd.split()[0]}-h5ad-without-x", cmd, {"x.h5ad": _h5ad_layers_only}, needle="pick one with --layer NAME"))
add(case("vae-encode-h5ad-unknown-layer", "vae-encode x.h5ad --model @vae --layer log1p -o e.h5ad",
         {"x.h5ad": _h5ad_layers_only}, needle="no layer 'log1p'; its layers are 'counts', 'lognorm'"))
add(case("infer-targets-layer-of-a-csv", "infer-targets @query.csv --model @ggan --layer counts -o p.csv",
         needle="picks a layer of an h5ad input"))
add(case("vae-compare-layer-of-a-csv", f"vae-compare @expr.csv --layer counts {VAE_FAST}", needle="picks a layer"))
add(case("sweep-vae-layer-of-a-csv", "sweep vae @expr.csv --trials 2 --layer counts -o sw", needle="picks a layer"))
add(case("vae-train-parquet-date-among-genes", f"vae-train x.parquet -o out {VAE_FAST}",
         {"x.parquet": parquet_of(lambda df: df.assign(G3=pd.date_range("2020-01-01", periods=len(df))))},
         needle="column 'G3' (#4) holds dates"))
add(case("vae-train-parquet-bool-among-genes", f"vae-train x.parquet -o out {VAE_FAST}",
         {"x.parquet": parquet_of(lambda df: df.assign(G5=np.arange(len(df)) % 2 == 0))}, needle="true/false values"))
add(case("vae-train-empty-header-cell", f"vae-train x.csv -o out {VAE_FAST}", {"x.csv": table(_rename("G2", ""))},
         needle="field #4 of the header is empty"))
add(case("ggan-train-empty-header-cell-tsv", f"ggan-train x.tsv --landmarks @landmarks.txt -o out {GGAN_FAST}",
         {"x.tsv": _reference_table(_rename("TG1", ""), sep="\t")}, needle="of the header is empty"))
add(case("vae-encode-reconstruct-into-a-table", "vae-encode @expr.csv --model @vae --reconstruct -o e.csv", needle="--reconstruct"))
add(case("vae-encode-labels-into-a-table", "vae-encode @expr.csv --model @vae --labels @labels.tsv -o e.csv",
         needle="--labels joins annotations"))
add(case("vae-encode-by-missing-column", "vae-encode @expr.csv --model @vae --labels @labels.tsv --by stage -o e.h5ad",
         needle="no column 'stage'"))
add(case("vae-encode-save-model-and-model", "vae-encode @expr.csv --model @vae --save-model m2 -o e.h5ad",
         needle="nothing is trained"))
add(case("vae-sample-disk-full-in-h5ad", "vae-sample --model @vae -n 50 -o s.h5ad", patch=_h5ad_disk_full,
         needle="cannot write 's.h5ad': No space left on device"))
add(case("vae-encode-disk-full-in-h5ad", "vae-encode @expr.h5ad --model @vae -o e.h5ad", patch=_h5ad_disk_full,
         needle="No space left on device"))
add(case("infer-targets-disk-full-in-h5ad", "infer-targets @query.csv --model @ggan -o p.h5ad", patch=_h5ad_disk_full,
         needle="cannot write 'p.h5ad': No space left on device"))
add(case("vae-encode-store-disk-full-in-h5ad", f"vae-encode @expr.h5ad -o e.h5ad {VAE_FAST}", patch=_h5ad_disk_full,
         needle="No space left on device"))


# ------------------------------------------------------------------------------------------ the test
@pytest.fixture(scope="session")
def fx(tmp_path_factory) -> Path:
    """The shared good inputs and tiny models, built once per test session."""
    return build_fixtures(tmp_path_factory.mktemp(FX_NAME))


@pytest.fixture(scope="module")
def _built_once():
    """Typer rebuilds the whole click command tree on every ``CliRunner.invoke`` (~0.2 s of the ~0.25 s a
    case takes): build it once for this module's hundreds of invocations."""
    import typer.main
    import typer.testing

    from gengen.cli import app

    original = getattr(typer.testing, "_get_command", None)
    if original is None:  # another Typer: keep its own way
        yield
        return
    command = typer.main.get_command(app)
    typer.testing._get_command = lambda a: command if a is app else original(a)
    try:
        yield
    finally:
        typer.testing._get_command = original


def snapshot(*roots: Path) -> dict[str, str]:
    """Every path under ``roots`` (dotfiles and empty folders included) -> its SHA-256, 'dir', link target
    or kind (a named pipe is never opened: that would block)."""
    import stat

    out: dict[str, str] = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = os.path.join(dirpath, name)
                mode = os.lstat(p).st_mode
                if stat.S_ISLNK(mode):
                    out[p] = "-> " + os.readlink(p)
                elif stat.S_ISDIR(mode):
                    out[p] = "dir"
                elif not stat.S_ISREG(mode):
                    out[p] = f"special {stat.S_IFMT(mode):o}"
                else:
                    with open(p, "rb") as fh:
                        out[p] = hashlib.sha256(fh.read()).hexdigest()
    return out


class _CaseTimeout(BaseException):
    """Raised in the command when a case outlives its ``seconds`` (not an Exception: nothing catches it)."""


def _on_alarm(signum, frame):
    raise _CaseTimeout("still running after the case's time limit: the bad input was accepted (or blocked a read)")


def _write_inputs(c: Case, work: Path, fx: Path) -> None:
    (work / "gengen_home" / "models").mkdir(parents=True)  # the store's folder, as after a first training
    for d in c.dirs:
        (work / d).mkdir(parents=True, exist_ok=True)
    for name, content in c.files.items():
        p = work / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Link):
            os.symlink(str(fx / content.target[1:]) if content.target.startswith("@") else content.target, p)
            continue
        if isinstance(content, Fifo):
            os.mkfifo(p)
            continue
        data = _resolve(content, fx)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())


def _argv(c: Case, fx: Path) -> list[str]:
    argv = [str(fx / a[1:]) if a.startswith("@") else a for a in c.argv]
    return argv if argv[0] == "models" else [*argv, "-q"]


def _describe(res) -> str:
    import traceback

    tb = "".join(traceback.format_exception(*res.exc_info)) if res.exception is not None and not isinstance(res.exception, SystemExit) else ""
    return f"exit {res.exit_code}\n--- stdout\n{res.stdout}--- stderr\n{res.stderr}{tb}"


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input_fails_cleanly(c: Case, fx: Path, tmp_path: Path, monkeypatch, _built_once) -> None:
    from gengen.cli import app

    work = tmp_path  # holds the case's files, its outputs (if any were left) and $GENGEN_HOME
    monkeypatch.chdir(work)
    _write_inputs(c, work, fx)
    argv = _argv(c, fx)
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        with pytest.MonkeyPatch.context() as mp:  # a filesystem that says no, for the command only
            if c.patch is not None:
                c.patch(mp, work)
            before = snapshot(work, fx)
            signal.alarm(c.seconds)
            res = CliRunner().invoke(app, argv, env={"GENGEN_THREADS": "1", "GENGEN_NO_PROGRESS": "1", **c.env})
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        while _HELD:
            os.close(_HELD.pop())
    what = f"gengen {' '.join(argv)}\n{_describe(res)}"
    assert res.exit_code == 2, what
    assert res.exception is None or isinstance(res.exception, SystemExit), what
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gengen: error: "), what
    assert "Traceback" not in res.output and res.stdout == "", what
    if c.needle:
        assert c.needle in lines[0], what
    after = snapshot(work, fx)
    left = sorted(p for p in set(after) - set(before)
                  if not any(fnmatch.fnmatchcase(os.path.relpath(p, work), k) for k in c.keeps))
    assert not left, f"left behind: {left}\n{what}"
    changed = sorted(p for p in before if after.get(p) != before[p])
    assert not changed, f"inputs changed or removed: {changed}\n{what}"


def test_every_command_has_bad_input_cases() -> None:
    """The suite stays complete: a new command (or ``models`` / ``sweep`` subcommand) needs cases in :data:`CASES`."""
    import typer.main

    from gengen.cli import app

    def names(command, prefix=()):
        for name, sub in getattr(command, "commands", {}).items():
            yield from names(sub, (*prefix, name)) if getattr(sub, "commands", None) else [(*prefix, name)]

    covered = {c.argv[:2] if c.argv[0] in ("models", "sweep") else c.argv[:1] for c in CASES}
    missing = [" ".join(n) for n in names(typer.main.get_command(app)) if n not in covered]
    assert not missing, f"commands without a bad-input case in tests/test_bad_inputs.py: {missing}"
    assert len(CASES) >= 120 and len({c.id for c in CASES}) == len(CASES)
