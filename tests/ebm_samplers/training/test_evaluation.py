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


def test_data_ksd_is_consistent_with_zero_for_the_true_model_and_large_for_a_shifted_one():
    """Held-out 8gaussians data under the exact mixture's score: the wild-bootstrap test does not reject (p > 0.01,
    a test of size 0.01 at a fixed seed); the same mixture shifted by 0.3 along each axis (0.85 component sd) is
    rejected with a KSD several times larger."""
    from ebm_samplers.training import data_ksd
    from energies import GaussianMixture

    dataset = toy_dataset("8gaussians")
    test = dataset.sample(1000, torch.Generator().manual_seed(4))
    truth = dataset.energy()
    shifted = GaussianMixture(means=truth.means + 0.3, covariances=truth.covariances)
    right = data_ksd(truth, test, n_bootstrap=500, generator=torch.Generator().manual_seed(5))
    wrong = data_ksd(shifted, test, n_bootstrap=500, generator=torch.Generator().manual_seed(5))
    assert right.p_value > 0.01, str(right)
    assert wrong.p_value < 0.01 and wrong.ksd > 3 * right.ksd, (str(right), str(wrong))


def test_sample_ksd_tells_model_samples_from_other_points():
    from ebm_samplers.training import sample_ksd

    model = toy_dataset("8gaussians").energy()
    generator = torch.Generator().manual_seed(6)
    own = sample_ksd(model, model.sample(1000, generator), n_bootstrap=500, generator=generator)
    off = sample_ksd(model, torch.randn(1000, 2, generator=generator) * 2.0, n_bootstrap=500, generator=generator)
    assert own.p_value > 0.01 and off.p_value < 0.01 and off.ksd > 3 * own.ksd, (str(own), str(off))
