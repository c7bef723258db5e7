"""as_energy / check_energy: every broken energy gets an error that says what it got and what it wanted."""

import pytest
import torch

import ebm_samplers
from energies import Energy, as_energy, check_energy

X = torch.zeros(4, 2)


@pytest.mark.parametrize(
    ("function", "error", "message"),
    [
        (lambda x: (x**2).sum(-1, keepdim=True), ValueError, r"returned shape \(4, 1\).*expected.*\(4,\).*squeeze"),
        (lambda x: (x**2).sum(), ValueError, r"returned shape \(\).*expected.*\(4,\).*scalar"),
        (lambda x: torch.full((4,), float("nan")) + x.sum(-1), ValueError, "not finite at 4 of 4 initial points"),
        (lambda x: torch.ones(len(x)), TypeError, "no gradient path to x"),
        (lambda x: (x.detach() ** 2).sum(-1), TypeError, "no gradient path to x"),
        (lambda x: torch.ones(len(x), dtype=torch.long), TypeError, "dtype torch.int64; expected a floating"),
        (lambda x: x.numpy().sum(-1), TypeError, "returned ndarray; expected a torch.Tensor"),
    ],
)
def test_broken_energies_raise_clear_errors(function, error, message):
    with pytest.raises(error, match=message):
        check_energy(function, X)
    with pytest.raises(error, match=message):
        ebm_samplers.sample(function, "mala", init=X, warmup=0, n_steps=2)


def test_non_callable_is_rejected():
    with pytest.raises(TypeError, match=r"must be callable.*got int"):
        as_energy(3)


def test_bad_initial_points_are_rejected():
    def energy(x):
        return (x**2).sum(-1)

    with pytest.raises(TypeError, match="floating tensor"):
        check_energy(energy, torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="n_chains >= 1"):
        check_energy(energy, torch.zeros(0, 2))


def test_as_energy_keeps_energies_and_wraps_callables():
    class Quadratic(Energy):
        def forward(self, x):
            return (x**2).sum(-1)

    energy = Quadratic()
    assert as_energy(energy) is energy
    wrapped = as_energy(lambda x: (x**2).sum(-1), event_shape=(2,), example=X)
    assert wrapped.event_shape == (2,)
    assert torch.allclose(wrapped(torch.ones(3, 2)), torch.full((3,), 2.0))
    assert torch.allclose(wrapped.score(torch.ones(3, 2)), torch.full((3, 2), -2.0))


def test_a_user_module_is_an_energy():
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

    def energy(x):
        return net(x).squeeze(-1)

    trace = ebm_samplers.sample(energy, "ula", init=torch.zeros(3, 2), warmup=0, n_steps=5, seed=0, step_size=0.01)
    assert trace.draws.shape == (3, 5, 2)


@pytest.mark.parametrize("event_shape", [2, (-2,), (0,), (2.0,), "2"])
def test_a_bad_event_shape_is_explained(event_shape):
    with pytest.raises(ValueError, match=r"event_shape must be a tuple of integers >= 1, e.g. \(2,\)"):
        as_energy(lambda x: (x**2).sum(-1), event_shape=event_shape)
