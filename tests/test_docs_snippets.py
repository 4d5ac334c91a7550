"""Every snippet of README.md and docs/*.md runs (issue 18, item 11).

Each doc page is one test: its ```python blocks, and the ``gengen ...`` command lines of its ```bash
(and unlabelled) blocks, run in order, as a reader following the page would, in a fresh folder whose
files have the names the snippets use: small synthetic stand-ins (expression tables, a Xena-style
``HiSeqV2.gz``, an ARCHS4-layout ``human_gene_v2.latest.h5``, D-GEX probe maps, L1000 GCT/GCTX plates, FASTA, motifs) and small models trained once per
session (``dna_gan``, the predictors). ``../shared/data`` paths point at stand-ins too, so a page runs in
seconds whether or not the shared data are there. Commands run in this process through Typer's
CliRunner; a model store of its own (``GENGEN_HOME``) per page.

What cannot run here is in ``SKIP``, each with its reason; a ``torchrun ... -m gengen COMMAND`` line
runs COMMAND in this one process (its options checked; several processes are
tests/test_distributed.py's); ``$ gengen`` lines in output transcripts are not run (their block shows what a command printed). A skipped command's outputs that later lines
use are among the stand-ins. To keep the pages to seconds, the training and design lengths are turned
down (``FAST_OPTIONS`` for commands, ``FAST_CODE`` for Python): every file name, option and call is
still the page's.
"""

from __future__ import annotations

import gzip
import re
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dna_fixtures import random_seqs, write_fa
from gengen.cli import app
from test_ggan_gctx import write_gct13, write_gctx

