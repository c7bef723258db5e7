"""Quadrature NLL and MMD: checked against a density whose NLL is known exactly."""

import math

import pytest
import torch

from ebm_samplers.training import grid_nll, mmd, toy_dataset
from energies import Gaussian


def test_grid_nll_of_an_unnormalised_gaussian_is_its_exact_nll():
    # E = 1/2 x^T S^-1 x (no normaliser): NLL = mean E(x) + log(2 pi sqrt(det S)) exactly
    covariance = torch.tensor([[0.6, 0.2], [0.2, 0.4]])
    energy = Gaussian(torch.zeros(2), covariance)
    x = torch.tensor([[0.0, 0.0], [1.0, -0.5], [-0.3, 0.8]])
    exact = float(energy(x).mean()) + math.log(2 * math.pi * math.sqrt(float(torch.linalg.det(covariance))))
    result = grid_nll(lambda z: energy(z) + 7.0, x, resolution=300)  # an arbitrary offset cancels
    assert result.nll == pytest.approx(exact, abs=1e-4)
    assert result.discretisation_error < 1e-4 and result.bounds == (-4.5, 4.5)


def test_grid_nll_of_the_true_density_is_the_entropy():
    dataset = toy_dataset("8gaussians")
    test = dataset.sample(4000, torch.Generator().manual_seed(0))
    result = grid_nll(dataset.energy(), test)
    assert result.nll == pytest.approx(float(dataset.energy()(test).mean()), abs=1e-4)


def test_grid_nll_refuses_points_outside_the_window():
    with pytest.raises(ValueError, match="outside the quadrature window"):
        grid_nll(lambda z: z.square().sum(1), torch.tensor([[5.0, 0.0]]))


def test_mmd_separates_different_laws_and_not_equal_ones():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(500, 2, generator=generator), torch.randn(500, 2, generator=generator)
    shifted = torch.randn(500, 2, generator=generator) + 1.0
    same, different = mmd(a, b), mmd(a, shifted)
    assert abs(same) < 0.01 < different
