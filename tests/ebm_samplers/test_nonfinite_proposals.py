"""A non-finite proposal of a Metropolis kernel is rejected and counted as a divergence, never a run failure.

Target: N(0, I) truncated to the box [-1, 1.5]^2, written as an energy that is +inf outside the box (zero density,
a legitimate value), or as one that is finite everywhere but whose gradient is NaN outside (rejecting those
proposals samples the same truncated law). Per coordinate, with Z = Phi(b) - Phi(a):
mean = (phi(a) - phi(b)) / Z and E[x^2] = 1 + (a phi(a) - b phi(b)) / Z.
"""

import math
from dataclasses import dataclass

import numba
import numpy as np
import pytest
import torch

import ebm_samplers
from ebm_samplers.kernels import Kernel, State, metropolis_accept, where_state
from ebm_samplers.kernels._metropolis import reject_diverging
from energies import Energy, NumbaEnergy, energy_and_grad
from tests.helpers import assert_matches

LOW, HIGH = -1.0, 1.5


def _phi(x):
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _big_phi(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


Z = _big_phi(HIGH) - _big_phi(LOW)
MEAN = (_phi(LOW) - _phi(HIGH)) / Z
SECOND = 1 + (LOW * _phi(LOW) - HIGH * _phi(HIGH)) / Z


def box_gaussian(x):
    """0.5 |x|^2 inside the box, +inf outside (autograd: gradient 0 there)."""
    inside = ((x >= LOW) & (x <= HIGH)).all(-1)
    return torch.where(inside, 0.5 * (x**2).sum(-1), torch.full_like(x[:, 0], math.inf))


class NanGradientOutside(Energy):
    """0.5 |x|^2 everywhere, but its gradient is NaN outside the box: the energy is finite there."""

    def forward(self, x):
        return 0.5 * (x**2).sum(-1)

    def energy_and_grad(self, x):
        inside = ((x >= LOW) & (x <= HIGH)).all(-1, keepdim=True)
        return 0.5 * (x**2).sum(-1), torch.where(inside, x, torch.full_like(x, math.nan))


def assert_box_moments(trace):
    draws = trace.draws.double()
    assert torch.isfinite(draws).all() and ((draws >= LOW) & (draws <= HIGH)).all()
    for i in range(2):
        assert_matches(draws[..., i].mean(1), MEAN, f"mean[{i}]")
        assert_matches(draws[..., i].square().mean(1), SECOND, f"second moment[{i}]")


INIT = torch.zeros(32, 2)


# HMC with a fixed trajectory length: what is tested is the rejection, and ChEES's shared step size collapses on a
# bounded support (every exit counts against it, but T, not the step, decides exits: ~700 leapfrog steps per
# transition here, a known limitation stated on the HMC page)
OPTIONS = {"mala": {}, "hmc": {"n_leapfrog": (5, 15)}}


@pytest.mark.parametrize("energy", [box_gaussian, NanGradientOutside()], ids=["inf-energy", "nan-gradient"])
@pytest.mark.parametrize("sampler", ["mala", "hmc"])
def test_mala_and_hmc_reject_non_finite_proposals_and_sample_the_truncated_law(sampler, energy):
    trace = ebm_samplers.sample(
        energy, sampler, init=INIT, n_steps=600, warmup=200, seed=11, step_size=0.5, **OPTIONS[sampler]
    )
    assert trace.stats["diverging"].any()  # the box is hit: the test has power
    assert not trace.stats["nonfinite"].any() and trace.attrs["nonfinite_total"] == 0
    diverging = trace.stats["diverging"]
    assert not trace.stats["accepted"][diverging].any() and (trace.stats["acceptance_rate"][diverging] == 0).all()
    assert_box_moments(trace)


def test_parallel_tempering_rejects_non_finite_proposals_in_every_replica():
    trace = ebm_samplers.sample(
        box_gaussian,
        "parallel_tempering",
        init=INIT,
        n_steps=600,
        warmup=100,
        seed=12,
        n_temperatures=3,
        max_temperature=4.0,
        step_size=0.4,
    )
    assert trace.stats["diverging"].any() and not trace.stats["nonfinite"].any()
    assert_box_moments(trace)


@numba.njit
def _box_energy(x):
    for i in range(x.shape[0]):
        if x[i] < LOW or x[i] > HIGH:
            return np.inf
    return 0.5 * (x[0] * x[0] + x[1] * x[1])


@numba.njit
def _box_grad(x, grad_out):
    for i in range(x.shape[0]):
        grad_out[i] = x[i]
    return _box_energy(x)


@pytest.mark.parametrize("sampler", ["mala", "hmc"])
def test_the_numba_loops_reject_non_finite_proposals(sampler):
    energy = NumbaEnergy(_box_energy, _box_grad, 2, name="box")
    trace = ebm_samplers.sample(
        energy, sampler, init=INIT, n_steps=600, warmup=200, seed=13, step_size=0.5, **OPTIONS[sampler]
    )
    assert trace.attrs["backend"] == "numba"
    assert trace.stats["diverging"].any() and not trace.stats["nonfinite"].any()
    assert_box_moments(trace)


@dataclass
class RandomWalk(Kernel):
    """A user's random-walk Metropolis kernel built from `metropolis_accept`, returning a plain Info dict."""

    target_acceptance = 0.3
    step_size: float = 0.8
    explicit: bool = True  # pass the ratio through reject_diverging, as the built-in kernels do

    def step(self, state, energy, generator):
        noise = torch.randn(state.position.shape, generator=generator, dtype=state.position.dtype)
        position = state.position + state.step_size[:, None] * noise
        value, grad = energy_and_grad(energy, position)
        log_ratio = state.energy - value
        info = {}
        if self.explicit:
            log_ratio, info["diverging"] = reject_diverging(log_ratio, value, grad)
        accepted, probability = metropolis_accept(log_ratio, generator)
        new_state = where_state(accepted, State(position, value, grad, state.step_size), state)
        return new_state, {"acceptance_rate": probability, "accepted": accepted, **info}


@pytest.mark.parametrize("explicit", [True, False])
@pytest.mark.parametrize("energy", [box_gaussian, NanGradientOutside()], ids=["inf-energy", "nan-gradient"])
def test_a_user_metropolis_kernel_with_a_plain_info_dict_is_protected_too(energy, explicit):
    """Without reject_diverging, a random walk's ratio ignores the NaN gradient and accepts the proposal; the
    run loop takes such a state back as a rejected proposal (the same event), counted as a divergence."""
    kernel = RandomWalk(explicit=explicit)
    trace = ebm_samplers.sample(energy, kernel, init=INIT, n_steps=600, warmup=100, seed=14, on_nonfinite="raise")
    assert not trace.stats["nonfinite"].any()
    if explicit or isinstance(energy, NanGradientOutside):
        assert trace.stats["diverging"].any()
    assert_box_moments(trace)


def test_a_proposal_at_energy_minus_inf_still_fails_the_run():
    """-inf energy is an energy unbounded below (a broken model), not zero density: on_nonfinite reports it."""

    def minus_inf_outside(x):
        inside = (x.abs() <= 1.5).all(-1)
        return torch.where(inside, 0.5 * (x**2).sum(-1), torch.full_like(x[:, 0], -math.inf))

    for sampler in ("mala", "hmc"):
        with pytest.raises(FloatingPointError, match=r"the new state: energy -inf"):
            ebm_samplers.sample(minus_inf_outside, sampler, init=INIT, n_steps=200, warmup=0, seed=0, step_size=0.7)


def test_reject_diverging_spares_finite_proposals_and_energy_minus_inf():
    log_ratio = torch.tensor([0.25, math.nan, -math.inf, -2.0, 5.0, math.inf])
    energy = torch.tensor([1.0, math.nan, math.inf, 1.0, 1.0, -math.inf])
    grad = torch.tensor([[0.0], [0.0], [0.0], [math.nan], [0.0], [0.0]])
    ratio, diverging = reject_diverging(log_ratio, energy, grad)
    assert diverging.tolist() == [False, True, True, True, False, False]
    assert ratio.tolist() == [0.25, -math.inf, -math.inf, -math.inf, 5.0, math.inf]
    ratio, diverging = reject_diverging(log_ratio, energy)  # read off the ratio (MALA)
    assert diverging.tolist() == [False, True, True, False, False, False]
