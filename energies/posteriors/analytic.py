"""Panel targets with analytic ground truth: an ill-conditioned rotated Gaussian, a correlated regression,
a two-component mixture, Haario's banana and Neal's funnel.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from energies.banana import Banana
from energies.funnel import Funnel
from energies.posteriors._base import Posterior, Truth, analytic


class RotatedGaussian(Posterior):
    """N(0, Q diag(lambda) Q^T) in `dim` dimensions: variances lambda log-spaced over 4 orders of magnitude
    (1e-2 .. 1e2) and Q a random rotation (QR of a seeded Gaussian matrix, signs fixed by R's diagonal).

    E(x) = x^T P x / 2 with P = Q diag(1/lambda) Q^T. No coordinate is aligned with an eigenvector, so a diagonal
    metric cannot undo the conditioning (condition number 1e4): integration time must span sd 0.1 .. 10.
    """

    panel_name = "gauss_rotated_100"

    def __init__(self, dim: int = 100, seed: int = 0):
        super().__init__()
        self._setup([f"x[{i}]" for i in range(dim)])
        generator = torch.Generator().manual_seed(seed)
        q, r = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
        q = q * torch.sign(torch.diagonal(r))
        variances = torch.logspace(-2, 2, dim, dtype=torch.float64)
        self.register_buffer("precision", (q / variances) @ q.T)
        self.register_buffer("cov", (q * variances) @ q.T)

    def forward(self, x: Tensor) -> Tensor:
        return 0.5 * ((x @ self.precision.to(x)) * x).sum(-1)

    def truth(self) -> Truth:
        return analytic(np.zeros(self.dim), self.cov.numpy(), "analytic: mean 0, covariance Q diag(lambda) Q^T")

    def arrays(self) -> dict[str, np.ndarray]:
        return {"precision": self.precision.numpy()}

    @property
    def mean(self) -> Tensor:
        return torch.zeros(self.dim, dtype=torch.float64)

    @property
    def covariance(self) -> Tensor:
        return self.cov.clone()


class CorrelatedRegression(Posterior):
    """Linear regression y_i ~ N(alpha + beta x_i, 1) with an uncentred predictor x_i ~ U(20, 30) (100 points,
    simulated with alpha = 1, beta = 0.5), priors alpha, beta ~ N(0, 10^2), noise sd known.

    The posterior is Gaussian with precision P = X^T X + I / 100 and mean P^-1 X^T y (X = [1, x]); the
    uncentred predictor makes intercept and slope correlate at about -0.993, a narrow diagonal ridge.
    """

    panel_name = "regression_correlated"
    PRIOR_SD = 10.0

    def __init__(self, n: int = 100, seed: int = 1):
        super().__init__()
        self._setup(["alpha", "beta"])
        rng = np.random.default_rng(seed)
        x = rng.uniform(20.0, 30.0, size=n)
        y = 1.0 + 0.5 * x + rng.normal(size=n)
        self.register_buffer("x", torch.as_tensor(x))
        self.register_buffer("y", torch.as_tensor(y))

    def forward(self, u: Tensor) -> Tensor:
        alpha, beta = u[:, :1], u[:, 1:2]
        residual = self.y.to(u) - alpha - beta * self.x.to(u)
        return 0.5 * residual.square().sum(-1) + 0.5 * u.square().sum(-1) / self.PRIOR_SD**2

    def _posterior(self) -> tuple[np.ndarray, np.ndarray]:
        design = np.stack([np.ones_like(self.x.numpy()), self.x.numpy()], axis=1)
        precision = design.T @ design + np.eye(2) / self.PRIOR_SD**2
        covariance = np.linalg.inv(precision)
        return covariance @ design.T @ self.y.numpy(), covariance

    def truth(self) -> Truth:
        mean, covariance = self._posterior()
        return analytic(mean, covariance, "analytic: conjugate Gaussian posterior")

    def arrays(self) -> dict[str, np.ndarray]:
        return {"x": self.x.numpy(), "y": self.y.numpy()}

    @property
    def mean(self) -> Tensor:
        return torch.as_tensor(self._posterior()[0])

    @property
    def covariance(self) -> Tensor:
        return torch.as_tensor(self._posterior()[1])


class TwoGaussians(Posterior):
    """Equal mixture of N(m, I) and N(-m, I) in `dim` dimensions, m = `separation` / 2 along (1, ..., 1)/sqrt(d).

    With separation 4 the modes are 4 sds apart along a diagonal direction: the density between them is
    1.3 nats below the modes, low enough that a correct sampler crosses often (a test of mixing, not of
    tempering). E(x) = -log(exp(-|x - m|^2 / 2) + exp(-|x + m|^2 / 2)); mean 0, covariance I + m m^T.
    """

    panel_name = "mixture_10"

    def __init__(self, dim: int = 10, separation: float = 4.0):
        super().__init__()
        self._setup([f"x[{i}]" for i in range(dim)])
        self.register_buffer("offset", torch.full((dim,), separation / 2 / math.sqrt(dim), dtype=torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        m = self.offset.to(x)
        both = torch.stack([(x - m).square().sum(-1), (x + m).square().sum(-1)], dim=-1)
        return -torch.logsumexp(-0.5 * both, dim=-1)

    def truth(self) -> Truth:
        m = self.offset.numpy()
        return analytic(np.zeros(self.dim), np.eye(self.dim) + np.outer(m, m), "analytic: mean 0, cov I + m m^T")

    def arrays(self) -> dict[str, np.ndarray]:
        return {"offset": self.offset.numpy()}

    @property
    def mean(self) -> Tensor:
        return torch.zeros(self.dim, dtype=torch.float64)

    @property
    def covariance(self) -> Tensor:
        m = self.offset
        return torch.eye(self.dim, dtype=torch.float64) + torch.outer(m, m)


class _Wrapped(Posterior):
    """A library energy with known moments, under a panel name and parameter names."""

    def __init__(self, energy, names):
        super().__init__()
        self._setup(names)
        self.energy = energy

    def forward(self, x: Tensor) -> Tensor:
        return self.energy(x)

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.energy.energy_and_grad(x)

    def truth(self) -> Truth:
        return analytic(
            self.energy.mean.double().numpy(), self.energy.covariance.double().numpy(), "analytic (closed form)"
        )

    @property
    def mean(self) -> Tensor:
        return self.energy.mean

    @property
    def covariance(self) -> Tensor:
        return self.energy.covariance


class BananaPosterior(_Wrapped):
    """Haario's twisted Gaussian (`energies.Banana`, 2-d, b = 0.03): mean 0, variances 100 and 19."""

    panel_name = "banana"

    def __init__(self):
        super().__init__(Banana(2, b=0.03), ["x1", "x2"])

    def arrays(self) -> dict[str, np.ndarray]:
        return {"b": np.array(self.energy.b)}


class FunnelPosterior(_Wrapped):
    """Neal's funnel (`energies.Funnel`, 10-d): v ~ N(0, 9), x_i | v ~ N(0, e^v). Mean 0, Var v = 9,
    Var x_i = e^4.5. No fixed step size fits both neck and mouth: a correct run is not expected, an honest
    report (divergences) is."""

    panel_name = "funnel_10"

    def __init__(self):
        super().__init__(Funnel(10), ["v"] + [f"x[{i}]" for i in range(1, 10)])
