"""Hyper-parameter and latent-size studies over gengen's trainers, on Optuna.

A study lives in a database: an SQLite file in the sweep folder by default, or PostgreSQL, so that
the same command started on several machines (or several times on one) shares the work.

>>> from gengen.sweep import ExpressionData, run_sweep
>>> result = run_sweep("vae", ExpressionData(adata, labels=adata.obs["cancer"].to_numpy(), by="cancer"),
...                    "vae_sweep", space="tybalt-z", trials=12)
>>> result.table.sort_values("val_recon").head(); result.best
"""

from gengen.sweep.pipelines import (
    PIPELINES,
    ExpressionData,
    LabelledSequences,
    Pipeline,
    ReferenceData,
    TrialOutcome,
    get_pipeline,
)
from gengen.sweep.report import SweepResult, latent_vs_pca, plot_sweep, trials_table
from gengen.sweep.settings import PRUNERS, SAMPLERS
from gengen.sweep.space import Dimension, Param, SearchSpace, build_space, read_space_file, resolve_space
from gengen.sweep.storage import default_storage, open_storage
from gengen.sweep.study import run_sweep

__all__ = [
    "PIPELINES", "PRUNERS", "SAMPLERS", "Dimension", "ExpressionData", "LabelledSequences", "Param", "Pipeline",
    "ReferenceData", "SearchSpace", "SweepResult", "TrialOutcome", "build_space", "default_storage", "get_pipeline",
    "latent_vs_pca", "open_storage", "plot_sweep", "read_space_file", "resolve_space", "run_sweep", "trials_table",
]
