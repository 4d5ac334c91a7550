"""GGAN: infer target-gene expression from landmark genes (Wang, Ghasedi Dizaji & Huang 2018),
with the D-GEX paper's baselines (Chen et al. 2016).

>>> from gengen.ggan import GGANModel, GGANRecipe, infer
>>> model = GGANModel.train(reference, landmarks)    # recipe sized to the reference (GGANRecipe fields)
>>> model.save("ggan_model"); predictions = infer(model, query)     # samples x targets DataFrame
"""

from gengen.ggan.baselines import knn, lasso, linear, mean_predictor, ridge
from gengen.ggan.core import GGANModel
from gengen.ggan.defaults import adaptive_width, check_recipe, resolve_ggan_recipe
from gengen.ggan.evaluate import METHODS, Evaluation, evaluate, plot_comparison, register_baseline
from gengen.ggan.infer import infer, infer_file, to_anndata
from gengen.ggan.metrics import ccc_per_gene, mae_per_gene, pearson_per_gene, per_gene_metrics, summarize
from gengen.ggan.preprocess import (
    Preprocessor,
    QuantileNormalizer,
    ZScorer,
    group_kfold_indices,
    group_labels_from,
    kfold_indices,
    map_probes,
    read_probe_map,
)
from gengen.ggan.reference import landmarks_and_targets, prepare_reference
from gengen.recipes import GGANRecipe

__all__ = [
    "METHODS",
    "Evaluation",
    "GGANModel",
    "GGANRecipe",
    "Preprocessor",
    "QuantileNormalizer",
    "ZScorer",
    "adaptive_width",
    "ccc_per_gene",
    "check_recipe",
    "evaluate",
    "group_kfold_indices",
    "group_labels_from",
    "infer",
    "infer_file",
    "kfold_indices",
    "knn",
    "lasso",
    "linear",
    "mae_per_gene",
    "map_probes",
    "mean_predictor",
    "pearson_per_gene",
    "per_gene_metrics",
    "plot_comparison",
    "prepare_reference",
    "read_probe_map",
    "register_baseline",
    "resolve_ggan_recipe",
    "ridge",
    "landmarks_and_targets",
    "summarize",
    "to_anndata",
]
