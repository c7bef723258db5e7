"""ULA and MALA against exact answers, with MCSE-derived tolerances (see tests/helpers.py).

The moment tests run on both paths (tests/paths.py): torch kernels, and compiled numba loops on the same target.
"""

import pytest
import torch

import ebm_samplers
from energies import Gaussian
from tests.helpers import Z_999, assert_bivariate_gaussian_moments, assert_matches, chain_estimates_z
from tests.paths import PATHS, gaussian_target


def _standard_normal_variance(sampler: str, step_size: float, seed: int, path: str = "torch") -> torch.Tensor:
    """Per-chain estimates of E[x^2] on N(0, 1) (the mean is 0 for both ULA and MALA by symmetry)."""
    trace = ebm_samplers.sample(
        gaussian_target(path, [0.0], [[1.0]]),
        sampler,
        n_chains=500,
        n_steps=1000,
        warmup=200,
        seed=seed,
        step_size=step_size,
        adapt_step_size=False,  # the exact variances below are for this step size
        backend=path,
    )
    return trace.draws[..., 0].double().square().mean(dim=1)


@pytest.mark.parametrize("path", PATHS)
def test_ula_reproduces_its_exact_biased_stationary_variance(path):
    # On N(0, s^2), ULA is the AR(1) x' = (1 - h/s^2) x + sqrt(2h) xi with stationary variance
    # 2h / (1 - (1 - h/s^2)^2) = s^2 / (1 - h / (2 s^2)). At h = 0.5, s = 1 that is 4/3.
    h = 0.5
    per_chain = _standard_normal_variance("ula", h, seed=1, path=path)
    assert_matches(per_chain, 1.0 / (1.0 - h / 2.0), "ULA stationary variance")
    # The bias (1/3) is far above the Monte Carlo error, so the test above has power.
    _, _, z_against_target = chain_estimates_z(per_chain, 1.0)
    assert z_against_target > 20 * Z_999


@pytest.mark.parametrize("path", PATHS)
def test_mala_removes_ulas_bias_at_the_same_step(path):
    h = 0.5
    mala = _standard_normal_variance("mala", h, seed=2, path=path)
    assert_matches(mala, 1.0, "MALA variance on N(0, 1)")
    ula = _standard_normal_variance("ula", h, seed=2, path=path)
    _, _, z_ula = chain_estimates_z(ula, 1.0)
    assert z_ula > 20 * Z_999


@pytest.mark.parametrize("path", PATHS)
def test_mala_matches_moments_of_a_correlated_gaussian(path):
    mean = torch.tensor([1.0, -1.0])
    covariance = torch.tensor([[2.0, 1.2], [1.2, 1.0]])
    target = gaussian_target(path, mean, covariance)
    trace = ebm_samplers.sample(
        target, "mala", n_chains=200, n_steps=2000, warmup=500, seed=3, step_size=0.3, backend=path
    )
    draws = trace.draws.double()  # (chain, draw, 2)
    acceptance = float(trace.stats["acceptance_rate"].mean())
    assert 0.3 < acceptance < 0.99, acceptance
    # moments about the known mean are linear per-chain averages, so their per-chain estimates are unbiased
    assert_bivariate_gaussian_moments(draws, mean, covariance)


def test_a_plain_lambda_is_an_energy():
    trace = ebm_samplers.sample(
        lambda x: 0.5 * (x**2).sum(-1),
        "mala",
        init=torch.zeros(100, 3),
        n_steps=1000,
        warmup=200,
        seed=4,
        step_size=0.5,
    )
    assert trace.draws.shape == (100, 1000, 3)
    per_chain = trace.draws.double().square().mean(dim=(1, 2))
    assert_matches(per_chain, 1.0, "variance under a lambda energy")
    assert trace.attrs["energy"] == "<lambda>"


def test_same_seed_gives_the_same_draws_and_float64_is_kept():
    kwargs = dict(init=torch.zeros(4, 2, dtype=torch.float64), n_steps=50, seed=11, step_size=0.2)
    first = ebm_samplers.sample(Gaussian([0.0, 0.0]), "mala", **kwargs)
    second = ebm_samplers.sample(Gaussian([0.0, 0.0]), "mala", **kwargs)
    assert first.draws.dtype == torch.float64
    assert torch.equal(first.draws, second.draws)


def test_thinning_keeps_every_thin_th_step():
    full = ebm_samplers.sample(Gaussian([0.0]), "ula", n_chains=3, n_steps=12, seed=5, step_size=0.1)
    thinned = ebm_samplers.sample(Gaussian([0.0]), "ula", n_chains=3, n_steps=12, thin=4, seed=5, step_size=0.1)
    assert thinned.n_draws == 3
    assert torch.equal(thinned.draws, full.draws[:, 3::4])
    assert torch.equal(thinned.stats["potential_energy"], full.stats["potential_energy"][:, 3::4])


def test_mala_spends_one_energy_evaluation_per_step():
    calls = {"n": 0}

    def counted(x):
        calls["n"] += 1
        return 0.5 * (x**2).sum(-1)

    ebm_samplers.sample(counted, "mala", init=torch.zeros(5, 2), n_steps=30, seed=0)
    # check_energy evaluates four times (value, two per-sample probes, gradient), init once, then one per step
    assert calls["n"] == 4 + 1 + 30


def test_langevin_log_ratio_equals_the_difference_of_the_two_proposal_densities():
    """MALA's one-inner-product ratio equals log q(x | x') - log q(x' | x) from the two squared norms (float64,
    per-chain steps, 3-D events), including the constants' cancellation."""
    from ebm_samplers.kernels._langevin import langevin_log_density, langevin_log_ratio, langevin_proposal

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, 2, dtype=torch.float64, generator=generator)
    grad = torch.randn(200, 3, 2, dtype=torch.float64, generator=generator)
    h = torch.rand(200, dtype=torch.float64, generator=generator) + 0.01
    proposal = langevin_proposal(x, grad, h, generator)
    grad_at_proposal = torch.randn(200, 3, 2, dtype=torch.float64, generator=generator)
    expected = langevin_log_density(x, proposal, grad_at_proposal, h) - langevin_log_density(proposal, x, grad, h)
    ratio = langevin_log_ratio(x, proposal, grad, grad_at_proposal, h)
    torch.testing.assert_close(ratio, expected, rtol=1e-10, atol=1e-10)
    assert float(expected.abs().mean()) > 0.1  # a non-trivial ratio, not 0 = 0
