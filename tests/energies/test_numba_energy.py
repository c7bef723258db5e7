"""NumbaEnergy: the numba targets equal their torch counterparts, and a NumbaEnergy is a full torch Energy."""

import math

import numba
import numpy as np
import pytest
import torch

from energies import Gaussian, GaussianMixture, NumbaEnergy, check_energy
from energies.numba_targets import default_mixture, diagonal_gaussian, gaussian, isotropic_mixture


def _compare(numba_energy, torch_energy, x):
    value, grad = numba_energy.energy_and_grad(x)
    expected_value, expected_grad = torch_energy.energy_and_grad(x)
    torch.testing.assert_close(value, expected_value)
    torch.testing.assert_close(grad, expected_grad)
    torch.testing.assert_close(numba_energy(x), expected_value)


def test_numba_targets_equal_the_torch_targets():
    generator = torch.Generator().manual_seed(0)
    x = 3 * torch.randn(64, 2, generator=generator, dtype=torch.float64)
    _compare(default_mixture(), GaussianMixture(means=torch.tensor([[-2.0, -2.0], [2.0, 2.0]], dtype=torch.float64)), x)
    three = isotropic_mixture([0.2, 0.3, 0.5], [[0.0, 1.0], [2.0, -1.0], [-3.0, 0.5]], [0.3, 1.0, 2.0])
    f64 = dict(dtype=torch.float64)  # references built in float64: float32 parameters would limit agreement
    reference = GaussianMixture(
        torch.tensor([0.2, 0.3, 0.5], **f64),
        torch.tensor([[0.0, 1.0], [2.0, -1.0], [-3.0, 0.5]], **f64),
        torch.tensor([0.3, 1, 2], **f64),
    )
    _compare(three, reference, x)
    covariance = [[2.0, 1.2], [1.2, 1.0]]
    _compare(
        gaussian([1.0, -1.0], covariance),
        Gaussian(torch.tensor([1.0, -1.0], **f64), torch.tensor(covariance, **f64)),
        x,
    )
    variances = np.logspace(-2, 0, 5)
    y = torch.randn(16, 5, generator=generator, dtype=torch.float64)
    _compare(diagonal_gaussian(np.zeros(5), variances), Gaussian(torch.zeros(5, **f64), torch.tensor(variances)), y)


def test_far_from_every_mode_the_mixture_stays_finite():
    # a naive log(sum exp) underflows to log(0) here; the log-sum-exp relative to the largest term does not
    x = torch.tensor([[60.0, -60.0]], dtype=torch.float64)
    value, grad = default_mixture().energy_and_grad(x)
    expected_value, expected_grad = GaussianMixture().double().energy_and_grad(x)
    assert math.isfinite(float(value))
    torch.testing.assert_close(value, expected_value)
    torch.testing.assert_close(grad, expected_grad)


def test_the_one_pass_log_sum_exp_rescales_when_a_later_component_is_the_largest():
    # components in an order where the largest log term comes first, last or in between, near and far from every
    # mode (there, terms differ by thousands: a sum not rescaled to the largest term over- or underflows)
    weights = [0.1, 0.2, 0.3, 0.15, 0.25]
    means = [[0.0, 0.0], [5.0, 0.0], [-5.0, 3.0], [0.0, -6.0], [8.0, 8.0]]
    variances = [0.5, 1.0, 2.0, 0.3, 1.5]
    f64 = dict(dtype=torch.float64)
    reference = GaussianMixture(
        torch.tensor(weights, **f64), torch.tensor(means, **f64), torch.tensor(variances, **f64)
    )
    x = torch.tensor(means, **f64) + torch.tensor([0.3, -0.2], **f64)
    far = torch.tensor([[80.0, 75.0], [-90.0, 10.0], [0.0, -120.0]], **f64)
    _compare(isotropic_mixture(weights, means, variances), reference, torch.cat([x, far]))


def test_a_nan_point_has_a_nan_mixture_energy_and_gradient():
    value, grad = default_mixture().energy_and_grad(torch.tensor([[math.nan, 0.0], [0.0, 0.0]], dtype=torch.float64))
    assert math.isnan(value[0]) and torch.isnan(grad[0]).all()
    assert torch.isfinite(value[1]) and torch.isfinite(grad[1]).all()


def test_a_numba_energy_is_a_torch_energy_with_its_own_gradient():
    energy = default_mixture()
    x = torch.randn(8, 2, dtype=torch.float32)
    check_energy(energy, x)  # finite, right shape, gradient path to x
    leaf = x.clone().requires_grad_(True)
    (2.0 * energy(leaf)).sum().backward()  # backward uses grad_fn
    torch.testing.assert_close(leaf.grad, 2.0 * GaussianMixture().energy_and_grad(x)[1])
    assert energy(x).dtype == torch.float32 and energy(x.double()).dtype == torch.float64
    assert energy.event_shape == torch.Size([2])


def test_bad_numba_energies_are_rejected_with_clear_errors():
    @numba.njit
    def energy_fn(x):
        return 0.5 * (x * x).sum()

    with pytest.raises(TypeError, match=r"numba\.njit"):
        NumbaEnergy(lambda x: 0.0, energy_fn, 2)
    with pytest.raises(ValueError, match="dim"):
        NumbaEnergy(energy_fn, energy_fn, 0)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        default_mixture()(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="positive definite"):
        gaussian([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="weights"):
        isotropic_mixture([0.5, 0.6], [[0.0], [1.0]], [1.0, 1.0])
