"""Panel targets that are Bayesian models with data: hierarchical, regression and time-series posteriors.

Every one is sampled on the unconstrained scale: a scale s enters as u = log s with the Jacobian log s added to
log p; the SV persistence phi in (-1, 1) as phi = 2 sigmoid(u) - 1. Ground truth is the reference file's (a
long BlackJAX NUTS run, see `benchmarks/posteriors_reference.py`), except German credit, whose parameters are
all unconstrained, so the Inference Gym's published moments (cmdstan) are the truth as they stand.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from energies.posteriors._base import Posterior, Truth, load_data, log_half_cauchy_of_log

EIGHT_SCHOOLS_Y = (28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0)
EIGHT_SCHOOLS_SIGMA = (15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0)


class _EightSchools(Posterior):
    """Rubin's eight schools (posteriordb's model): mu ~ N(0, 5^2), tau ~ HalfCauchy(0, 5),
    theta_j ~ N(mu, tau^2), y_j ~ N(theta_j, sigma_j^2); parameters (mu, log tau, 8 school coordinates)."""

    def __init__(self, school_names):
        super().__init__()
        self._setup(["mu", "log_tau", *school_names])
        self.register_buffer("y", torch.tensor(EIGHT_SCHOOLS_Y, dtype=torch.float64))
        self.register_buffer("sigma", torch.tensor(EIGHT_SCHOOLS_SIGMA, dtype=torch.float64))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"y": self.y.numpy(), "sigma": self.sigma.numpy()}

    def _prior(self, mu: Tensor, log_tau: Tensor) -> Tensor:
        return -0.5 * (mu / 5.0).square() + log_half_cauchy_of_log(log_tau, 5.0)


class EightSchoolsCentered(_EightSchools):
    """Centered: the school effects theta_j are parameters. With few data per school this is a funnel in
    (log tau, theta): small tau pins every theta_j to mu, and samplers diverge in the neck."""

    panel_name = "eight_schools_centered"

    def __init__(self):
        super().__init__([f"theta[{j}]" for j in range(1, 9)])

    def forward(self, u: Tensor) -> Tensor:
        mu, log_tau, theta = u[:, 0], u[:, 1], u[:, 2:]
        tau = torch.exp(log_tau)[:, None]
        log_p = self._prior(mu, log_tau)
        log_p = log_p - 0.5 * ((theta - mu[:, None]) / tau).square().sum(-1) - 8 * log_tau
        log_p = log_p - 0.5 * ((self.y.to(u) - theta) / self.sigma.to(u)).square().sum(-1)
        return -log_p


class EightSchoolsNoncentered(_EightSchools):
    """Non-centered: theta_j = mu + tau eta_j with eta_j ~ N(0, 1); the same posterior, no funnel."""

    panel_name = "eight_schools_noncentered"

    def __init__(self):
        super().__init__([f"eta[{j}]" for j in range(1, 9)])

    def forward(self, u: Tensor) -> Tensor:
        mu, log_tau, eta = u[:, 0], u[:, 1], u[:, 2:]
        theta = mu[:, None] + torch.exp(log_tau)[:, None] * eta
        log_p = self._prior(mu, log_tau) - 0.5 * eta.square().sum(-1)
        log_p = log_p - 0.5 * ((self.y.to(u) - theta) / self.sigma.to(u)).square().sum(-1)
        return -log_p


class HierarchicalRegression(Posterior):
    """A radon-like varying-intercept regression on simulated data, non-centered.

    30 groups of 2 .. 40 observations (seeded), a binary predictor x (floor) and a group-level
    intercept: y_ij ~ N(a_j + b x_ij, sigma^2), a_j = mu_a + tau eta_j, eta_j ~ N(0, 1);
    mu_a, b ~ N(0, 5^2), tau, sigma ~ HalfNormal(0, 1). Simulated with mu_a = 1.5, b = -0.7, tau = 0.3,
    sigma = 0.8. Parameters (mu_a, b, log tau, log sigma, eta[30]).
    """

    panel_name = "hierarchical_regression"

    def __init__(self, n_groups: int = 30, seed: int = 2):
        super().__init__()
        self._setup(["mu_a", "b", "log_tau", "log_sigma"] + [f"eta[{j}]" for j in range(n_groups)])
        rng = np.random.default_rng(seed)
        sizes = rng.integers(2, 41, size=n_groups)
        group = np.repeat(np.arange(n_groups), sizes)
        x = (rng.uniform(size=group.size) < 0.3).astype(np.float64)
        intercepts = 1.5 + 0.3 * rng.normal(size=n_groups)
        y = intercepts[group] - 0.7 * x + 0.8 * rng.normal(size=group.size)
        self.n_groups = n_groups
        self.register_buffer("group", torch.as_tensor(group))
        self.register_buffer("x", torch.as_tensor(x))
        self.register_buffer("y", torch.as_tensor(y))

    def forward(self, u: Tensor) -> Tensor:
        mu_a, b, log_tau, log_sigma, eta = u[:, 0], u[:, 1], u[:, 2], u[:, 3], u[:, 4:]
        intercepts = mu_a[:, None] + torch.exp(log_tau)[:, None] * eta
        mean = intercepts[:, self.group] + b[:, None] * self.x.to(u)
        sigma = torch.exp(log_sigma)
        log_lik = -0.5 * ((self.y.to(u) - mean) / sigma[:, None]).square().sum(-1) - self.y.numel() * log_sigma
        # HalfNormal(0, 1) on tau and sigma, each with the Jacobian of s = e^u
        log_prior = -0.5 * (mu_a.square() + b.square()) / 25.0 - 0.5 * eta.square().sum(-1)
        log_prior = log_prior - 0.5 * torch.exp(2 * log_tau) + log_tau - 0.5 * sigma.square() + log_sigma
        return -(log_lik + log_prior)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"group": self.group.numpy(), "x": self.x.numpy(), "y": self.y.numpy()}


class _LogisticRegression(Posterior):
    """y_i ~ Bernoulli(sigmoid(X_i w)), w ~ N(0, s^2 I) (s = `prior_sd`):
    E(w) = sum_i [softplus(X_i w) - y_i X_i w] + |w|^2 / (2 s^2)."""

    prior_sd = 1.0

    def _set_data(self, features: np.ndarray, labels: np.ndarray, names) -> None:
        self._setup(names)
        self.register_buffer("features", torch.as_tensor(features, dtype=torch.float64))
        self.register_buffer("labels", torch.as_tensor(labels, dtype=torch.float64))

    def forward(self, w: Tensor) -> Tensor:
        logits = w @ self.features.to(w).T
        log_lik = (self.labels.to(w) * logits - F.softplus(logits)).sum(-1)
        return -log_lik + 0.5 * w.square().sum(-1) / self.prior_sd**2

    def arrays(self) -> dict[str, np.ndarray]:
        return {"features": self.features.numpy(), "labels": self.labels.numpy(), "prior_sd": np.array(self.prior_sd)}


class BreastCancerLogistic(_LogisticRegression):
    """Bayesian logistic regression on scikit-learn's bundled Wisconsin breast-cancer data (569 x 30),
    features standardised (population sd), an intercept, all 31 coefficients ~ N(0, 1)."""

    panel_name = "logistic_breast_cancer"

    def __init__(self):
        super().__init__()
        from sklearn.datasets import load_breast_cancer  # a project dependency; bundled data, no download

        features, labels = load_breast_cancer(return_X_y=True)
        standardised = (features - features.mean(0)) / features.std(0)
        design = np.concatenate([np.ones((len(labels), 1)), standardised], axis=1)
        self._set_data(design, labels, ["intercept"] + [f"w[{i}]" for i in range(30)])


class GermanCreditLogistic(_LogisticRegression):
    """The Inference Gym's GermanCreditNumericLogisticRegression: 1,000 x 24 UCI features standardised
    (population sd), a column of ones appended last, 25 weights ~ N(0, 1). Truth: the Gym's published
    moments (cmdstan NUTS), which apply as they stand since every parameter is unconstrained."""

    panel_name = "german_credit"

    def __init__(self):
        super().__init__()
        data = load_data("german_credit")
        raw = np.asarray(data["features_raw"], dtype=np.float64)
        standardised = (raw - raw.mean(0)) / raw.std(0)
        design = np.concatenate([standardised, np.ones((len(raw), 1))], axis=1)
        self._set_data(design, np.asarray(data["labels"], dtype=np.float64), [f"w[{i}]" for i in range(25)])

    def truth(self) -> Truth:
        gym = load_data("german_credit")["ground_truth"]
        return Truth(
            np.asarray(gym["mean"]), np.asarray(gym["sd"]), np.asarray(gym["mean_standard_error"]), gym["source"]
        )


class StochasticVolatility(Posterior):
    """The Inference Gym's stochastic volatility model on its 100 S&P500 returns, non-centered.

    (phi + 1) / 2 ~ Beta(20, 1.5), mu ~ Cauchy(0, 5), sigma ~ HalfCauchy(0, 2); the log volatility
    h_0 = mu + sigma z_0 / sqrt(1 - phi^2), h_t = mu + phi (h_{t-1} - mu) + sigma z_t with z ~ N(0, I);
    r_t ~ N(0, exp(h_t)). Parameters (u_phi, mu, log sigma, z[100]) with phi = 2 sigmoid(u_phi) - 1:
    the Beta prior times the Jacobian is sigmoid(u)^20 sigmoid(-u)^1.5.
    """

    panel_name = "stochastic_volatility"

    def __init__(self):
        super().__init__()
        returns = np.asarray(load_data("sp500_small")["centered_returns"], dtype=np.float64)
        self._setup(["u_phi", "mu", "log_sigma"] + [f"z[{t}]" for t in range(len(returns))])
        steps = np.arange(len(returns))
        self.register_buffer("returns", torch.as_tensor(returns))
        # lag[t, s] = t - s below the diagonal: h - mu = sigma * (phi^lag masked) @ z, one matrix product per chain
        self.register_buffer(
            "lag", torch.as_tensor(np.maximum(steps[:, None] - steps[None, :], 0), dtype=torch.float64)
        )
        self.register_buffer("lower", torch.as_tensor(np.tril(np.ones((len(returns), len(returns))))))

    def forward(self, u: Tensor) -> Tensor:
        u_phi, mu, log_sigma, z = u[:, 0], u[:, 1], u[:, 2], u[:, 3:]
        phi = 2 * torch.sigmoid(u_phi) - 1
        # 1 - phi^2 = 4 sigmoid(u) sigmoid(-u)
        stationary_sd = 0.5 * torch.exp(-0.5 * (F.logsigmoid(u_phi) + F.logsigmoid(-u_phi)))
        shocks = torch.cat([z[:, :1] * stationary_sd[:, None], z[:, 1:]], dim=1)
        powers = torch.pow(phi[:, None, None], self.lag.to(u)) * self.lower.to(u)
        h = mu[:, None] + torch.exp(log_sigma)[:, None] * (powers @ shocks[:, :, None])[..., 0]
        log_lik = (-0.5 * self.returns.to(u).square() * torch.exp(-h) - 0.5 * h).sum(-1)
        log_prior = 20 * F.logsigmoid(u_phi) + 1.5 * F.logsigmoid(-u_phi) - torch.log1p((mu / 5).square())
        log_prior = log_prior + log_half_cauchy_of_log(log_sigma, 2.0) - 0.5 * z.square().sum(-1)
        return -(log_lik + log_prior)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"returns": self.returns.numpy()}


class AutoRegressive(Posterior):
    """posteriordb's arK-arK: an AR(5) model of 200 observations. alpha, beta_k ~ N(0, 10^2),
    sigma ~ HalfCauchy(0, 2.5), y_t ~ N(alpha + sum_k beta_k y_{t-k}, sigma^2) for t > 5.
    Parameters (alpha, beta[1..5], log sigma)."""

    panel_name = "ar5"

    def __init__(self):
        super().__init__()
        data = load_data("arK")
        order, y = int(data["K"]), np.asarray(data["y"], dtype=np.float64)
        self._setup(["alpha"] + [f"beta[{k}]" for k in range(1, order + 1)] + ["log_sigma"])
        lags = np.stack([y[order - k : len(y) - k] for k in range(1, order + 1)], axis=1)
        self.register_buffer("lags", torch.as_tensor(lags))
        self.register_buffer("target", torch.as_tensor(y[order:]))

    def forward(self, u: Tensor) -> Tensor:
        alpha, beta, log_sigma = u[:, 0], u[:, 1:-1], u[:, -1]
        residual = self.target.to(u) - alpha[:, None] - beta @ self.lags.to(u).T
        log_lik = -0.5 * residual.square().sum(-1) * torch.exp(-2 * log_sigma) - self.target.numel() * log_sigma
        log_prior = -0.5 * (alpha.square() + beta.square().sum(-1)) / 100.0 + log_half_cauchy_of_log(log_sigma, 2.5)
        return -(log_lik + log_prior)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"lags": self.lags.numpy(), "target": self.target.numpy()}