REPO = Path(__file__).resolve().parents[1]
PAGES = ["README.md", *sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md"))]
runner = CliRunner()

# (page, a piece of the command or code) -> why it is not run here
SKIP = {
    ("README.md", "make "): "make demo / make test: the whole demo and test suite (make test is what runs this)",
    ("README.md", "gengen dna-train promoters.fa.gz -o dna_gan --length 50 --time-limit 30"):
        "trains for its 30-minute --time-limit; the stand-in dna_gan (trained once) serves the lines after it",
    ("README.md", "--space tybalt --by cancer_type -o tybalt_sweep"): "Tybalt's 320-configuration grid: hours of training",
    ("README.md", "--space latent --by cancer_type -o z_sweep"): "13 latent sizes x trials of VAE training: many minutes",
    ("README.md", "--storage postgresql://u:p@db"): "needs the PostgreSQL server db:5432 it names",
    ("docs/dna.md", "--iterations 100000"): "a 55- or 5-minute --time-limit of WGAN training; dm3_gan is a stand-in",
    ("docs/sweep.md", "gengen sweep vae ../shared/data/expression/khan_srbct.h5ad --space latent"):
        "a latent-size study of dozens of VAE trainings: minutes (its measured output is on the page)",
    ("docs/sweep.md", "postgresql://"): "needs the PostgreSQL server the page names",
    ("docs/vae.md", "sc.tl.umap"): "UMAP's numba compilation alone takes ~30 s; the h5ad it reads is checked by "
                                   "the vae-encode line before it",
    ("docs/benchmarks.md", "python benchmarks/"): "a benchmark script, not a gengen command",
    ("docs/dna.md", "python benchmarks/pbm_predictor.py"): "a benchmark script (the predictor against the ridge on every "
                                                         "PBM factor, minutes each), not a gengen command",
    ("docs/ggan.md", "-o /shared/archs4_ggan"): "a SLURM job's / a second machine's paths (/shared); torchrun over "
                                                "two processes runs in tests/test_distributed.py",
    ("docs/dna.md", "import grelu.lightning"): "needs gReLU and a trained gReLU checkpoint; the stand-in my_models.py "
                                               "has a load_grelu of the same signature for the command after it",
}


# (page, a piece of the code) -> a name the snippet takes from the reader's own session (their model),
# given to it as a stand-in (``READER_MODEL`` in ``my_models.py`` among the stand-in files)
READER_NAMES = {
    ("README.md", "torch.jit.script(model.eval())"): "model",
    ("docs/dna.md", "torch.jit.script(model.eval())"): "model",
}
READER_MODEL = """\
import torch
from torch import nn


class TwoOutputs(nn.Module):
    \"\"\"A reader's own sequence-to-function model: one-hot (N, 4, L), any L, to two outputs (N, 2).\"\"\"

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 9, padding=4)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).amax(dim=2))


class OneTask(nn.Module):
    def __init__(self, model, task):
        super().__init__()
        self.model, self.task = model, task

    def forward(self, x):
        return self.model(x)[:, self.task]


def _weights(checkpoint):
    assert open(checkpoint).read().strip() == "reader weights"
    torch.manual_seed(0)
    return TwoOutputs().eval()


def load_model(checkpoint):
    \"\"\"The README's factory (python=my_models.py:load_model,checkpoint=model.ckpt): one output.\"\"\"
    return OneTask(_weights(checkpoint), 0)


def load_grelu(checkpoint, task=0):
    \"\"\"docs/dna.md's gReLU factory, without gReLU: one task of the two.\"\"\"
    return OneTask(_weights(checkpoint), int(task) % 2)
"""


def reader_names(snippet: Snippet) -> dict:
    """The reader's own objects a Python snippet uses (see ``READER_NAMES``), as stand-ins."""
    wanted = {name for (page, piece), name in READER_NAMES.items() if page == snippet.page and piece in snippet.text}
    if not wanted:
        return {}
    import importlib.util

    spec = importlib.util.spec_from_file_location("my_models", "my_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"model": module._weights("model.ckpt")} if "model" in wanted else {}


# Shell variables a page defines in its prose rather than in a block
PAGE_VARIABLES = {"docs/dna.md": {"D": "../shared/data/dna"}}  # "`D=../shared/data/dna`."

# Training and design lengths turned down (the defaults train for minutes on any data): command ->
# option -> value, set whether or not the line gives the option.
FAST_OPTIONS = {
    "vae-encode": {"--epochs": "3"},  # when it trains (no --model)
    "vae-train": {"--epochs": "3"},
    "vae-compare": {"--epochs": "3"},
    "ggan-train": {"--epochs": "3"},
    "ggan-eval": {"--epochs": "3"},
    "dna-design": {"--steps": "10", "-n": "50"},
    "dna-train-predictor": {"--epochs": "2"},
    "dna-explain": {"--top": "10", "--logos": "2"},  # seqlet clustering, not TF-MoDISco (tests/test_dna_explain.py runs it)
}
# (page, code as written) -> the same call with a shorter training or design
FAST_CODE = {
    ("README.md", "recipe=VAERecipe(seed=0)"): "recipe=VAERecipe(seed=0, epochs=3)",
    ("docs/sweep.md", '"epochs": 200'): '"epochs": 3',
    ("docs/dna.md", 'steps=300, device="cpu"'): 'steps=10, device="cpu"',
    ("docs/dna.md", "design(objectives, 1000, 36)"): "design(objectives, 50, 36, steps=10)",
    ("docs/dna.md", "design(PWMPredictor(pwm), constraints=c)"): "design(PWMPredictor(pwm), constraints=c, steps=10)",
    ("docs/dna.md", "gan=gan, steps=500"): "gan=gan, steps=10",
}


def fast(argv: list[str]) -> list[str]:
    """``argv`` with the training/design length options of ``FAST_OPTIONS`` set."""
    command, argv = argv[1], list(argv)
    if command == "vae-encode" and "--model" in argv:
        return argv
    for option, value in FAST_OPTIONS.get(command, {}).items():
        if option in argv:
            argv[argv.index(option) + 1] = value
        else:
            argv += [option, value]
    return argv


def fast_code(snippet: Snippet) -> str:
    text = snippet.text
    for (page, written), shorter in FAST_CODE.items():
        if page == snippet.page:
            text = text.replace(written, shorter)
    return text


# ----------------------------------------------------------------------------------------- parsing
@dataclass
class Snippet:
    page: str
    line: int
    kind: str  # "python" or "shell"
    text: str


def page_snippets(page: str) -> list[Snippet]:
    """The page's python blocks and shell command lines (continuations joined), in page order."""
    text = (REPO / page).read_text()
    out = []
    for m in re.finditer(r"^```(\w*)[^\n]*\n(.*?)^```", text, re.S | re.M):
        lang, body, line = m.group(1), m.group(2), text[: m.start()].count("\n") + 2
        if lang == "python":
            out.append(Snippet(page, line - 1, "python", body))
        elif lang in ("bash", "sh", "shell", ""):
            logical, start = "", line
            for i, raw in enumerate(body.splitlines()):
                if not logical:
                    start = line + i
                logical += raw.rstrip()[:-1] + " " if raw.rstrip().endswith("\\") else raw
                if raw.rstrip().endswith("\\"):
                    continue
                cmd, logical = logical.strip(), ""
                if re.match(r"(gengen\s|[A-Za-z_]\w*=\S+$|make\s|python\s|(srun\s+)?torchrun\s)", cmd):
                    out.append(Snippet(page, start, "shell", cmd))
    return out


def skip_reason(snippet: Snippet) -> str | None:
    return next((why for (page, piece), why in SKIP.items() if page == snippet.page and piece in snippet.text), None)


def shell_words(cmd: str, env: dict[str, str]) -> list[str] | None:
    """argv of one command line (comments dropped, $VARS expanded, [optional] parts left out); a
    ``NAME=value`` line sets env and gives None."""
    assign = re.fullmatch(r"([A-Za-z_]\w*)=(\S+)", cmd)
    if assign:
        env[assign.group(1)] = assign.group(2)
        return None
    cmd = re.sub(r"\$\{?([A-Za-z_]\w*)\}?", lambda m: env.get(m.group(1), m.group(0)), cmd)
    cmd = re.sub(r"\s\[[^\]]*\]", "", cmd)  # `gengen models list [--pipeline ggan]`: the bare form
    argv = shlex.split(cmd, comments=True)
    if argv[0] == "torchrun" and "-m" in argv:  # the command every rank runs, in this one process
        argv = ["gengen", *argv[argv.index("-m") + 2:]]
    return argv


# ------------------------------------------------------------------------------------ stand-ins
LM_GENES = [f"LMG{i}" for i in range(12)]
TG_GENES = [f"TGG{j}" for j in range(16)]


def _probe(i: int) -> str:
    return f"{200000 + i}_at"


def _ggan_reference(n=60, seed=0):
    """A probe-level array reference (HG-U133A-like names) with D-GEX maps: 12 landmark genes and 16
    target genes of 1-2 probes each, 6 extra probes, a ``batch`` of 6 groups."""
    import anndata as ad

    rng = np.random.default_rng(seed)
    lm_probes = [[_probe(2 * i)] + ([_probe(2 * i + 1)] if i % 3 == 0 else []) for i in range(len(LM_GENES))]
    tg_probes = [[_probe(100 + 2 * j)] + ([_probe(101 + 2 * j)] if j % 4 == 0 else []) for j in range(len(TG_GENES))]
    extra = [_probe(500 + k) for k in range(6)]
    probes = [p for ps in lm_probes + tg_probes for p in ps] + extra
    z = rng.standard_normal((n, 4))
    base = z @ rng.standard_normal((4, len(probes)))
    X = 7 + base + 0.3 * rng.standard_normal((n, len(probes)))
    obs = pd.DataFrame({"batch": [f"b{i % 6}" for i in range(n)]}, index=[f"GSM{1000 + i}" for i in range(n)])
    ref = ad.AnnData(X.astype(np.float32), obs=obs, var=pd.DataFrame(index=probes))
    lm_map = "".join(f"{g}\tENSG{10 + i:011d}\t{','.join(ps)}\n" for i, (g, ps) in enumerate(zip(LM_GENES, lm_probes)))
    tg_map = "".join(f"{g}\tENSG{50 + j:011d}\t{','.join(ps)}\n" for j, (g, ps) in enumerate(zip(TG_GENES, tg_probes)))
    return ref, lm_map, tg_map, [ps[0] for ps in lm_probes]


def _expression(n=60, g=40, seed=1):
    """Log-scale bulk expression with 3 classes: samples x genes DataFrame and the labels."""
    rng = np.random.default_rng(seed)
    labels = np.array(["LUAD", "BRCA", "KIRC"])[np.arange(n) % 3]
    centers = rng.standard_normal((3, g)) * 1.5
    X = 6 + centers[np.arange(n) % 3] + 0.5 * rng.standard_normal((n, g))
    genes = [f"GENE{j}" for j in range(g)]
    samples = [f"TCGA-{i // 10:02d}-{i:04d}-01" for i in range(n)]
    return pd.DataFrame(np.clip(X, 0, None), index=samples, columns=genes), labels


def _archs4_counts(n=120, seed=5):
    """Read counts of ARCHS4's human genes (the stand-in's landmark and target symbols, 30 others):
    genes x samples, depths 10-fold apart, 3 latent factors."""
    rng = np.random.default_rng(seed)
    genes = [*LM_GENES, *TG_GENES, *(f"OTHER{k}" for k in range(30))]
    rate = rng.gamma(1.0, 50, len(genes))[:, None] * np.exp(0.5 * rng.standard_normal((len(genes), 3))
                                                            @ rng.standard_normal((3, n)))
    return rng.poisson(rate * rng.uniform(0.3, 3, n)).astype(np.uint32), genes


def _write_archs4(path: Path, n=120) -> None:
    """An ARCHS4-layout HDF5 (``data/expression`` counts, ``meta/genes/gene_symbol``,
    ``meta/samples/*``) under ARCHS4's own file name."""
    from gengen.io import write_archs4

    counts, genes = _archs4_counts(n)
    write_archs4(path, counts, genes, samples=[f"GSM{1000 + i}" for i in range(n)], sample_fields={
        "series_id": [("GSE64016" if i % 4 == 0 else f"GSE{7000 + i % 5}") for i in range(n)],
        "singlecellprobability": [0.9 if i % 6 == 5 else 0.01 for i in range(n)]})


def _write_standins(d: Path) -> None:
    import anndata as ad
    import h5py

    shared = d.parent / "shared" / "data"
    for sub in ("expression", "ggan", "dna/pbm", "tybalt"):
        (shared / sub).mkdir(parents=True, exist_ok=True)
    # --- expression (VAE, sweeps)
    df, labels = _expression()
    expr = ad.AnnData(df.to_numpy(np.float32), obs=pd.DataFrame({"cancer_type": labels}, index=df.index),
                      var=pd.DataFrame(index=df.columns))
    expr.write_h5ad(d / "expr.h5ad")
    expr.write_h5ad(d / "tcga.h5ad")
    for name in ("khan_srbct.h5ad", "nci60.h5ad"):
        a = expr.copy()
        a.obs["tumor_class"] = a.obs["cancer_type"]
        a.write_h5ad(d / name)
        a.write_h5ad(shared / "expression" / name)
    with gzip.open(d / "HiSeqV2.gz", "wt") as fh:  # Xena: genes x samples TSV, gzipped, no extension
        df.T.rename_axis("sample").to_csv(fh, sep="\t")
    clinical = pd.DataFrame({"_primary_disease": labels}, index=pd.Index(df.index, name="sampleID"))
    clinical.to_csv(d / "clinical.tsv", sep="\t")
    clinical.to_csv(d / "PANCAN_clinicalMatrix", sep="\t")
    new, _ = _expression(n=12, seed=7)
    new.to_csv(d / "new_cohort.tsv", sep="\t")
    rng = np.random.default_rng(3)
    with h5py.File(d / "tybalt_decoder_onehidden.hdf5", "w") as f:  # Keras layout of the published decoder
        f.create_dataset("model_weights/dense_2/dense_2/kernel:0", data=rng.standard_normal((5, 40)).astype(np.float32))
        f.create_dataset("model_weights/dense_2/dense_2/bias:0", data=np.zeros(40, np.float32))
    (d / "tybalt_genes_5000.txt").write_text("\n".join(df.columns) + "\n")
    # --- GGAN
    ref, lm_map, tg_map, lm_names = _ggan_reference()
    ref.write_h5ad(d / "ref.h5ad")
    ref.write_h5ad(d / "reference.h5ad")
    ref.write_h5ad(d / "bladderbatch.h5ad")
    ref.write_h5ad(shared / "expression" / "bladderbatch.h5ad")
    (d / "lm.txt").write_text("\n".join(lm_names) + "\n")
    for folder in (d, shared / "ggan"):
        (folder / "dgex_landmarks_943.tsv").write_text(lm_map)
        (folder / "dgex_targets_9520.tsv").write_text(tg_map)
    (d / "landmarks.txt").write_text(lm_map)  # the README's Python: a D-GEX map, as the CLI accepts it
    _write_archs4(d / "human_gene_v2.latest.h5")
    (d / "my_gsm_ids.txt").write_text("".join(f"GSM{1000 + i}\n" for i in range(0, 120, 2)))
    query = ref[:8].to_df()
    query.index = [f"q{i}" for i in range(8)]
    query[lm_names].to_csv(d / "landmarks.csv")
    query.to_csv(d / "query.csv")  # array probes, as the reference: matched through the model's probe lists
    lm_profiles = pd.DataFrame(
        {g: ref[:10, [p for p in lm_map.splitlines()[i].split("\t")[2].split(",")]].X.mean(1) for i, g in enumerate(LM_GENES)},
        index=[f"plate_{i}" for i in range(10)])
    lm_profiles.to_parquet(d / "huge_query.parquet")
    plate_ids = [f"{205000 + i}_at" for i in range(len(LM_GENES))]
    for path in (d / "l1000_plate.gct", d / "l1000_level3_plate_978x377.gct",
                 shared / "ggan" / "l1000_level3_plate_978x377.gct"):
        write_gct13(path, lm_profiles.T.to_numpy(), plate_ids, list(lm_profiles.index),
                    {"pr_gene_symbol": LM_GENES}, {"pert_type": ["trt_cp"] * 10})
    entrez = [str(5720 + 7 * i) for i in range(len(LM_GENES))]
    for name in ("GSE92742_level3.gctx", "GSE92742_Broad_LINCS_Level3_INF_mlr12k_n1319138x12328.gctx"):
        write_gctx(d / name, lm_profiles.T.to_numpy(), entrez, list(lm_profiles.index))
    pd.DataFrame({"pr_gene_id": entrez, "pr_gene_symbol": LM_GENES}).to_csv(
        d / "GSE92742_Broad_LINCS_gene_info.txt", sep="\t", index=False)
    # --- DNA
    # no GAATTC / GGTCTC / AAAAAA: the README's edit line keeps positions 1-10 fixed and avoids them
    promoters = [re.sub("GAATTC|GGTCTC|AAAAAA", "GACTTC", s) for s in random_seqs(80, 200, seed=2, plant="CCGCGAGGAGGCAG")]
    write_fa(d / "promoters.fa", promoters)
    write_fa(d / "promoters.fa.gz", promoters, gz=True)
    write_fa(shared / "dna" / "dm3_upstream2000.fa.gz", promoters, gz=True)
    probes = random_seqs(300, 36, seed=4)
    signal = np.array([s.count("GATA") + 0.5 * s.count("TTGC") for s in probes], float)
    write_fa(d / "probes.fa", probes, prefix="p")
    ids = [f"p{i}" for i in range(len(probes))]
    for name in ("scores.csv", "probes_scores.csv"):
        pd.DataFrame({"id": ids, "signal": signal}).to_csv(d / name, index=False)
    for tf in ("Gata4", "Cebpa", "Etv5"):
        write_fa(shared / "dna" / "pbm" / f"{tf}.fa.gz", probes, prefix="p", gz=True)
        with gzip.open(shared / "dna" / "pbm" / f"{tf}_scores.csv.gz", "wt") as fh:
            pd.DataFrame({"id": ids, "signal": signal + 1}).to_csv(fh, index=False)
    write_fa(d / "any.fa", random_seqs(20, 36, seed=5))
    write_fa(d / "enhancers.fa", [re.sub("GAATTC", "GACTTC", x) for x in random_seqs(10, 200, seed=6)])
    (d / "my_models.py").write_text(READER_MODEL)  # the reader's own model code and weights (python=, model=)
    (d / "model.ckpt").write_text("reader weights\n")
    (d / "motif.meme").write_text(
        "MEME version 4\n\nALPHABET= ACGT\n\nstrands: + -\n\nBackground letter frequencies\nA 0.25 C 0.25 G 0.25 T 0.25\n\n"
        "MOTIF GATA toy\nletter-probability matrix: alength= 4 w= 4 nsites= 20 E= 0\n"
        "0.9 0.03 0.04 0.03\n0.03 0.03 0.04 0.9\n0.9 0.03 0.04 0.03\n0.03 0.03 0.04 0.9\n\n")


def _cli(*args) -> None:
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, f"gengen {' '.join(map(str, args))}\n{res.output}"


@pytest.fixture(scope="session")
def standins(tmp_path_factory):
    """The stand-in files, and the small models the pages use without training them on the page."""
    import os

    d = tmp_path_factory.mktemp("docs") / "work"
    d.mkdir()
    _write_standins(d)
    old = os.environ.get("GENGEN_HOME")
    os.environ["GENGEN_HOME"] = str(d.parent / "home")
    try:
        _cli("dna-train", d / "promoters.fa.gz", "-o", d / "dna_gan", "--length", "50", "--iterations", "20",
             "--channels", "8", "--sample-every", "10", "--device", "cpu", "-q")
        shutil.copytree(d / "dna_gan", d / "dm3_gan")
        _cli("dna-train-predictor", d / "probes.fa", "--scores", d / "scores.csv", "-o", d / "pred", "--epochs", "3",
             "--device", "cpu", "-q")
        for name in ("cebpa", "gata4", "cebpa_pred", "gata4_pred"):
            shutil.copytree(d / "pred", d / name)
        _cli("ggan-train", d / "bladderbatch.h5ad", "--landmarks", d / "dgex_landmarks_943.tsv", "--targets",
             d / "dgex_targets_9520.tsv", "-o", d / "bladder_ggan", "--epochs", "3", "--device", "cpu", "-q")
        for name in ("M", "model"):
            shutil.copytree(d / "bladder_ggan", d / name)
        shutil.copytree(d / "dna_gan", d / "my_gan")
        _cli("vae-train", d / "expr.h5ad", "-o", d / "my_vae", "--epochs", "2", "--device", "cpu", "-q")
    finally:
        if old is None:
            os.environ.pop("GENGEN_HOME", None)
        else:
            os.environ["GENGEN_HOME"] = old
    return d


# ------------------------------------------------------------------------------------- the tests
def test_every_page_has_its_snippets_found():
    found = {page: page_snippets(page) for page in PAGES}
    assert any(s.kind == "python" for s in found["README.md"])
    assert sum(s.kind == "shell" for s in found["README.md"]) >= 20
    assert sum(s.kind == "python" for ss in found.values() for s in ss) >= 8
    for (page, piece), why in [*SKIP.items(), *FAST_CODE.items(), *READER_NAMES.items()]:  # none stale
        assert any(piece in s.text for s in found.get(page, [])), f"entry for {page} matches no snippet: {piece!r}"
        assert why


@pytest.mark.parametrize("page", PAGES)
def test_page_snippets_run(page, standins, tmp_path, monkeypatch):
    snippets = page_snippets(page)
    if not snippets:
        pytest.skip(f"{page} has no snippets")
    work = tmp_path / "work"
    shutil.copytree(standins, work, symlinks=True)
    shared = tmp_path / "shared"
    shutil.copytree(standins.parent / "shared", shared)
    monkeypatch.chdir(work)
    monkeypatch.setenv("GENGEN_HOME", str(tmp_path / "home"))
    env = dict(PAGE_VARIABLES.get(page, {"D": "../shared/data"}))
    ran, timings = 0, []
    for s in snippets:
        why = skip_reason(s)
        if why:
            continue
        t0 = time.perf_counter()
        where = f"{s.page}:{s.line}"
        if s.kind == "python":
            try:
                exec(compile(fast_code(s), where, "exec"), {"__name__": "__snippet__", **reader_names(s)})
            except BaseException as exc:
                pytest.fail(f"{where}: the Python snippet failed: {type(exc).__name__}: {exc}\n{s.text}")
        else:
            argv = shell_words(s.text, env)
            if argv is None:
                continue
            assert argv[0] == "gengen", f"{where}: not a gengen command: {s.text}"
            res = runner.invoke(app, fast(argv)[1:])
            assert res.exit_code == 0, f"{where}: {s.text}\nexit {res.exit_code}\n{res.output}"
        ran += 1
        timings.append((time.perf_counter() - t0, where))
    if not ran:
        pytest.skip(f"every snippet of {page} is in SKIP")
    print("\n".join(f"{t:6.1f} s  {w}" for t, w in sorted(timings, reverse=True)[:5]))
