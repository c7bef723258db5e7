"""Every training method, on a short run: the loss it minimises goes down and the exact test NLL improves.

The data are 8gaussians; NLL is exact up to quadrature (grid 200^2 on [-4.5, 4.5]^2, error checked in
test_evaluation). A small MLP (2 x 32) keeps each run to a few seconds. Contrastive losses (short_run,
cd, pcd) estimate the likelihood gradient, not a quantity that decreases, so for them only NLL is checked.
"""

import pytest
import torch

from ebm_samplers.training import available_methods, fit, grid_nll, toy_dataset
from energies import MLPEnergy, NoiseConditionalMLP

SMALL = (32, 32)
RUNS = {  # method: (iterations, options)
    "short_run": (200, {"n_steps": 10, "step_size": 0.05}),
    "cd": (200, {"n_steps": 5, "step_size": 0.03}),
    "pcd": (200, {"n_steps": 5, "step_size": 0.03, "buffer_size": 1000}),
    "exact_sm": (200, {}),
    "sm": (200, {}),
    "ssm": (200, {}),
    "dsm": (200, {"sigma": 0.3}),
    "dsm_multiscale": (200, {}),
    "nce": (200, {}),
}
MINIMISED = ("exact_sm", "sm", "ssm", "dsm", "dsm_multiscale", "nce")


@pytest.fixture(scope="module")
def data():
    generator = torch.Generator().manual_seed(0)
    dataset = toy_dataset("8gaussians")
    return dataset, dataset.sample(4000, generator), dataset.sample(2000, generator)


def test_every_method_is_listed():
    assert sorted(available_methods()) == sorted(RUNS)


@pytest.mark.parametrize("method", list(RUNS))
def test_short_run_improves_nll_and_loss(method, data):
    dataset, train, test = data
    iterations, options = RUNS[method]
    options = dict(options)
    if method == "exact_sm":
        options["target"] = dataset.energy()
    generator = torch.Generator().manual_seed(0)
    make = NoiseConditionalMLP if method == "dsm_multiscale" else MLPEnergy
    energy = make(2, SMALL, generator=generator)
    before = grid_nll(energy, test, resolution=200, check=False).nll
    result = fit(
        train,
        method=method,
        energy=energy,
        n_iterations=iterations,
        batch_size=128,
        seed=0,
        learning_rate=5e-3,
        **options,
    )
    after = grid_nll(result.energy, test, resolution=200, check=False).nll
    assert result.energy is energy and len(result.history["loss"]) == iterations
    assert after < before - 0.3, f"{method}: NLL {before:.3f} -> {after:.3f}"
    if method in MINIMISED:
        loss = torch.tensor(result.history["loss"])
        first, last = loss[:20].mean(), loss[-20:].mean()
        assert last < first, f"{method}: loss {first:.4f} -> {last:.4f}"
