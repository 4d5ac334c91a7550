"""Compendium scale (issue 20): ARCHS4 files read by content, h5ad/GCTX/Parquet by blocks, samples chosen on
the file's own metadata, statistics in one streaming pass, and training that streams from disk."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gengen.cli import app
from gengen.errors import GengenError

G, N = 120, 900


def _counts(seed: int = 0, n: int = N, g: int = G) -> np.ndarray:
    """genes x samples counts with 3 latent factors and library sizes varying 10-fold."""
    rng = np.random.default_rng(seed)
    base = rng.gamma(0.6, 40, g)
    f = rng.standard_normal((n, 3))
    rate = base[None, :] * np.exp(f @ (0.6 * rng.standard_normal((3, g)))) * rng.uniform(0.3, 3, n)[:, None]
    return rng.poisson(rate).T.astype(np.uint32)


def _genes() -> list[str]:
    genes = [f"G{i}" for i in range(G)]
    genes[7] = "G6"  # two Ensembl genes with one symbol (summed, as archs4py does)
    return genes


@pytest.fixture(scope="module")
def compendium(tmp_path_factory):
    """A small ARCHS4-layout file (chunks of 100 samples) with series and tissue fields."""
    from gengen.io.archs4 import write_archs4

    d = tmp_path_factory.mktemp("compendium")
    counts = _counts()
    fields = {"series_id": np.where(np.arange(N) < 300, "GSE1", "GSE2"), "tissue": np.where(np.arange(N) % 3 == 0, "lung", "liver"),
              "singlecellprobability": np.linspace(0, 1, N)}
    write_archs4(d / "human.h5", counts, _genes(), samples=[f"GSM{i}" for i in range(N)], sample_fields=fields,
                 chunks=(G, 100))
    (d / "landmarks.txt").write_text("\n".join(f"G{i}" for i in range(10, 30)) + "\n")
    (d / "targets.txt").write_text("\n".join(f"G{i}" for i in range(30, 90)) + "\n")
    return d, counts


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 100 samples and windows of 250 (several of each even on this small file)."""
    import gengen.batches
    import gengen.io.archs4
    import gengen.io.chunked

    monkeypatch.setattr(gengen.io.archs4, "READ_BYTES", 100 * G * 4)
    monkeypatch.setattr(gengen.io.chunked, "BLOCK_BYTES", 100 * G * 4)
    monkeypatch.setattr(gengen.batches, "WINDOW_BYTES", 250 * G * 4)


def _log_cpm(counts_gs: np.ndarray) -> np.ndarray:
    X = counts_gs.T.astype(np.float64)
    X = np.c_[X[:, :6], X[:, 6] + X[:, 7], X[:, 8:]]  # G6 and its twin summed
    return np.log2(X / X.sum(axis=1, keepdims=True) * 1e6 + 1)


# ---------------------------------------------------------------------------------------- reading
def test_archs4_read_by_content_as_log_cpm(compendium):
    from gengen.io.expression import input_format, read_expression

    d, counts = compendium
    assert input_format(d / "human.h5") == "archs4"
    a = read_expression(d / "human.h5", quiet=True)
    assert a.shape == (N, G - 1) and list(a.var_names[:8]) == ["G0", "G1", "G2", "G3", "G4", "G5", "G6", "G8"]
    assert a.obs_names[0] == "GSM0" and set(a.obs.columns) >= {"series_id", "tissue"}
    np.testing.assert_allclose(a.X, _log_cpm(counts), rtol=1e-5, atol=1e-5)


def test_chunked_readers_match_whole_file_reads(tmp_path, small_blocks):
    import anndata as ad

    from gengen.io.chunked import ChunkedExpression, open_chunked
    from gengen.io.expression import read_expression

    rng = np.random.default_rng(1)
    df = pd.DataFrame(rng.normal(5, 2, (230, 17)).astype(np.float32), index=[f"s{i}" for i in range(230)],
                      columns=[f"g{j}" for j in range(17)])
    a = ad.AnnData(df.copy())
    a.obs["batch"] = np.where(np.arange(230) < 100, "b1", "b2")
    a.write_h5ad(tmp_path / "x.h5ad")
    df.to_parquet(tmp_path / "x.parquet", row_group_size=40)
    from test_bad_inputs import _write_gctx

    _write_gctx(tmp_path / "x.gctx", df)
    for kind, name in (("h5ad", "x.h5ad"), ("parquet", "x.parquet"), ("gctx", "x.gctx")):
        with open_chunked(tmp_path / name, kind) as m:
            assert m.genes == list(df.columns) and list(m.sample_ids()) == list(df.index)
            view = ChunkedExpression(m, np.arange(5, 230, 3), list(m.genes), [np.array([j]) for j in range(17)])
            got = np.concatenate([b for _, b in view.blocks(block_samples=33)])
            np.testing.assert_array_equal(got, df.to_numpy()[5::3], err_msg=kind)
            sub = view.select(["g3", "g0"])
            np.testing.assert_array_equal(sub.read_all(), df.to_numpy()[5::3][:, [3, 0]], err_msg=kind)
    np.testing.assert_array_equal(read_expression(tmp_path / "x.parquet", quiet=True).X, df.to_numpy())


