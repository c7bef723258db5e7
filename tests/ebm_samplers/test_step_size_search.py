"""The initial step-size search (Hoffman & Gelman 2014, Alg. 4) and the default warm-up of sample()."""

import math

import pytest
import torch

import ebm_samplers
from ebm_samplers.adaptation.step_size_search import search_step_size
from ebm_samplers.kernels import MALA
from energies import Gaussian
from tests.helpers import assert_matches


def assert_gaussian_moments(trace, variances):
    draws = trace.draws.double()
    for i, variance in enumerate(variances):
        scale = math.sqrt(variance)
        assert_matches(draws[..., i].mean(1) / scale, 0.0, f"mean[{i}] / sd")
        assert_matches(draws[..., i].square().mean(1) / variance, 1.0, f"variance[{i}] / truth")


@pytest.mark.parametrize("scale", [1e-3, 1e3])
@pytest.mark.parametrize("sampler", ["mala", "hmc"])
def test_the_default_step_size_neither_aborts_nor_stalls_at_any_scale(sampler, scale):
    """Default step size (0.1) and default warm-up on N(0, scale^2 I): the search moves the step by orders of
    magnitude before dual averaging, so the run is correct (before: 1e3 crawled, 1e-3 rejected everything)."""
    variance = scale**2
    energy = Gaussian([0.0, 0.0], variance)
    trace = ebm_samplers.sample(energy, sampler, init=torch.zeros(16, 2, dtype=torch.float64), n_steps=400, seed=3)
    assert trace.attrs["warmup"] == 400
    searched = trace.attrs["initial_step_size"]
    # the searched step is of the target's scale (h ~ scale^2 for MALA, ~ scale for HMC's leapfrog)
    expected = variance if sampler == "mala" else scale
    assert expected / 100 < searched < expected * 100, searched
    assert 0.3 < float(trace.stats["acceptance_rate"].mean()) < 0.97
    assert_gaussian_moments(trace, [variance, variance])


def test_the_search_doubles_or_halves_until_the_acceptance_crosses_the_target():
    energy = Gaussian([0.0], 1e-4)
    kernel = MALA(step_size=0.1)
    state = kernel.init(torch.zeros(64, 1, dtype=torch.float64), energy)
    generator = torch.Generator().manual_seed(0)
    step = search_step_size(kernel, state, energy, generator, target=0.574)
    assert torch.equal(step, step[0].expand(64))
    assert step[0] in [0.1 * 2.0**-k for k in range(1, 40)]  # halvings of the start
    assert 1e-7 < float(step[0]) < 1e-3


def test_a_search_that_finds_no_finite_step_stops_with_a_clear_error():
    def nan_off_the_origin(x):  # finite only at exactly 0
        return torch.where((x == 0).all(-1), (x**2).sum(-1), torch.full_like(x[:, 0], math.nan))

    with pytest.raises(ValueError, match=r"no step size down to .* one-step acceptance above 0.574"):
        ebm_samplers.sample(nan_off_the_origin, "mala", init=torch.zeros(4, 2), n_steps=10, seed=0)

    def flat(x):
        return 0.0 * x.sum(-1)

    with pytest.raises(ValueError, match="flat or improper"):
        ebm_samplers.sample(flat, "hmc", init=torch.zeros(4, 2), n_steps=10, seed=0)


def test_default_warmup_is_min_of_n_steps_and_1000_for_adapting_kernels_only():
    energy = Gaussian([0.0, 0.0])
    init = torch.zeros(4, 2)
    assert ebm_samplers.sample(energy, "mala", init=init, n_steps=30, seed=0).attrs["warmup"] == 30
    assert ebm_samplers.sample(energy, "ula", init=init, n_steps=30, seed=0).attrs["warmup"] == 0
    assert ebm_samplers.sample(energy, "mala", init=init, n_steps=30, warmup=0, seed=0).attrs["warmup"] == 0
    nothing_to_adapt = {"adapt_step_size": False, "adapt_mass_matrix": False}
    assert ebm_samplers.sample(energy, "hmc", init=init, n_steps=30, seed=0, **nothing_to_adapt).attrs["warmup"] == 0
    # underdamped Langevin has no accept step but a metric to adapt
    assert ebm_samplers.sample(energy, "underdamped_langevin", init=init, n_steps=30, seed=0).attrs["warmup"] == 30
    # the cap, without running 2,000 steps: the rule itself
    from ebm_samplers.adaptation.warmup import default_warmup

    assert default_warmup(MALA(), 5000) == 1000


def test_hmc_without_warmup_argument_no_longer_rejects_everything_on_a_badly_scaled_target():
    """Issue 15: sample(f, "hmc", init=..., n_steps=500) on scales 0.01 and 10 rejected 2,000 of 2,000 transitions
    (divergent) because warm-up defaulted to 0."""
    variances = [1e-4, 100.0]
    energy = Gaussian([0.0, 0.0], [[1e-4, 0.0], [0.0, 100.0]])
    trace = ebm_samplers.sample(energy, "hmc", init=torch.zeros(16, 2, dtype=torch.float64), n_steps=500, seed=1)
    assert trace.attrs["warmup"] == 500
    assert float(trace.stats["accepted"].double().mean()) > 0.5
    assert float(trace.stats["diverging"].double().mean()) < 0.01
    assert_gaussian_moments(trace, variances)
