"""The "persistent" sampler: repeated calls converge to the target, and it follows a changing energy."""

import pytest
import torch

import ebm_samplers
from ebm_samplers import ReplayBuffer
from energies import Gaussian
from tests.helpers import assert_matches

MEAN = torch.tensor([1.0, -1.0])
COVARIANCE = torch.tensor([[2.0, 1.2], [1.2, 1.0]])


def _replicate_moments(seeds, **params) -> torch.Tensor:
    """Per independent replicate (its own buffer and seed): the averages of x and (x - m)(x - m)^T
    over its kept draws, shape (replicates, 5): x0, x1, c00, c11, c01."""
    rows = []
    for seed in seeds:
        trace = ebm_samplers.sample(
            Gaussian(MEAN, COVARIANCE), "persistent", n_chains=16, n_steps=40, warmup=40, seed=seed, **params
        )
        x = trace.draws.double().reshape(-1, 2)
        centred = x - MEAN.double()
        rows.append(torch.stack([*x.mean(0), *(centred**2).mean(0), (centred[:, 0] * centred[:, 1]).mean()]))
    return torch.stack(rows)


def _assert_gaussian_moments(moments: torch.Tensor, what: str) -> None:
    truths = [MEAN[0], MEAN[1], COVARIANCE[0, 0], COVARIANCE[1, 1], COVARIANCE[0, 1]]
    for column, (name, truth) in enumerate(zip(["mean0", "mean1", "var0", "var1", "cov01"], truths, strict=True)):
        assert_matches(moments[:, column], float(truth), f"{what}: {name}")


@pytest.mark.parametrize("replicates", [20, pytest.param(100, marks=pytest.mark.slow)])
def test_repeated_calls_converge_to_a_correlated_gaussian_from_the_uniform_init(replicates):
    # reinit_probability 0: after the buffer forgets its uniform start, every stored state is exact
    moments = _replicate_moments(
        range(replicates), inner="mala", n_inner_steps=5, step_size=0.3, capacity=128, reinit_probability=0.0
    )
    _assert_gaussian_moments(moments, "persistent MALA")


def test_reinitialisation_from_the_target_itself_keeps_the_target_invariant():
    # a fresh row drawn from p and a stored row distributed as p both stay p under MALA, so with an exact
    # init distribution the returned draws are exact at every reinit probability
    target = Gaussian(MEAN, COVARIANCE)
    moments = _replicate_moments(
        range(100, 120),
        inner="mala",
        n_inner_steps=2,
        step_size=0.3,
        capacity=64,
        reinit_probability=0.3,
        init_distribution=lambda n, generator: target.sample(n, generator),
    )
    _assert_gaussian_moments(moments, "persistent MALA with exact reinitialisation")


def test_a_training_loop_can_change_the_energy_between_calls():
    class Shifted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.centre = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return 0.5 * ((x - self.centre) ** 2).sum(-1)

    estimates = []
    for seed in range(20):
        energy = Shifted()
        kernel = ebm_samplers.get_sampler("persistent", inner="mala", n_inner_steps=4, step_size=0.5, capacity=64)
        generator = torch.Generator().manual_seed(seed)
        state = kernel.init(torch.zeros(16, 1), energy)
        for call in range(70):
            if call == 20:  # a "training update": the target moves from N(0, 1) to N(2, 1)
                with torch.no_grad():
                    energy.centre.fill_(2.0)
            state, _ = kernel.step(state, energy, generator)
            assert not state.position.requires_grad
            if call >= 40:
                estimates.append(state.position.double().mean())
    per_replicate = torch.stack(estimates).reshape(20, 30).mean(1)
    assert_matches(per_replicate, 2.0, "mean after the energy moved")
    # a full FIFO buffer of 64 fed 16 per call holds the last 4 calls: ages 0, 1, 2, 3 pushes
    stats = kernel.buffer.statistics()
    assert len(kernel.buffer) == 64 and stats["max_age"] == 3.0 and stats["mean_age"] == 1.5


def test_the_kernel_uses_a_given_buffer_and_records_reinitialisations():
    buffer = ReplayBuffer(100, (2,), reinit_probability=1.0)
    kernel = ebm_samplers.get_sampler("persistent", inner="ula", n_inner_steps=3, buffer=buffer, step_size=0.01)
    trace = ebm_samplers.sample(Gaussian(MEAN, COVARIANCE), kernel, n_chains=10, warmup=0, n_steps=4, seed=0)
    assert kernel.buffer is buffer and len(buffer) == 40
    assert trace.stats["reinitialised"].all()
    assert trace.attrs["sampler"] == "persistent" and trace.attrs["sampler_params"]["inner"] == "ula"


def test_bad_persistent_settings_are_rejected():
    with pytest.raises(ValueError, match="n_inner_steps"):
        ebm_samplers.get_sampler("persistent", n_inner_steps=0)
    with pytest.raises(ValueError, match="reinit_probability"):
        ebm_samplers.get_sampler("persistent", reinit_probability=2.0)
    with pytest.raises(TypeError, match="inner parameters"):
        ebm_samplers.get_sampler("persistent", inner=ebm_samplers.ULA(), step_size=0.1)
    kernel = ebm_samplers.get_sampler("persistent", buffer=ReplayBuffer(10, (3,)))
    with pytest.raises(ValueError, match="shape"):
        kernel.init(torch.zeros(4, 2), lambda x: (x**2).sum(-1))


def test_states_that_blew_up_are_reported_but_never_stored_in_the_buffer():
    # x^4 with a large ULA step: chains that leave ~[-1.3, 1.3] overshoot to inf within a few steps
    kernel = ebm_samplers.get_sampler("persistent", inner="ula", step_size=0.3, n_inner_steps=20, capacity=64)
    trace = ebm_samplers.sample(
        lambda x: (x**4).sum(-1), kernel, init=torch.zeros(16, 1), warmup=0, n_steps=10, seed=0, on_nonfinite="reject"
    )
    assert trace.attrs["nonfinite_total"] > 0  # failures happen and are counted...
    stored = kernel.buffer.state_dict()
    assert stored["size"] > 0 and torch.isfinite(stored["samples"][: stored["size"]]).all()  # ...but not stored
