"""The elementwise (diagonal-covariance) paths of Gaussian and GaussianMixture against the dense path and scipy.

A diagonal covariance takes the fast path whatever form it is given in, so the dense path is reached by
rotating the whole problem: with R orthogonal, N(R m, R S R^T) at R x has the energy of N(m, S) at x and
gradient R grad. The fast path, in float32 or float64, is compared with the dense path in float64 on the
same distribution (in float32 the rotated dense path is itself less accurate than the elementwise one).
"""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from energies import Gaussian, GaussianMixture
from energies.base import autograd_energy_and_grad

DTYPES = [torch.float32, torch.float64]
# float32 results are compared with float64 truth; energies at |x| ~ 1e3 are ~1e6, so tolerances are relative
TOLERANCE = {torch.float32: dict(rtol=2e-5, atol=2e-5), torch.float64: dict(rtol=1e-10, atol=1e-10)}


def bonferroni_z(tests: int, level: float = 0.001) -> float:
    """Two-sided normal quantile that keeps the chance of any false alarm among `tests` checks below `level`."""
    return float(stats.norm.isf(level / (2 * tests)))


def rotation(d: int, seed: int) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def points(n: int, d: int, seed: int, dtype=torch.float64, far: bool = True) -> torch.Tensor:
    """`n` random points near the modes, plus 8 very far away (|x| = 1e3) where a naive form overflows."""
    generator = torch.Generator().manual_seed(seed)
    near = 2.0 * torch.randn(n, d, generator=generator, dtype=torch.float64)
    if not far:
        return near.to(dtype)
    far = 1e3 * torch.nn.functional.normalize(torch.randn(8, d, generator=generator, dtype=torch.float64), dim=1)
    return torch.cat([near, far]).to(dtype)


def assert_close(actual, expected, dtype):
    torch.testing.assert_close(actual.double(), expected.double(), **TOLERANCE[dtype])


def storage(energy) -> int:
    return max(buffer.numel() for buffer in energy.buffers())


# ---------------------------------------------------------------------------------------------------- Gaussian

D = 20
VARIANCES = torch.logspace(-2, 0, D, dtype=torch.float64)
MEAN = torch.linspace(-1.0, 1.0, D, dtype=torch.float64)


