"""`sample(..., compile_step=True)`: the torch.compile'd step computes the eager step and samples the target.

One compile per kernel (seconds on a small CPU, cached on disk by TorchInductor), so this file keeps
to one short run per kernel and one MALA run with warm-up.
"""

from dataclasses import dataclass

import pytest
import torch

import ebm_samplers
from ebm_samplers.kernels import DrawThenAdvance, State
from energies import Gaussian, GaussianMixture, energy_and_grad
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
    """Same seed, same random numbers (drawn eagerly: outside the compiled graph, or at its graph breaks): a
    few transitions agree with eager ones up to rounding (fused arithmetic rounds differently), including
    accept decisions and hmc's per-chain leapfrog lengths."""
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


@dataclass
class _DriftThenCheck(DrawThenAdvance):
    """Deterministic: every chain moves by +1 per step (no draws), so failure steps are known exactly."""

    step_size: float = 1.0

    def draw(self, state, generator):
        return {}

    def advance(self, state, energy, draws):
        position = state.position + 1.0
        value, grad = energy_and_grad(energy, position)
        ones = torch.ones_like(value)
        return State(position, value, grad, state.step_size), {"acceptance_rate": ones, "accepted": ones.bool()}


def test_the_compiled_step_checks_new_states_for_the_run_loop():
    """The finiteness check of new states moves into the compiled graph; a finite energy with a non-finite
    gradient (sqrt|x - 301| at 301) must still stop the run at the exact chain and step."""

    def cusp_at_301(x):
        return (x[:, 0] - 301.0).abs().sqrt()

    init = torch.tensor([[0.0], [5.0], [2.0]])  # chain 1 reaches the cusp first, at step 295
    with pytest.raises(FloatingPointError, match=r"chain 1 at step 295 \(the new state: energy 0 with a non-finite"):
        ebm_samplers.sample(cusp_at_301, _DriftThenCheck(), init=init, n_steps=400, seed=0, compile_step=True)
