"""Parallel tempering: exact moments on a correlated Gaussian, and mixing across a > 20-nat barrier."""

import pytest
import torch

import ebm_samplers
from energies import Gaussian, GaussianMixture
from tests.helpers import Z_999, assert_bivariate_gaussian_moments, assert_matches, chain_estimates_z


def test_the_cold_replica_matches_the_moments_of_a_correlated_gaussian():
    mean = torch.tensor([1.0, -1.0])
    covariance = torch.tensor([[2.0, 1.2], [1.2, 1.0]])
    trace = ebm_samplers.sample(
        Gaussian(mean, covariance),
        "parallel_tempering",
        n_chains=100,
        n_steps=500,
        warmup=100,
        seed=0,
        step_size=0.3,
        n_temperatures=3,
        max_temperature=4.0,
    )
    draws = trace.draws.double()
    assert_bivariate_gaussian_moments(draws, mean, covariance)
    for pair in ("0_1", "1_2"):
        swap = trace.stats[f"swap_acceptance_{pair}"]
        assert swap.shape == (100, 500) and 0.2 < float(swap.mean()) <= 1.0


@pytest.mark.parametrize(("n_chains", "n_steps"), [(400, 500), pytest.param(1600, 2000, marks=pytest.mark.slow)])
def test_mixes_across_a_barrier_of_over_20_nats_where_mala_from_the_same_init_cannot(n_chains, n_steps):
    mixture = GaussianMixture([0.3, 0.7], [[-4.0], [4.0]], 0.25)  # modes at -4 and 4, sd 0.5
    between = torch.linspace(-4.0, 4.0, 8001)[:, None]
    barrier = float(mixture(between).max() - mixture(torch.tensor([[-4.0]])))  # from the lighter mode
    assert barrier > 20.0, barrier  # about 30.9 nats: 8 / sd^2 + log(0.3)
    init = 3.0 * torch.randn(n_chains, 1, generator=torch.Generator().manual_seed(1))  # both basins
    common = dict(init=init, n_steps=n_steps, warmup=100, seed=2, step_size=0.1)

    tempered = ebm_samplers.sample(mixture, "parallel_tempering", n_temperatures=5, max_temperature=60.0, **common)
    in_heavy_mode = (tempered.draws[..., 0] > 0).double().mean(1)  # per chain
    assert_matches(in_heavy_mode, 0.7, "weight of the mode at 4 under parallel tempering")
    assert float(tempered.stats["swap_acceptance_3_4"].mean()) > 0.3

    plain = ebm_samplers.sample(mixture, "mala", **common)
    stuck = (plain.draws[..., 0] > 0).double().mean(1)
    # a chain whose own adapted step is large may cross once; nearly all stay in the basin they started in
    assert float(((stuck == 0) | (stuck == 1)).double().mean()) > 0.95, "MALA chains crossed the barrier"
    _, _, z = chain_estimates_z(stuck, 0.7)
    assert z > Z_999, f"plain MALA unexpectedly recovered the weights (z = {z:.2f})"


def test_swaps_exchange_whole_states_and_rescale_the_cached_energy():
    # with temperatures (1, 2) and a huge swap advantage, every proposed pair swaps: the cold replica
    # gets the hot replica's position, with energy and gradient re-tempered, and the parity alternates
    kernel = ebm_samplers.get_sampler("parallel_tempering", inner="ula", temperatures=[1.0, 2.0], step_size=1e-12)
    energy = Gaussian([0.0], 1.0)
    state = kernel.init(torch.zeros(3, 1), energy)
    hot = torch.full((3, 1), 5.0)
    rows = torch.cat([torch.zeros(3, 1), hot])
    value, grad = energy.energy_and_grad(rows)
    beta = torch.tensor([1.0, 1.0, 1.0, 0.5, 0.5, 0.5])
    state.replicas.position, state.replicas.energy, state.replicas.grad = rows, beta * value, beta[:, None] * grad
    state, info = kernel.step(state, energy, torch.Generator().manual_seed(0))
    # log a = (1 - 1/2) (E(0) - E(5)) = -6.25: swap probability exp(-6.25)
    assert torch.allclose(info["swap_acceptance_0_1"], torch.full((3,), torch.exp(torch.tensor(-6.25)).item()))
    assert state.swap_parity == 1
    # force the swap with an energy that favours the hot state: E(x) = -x^2/2 near 0..5 (only its ratio matters)
    flipped = lambda x: -0.5 * (x**2).sum(-1)  # noqa: E731
    state.replicas.energy = beta * flipped(state.replicas.position)
    state.swap_parity = 0
    state, info = kernel.step(state, flipped, torch.Generator().manual_seed(0))
    assert torch.allclose(state.position, hot, atol=1e-4)
    assert torch.allclose(state.energy, flipped(state.position))
    assert torch.allclose(state.replicas.energy[3:], 0.5 * flipped(state.replicas.position[3:]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_temperatures": 1}, "n_temperatures"),
        ({"max_temperature": 0.5}, "max_temperature"),
        ({"temperatures": [2.0, 3.0]}, "start at 1.0"),
        ({"temperatures": [1.0, 3.0, 2.0]}, "increasing"),
    ],
)
def test_bad_ladders_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ebm_samplers.get_sampler("parallel_tempering", **kwargs)
