"""HMC against exact answers (MCSE-derived tolerances, see tests/helpers.py), divergences and cost.

The moment and divergence tests run on both paths (tests/paths.py): the torch kernel and the compiled numba loop.
"""

import math

import pytest
import torch

import ebm_samplers
from energies import Gaussian
from tests.helpers import assert_bivariate_gaussian_moments, assert_matches
from tests.paths import PATHS, gaussian_target

MEAN = torch.tensor([1.0, -1.0])
COVARIANCE = torch.tensor([[2.0, 1.2], [1.2, 1.0]])


@pytest.mark.parametrize("path", PATHS)
def test_hmc_matches_moments_of_a_correlated_gaussian_after_adaptation(path):
    target = gaussian_target(path, MEAN, COVARIANCE)
    trace = ebm_samplers.sample(target, "hmc", n_chains=100, n_steps=400, warmup=300, seed=31, backend=path)
    draws = trace.draws.double()
    assert_bivariate_gaussian_moments(draws, MEAN, COVARIANCE)
    # the kept (x, p) pair is distributed as exp(-H), so its kinetic energy averages d/2 exactly
    kinetic = (trace.stats["hamiltonian"] - trace.stats["potential_energy"]).double().mean(dim=1)
    assert_matches(kinetic, 1.0, "mean kinetic energy of the kept points")
    assert not bool(trace.stats["diverging"].any())


@pytest.mark.parametrize("path", PATHS)
def test_a_too_large_step_on_a_stiff_target_is_flagged_diverging(path):
    stiff = gaussian_target(path, [0.0, 0.0], [[1e-4, 0.0], [0.0, 1.0]])  # the first coordinate needs steps < 0.02
    init = torch.full((20, 2), 0.01, dtype=torch.float64)
    run = dict(init=init, n_steps=5, seed=32, n_leapfrog=3, backend=path)
    trace = ebm_samplers.sample(stiff, "hmc", step_size=0.5, **run)
    assert bool(trace.stats["diverging"].all())
    assert not bool(trace.stats["accepted"].any())
    assert bool((trace.stats["energy_error"] > 1000).all())
    calm = ebm_samplers.sample(stiff, "hmc", step_size=0.005, **run)
    assert not bool(calm.stats["diverging"].any())


def test_hmc_spends_one_gradient_per_leapfrog_step_and_jitters_within_its_range():
    calls = {"n": 0}

    def counted(x):
        calls["n"] += 1
        return 0.5 * (x**2).sum(-1)

    ebm_samplers.sample(counted, "hmc", init=torch.zeros(5, 2), n_steps=7, seed=0, n_leapfrog=4)
    # check_energy four times (value, gradient, two per-sample probes), init once, then one per leapfrog step
    assert calls["n"] == 4 + 1 + 7 * 4
    jittered = ebm_samplers.sample(Gaussian([0.0]), "hmc", n_chains=50, n_steps=20, seed=33, n_leapfrog=(2, 4))
    assert set(jittered.stats["n_leapfrog"].unique().tolist()) == {2, 3, 4}


@pytest.mark.parametrize("n_leapfrog", [0, (3, 2), (1, 2, 3), 2.5])
def test_bad_leapfrog_counts_are_rejected(n_leapfrog):
    with pytest.raises(ValueError, match="n_leapfrog"):
        ebm_samplers.get_sampler("hmc", n_leapfrog=n_leapfrog)


def test_hmc_trace_feeds_arviz_energy_diagnostics():
    import arviz as az

    trace = ebm_samplers.sample(Gaussian(MEAN, COVARIANCE), "hmc", n_chains=4, n_steps=200, warmup=100, seed=34)
    bfmi = az.bfmi(trace.to_arviz())["energy"].values
    assert bfmi.shape == (4,) and bool((bfmi > 0.3).all()), bfmi


def test_hmc_is_exact_on_a_non_gaussian_target():
    # exp(-x^4 / 4): leapfrog is not exact here, so only the MH correction makes E[x^2] = 2 G(3/4) / G(1/4)
    truth = 2 * math.gamma(0.75) / math.gamma(0.25)
    quartic = lambda x: (x**4).sum(-1) / 4  # noqa: E731
    init = torch.zeros(100, 1, dtype=torch.float64)
    trace = ebm_samplers.sample(quartic, "hmc", init=init, n_steps=800, warmup=200, seed=35, n_leapfrog=(2, 6))
    assert_matches(trace.draws[..., 0].square().mean(dim=1), truth, "E[x^2] under exp(-x^4/4)")
