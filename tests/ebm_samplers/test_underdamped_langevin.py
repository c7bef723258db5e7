"""Underdamped Langevin (BAOAB) against its exact stationary law on Gaussians (MCSE tolerances)."""

import numpy as np
import pytest
import torch
from scipy.linalg import solve_discrete_lyapunov

import ebm_samplers
from energies import Gaussian
from tests.helpers import Z_999, assert_bivariate_gaussian_moments, assert_matches, chain_estimates_z


def baoab_stationary_covariance(step_size: float, friction: float, variance: float) -> np.ndarray:
    """Exact stationary covariance of (x, p) for BAOAB on N(0, variance) with unit mass.

    BAOAB is linear there: z' = A z + b xi with A = B A O A B (the sub-steps as 2x2 matrices), so the
    stationary covariance S solves the discrete Lyapunov equation S = A S A^T + b b^T.
    """
    half, damping = step_size / 2, np.exp(-friction * step_size)
    kick = np.array([[1.0, 0.0], [-half / variance, 1.0]])
    drift = np.array([[1.0, half], [0.0, 1.0]])
    ornstein_uhlenbeck = np.diag([1.0, damping])
    transition = kick @ drift @ ornstein_uhlenbeck @ drift @ kick
    noise = kick @ drift @ np.array([[0.0], [np.sqrt(1 - damping**2)]])
    return solve_discrete_lyapunov(transition, noise @ noise.T)


def test_baoab_position_variance_is_exact_where_ula_is_biased_at_the_same_step():
    h, friction = 0.5, 1.0
    exact = baoab_stationary_covariance(h, friction, variance=1.0)
    # the known closed form: position exact, momentum variance 1 - h^2 / 4 (Leimkuhler & Matthews 2013)
    np.testing.assert_allclose(np.diag(exact), [1.0, 1.0 - h**2 / 4], rtol=1e-12)

    kernel = ebm_samplers.get_sampler("underdamped_langevin", step_size=h, friction=friction)
    target, generator = Gaussian([0.0], 1.0), torch.Generator().manual_seed(41)
    state = kernel.init(torch.zeros(400, 1, dtype=torch.float64), target)
    squares = torch.zeros(400, 2, dtype=torch.float64)
    for step in range(1200):
        state, _ = kernel.step(state, target, generator)
        if step >= 200:
            squares += torch.cat([state.position, state.momentum], dim=1).square()
    squares /= 1000
    assert_matches(squares[:, 0], exact[0, 0], "BAOAB position variance")
    assert_matches(squares[:, 1], exact[1, 1], "BAOAB momentum variance")

    ula = ebm_samplers.sample(
        target, "ula", n_chains=400, n_steps=1000, warmup=200, seed=41, step_size=h, adapt_mass_matrix=False
    )  # the identity metric: its exact variance below
    ula_variance = ula.draws[..., 0].double().square().mean(dim=1)
    assert_matches(ula_variance, 1.0 / (1.0 - h / 2.0), "ULA stationary variance")
    _, _, z_ula = chain_estimates_z(ula_variance, 1.0)
    _, _, z_baoab = chain_estimates_z(squares[:, 0], 1.0)
    assert z_ula > 20 * Z_999 and z_baoab < Z_999  # ULA's bias is far outside the error BAOAB stays within


def test_baoab_matches_moments_of_a_correlated_gaussian_with_an_adapted_metric():
    # on any Gaussian BAOAB's position marginal is exact (each normal mode is the 1-D case above)
    mean, covariance = torch.tensor([1.0, -1.0]), torch.tensor([[2.0, 1.2], [1.2, 1.0]])
    trace = ebm_samplers.sample(
        Gaussian(mean, covariance),
        "underdamped_langevin",
        n_chains=100,
        n_steps=1000,
        warmup=300,
        seed=42,
        step_size=0.3,
    )
    assert trace.attrs["adapted_mass_matrix"]
    draws = trace.draws.double()
    assert_bivariate_gaussian_moments(draws, mean, covariance)


def test_underdamped_langevin_spends_one_gradient_per_step():
    calls = {"n": 0}

    def counted(x):
        calls["n"] += 1
        return 0.5 * (x**2).sum(-1)

    ebm_samplers.sample(counted, "underdamped_langevin", init=torch.zeros(5, 2), warmup=0, n_steps=30, seed=0)
    # check_energy four times (value, gradient, two per-sample probes), init once, then one per step
    assert calls["n"] == 4 + 1 + 30


def test_bad_friction_is_rejected():
    with pytest.raises(ValueError, match="friction must be a finite number > 0"):
        ebm_samplers.get_sampler("underdamped_langevin", friction=0.0)
