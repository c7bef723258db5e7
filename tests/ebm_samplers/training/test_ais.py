"""AIS log Z against exact normalisers (a 10-d Gaussian; a 2-D mixture by quadrature) and AIS NLL against grid NLL.

Tolerances come from the estimate's own delta-method standard error: |AIS - truth| < 3.29 SE (two-sided 0.999),
plus the grid's discretisation error where the truth is a quadrature. Each test also bounds the SE, so it can fail
by being vague as well as by being wrong.
"""

import math

import pytest
import torch

from ebm_samplers.training import ais_log_normaliser, ais_nll, fit, grid_log_normaliser, grid_nll, toy_dataset
from ebm_samplers.training.ais import sigmoid_schedule
from ebm_samplers.training.datasets import TOY_BOUNDS
from energies import Gaussian, MLPEnergy
from tests.helpers import Z_999


def test_log_z_of_a_10d_gaussian_is_exact_within_its_standard_error():
    d = 10
    scales = torch.linspace(0.5, 2.0, d, dtype=torch.float64)
    mean = torch.linspace(-1.0, 1.0, d, dtype=torch.float64)
    gaussian = Gaussian(mean, torch.diag(scales**2))
    offset = 3.0  # exp(-E - 3): log Z = sum log scale_j + d/2 log 2 pi - 3
    truth = float(torch.log(scales).sum()) + 0.5 * d * math.log(2 * math.pi) - offset
    result = ais_log_normaliser(
        lambda x: gaussian(x) + offset,
        mean=torch.zeros(d, dtype=torch.float64),
        scale=torch.ones(d, dtype=torch.float64),
        n_chains=1000,
        n_temperatures=300,
        generator=torch.Generator().manual_seed(1),
    )
    assert result.standard_error < 0.03 and result.effective_sample_size > 500
    assert abs(result.log_normaliser - truth) < Z_999 * result.standard_error, str(result)


def test_log_z_of_a_2d_mixture_matches_quadrature():
    mixture = toy_dataset("8gaussians").energy()

    def sharper(x):  # exp(-1.5 E): not normalised, log Z known only by quadrature
        return 1.5 * mixture(x)

    reference = grid_log_normaliser(sharper)
    discretisation = abs(grid_log_normaliser(sharper, resolution=800) - reference)
    data = toy_dataset("8gaussians").sample(2000, torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(2)
    result = ais_log_normaliser(sharper, data, bounds=TOY_BOUNDS, n_temperatures=300, generator=generator)
    assert result.standard_error < 0.02
    assert abs(result.log_normaliser - reference) < Z_999 * result.standard_error + discretisation, str(result)


def test_ais_and_grid_nll_agree_on_a_trained_model():
    dataset = toy_dataset("8gaussians")
    generator = torch.Generator().manual_seed(3)
    train, test = dataset.sample(4000, generator), dataset.sample(1000, generator)
    energy = MLPEnergy(2, (32, 32), generator=torch.Generator().manual_seed(0))
    result = fit(train, "nce", energy=energy, n_iterations=300, seed=0)
    grid = grid_nll(result.energy, test)
    ais = ais_nll(result.energy, test, data=train, bounds=TOY_BOUNDS, n_temperatures=300)
    assert ais.standard_error < 0.03 and ais.mean_energy == pytest.approx(grid.nll - grid.log_normaliser, abs=1e-4)
    assert abs(ais.nll - grid.nll) < Z_999 * ais.standard_error + grid.discretisation_error, (ais, grid)


def test_schedule_and_bad_input():
    betas = sigmoid_schedule(10)
    assert betas[0] == 0 and betas[-1] == 1 and bool((betas.diff() > 0).all())
    with pytest.raises(ValueError, match="n_temperatures"):
        ais_log_normaliser(lambda x: x.square().sum(1), torch.randn(10, 2), n_temperatures=0)
    with pytest.raises(ValueError, match="give data"):
        ais_log_normaliser(lambda x: x.square().sum(1), mean=0.0, scale=1.0)
    with pytest.raises(ValueError, match="outside bounds"):
        ais_nll(lambda x: x.square().sum(1), torch.tensor([[5.0, 0.0], [0.0, 0.0]]), bounds=(-1.0, 1.0))
    with pytest.raises(ValueError, match="scale finite and > 0"):
        ais_log_normaliser(lambda x: x.square().sum(1), mean=torch.zeros(2), scale=torch.tensor([1.0, 0.0]))
    with pytest.raises(TypeError, match="sampler must be a registered sampler name or a Kernel object; got int"):
        ais_log_normaliser(lambda x: x.square().sum(1), torch.randn(10, 2), sampler=3)
    with pytest.raises(KeyError, match="nosuch"):
        ais_log_normaliser(lambda x: x.square().sum(1), torch.randn(10, 2), sampler="nosuch")


def test_too_few_temperatures_for_a_sharp_target_warn_that_the_estimate_is_unreliable():
    """A narrow 10-d Gaussian far from the base with 2 temperatures: the weights collapse onto a few chains
    (ESS far below 10% of them), and the result says its log Z cannot be trusted instead of passing silently."""
    d = 10
    narrow = Gaussian(torch.full((d,), 2.0, dtype=torch.float64), 0.01 * torch.eye(d, dtype=torch.float64))
    with pytest.warns(RuntimeWarning, match="effective sample size .* unreliable"):
        result = ais_log_normaliser(
            narrow,
            mean=torch.zeros(d, dtype=torch.float64),
            scale=torch.ones(d, dtype=torch.float64),
            n_chains=200,
            n_temperatures=2,
            generator=torch.Generator().manual_seed(0),
        )
    assert result.effective_sample_size < 20
