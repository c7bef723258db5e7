"""The two execution paths that share statistical tests: torch kernels on torch energies, and compiled numba
loops on `NumbaEnergy` versions of the same targets (`energies.numba_targets`)."""

from __future__ import annotations

import torch

from energies import Gaussian
from energies.numba_targets import gaussian as numba_gaussian

PATHS = ("torch", "numba")


def gaussian_target(path: str, mean, covariance):
    """N(mean, covariance) (covariance a (d, d) matrix) as the energy that `path` runs on."""
    mean, covariance = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(covariance, dtype=torch.float32)
    if path == "torch":
        return Gaussian(mean, covariance)
    return numba_gaussian(mean.double().numpy(), covariance.double().numpy())
