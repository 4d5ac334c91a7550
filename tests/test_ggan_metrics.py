"""GGAN metrics and preprocessing against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from gengen.ggan import ccc_per_gene, mae_per_gene, pearson_per_gene, summarize
from gengen.ggan.baselines import knn, linear, mean_predictor, ridge
from gengen.ggan.preprocess import QuantileNormalizer, ZScorer, kfold_indices, map_probes


def test_metrics_hand_computed():
    t = np.array([[1.0], [2.0], [3.0]])
    p = np.array([[2.0], [2.0], [4.0]])
    # MAE (1 + 0 + 1) / 3; cov 2/3, var_t 2/3, var_p 8/9, mean shift 2/3 -> CCC (4/3) / 2; r = sqrt(3)/2
    assert mae_per_gene(t, p)[0] == pytest.approx(2 / 3)
    assert ccc_per_gene(t, p)[0] == pytest.approx(2 / 3)
    assert pearson_per_gene(t, p)[0] == pytest.approx(np.sqrt(3) / 2)


def test_ccc_penalises_shift_pearson_does_not():
    t = np.linspace(0, 1, 20)[:, None]
    assert pearson_per_gene(t, t + 5)[0] == pytest.approx(1.0)
    assert ccc_per_gene(t, t + 5)[0] < 0.05
    assert ccc_per_gene(t, t)[0] == pytest.approx(1.0)


def test_constant_genes():
    t = np.ones((4, 1))
    assert np.isnan(ccc_per_gene(t, t)[0])  # undefined for a constant truth, not a free 1.0
    assert np.isnan(pearson_per_gene(t, t)[0])
    s = summarize(np.c_[t, np.arange(4.0)], np.c_[t, 0.5 * np.arange(4.0)])
    assert s["ccc"] == pytest.approx(ccc_per_gene(np.arange(4.0), 0.5 * np.arange(4.0))[0])
    s = summarize(np.c_[t, np.arange(4.0)], np.c_[t, np.arange(4.0)])
    assert s["mae"] == 0 and s["pearson"] == pytest.approx(1.0) and s["ccc"] == pytest.approx(1.0)


def test_constant_target_gene_is_predicted_exactly():
    from gengen.ggan.preprocess import ZScorer

    Y = np.c_[np.full(6, 5.0), np.arange(6.0)]
    z = ZScorer.fit(Y, constant_std=0.0)  # as Preprocessor fits the targets
    assert z.constant.tolist() == [True, False]
    assert np.allclose(z.transform(Y)[:, 0], 0)
    back = z.inverse_transform(np.array([[0.7, 0.0]], dtype=np.float32))  # the network is never exactly 0
    assert back[0, 0] == 5.0 and back[0, 1] == pytest.approx(2.5)


def test_quantile_and_zscore():
    X = np.array([[1.0, 5.0, 3.0], [2.0, 4.0, 9.0]], dtype=np.float32)
    q = QuantileNormalizer.fit(X)
    np.testing.assert_allclose(q.reference, [1.5, 3.5, 7.0])  # mean of sorted rows
    np.testing.assert_allclose(q.transform(X), [[1.5, 7.0, 3.5], [1.5, 3.5, 7.0]])
    z = ZScorer.fit(np.array([[1.0, 2.0], [3.0, 2.0]]))
    np.testing.assert_allclose(z.transform([[2.0, 2.0]]), [[0.0, 0.0]])  # constant gene -> 0, not inf
    np.testing.assert_allclose(z.inverse_transform(z.transform([[3.0, 2.0]])), [[3.0, 2.0]])


def test_map_probes_averages_and_renames(tmp_path):
    import anndata as ad
    import pandas as pd

    a = ad.AnnData(
        np.array([[1.0, 3.0, 10.0], [2.0, 4.0, 20.0]], dtype=np.float32),
        var=pd.DataFrame(index=["1_at", "2_at", "3_s_at"]),
    )
    m = map_probes(a, [("GA", ["1_at"])], [("GB", ["1_at", "2_at"]), ("GA", ["3_s_at"])], quiet=True)
    assert m.var_names.tolist() == ["GA", "GB", "GA@3_s_at"]
    np.testing.assert_allclose(m.X[:, 1], [2.0, 3.0])
    assert m.var["gene"].tolist() == ["GA", "GB", "GA"]


def test_kfold_partitions():
    splits = kfold_indices(23, 5, 0)
    tests = np.concatenate([te for _, te in splits])
    assert sorted(tests.tolist()) == list(range(23))
    for tr, te in splits:
        assert not set(tr) & set(te)


def test_baselines_on_linear_map():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 8))
    Y = X @ rng.standard_normal((8, 5))
    for f in (linear, ridge):
        np.testing.assert_allclose(f(X[:150], Y[:150], X[150:]), Y[150:], atol=0.05)
    assert (
        np.abs(knn(X[:150], Y[:150], X[150:]) - Y[150:]).mean()
        < np.abs(mean_predictor(X[:150], Y[:150], X[150:]) - Y[150:]).mean()
    )
