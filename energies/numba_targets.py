"""Numba versions of the reference targets, for the compiled samplers' tests and benchmarks.

Each factory returns a `NumbaEnergy` whose values and gradients equal those of the torch target of the same
parameters (`GaussianMixture` with isotropic components, `Gaussian` with a diagonal covariance):

    isotropic mixture:  E(x) = -log sum_k w_k N(x; m_k, v_k I),   grad E(x) = sum_k r_k(x) (x - m_k) / v_k
    Gaussian:           E(x) = 1/2 (x - m)^T P (x - m),            grad E(x) = P (x - m),  P = S^{-1}
    diagonal Gaussian:  the same with P = diag(1 / v), in O(d) instead of O(d^2)

The parameters are frozen into the compiled functions as constants (numba closures), so these functions are
compiled per call of the factory (a fraction of a second) and not cached on disk. The Gaussians' sums over
coordinates are compiled with fastmath's `reassoc` flag alone (`_SUMS`), so LLVM may reorder and vectorise them
(faster; see docs/performance.md); only their last bits depend on that order, and NaN and inf propagate as usual.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from energies.numba_energy import NumbaEnergy

_SUMS = dict(fastmath={"reassoc"})


def isotropic_mixture(weights, means, variances, *, name: str = "NumbaIsotropicMixture") -> NumbaEnergy:
    """sum_k w_k N(m_k, v_k I): `weights` (k,) summing to 1, `means` (k, d), `variances` (k,) > 0."""
    weights = np.asarray(weights, dtype=np.float64)
    means = np.ascontiguousarray(means, dtype=np.float64)
    variances = np.asarray(variances, dtype=np.float64)
    if means.ndim != 2:
        raise ValueError(f"isotropic_mixture: means must have shape (k, d); got {means.shape}")
    k, d = means.shape
    if weights.shape != (k,) or (weights <= 0).any() or not math.isclose(weights.sum(), 1.0, abs_tol=1e-9):
        raise ValueError(f"isotropic_mixture: weights must be {k} positive numbers summing to 1; got {weights}")
    if variances.shape != (k,) or not (variances > 0).all():
        raise ValueError(f"isotropic_mixture: variances must be {k} positive numbers; got {variances}")
    log_norm = np.log(weights) - 0.5 * d * np.log(2.0 * math.pi * variances)
    inverse_variances = 1.0 / variances

    # One pass over the components keeps the log-sum-exp stable without allocating per call (which would dominate
    # the cost of a 2-D target): sums run relative to the largest log term seen so far, and are rescaled by
    # exp(old largest - new largest) when a larger one appears. Each log term is computed once and each component
    # after the first costs one exp (k - 1 in all; the largest term's own weight is exp(0) = 1 exactly).
    @numba.njit(inline="always")
    def log_term(x, j):
        squared = 0.0
        for i in range(d):
            squared += (x[i] - means[j, i]) ** 2
        return log_norm[j] - 0.5 * squared * inverse_variances[j]

    @numba.njit
    def energy_fn(x):
        largest, total = log_term(x, 0), 1.0
        for j in range(1, k):
            term = log_term(x, j)
            if term <= largest:
                total += math.exp(term - largest)
            else:  # also for a NaN term, which then makes the energy NaN
                total = total * math.exp(largest - term) + 1.0
                largest = term
        return -(largest + math.log(total))

    @numba.njit
    def grad_fn(x, grad_out):
        largest, total = log_term(x, 0), 1.0  # total = sum_j exp(log term j - largest)
        for i in range(d):  # grad_out = sum_j exp(log term j - largest) (x - m_j) / v_j
            grad_out[i] = inverse_variances[0] * (x[i] - means[0, i])
        for j in range(1, k):
            term = log_term(x, j)
            if term <= largest:
                weight = math.exp(term - largest)
                total += weight
                weight *= inverse_variances[j]
                for i in range(d):
                    grad_out[i] += weight * (x[i] - means[j, i])
            else:  # a new largest term: rescale what is summed so far (a NaN term makes everything NaN)
                rescale = math.exp(largest - term)
                total = total * rescale + 1.0
                for i in range(d):
                    grad_out[i] = grad_out[i] * rescale + inverse_variances[j] * (x[i] - means[j, i])
                largest = term
        for i in range(d):
            grad_out[i] /= total
        return -(largest + math.log(total))

    return NumbaEnergy(energy_fn, grad_fn, d, name=name)


def default_mixture() -> NumbaEnergy:
    """The project's default target (`energies.GaussianMixture()`): modes (-2, -2), (2, 2), covariance 0.5 I."""
    return isotropic_mixture([0.5, 0.5], [[-2.0, -2.0], [2.0, 2.0]], [0.5, 0.5], name="NumbaGaussianMixture")


