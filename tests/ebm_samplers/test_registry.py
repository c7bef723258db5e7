"""The registry: built-ins, user kernels through sample(), and clear errors."""

from dataclasses import dataclass

import pytest
import torch

import ebm_samplers
from ebm_samplers import Kernel, State, register_sampler
from ebm_samplers.kernels import check_positive, metropolis_accept, per_chain, where_state
from energies import Gaussian, energy_and_grad
from tests.helpers import assert_matches


@dataclass
class RandomWalkMetropolis(Kernel):
    """x' = x + s xi, accepted with probability min(1, exp(E(x) - E(x'))): a user kernel from public parts."""

    target_acceptance = 0.234
    step_size: float = 1.0

    def __post_init__(self):
        check_positive(self.step_size, "rwm step_size")

    def step(self, state, energy, generator):
        noise = torch.randn(state.position.shape, generator=generator, dtype=state.position.dtype)
        position = state.position + per_chain(state.step_size, state.position) * noise
        value, grad = energy_and_grad(energy, position)
        accepted, probability = metropolis_accept(state.energy - value, generator)
        proposal = State(position=position, energy=value, grad=grad, step_size=state.step_size)
        return where_state(accepted, proposal, state), {"acceptance_rate": probability, "accepted": accepted}


register_sampler("test_random_walk")(RandomWalkMetropolis)


def test_builtins_are_registered():
    assert {"ula", "mala"} <= set(ebm_samplers.available_samplers())
    assert ebm_samplers.get_sampler("mala", step_size=0.05).step_size == 0.05


def test_a_user_registered_kernel_runs_through_sample_and_is_correct():
    trace = ebm_samplers.sample(
        Gaussian([0.5, -0.5], [1.0, 2.0]),
        "test_random_walk",
        n_chains=200,
        n_steps=2000,
        warmup=300,
        seed=7,
        step_size=1.5,
    )
    assert trace.attrs["sampler"] == "test_random_walk"
    means = trace.draws.double().mean(dim=1)
    assert_matches(means[:, 0], 0.5, "user kernel mean[0]")
    assert_matches(means[:, 1], -0.5, "user kernel mean[1]")
    variances = trace.draws.double().var(dim=1)
    assert_matches(variances[:, 1], 2.0, "user kernel variance[1]")


def test_a_kernel_object_can_be_passed_directly():
    trace = ebm_samplers.sample(
        Gaussian([0.0]), RandomWalkMetropolis(step_size=0.5), n_chains=2, warmup=0, n_steps=10, seed=0
    )
    assert trace.n_draws == 10


def test_unknown_names_and_parameters_are_explained():
    with pytest.raises(KeyError, match=r"unknown sampler 'nope'.*mala"):
        ebm_samplers.get_sampler("nope")
    with pytest.raises(KeyError, match=r"unknown sampler 'mla' \(did you mean 'mala'\?\); available samplers"):
        ebm_samplers.sample(Gaussian([0.0]), "mla", n_chains=2, warmup=0, n_steps=5)
    with pytest.raises(TypeError, match=r"has no parameter.*stepsize.*step_size"):
        ebm_samplers.get_sampler("mala", stepsize=0.1)
    with pytest.raises(ValueError, match="step_size must be a finite number > 0"):
        ebm_samplers.get_sampler("mala", step_size=0.0)
    with pytest.raises(ValueError, match="already registered"):
        register_sampler("mala")(RandomWalkMetropolis)
    with pytest.raises(TypeError, match="given with a kernel object"):
        ebm_samplers.sample(Gaussian([0.0]), RandomWalkMetropolis(), n_chains=2, warmup=0, n_steps=5, step_size=0.1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_chains": 2, "n_steps": 0}, "n_steps must be an integer >= 1"),
        ({"n_chains": 2, "n_steps": 5, "warmup": -1}, "warmup must be an integer >= 0"),
        ({"n_chains": 2, "n_steps": 5, "thin": 10}, "at least thin"),
        ({"n_chains": 0, "n_steps": 5}, "n_chains must be an integer >= 1"),
        ({"n_steps": 5}, "give init"),
        ({"init": torch.zeros(3, 2), "n_chains": 4, "n_steps": 5}, "init has 3 chains but n_chains=4"),
        ({"init": torch.zeros(3, 5), "n_steps": 5}, r"expects points of shape \(n, 2\)"),
    ],
)
def test_bad_run_arguments_are_explained(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ebm_samplers.sample(Gaussian([0.0, 0.0]), "mala", **kwargs)


def test_a_blow_up_during_sampling_names_chain_and_step():
    # E = x^4 with a huge step: Langevin overshoots geometrically and overflows float32 within a few steps
    with pytest.raises(FloatingPointError, match="chain 0 at step"):
        ebm_samplers.sample(
            lambda x: (x**4).sum(-1), "ula", init=torch.full((1, 1), 3.0), warmup=0, n_steps=50, step_size=1.0
        )


def test_a_sampler_is_a_registered_name_or_a_kernel_object_and_parameters_need_a_name():
    """One resolver serves sample()'s sampler and a composite sampler's inner kernel."""
    kernel = ebm_samplers.get_sampler("mala", step_size=0.2)
    x = torch.zeros(4, 2)
    with pytest.raises(TypeError, match=r"sampler parameters \['step_size'\] were given with a kernel object"):
        ebm_samplers.sample(lambda y: (y**2).sum(-1), kernel, init=x, warmup=0, n_steps=2, step_size=0.1)
    with pytest.raises(TypeError, match="sampler must be a registered sampler name or a Kernel object; got int"):
        ebm_samplers.sample(lambda y: (y**2).sum(-1), 3, init=x, warmup=0, n_steps=2)
    with pytest.raises(TypeError, match=r"inner parameters \['step_size'\] were given with an inner kernel object"):
        ebm_samplers.get_sampler("parallel_tempering", inner=kernel, step_size=0.1)
    with pytest.raises(ValueError, match="persistent cannot use itself as the inner kernel"):
        ebm_samplers.get_sampler("persistent", inner="persistent")
