"""EBM training as a client of the samplers: `fit(data, method=...)` with contrastive and score methods.

>>> from ebm_samplers.training import fit, available_methods, toy_dataset
>>> data = toy_dataset("8gaussians").sample(10_000, torch.Generator().manual_seed(0))
>>> result = fit(data, method="nce")     # result.energy: the trained nn.Module; result.history
"""

from ebm_samplers.training import cd, dsm, dsm_multiscale, exact_sm, nce, pcd, short_run, sm, ssm
from ebm_samplers.training._method import available_methods
from ebm_samplers.training.ais import AISNLLResult, AISResult, ais_log_normaliser, ais_nll
from ebm_samplers.training.checkpoint import load_checkpoint
from ebm_samplers.training.datasets import available_datasets, load_digits, toy_dataset
from ebm_samplers.training.evaluation import data_ksd, grid_log_normaliser, grid_nll, mmd, sample_ksd
from ebm_samplers.training.fit import fit
from ebm_samplers.training.result import FitResult

del cd, dsm, dsm_multiscale, exact_sm, nce, pcd, short_run, sm, ssm  # imported to register the methods

__all__ = [
    "AISNLLResult",
    "AISResult",
    "FitResult",
    "ais_log_normaliser",
    "ais_nll",
    "available_datasets",
    "available_methods",
    "data_ksd",
    "fit",
    "grid_log_normaliser",
    "grid_nll",
    "load_checkpoint",
    "load_digits",
    "mmd",
    "sample_ksd",
    "toy_dataset",
]