def test_h5ad_layer_read_by_blocks(tmp_path, small_blocks):
    """--layer on the block reader: an h5ad without X, its counts in a sparse layer, streams that layer
    (and without --layer, says which layers there are)."""
    import anndata as ad
    import scipy.sparse as sp

    from gengen.io.streaming import open_expression

    counts = _counts(n=230).T.astype(np.float32)  # samples x genes
    a = ad.AnnData(obs=pd.DataFrame({"batch": np.where(np.arange(230) < 100, "b1", "b2")},
                                    index=[f"s{i}" for i in range(230)]),
                   var=pd.DataFrame(index=[f"G{i}" for i in range(G)]), layers={"counts": sp.csr_matrix(counts)})
    a.write_h5ad(tmp_path / "x.h5ad")
    inp = open_expression(tmp_path / "x.h5ad", layer="counts", where=["batch=b2"], stream="on", normalize="none",
                          quiet=True)
    try:
        assert inp.streamed and inp.data.n_obs == 130
        np.testing.assert_array_equal(np.concatenate([b for _, b in inp.data.blocks()]), counts[100:])
    finally:
        inp.close()
    with pytest.raises(GengenError, match="--layer"):
        open_expression(tmp_path / "x.h5ad", stream="on", quiet=True)
    with pytest.raises(GengenError, match="no layer 'raw'"):
        open_expression(tmp_path / "x.h5ad", layer="raw", stream="on", quiet=True)


def test_samples_are_chosen_on_metadata_without_reading_the_matrix(compendium, monkeypatch, tmp_path):
    from gengen.io import chunked
    from gengen.io.streaming import open_expression

    d, counts = compendium

    def no_reads(*a, **k):
        raise AssertionError("the matrix was read to choose samples")

    with chunked.open_chunked(d / "human.h5", "archs4") as m:
        monkeypatch.setattr(m, "read", no_reads)
        meta = (m.meta_columns(), m.meta_column)
        rows, notes = chunked.select_samples(m.sample_ids(), meta, "f", where=chunked.parse_where(["series_id=GSE1", "tissue=lung"]))
        assert list(rows) == list(range(0, 300, 3)) and len(notes) == 2
        rows, _ = chunked.select_samples(m.sample_ids(), meta, "f", where=chunked.parse_where(["singlecellprobability<0.5",
                                                                                               "tissue!=lung"]))
        assert list(rows) == [i for i in range(N) if i / (N - 1) < 0.5 and i % 3 != 0]
        (tmp_path / "ids.txt").write_text("sample\nGSM5\nGSM7\nGSM99999\n")
        rows, _ = chunked.select_samples(m.sample_ids(), meta, "f", samples=chunked.read_sample_ids(tmp_path / "ids.txt"))
        assert list(rows) == [5, 7]
        with pytest.raises(GengenError, match=r"no sample column 'tisue'.*'series_id'.*'tissue'"):
            chunked.select_samples(m.sample_ids(), meta, "f", where=[("tisue", "=", "lung")])
        with pytest.raises(GengenError, match="selects no sample"):
            chunked.select_samples(m.sample_ids(), meta, "f", where=[("tissue", "=", "brain")])
        with pytest.raises(GengenError, match="keeps no sample"):
            chunked.select_samples(m.sample_ids(), meta, "f", where=[("series_id", "=", "GSE2")], samples=["GSM5"])
    monkeypatch.undo()
    inp = open_expression(d / "human.h5", where=["tissue=lung"], quiet=True)
    assert not inp.streamed and inp.normalize == "cpm" and inp.data.n_obs == N // 3
    np.testing.assert_allclose(inp.data.X, _log_cpm(counts)[::3], rtol=1e-5, atol=1e-5)