@pytest.mark.parametrize("form", ["vector", "diagonal matrix", "scalar"])
def test_gaussian_diagonal_forms_store_O_d_numbers(form):
    covariance = {"vector": VARIANCES, "diagonal matrix": torch.diag(VARIANCES), "scalar": 0.3}[form]
    target = Gaussian(MEAN, covariance)
    assert storage(target) == D  # no (d, d) precision or Cholesky factor
    expected = torch.diag(VARIANCES) if form != "scalar" else 0.3 * torch.eye(D, dtype=torch.float64)
    torch.testing.assert_close(target.covariance, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_diagonal_gaussian_equals_the_dense_path(dtype):
    fast = Gaussian(MEAN, VARIANCES).to(dtype)
    turn = rotation(D, seed=0)
    dense = Gaussian(turn @ MEAN, turn @ torch.diag(VARIANCES) @ turn.T)  # float64 truth
    assert storage(dense) == D * D
    x = points(200, D, seed=1)
    rotated = x @ turn.T
    x = x.to(dtype)
    value, grad = fast.energy_and_grad(x)
    dense_value, dense_grad = dense.energy_and_grad(rotated)
    assert value.dtype == grad.dtype == dtype
    assert torch.isfinite(value).all() and torch.isfinite(grad).all()
    assert_close(value, dense_value, dtype)
    assert_close(grad, dense_grad.double() @ turn, dtype)
    assert_close(fast(x), value, dtype)
    assert_close(fast.log_prob(x), dense.log_prob(rotated), dtype)
    auto_value, auto_grad = autograd_energy_and_grad(fast, x)
    torch.testing.assert_close(value, auto_value)
    torch.testing.assert_close(grad, auto_grad)


def test_diagonal_gaussian_log_prob_matches_scipy():
    x = points(100, D, seed=2)
    expected = stats.multivariate_normal(MEAN.numpy(), np.diag(VARIANCES.numpy())).logpdf(x.numpy())
    np.testing.assert_allclose(Gaussian(MEAN, VARIANCES).log_prob(x).numpy(), expected, rtol=1e-10)


def test_diagonal_gaussian_samples_have_the_stated_moments():
    n = 50_000
    target = Gaussian(MEAN, VARIANCES)
    samples = target.sample(n, torch.Generator().manual_seed(3))
    z_limit = bonferroni_z(2 * D)  # D means and D variances checked at once
    z_mean = (samples.mean(0) - MEAN).abs() / torch.sqrt(VARIANCES / n)
    squares = (samples - MEAN) ** 2
    z_variance = (squares.mean(0) - VARIANCES).abs() / (squares.std(0) / math.sqrt(n))
    assert (z_mean < z_limit).all(), z_mean
    assert (z_variance < z_limit).all(), z_variance


def test_perturbed_diagonal_gaussian_stays_diagonal_and_equals_the_dense_one():
    sigma = 0.3
    fast = Gaussian(MEAN, VARIANCES).perturbed(sigma)
    assert storage(fast) == D
    torch.testing.assert_close(fast.covariance, torch.diag(VARIANCES + sigma**2))
    turn = rotation(D, seed=4)
    dense = Gaussian(turn @ MEAN, turn @ torch.diag(VARIANCES) @ turn.T).perturbed(sigma)
    x = points(50, D, seed=5)
    value, grad = fast.energy_and_grad(x)
    dense_value, dense_grad = dense.energy_and_grad(x @ turn.T)
    torch.testing.assert_close(value, dense_value)
    torch.testing.assert_close(grad, dense_grad @ turn)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_non_positive_variances_are_explained(bad):
    for covariance in (bad, [1.0, bad]):
        with pytest.raises(ValueError, match="Gaussian: variances must be finite and positive"):
            Gaussian([0.0, 0.0], covariance)
    with pytest.raises(ValueError, match="GaussianMixture component 1: variances must be finite and positive"):
        GaussianMixture([0.5, 0.5], [[0.0, 0.0], [1.0, 1.0]], [1.0, bad])


def test_buffers_follow_module_conversion():
    """No stale cache of converted buffers: used in float32, then .double(), the energies compute in float64."""
    x = points(20, D, seed=6)
    gaussian = Gaussian(MEAN.float(), VARIANCES.float())
    gaussian.energy_and_grad(x.float())
    gaussian.double()
    # the float32-rounded parameters, now in float64: exact up to that rounding, and float64 results
    for got, want in zip(gaussian.energy_and_grad(x), Gaussian(MEAN, VARIANCES).energy_and_grad(x), strict=True):
        assert got.dtype == torch.float64
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    x = points(20, 2, seed=7)
    mixture = GaussianMixture()
    mixture.energy_and_grad(x.float())
    mixture.double()
    assert all(buffer.dtype == torch.float64 for buffer in mixture.buffers())
    exact = GaussianMixture(means=torch.tensor([[-2.0, -2.0], [2.0, 2.0]], dtype=torch.float64))
    for got, want in zip(mixture.energy_and_grad(x), exact.energy_and_grad(x), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)  # buffers derived in float32, then converted


# ------------------------------------------------------------------------------------------------------ mixture

MIXTURE_MEANS = torch.tensor([[-2.0, -2.0, 0.0], [2.0, 2.0, 1.0], [0.0, 3.0, -1.0]], dtype=torch.float64)
MIXTURE_WEIGHTS = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
MIXTURE_VARIANCES = torch.tensor([[0.5, 0.1, 2.0], [1.0, 1.0, 0.3], [0.2, 0.7, 0.9]], dtype=torch.float64)


def scipy_mixture_log_prob(x, weights, means, covariances) -> np.ndarray:
    terms = [
        math.log(w) + stats.multivariate_normal(m, c).logpdf(x)
        for w, m, c in zip(weights.tolist(), means.numpy(), covariances.numpy(), strict=True)
    ]
    return np.logaddexp.reduce(np.stack(terms), axis=0)


@pytest.mark.parametrize("form", ["scalar", "per-component", "diagonal matrices"])
def test_diagonal_mixture_forms_match_scipy(form):
    eye = torch.eye(3, dtype=torch.float64)
    per_component = torch.tensor([0.4, 1.0, 0.2], dtype=torch.float64)
    covariances, dense = {
        "scalar": (0.4, 0.4 * eye.expand(3, 3, 3)),
        "per-component": (per_component, per_component[:, None, None] * eye),
        "diagonal matrices": (torch.diag_embed(MIXTURE_VARIANCES), torch.diag_embed(MIXTURE_VARIANCES)),
    }[form]
    target = GaussianMixture(MIXTURE_WEIGHTS, MIXTURE_MEANS, covariances)
    assert storage(target) == 9  # (k, d) numbers at most: no (k, d, d) precisions
    torch.testing.assert_close(target.covariances, dense)
    x = points(40, 3, seed=8, far=False)  # scipy's densities underflow far away
    expected = scipy_mixture_log_prob(x.numpy(), MIXTURE_WEIGHTS, MIXTURE_MEANS, dense)
    np.testing.assert_allclose(target.log_prob(x).numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_diagonal_mixture_equals_the_dense_path(dtype):
    fast = GaussianMixture(MIXTURE_WEIGHTS, MIXTURE_MEANS, torch.diag_embed(MIXTURE_VARIANCES)).to(dtype)
    turn = rotation(3, seed=9)
    rotated_covariances = turn @ torch.diag_embed(MIXTURE_VARIANCES) @ turn.T
    dense = GaussianMixture(MIXTURE_WEIGHTS, MIXTURE_MEANS @ turn.T, rotated_covariances)  # float64 truth
    assert storage(dense) == 27
    x = points(200, 3, seed=10)
    rotated = x @ turn.T
    x = x.to(dtype)
    value, grad = fast.energy_and_grad(x)
    dense_value, dense_grad = dense.energy_and_grad(rotated)
    assert value.dtype == grad.dtype == dtype and grad.shape == x.shape
    assert torch.isfinite(value).all() and torch.isfinite(grad).all()
    assert_close(value, dense_value, dtype)
    assert_close(grad, dense_grad.double() @ turn, dtype)
    assert_close(fast(x), value, dtype)
    assert_close(fast.log_prob(x), -value, dtype)
    responsibilities = fast.responsibilities(x)
    assert responsibilities.shape == (x.shape[0], 3)
    assert_close(responsibilities, dense.responsibilities(rotated), dtype)
    assert_close(responsibilities.sum(1), torch.ones(x.shape[0]), dtype)
    auto_value, auto_grad = autograd_energy_and_grad(fast, x)
    torch.testing.assert_close(value, auto_value)
    torch.testing.assert_close(grad, auto_grad)


@pytest.mark.parametrize("dtype", DTYPES)
def test_default_mixture_far_from_the_modes(dtype):
    """Far away one component dominates: energy = its energy, gradient = its whitened residual, both finite."""
    target = GaussianMixture().to(dtype)
    x = torch.tensor([[1e3, 1e3], [-1e3, -1e3], [1e3, -1e3], [-3e3, 5e2]], dtype=dtype)
    value, grad = target.energy_and_grad(x)
    assert torch.isfinite(value).all() and torch.isfinite(grad).all()
    means = torch.tensor([[-2.0, -2.0], [2.0, 2.0]], dtype=torch.float64)
    centred = x.double()[:, None, :] - means  # (n, k, d)
    log_terms = math.log(0.5) - math.log(2 * math.pi * 0.5) - (centred**2).sum(-1)
    assert_close(value, -torch.logsumexp(log_terms, dim=1), dtype)
    expected_grad = (torch.softmax(log_terms, dim=1)[..., None] * centred / 0.5).sum(1)
    assert_close(grad, expected_grad, dtype)
    torch.testing.assert_close(target.responsibilities(x).sum(1), torch.ones(4, dtype=dtype))


def test_float32_mixture_follows_float64_input():
    x = points(30, 2, seed=11)
    value, grad = GaussianMixture().energy_and_grad(x)  # float32 buffers, converted per call
    assert value.dtype == grad.dtype == torch.float64
    exact = GaussianMixture(means=torch.tensor([[-2.0, -2.0], [2.0, 2.0]], dtype=torch.float64)).energy_and_grad(x)
    torch.testing.assert_close(value, exact[0])
    torch.testing.assert_close(grad, exact[1])


def test_diagonal_mixture_samples_have_the_stated_moments():
    n = 100_000
    target = GaussianMixture(MIXTURE_WEIGHTS, MIXTURE_MEANS, torch.diag_embed(MIXTURE_VARIANCES))
    samples = target.sample(n, torch.Generator().manual_seed(12))
    mean, covariance = target.mean, target.covariance
    z_limit = bonferroni_z(3 + 9)
    z_mean = (samples.mean(0) - mean).abs() / torch.sqrt(torch.diagonal(covariance) / n)
    centred = samples - mean
    products = centred[:, :, None] * centred[:, None, :]
    z_cov = (products.mean(0) - covariance).abs() / (products.std(0) / math.sqrt(n))
    assert (z_mean < z_limit).all(), z_mean
    assert (z_cov < z_limit).all(), z_cov


def test_perturbed_mixture_keeps_its_form_and_equals_the_dense_one():
    sigma = 0.6
    isotropic = GaussianMixture().perturbed(sigma)
    assert storage(isotropic) == 4
    torch.testing.assert_close(isotropic.covariances, (0.5 + sigma**2) * torch.eye(2).expand(2, 2, 2))
    fast = GaussianMixture(MIXTURE_WEIGHTS, MIXTURE_MEANS, torch.diag_embed(MIXTURE_VARIANCES)).perturbed(sigma)
    assert storage(fast) == 9
    torch.testing.assert_close(fast.covariances, torch.diag_embed(MIXTURE_VARIANCES + sigma**2))
    turn = rotation(3, seed=13)
    dense = GaussianMixture(
        MIXTURE_WEIGHTS, MIXTURE_MEANS @ turn.T, turn @ torch.diag_embed(MIXTURE_VARIANCES) @ turn.T
    ).perturbed(sigma)
    x = points(50, 3, seed=14)
    value, grad = fast.energy_and_grad(x)
    dense_value, dense_grad = dense.energy_and_grad(x @ turn.T)
    torch.testing.assert_close(value, dense_value)
    torch.testing.assert_close(grad, dense_grad @ turn)
