"""`sample(..., compile_step=True)`: the torch.compile'd step computes the eager step and samples the target.

One compile per kernel (tens of seconds on a small CPU, cached on disk by TorchInductor), so this file keeps
to one short run per kernel and one MALA run with warm-up.
"""

import pytest
import torch

import ebm_samplers
from energies import Gaussian, GaussianMixture
from energies.numba_targets import default_mixture
from tests.helpers import assert_bivariate_gaussian_moments


def test_compiled_mala_samples_a_correlated_gaussian_within_mcse_and_reports_its_compile_time():
    mean, covariance = torch.tensor([1.0, -1.0]), torch.tensor([[2.0, 1.2], [1.2, 1.0]])
    trace = ebm_samplers.sample(
        Gaussian(mean, covariance), "mala", n_chains=200, n_steps=1000, warmup=300, seed=3, compile_step=True
    )
    assert trace.attrs["compile_seconds"] > 0
    assert abs(float(trace.stats["acceptance_rate"].mean()) - 0.574) < 0.05  # warm-up adapted through the step
    assert_bivariate_gaussian_moments(trace.draws.double(), mean, covariance)


@pytest.mark.parametrize(
    "sampler, params",
    [
        ("ula", dict(step_size=0.05)),
        ("mala", dict(step_size=0.3)),
        ("hmc", dict(step_size=0.3, n_leapfrog=(2, 4))),
        ("underdamped_langevin", dict(step_size=0.1)),  # no draw/advance split: its whole step is compiled
    ],
)
def test_compiled_step_computes_the_eager_step(sampler, params):
    """Same seed, same random numbers (drawn eagerly: outside the compiled graph, or at its graph breaks): a few
    transitions agree with eager ones up to rounding (fused arithmetic rounds differently), including accept decisions and hmc's
    per-chain leapfrog lengths."""
    energy, init = GaussianMixture(), torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    runs = [
        ebm_samplers.sample(energy, sampler, init=init, n_steps=5, seed=9, compile_step=compiled, **params)
        for compiled in (False, True)
    ]
    eager, compiled = runs
    assert set(compiled.stats) == set(eager.stats)
    for name in ("accepted", "n_leapfrog"):
        if name in eager.stats:
            assert torch.equal(eager.stats[name], compiled.stats[name]), name
    assert float(eager.stats["accepted"].float().mean()) > 0.5  # the comparison covers moves, not only rejections
    torch.testing.assert_close(compiled.draws, eager.draws, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(compiled.stats["energy"], eager.stats["energy"], rtol=1e-5, atol=1e-5)


def test_compile_step_is_checked_and_is_for_the_torch_path():
    with pytest.raises(TypeError, match="compile_step must be True or False"):
        ebm_samplers.sample(GaussianMixture(), "mala", n_chains=4, n_steps=2, compile_step="yes")
    with pytest.raises(ValueError, match="numba loops"):
        ebm_samplers.sample(default_mixture(), "mala", n_chains=4, n_steps=2, compile_step=True)