def test_stream_is_chosen_when_the_matrix_would_not_fit(compendium, monkeypatch):
    import gengen.io.streaming as streaming

    d, _ = compendium
    monkeypatch.setattr(streaming, "available_memory", lambda: 2e6)  # 2 MB free: 900 x 119 x 4 x 6 does not fit in half
    inp = streaming.open_expression(d / "human.h5", quiet=True)
    assert inp.streamed and "too large to hold comfortably" in inp.notes[0]
    inp.close()
    with pytest.raises(GengenError, match="more than the .* available; choose fewer samples"):
        streaming.open_expression(d / "human.h5", stream="never", quiet=True)
    monkeypatch.setattr(streaming, "available_memory", lambda: 64e9)
    assert not streaming.open_expression(d / "human.h5", quiet=True).streamed


def test_gene_statistics_in_one_pass():
    from gengen.io.streaming import GeneStats, rank_genes
    from gengen.vae.preprocess import select_variable_genes

    def stats_of(X):
        lo, hi = X.min(0) - 1, X.max(0) + 1
        s = GeneStats.empty(X.shape[1], (lo, hi))
        for start in range(0, len(X), 170):
            s.update(X[start : start + 170])
        return s, (hi - lo) / 512

    rng = np.random.default_rng(3)
    X = (rng.standard_normal((2000, 300)) * rng.uniform(0.2, 3, 300) + rng.uniform(0, 8, 300)).astype(np.float32)
    s, width = stats_of(X)
    np.testing.assert_allclose(s.mean, X.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(s.var, X.astype(np.float64).var(0), rtol=1e-10)
    med = np.median(X, 0)
    assert np.all(np.abs(s.quantile(0.5) - med) <= width)  # within one of the 512 bins
    assert np.all(np.abs(s.median_ad() - np.median(np.abs(X - med), 0)) <= 2 * width)
    assert np.all(np.abs(s.mean_ad() - np.abs(X - X.mean(0)).mean(0)) <= width)
    # counts on a log scale (ties everywhere): the ranking the in-memory path picks, to a gene or three
    X = np.log2(rng.negative_binomial(2, rng.uniform(0.01, 0.5, 300), (2000, 300)) + 1).astype(np.float32)
    s, _ = stats_of(X)
    for method in ("median-ad", "mean-ad", "variance"):
        exact = set(select_variable_genes(X, 60, method))
        assert len(exact & set(rank_genes(s, 60, method))) >= 57, method


# ---------------------------------------------------------------------------------------- streamed training
def _streamed(d):
    from gengen.io.streaming import open_expression

    return open_expression(d / "human.h5", stream="on", quiet=True).data


def test_streamed_vae_resumes_bit_identical_mid_epoch(compendium, small_blocks, tmp_path):
    from gengen.training_state import Checkpointing, TrainingCheckpoint
    from gengen.vae import VAEModel, VAERecipe

    d, _ = compendium
    recipe = VAERecipe(latent_dim=4, epochs=3, batch_size=64, normalize="cpm")
    whole = VAEModel.train(_streamed(d), recipe, device="cpu", checkpoint=Checkpointing(tmp_path / "whole"))
    h = whole.history
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0] and np.isfinite(h["val_loss"]).all()
    assert any("block-wise shuffle" in n for n in whole.recipe.notes) and whole.recipe.normalize == "cpm"

    calls = {"n": 0}
    real = TrainingCheckpoint.after_batch

    def stop_in_epoch_two(self, state, device):
        calls["n"] += 1
        if state.epoch == 1 and state.batch == 5:
            self.save(state, device)
            raise KeyboardInterrupt
        return real(self, state, device)

    with pytest.MonkeyPatch.context() as mp, pytest.raises(KeyboardInterrupt):
        mp.setattr(TrainingCheckpoint, "after_batch", stop_in_epoch_two)
        VAEModel.train(_streamed(d), recipe, device="cpu", checkpoint=Checkpointing(tmp_path / "cut"))
    resumed = VAEModel.train(_streamed(d), None, device="cpu", checkpoint=Checkpointing(tmp_path / "cut", resume=True))
    for k, v in whole.module.state_dict().items():
        assert np.array_equal(v.numpy(), resumed.module.state_dict()[k].numpy()), k
    assert resumed.history["train_loss"].tolist() == h["train_loss"].tolist()


