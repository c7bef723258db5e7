"""benchmarks/_posteriordb.py: the time-series, GP and mixture models written in closed form and batched equal the
Stan programs they copy, written here the plain way (loops over t, scipy's densities on the constrained
parameters), and the rows where the closed forms cannot be evaluated are +inf, not NaN and not an exception."""

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

from tests.benchmark_modules import load_benchmark

posteriordb = load_benchmark("_posteriordb")


def test_linear_recurrence_equals_the_loop():
    rng = np.random.default_rng(0)
    c, b = rng.uniform(-1.3, 1.3, size=6), rng.normal(size=(6, 200))
    loop = np.zeros_like(b)
    for row in range(6):
        state = 0.0
        for t in range(200):
            state = c[row] * state + b[row, t]
            loop[row, t] = state
    closed = posteriordb.linear_recurrence(torch.as_tensor(c), torch.as_tensor(b)).numpy()
    np.testing.assert_allclose(closed, loop, rtol=1e-10, atol=1e-12 * np.abs(loop).max())


def _arma(data, theta):
    mu, phi, ma, sigma = theta
    y, err = np.asarray(data["y"]), np.zeros(len(data["y"]))
    err[0] = y[0] - (mu + phi * mu)
    for t in range(1, len(y)):
        err[t] = y[t] - (mu + phi * y[t - 1] + ma * err[t - 1])
    prior = stats.norm.logpdf(mu, 0, 10) + stats.norm.logpdf([phi, ma], 0, 2).sum()
    return prior + stats.halfcauchy.logpdf(sigma, scale=2.5) + stats.norm.logpdf(err, 0, sigma).sum()


def _garch(data, theta):
    mu, alpha0, alpha1, beta1 = theta
    y, sigma = np.asarray(data["y"]), np.zeros(len(data["y"]))
    sigma[0] = data["sigma1"]
    for t in range(1, len(y)):
        sigma[t] = np.sqrt(alpha0 + alpha1 * (y[t - 1] - mu) ** 2 + beta1 * sigma[t - 1] ** 2)
    return stats.norm.logpdf(y, mu, sigma).sum()  # flat priors


def _gp(data, theta):
    rho, alpha, f = theta[0], theta[1], theta[2:]
    x = np.asarray(data["x"], dtype=np.float64)
    cov = alpha**2 * np.exp(-((x[:, None] - x[None, :]) ** 2) / (2 * rho**2)) + 1e-10 * np.eye(len(x))
    factor = np.linalg.cholesky(cov)  # scipy's multivariate_normal calls this nearly singular kernel singular
    z = np.linalg.solve(factor, f)
    log_normal = -0.5 * z @ z - np.log(np.diag(factor)).sum() - 0.5 * len(x) * np.log(2 * np.pi)
    prior = stats.gamma.logpdf(rho, 25, scale=1 / 4) + stats.halfnorm.logpdf(alpha, scale=2)
    return prior + log_normal + stats.poisson.logpmf(data["k"], np.exp(f)).sum()


def _mixture(data, theta):
    mu, sigma, weight = theta[:2], theta[2:4], theta[4]
    y = np.asarray(data["y"])[:, None]
    prior = stats.norm.logpdf(mu, 0, 2).sum() + stats.halfnorm.logpdf(sigma, scale=2).sum()
    components = np.log([weight, 1 - weight]) + stats.norm.logpdf(y, mu, sigma)
    return prior + stats.beta.logpdf(weight, 5, 5) + logsumexp(components, axis=1).sum()


@pytest.mark.parametrize(
    ("model", "log_density"),
    [("Arma11", _arma), ("Garch11", _garch), ("GpPoisRegr", _gp), ("LowDimGaussMix", _mixture)],
)
def test_energy_is_the_stan_model_with_its_jacobian(model, log_density):
    """E(u) + log |det d theta / du| + log p(theta(u)) is one constant at random points: the same density, the
    transforms' Jacobians included (for the GP, f = L f_tilde's det L too)."""
    target = getattr(posteriordb, model)()
    truth = target.reference()
    centre = torch.as_tensor(_unconstrained(target, truth.mean))
    generator = torch.Generator().manual_seed(1)
    points = centre + 0.3 * torch.randn(5, target.dim, generator=generator, dtype=torch.float64)
    energies = target(points).numpy()
    totals = []
    for u, energy in zip(points, energies, strict=True):
        jacobian = torch.autograd.functional.jacobian(lambda v: target.to_constrained(v[None])[0], u)
        theta = target.to_constrained(u[None])[0].numpy()
        totals.append(energy + torch.linalg.slogdet(jacobian)[1].item() + log_density(target.data, theta))
    assert np.ptp(totals) < 1e-8 * np.abs(energies).max()


def _unconstrained(target, theta):
    """The reference mean on the unconstrained scale, by Newton's method on to_constrained (a bijection)."""
    u = torch.zeros(target.dim, dtype=torch.float64)
    goal = torch.as_tensor(theta, dtype=torch.float64)
    for _ in range(100):
        jacobian = torch.autograd.functional.jacobian(lambda v: target.to_constrained(v[None])[0], u)
        residual = target.to_constrained(u[None])[0] - goal
        u = u - torch.linalg.solve(jacobian, residual)
    assert torch.allclose(target.to_constrained(u[None])[0], goal, rtol=1e-8, atol=1e-10)
    return u


def test_arma_overflowing_theta_is_inf_with_finite_gradient():
    target = posteriordb.Arma11()
    u = torch.tensor([[0.0, 0.9, 50.0, -2.0], [0.0, 0.9, -0.03, -2.0]], dtype=torch.float64)
    energy, grad = target.energy_and_grad(u)
    assert energy[0] == torch.inf and torch.isfinite(energy[1])
    assert torch.isfinite(grad).all()


def test_gp_failing_cholesky_is_inf_not_an_exception():
    target = posteriordb.GpPoisRegr()
    u = torch.zeros(2, target.dim, dtype=torch.float64)
    u[0, :2] = torch.log(torch.tensor(1e4))  # alpha^2 = 1e8 on a rank-one kernel: the 1e-10 jitter is lost
    energy, grad = target.energy_and_grad(u)
    assert energy[0] == torch.inf and torch.isfinite(energy[1])
    assert torch.isfinite(grad).all()