def gaussian(mean, covariance, *, name: str = "NumbaGaussian") -> NumbaEnergy:
    """N(mean, covariance) with a full (d, d) covariance and the energy of `energies.Gaussian`."""
    mean = np.ascontiguousarray(mean, dtype=np.float64)
    covariance = np.asarray(covariance, dtype=np.float64)
    d = mean.shape[0] if mean.ndim == 1 else -1
    if d < 1 or covariance.shape != (d, d) or not np.allclose(covariance, covariance.T):
        raise ValueError(
            f"gaussian: mean must be a vector (d,) and covariance a symmetric (d, d) matrix; "
            f"got shapes {mean.shape} and {covariance.shape}"
        )
    try:
        np.linalg.cholesky(covariance)
    except np.linalg.LinAlgError:
        raise ValueError("gaussian: covariance must be positive definite") from None
    precision = np.ascontiguousarray(np.linalg.inv(covariance))

    @numba.njit(**_SUMS)
    def energy_fn(x):
        total = 0.0
        for i in range(d):
            row = 0.0
            for j in range(d):
                row += precision[i, j] * (x[j] - mean[j])
            total += (x[i] - mean[i]) * row
        return 0.5 * total

    @numba.njit(**_SUMS)
    def grad_fn(x, grad_out):
        total = 0.0
        for i in range(d):
            row = 0.0
            for j in range(d):
                row += precision[i, j] * (x[j] - mean[j])
            grad_out[i] = row
            total += (x[i] - mean[i]) * row
        return 0.5 * total

    return NumbaEnergy(energy_fn, grad_fn, d, name=name)


def diagonal_gaussian(mean, variances, *, name: str = "NumbaDiagonalGaussian") -> NumbaEnergy:
    """N(mean, diag(variances)) with the energy 1/2 (x - m)^T S^{-1} (x - m) of `energies.Gaussian`."""
    mean = np.ascontiguousarray(mean, dtype=np.float64)
    variances = np.asarray(variances, dtype=np.float64)
    if mean.ndim != 1 or variances.shape != mean.shape or not (variances > 0).all():
        raise ValueError(
            f"diagonal_gaussian: mean must be a vector and variances a positive vector of the same shape; "
            f"got shapes {mean.shape} and {variances.shape}"
        )
    d = mean.shape[0]
    precision = 1.0 / variances

    @numba.njit(**_SUMS)
    def energy_fn(x):
        total = 0.0
        for i in range(d):
            total += (x[i] - mean[i]) ** 2 * precision[i]
        return 0.5 * total

    @numba.njit(**_SUMS)
    def grad_fn(x, grad_out):
        total = 0.0
        for i in range(d):
            centred = x[i] - mean[i]
            grad_out[i] = centred * precision[i]
            total += centred * grad_out[i]
        return 0.5 * total

    return NumbaEnergy(energy_fn, grad_fn, d, name=name)


def log_spaced_gaussian(dim: int = 100) -> NumbaEnergy:
    """The benchmark's ill-conditioned target: N(0, diag(v)) with v log-spaced from 0.01 to 1."""
    return diagonal_gaussian(np.zeros(dim), np.logspace(-2.0, 0.0, dim), name=f"NumbaLogSpacedGaussian{dim}")
