"""Gaussian and GaussianMixture against scipy and against their own exact samples."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from energies import Gaussian, GaussianMixture
from energies.base import autograd_energy_and_grad
from tests.helpers import Z_999

COVARIANCE = [[2.0, 0.6], [0.6, 0.5]]


def test_gaussian_log_prob_and_gradient_are_exact():
    target = Gaussian(torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor(COVARIANCE, dtype=torch.float64))
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = stats.multivariate_normal([1.0, -2.0], COVARIANCE).logpdf(x.numpy())
    np.testing.assert_allclose(target.log_prob(x).numpy(), expected, rtol=1e-10)
    value, grad = target.energy_and_grad(x)
    auto_value, auto_grad = autograd_energy_and_grad(target, x)
    torch.testing.assert_close(value, auto_value)
    torch.testing.assert_close(grad, auto_grad)


def test_mixture_log_prob_and_gradient_are_exact():
    f64 = torch.float64
    covariances = torch.tensor([COVARIANCE, [[1.0, 0.0], [0.0, 1.0]]], dtype=f64)
    target = GaussianMixture([0.3, 0.7], torch.tensor([[0.0, 0.0], [3.0, 1.0]], dtype=f64), covariances)
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    expected = np.log(
        0.3 * stats.multivariate_normal([0, 0], COVARIANCE).pdf(x.numpy())
        + 0.7 * stats.multivariate_normal([3, 1], np.eye(2)).pdf(x.numpy())
    )
    np.testing.assert_allclose(target.log_prob(x).numpy(), expected, rtol=1e-10)
    torch.testing.assert_close(target(x), -target.log_prob(x))
    value, grad = target.energy_and_grad(x)
    auto_value, auto_grad = autograd_energy_and_grad(target, x)
    torch.testing.assert_close(value, auto_value)
    torch.testing.assert_close(grad, auto_grad)


@pytest.mark.parametrize("target", [Gaussian([1.0, -2.0], COVARIANCE), GaussianMixture()], ids=["gauss", "mixture"])
def test_exact_samples_match_the_stated_moments(target):
    n = 200_000
    samples = target.double().sample(n, torch.Generator().manual_seed(2))
    mean, covariance = target.mean.double(), target.covariance.double()
    # each coordinate's sample mean has standard error sqrt(var / n)
    z = (samples.mean(0) - mean).abs() / torch.sqrt(torch.diagonal(covariance) / n)
    assert (z < Z_999).all(), z
    # sample covariance: standard error of a (co)variance estimate from n iid draws, estimated from the draws
    centred = samples - mean
    products = centred[:, :, None] * centred[:, None, :]
    z_cov = (products.mean(0) - covariance).abs() / (products.std(0) / math.sqrt(n))
    assert (z_cov < Z_999).all(), z_cov


def test_default_mixture_is_the_documented_target():
    target = GaussianMixture()
    torch.testing.assert_close(target.weights, torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(target.means, torch.tensor([[-2.0, -2.0], [2.0, 2.0]]))
    torch.testing.assert_close(target.covariances, 0.5 * torch.eye(2).expand(2, 2, 2))
    torch.testing.assert_close(target.mean, torch.zeros(2))
    torch.testing.assert_close(target.covariance, torch.tensor([[4.5, 4.0], [4.0, 4.5]]))


def test_perturbed_adds_sigma_squared_to_every_covariance():
    sigma = 0.7
    torch.testing.assert_close(
        Gaussian([0.0, 0.0], COVARIANCE).perturbed(sigma).covariance,
        torch.tensor(COVARIANCE) + sigma**2 * torch.eye(2),
    )
    mixture = GaussianMixture().perturbed(sigma)
    torch.testing.assert_close(mixture.covariances, (0.5 + sigma**2) * torch.eye(2).expand(2, 2, 2))


def test_invalid_parameters_are_explained():
    with pytest.raises(ValueError, match="positive definite"):
        Gaussian([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="symmetric"):
        Gaussian([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]])
    with pytest.raises(ValueError, match="summing to 1"):
        GaussianMixture([0.5, 0.6])
    with pytest.raises(ValueError, match=r"expected a scalar"):
        GaussianMixture(covariances=torch.ones(3, 3))


def test_energies_follow_the_input_dtype():
    x = torch.zeros(3, 2, dtype=torch.float64)
    assert GaussianMixture()(x).dtype == torch.float64
    assert Gaussian([0.0, 0.0])(x).dtype == torch.float64


def test_the_default_mixture_barrier_is_8_minus_log_2_nats_as_documented():
    # E(0) - E(mode): both components contribute exp(-8) at the origin; at a mode the other one is ~exp(-16)
    mixture = GaussianMixture().double()
    barrier = mixture(torch.zeros(1, 2, dtype=torch.float64)) - mixture(torch.full((1, 2), 2.0, dtype=torch.float64))
    assert abs(float(barrier) - (8 - math.log(2))) < 1e-4