def test_streamed_shuffle_visits_every_sample_once_per_epoch(compendium, small_blocks, monkeypatch, tmp_path):
    import torch

    from gengen.batches import Shard, StreamedRows

    monkeypatch.setenv("GENGEN_CACHE_DIR", str(tmp_path))
    d, _ = compendium
    data = _streamed(d)
    pos = np.arange(0, N, 2)
    truth = data.select(["G0"]).read_all()[pos].ravel()

    def epochs(rank: int, world: int, n: int = 2):
        rows = StreamedRows(data, pos, lambda b: [b[:, :1].copy()], device="cpu", row_bytes=G * 4, shard=Shard(rank, world))
        g = torch.Generator().manual_seed(5)
        out = [torch.cat([x[0] for _, x in rows.epoch(g, n_batches=9)]).numpy().ravel() for _ in range(n)]
        return rows, out

    rows, (first, second) = epochs(0, 1)
    assert rows.cache is not None and rows.rows_read == len(pos)  # the second epoch came from the cache
    for seen in (first, second):  # every training sample once, in an order that is not the file's
        assert np.array_equal(np.sort(seen), np.sort(truth)) and not np.array_equal(seen, truth)
    assert not np.array_equal(first, second)  # a fresh draw each epoch
    shares = []  # two ranks: disjoint shares of the blocks, the same number of samples an epoch
    for rank in range(2):
        rows = StreamedRows(data, pos, lambda b: [b], device="cpu", row_bytes=G * 4, shard=Shard(rank, 2), cache=False)
        order, _ = rows.order(torch.Generator().manual_seed(5))
        shares.append(set(order[: rows.local_n].tolist()))
        assert len(epochs(rank, 2, 1)[1][0]) == rows.local_n
    assert len(shares[0]) == len(shares[1]) >= len(pos) // 2 - 50 and not shares[0] & shares[1]


def test_streamed_ggan_trains_on_archs4(compendium, small_blocks):
    from gengen.ggan import GGANModel, GGANRecipe
    from gengen.ggan.streamed import streamed_reference

    d, _ = compendium
    view, lm, tg = streamed_reference(_streamed(d), d / "landmarks.txt", d / "targets.txt")
    assert view.n_vars == 80 and lm[0] == "G10" and tg[-1] == "G89"
    model = GGANModel.train(view, lm, tg, recipe=GGANRecipe(hidden=64, epochs=6, batch_size=100, d_hidden=32, adv_weight=0.1),
                            device="cpu")
    assert model.recipe.ridge_init is False and model.metrics["streamed"]
    assert model.metrics["best_val_mae"] < 0.75  # the mean predictor scores ~0.8 on z-scored targets
    assert any("starts from random weights" in n for n in model.recipe.notes)


# ---------------------------------------------------------------------------------------- commands
def test_commands_on_an_archs4_file(compendium, tmp_path):
    import anndata as ad

    d, _ = compendium
    runner = CliRunner()
    fast = ["--latent", "3", "--epochs", "2", "--device", "cpu", "-q"]
    res = runner.invoke(app, ["vae-train", str(d / "human.h5"), "-o", str(tmp_path / "vae"), "--where", "tissue=lung", *fast])
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "vae" / "config.json").read_text())
    assert cfg["recipe"]["normalize"] == "cpm" and cfg["training"]["data"]["shapes"] == [[N // 3, G - 1]]
    res = runner.invoke(app, ["vae-encode", str(d / "human.h5"), "--model", str(tmp_path / "vae"), "--stream", "on",
                              "--where", "series_id=GSE1", "--by", "tissue", "-o", str(tmp_path / "z.h5ad")])
    assert res.exit_code == 0, res.output
    assert "tissue: kNN accuracy from the embedding" in res.output  # --by on the streamed embedding
    z = ad.read_h5ad(tmp_path / "z.h5ad")
    assert z.obsm["X_vae"].shape == (300, 3) and z.n_vars == 0 and (z.obs["series_id"] == "GSE1").all()
    assert z.uns["gengen"]["input_file"].endswith("human.h5")
    res = runner.invoke(app, ["vae-encode", str(d / "human.h5"), "--model", str(tmp_path / "vae"), "--stream", "on",
                              "--reconstruct", "-o", str(tmp_path / "r.h5ad"), "-q"])
    assert res.exit_code == 2 and "--reconstruct" in res.output and not (tmp_path / "r.h5ad").exists()
    res = runner.invoke(app, ["ggan-train", str(d / "human.h5"), "--landmarks", str(d / "landmarks.txt"), "--targets",
                              str(d / "targets.txt"), "-o", str(tmp_path / "gg"), "--stream", "on", "--hidden", "32",
                              "--epochs", "2", "--d-hidden", "16", "--device", "cpu", "-q"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["infer-targets", str(d / "human.h5"), "--model", str(tmp_path / "gg"), "--where",
                              "tissue=liver", "-o", str(tmp_path / "p.csv"), "-q"])
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(tmp_path / "p.csv", index_col=0)
    assert pred.shape == (N - N // 3, 60) and pred.index[0] == "GSM1"
