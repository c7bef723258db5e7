"""Funnel and Banana: exact densities against scipy, analytic gradients against autograd, exact samples
against the stated moments (tolerances from the standard error of i.i.d. sample averages)."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from energies import Banana, Funnel
from energies.base import autograd_energy_and_grad
from tests.helpers import Z_999


def _points(dim: int, seed: int) -> torch.Tensor:
    return torch.randn(40, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2


def test_funnel_density_and_gradient_are_exact():
    target = Funnel(5)
    x = _points(5, 0)
    v, rest = x[:, 0].numpy(), x[:, 1:].numpy()
    expected = stats.norm(0, 3).logpdf(v) + stats.norm.logpdf(rest, 0, np.exp(v / 2)[:, None]).sum(1)
    np.testing.assert_allclose(target.log_prob(x).numpy(), expected, rtol=1e-10)
    value, grad = target.energy_and_grad(x)
    auto_value, auto_grad = autograd_energy_and_grad(target, x)
    torch.testing.assert_close(value, auto_value)
    torch.testing.assert_close(grad, auto_grad)


def test_banana_density_and_gradient_are_exact():
    target = Banana(3, b=0.03)
    x = _points(3, 1) * 5
    untwisted = x.clone()
    untwisted[:, 1] = x[:, 1] + 0.03 * (x[:, 0] ** 2 - 100)
    expected = stats.multivariate_normal(np.zeros(3), np.diag([100.0, 1.0, 1.0])).logpdf(untwisted.numpy())
    np.testing.assert_allclose(target.log_prob(x).numpy(), expected, rtol=1e-10)
    value, grad = target.energy_and_grad(x)
    auto_value, auto_grad = autograd_energy_and_grad(target, x)
    torch.testing.assert_close(value, auto_value)
    torch.testing.assert_close(grad, auto_grad)


def _assert_average(values: torch.Tensor, truth: float, what: str) -> None:
    values = values.double()
    z = abs(float(values.mean()) - truth) / (float(values.std()) / math.sqrt(values.shape[0]))
    assert z < Z_999, f"{what}: {float(values.mean()):.4f} vs {truth:.4f} (z = {z:.2f})"


def test_banana_samples_match_the_stated_moments():
    target = Banana(3)
    x = target.sample(200_000, torch.Generator().manual_seed(2)).double()
    assert torch.allclose(target.covariance, torch.diag(torch.tensor([100.0, 19.0, 1.0])))
    for i in range(3):
        _assert_average(x[:, i], 0.0, f"banana mean[{i}]")
        _assert_average(x[:, i] ** 2, float(target.covariance[i, i]), f"banana variance[{i}]")
    _assert_average(x[:, 0] * x[:, 1], 0.0, "banana covariance[0, 1]")


def test_funnel_samples_match_the_stated_moments():
    target = Funnel(4)
    x = target.sample(200_000, torch.Generator().manual_seed(3)).double()
    v = x[:, 0]
    _assert_average(v, 0.0, "funnel mean of v")
    _assert_average(v**2, 9.0, "funnel variance of v")
    # Var(x_i) = e^{4.5} has lognormal tails too heavy for a sample-variance check; the whitened
    # coordinate x_i e^{-v/2} is exactly N(0, 1) given v
    _assert_average((x[:, 1] * torch.exp(-v / 2)) ** 2, 1.0, "funnel whitened variance")
    assert target.covariance[1, 1] == pytest.approx(math.exp(4.5))


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="dim must be an integer >= 2"):
        Funnel(1)
    with pytest.raises(ValueError, match="b must be a finite number"):
        Banana(2, b=float("nan"))
