"""posteriordb posteriors used by the benchmarks outside the panel, as energies on the unconstrained scale.

Each model is the Stan program of posteriordb (github.com/stan-dev/posteriordb) written as a torch `Posterior`:
E(u) = -log p(theta(u) | data) - log |d theta / d u| up to a constant, batched over chains, u unconstrained by
Stan's transforms (a positive parameter enters as its logarithm, an interval one as its logit, an ordered pair as
its first value and the log of the gap), every prior of the Stan program included (flat where it states none).
Where a model cannot be evaluated (a Cholesky factorisation that fails, a recurrence that overflows) the energy is
made +inf, a zero density the samplers reject, as Stan rejects such a proposal, rather than NaN or an exception
(which would stop the whole batch). `constrained()` maps draws of u to posteriordb's parameters in the order of its
reference (`parameter_names`), and `reference()` gives posteriordb's reference moments of those parameters (Stan
NUTS, 10 chains x 1,000 thinned draws). Data and moments: `benchmarks/data/posteriordb.json` (each posterior's
data, the fields its model reads, and the reference's `parameter_names`, `mean`, `sd`, `mcse_mean`).

Imported as `_posteriordb` by the scripts in this folder (run as `python benchmarks/<name>.py`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from energies.posteriors import Truth
from energies.posteriors._base import Posterior, normal_log_density

DATA = json.loads((Path(__file__).resolve().parent / "data" / "posteriordb.json").read_text())["posteriors"]


class _Posteriordb(Posterior):
    """A posteriordb posterior: `key` names it in the data file; `self.data` is its data, `reference()` its
    reference moments, `constrained()` maps draws of u to its parameters (through `to_constrained`)."""

    key: str

    def __init__(self, param_names: list[str]) -> None:
        super().__init__()
        self._setup(param_names)
        self.data = DATA[self.key]["data"]

    def _tensor(self, name: str) -> Tensor:
        return torch.as_tensor(np.asarray(self.data[name], dtype=np.float64))

    def constrained(self, draws: np.ndarray) -> np.ndarray:
        """(..., d) unconstrained draws -> posteriordb's parameters, in the reference's order."""
        u = torch.as_tensor(np.asarray(draws, dtype=np.float64)).reshape(-1, self.dim)
        with torch.no_grad():
            theta = self.to_constrained(u)
        return theta.numpy().reshape(*draws.shape[:-1], theta.shape[-1])

    def to_constrained(self, u: Tensor) -> Tensor:
        """(n, d) unconstrained points -> (n, p) posteriordb parameters."""
        raise NotImplementedError

    def reference(self) -> Truth:
        ref = DATA[self.key]["reference"]
        return Truth(np.asarray(ref["mean"]), np.asarray(ref["sd"]), np.asarray(ref["mcse_mean"]), "posteriordb")


class _Regression(_Posteriordb):
    """A posteriordb regression on the unconstrained scale: the coefficients as they are, log sigma last."""

    def __init__(self, coefficients: list[str]) -> None:
        super().__init__([*coefficients, "log_sigma"])

    def constrained(self, draws: np.ndarray) -> np.ndarray:
        """(..., d) unconstrained draws -> posteriordb's parameters (the coefficients, then sigma)."""
        return np.concatenate([draws[..., :-1], np.exp(draws[..., -1:])], axis=-1)


class Kilpisjarvi(_Regression):
    """alpha ~ N(pmualpha, psalpha^2), beta ~ N(pmubeta, psbeta^2), sigma flat on (0, inf),
    y ~ N(alpha + beta x, sigma^2)."""

    key = "kilpisjarvi_mod-kilpisjarvi"

    def __init__(self) -> None:
        super().__init__(["alpha", "beta"])
        self.x, self.y = self._tensor("x"), self._tensor("y")

    def forward(self, u: Tensor) -> Tensor:
        alpha, beta, log_sigma = u[:, 0], u[:, 1], u[:, 2]
        d = self.data
        log_p = normal_log_density(alpha, d["pmualpha"], d["psalpha"]) + normal_log_density(
            beta, d["pmubeta"], d["psbeta"]
        )
        mean = alpha[:, None] + beta[:, None] * self.x.to(u)
        log_p = log_p + normal_log_density(self.y.to(u), mean, torch.exp(log_sigma)[:, None]).sum(-1)
        return -(log_p + log_sigma)


class BayesianLinearRegression(_Regression):
    """beta ~ N(0, 10^2 I), sigma ~ HalfNormal(0, 10), y ~ N(X beta, sigma^2)."""

    key = "sblrc-blr"

    def __init__(self) -> None:
        super().__init__([f"beta[{j}]" for j in range(1, 6)])
        self.X, self.y = self._tensor("X"), self._tensor("y")

    def forward(self, u: Tensor) -> Tensor:
        beta, log_sigma = u[:, :-1], u[:, -1]
        sigma = torch.exp(log_sigma)
        log_p = normal_log_density(beta, 0.0, 10.0).sum(-1) + normal_log_density(sigma, 0.0, 10.0)
        log_p = log_p + normal_log_density(self.y.to(u), beta @ self.X.to(u).T, sigma[:, None]).sum(-1)
        return -(log_p + log_sigma)


class _Interaction(_Regression):
    """y ~ N(b1 + b2 a + b3 c + b4 a c, sigma^2) with flat priors on b, and `sigma_prior` (log p(sigma), up to a
    constant; flat by default)."""

    outcome: str
    first: str
    second: str

    def __init__(self) -> None:
        super().__init__([f"beta[{j}]" for j in range(1, 5)])
        self.y, self.a, self.c = (self._tensor(name) for name in (self.outcome, self.first, self.second))

    def forward(self, u: Tensor) -> Tensor:
        b, log_sigma = u[:, :-1], u[:, -1]
        a, c, y = self.a.to(u), self.c.to(u), self.transform(self.y.to(u))
        mean = b[:, :1] + b[:, 1:2] * a + b[:, 2:3] * c + b[:, 3:4] * (a * c)
        log_p = normal_log_density(y, mean, torch.exp(log_sigma)[:, None]).sum(-1)
        return -(log_p + self.sigma_prior(log_sigma) + log_sigma)

    def transform(self, y: Tensor) -> Tensor:
        return y

    def sigma_prior(self, log_sigma: Tensor) -> Tensor:
        return torch.zeros_like(log_sigma)


class Earnings(_Interaction):
    """log(earn) on height, male and height x male; sigma flat."""

    key, outcome, first, second = "earnings-logearn_interaction", "earn", "height", "male"

    def transform(self, y: Tensor) -> Tensor:
        return torch.log(y)


class KidIQ(_Interaction):
    """kid_score on mom_hs, mom_iq and their product; sigma ~ HalfCauchy(0, 2.5)."""

    key, outcome, first, second = "kidiq-kidscore_interaction", "kid_score", "mom_hs", "mom_iq"

    def sigma_prior(self, log_sigma: Tensor) -> Tensor:
        return -torch.log1p((torch.exp(log_sigma) / 2.5).square())


def linear_recurrence(c: Tensor, b: Tensor) -> Tensor:
    """Every row's s_t = c s_(t-1) + b_t (t = 1..T, s_0 = 0) without a Python loop over t: (n,) coefficients c and
    (n, T) inputs b -> (n, T) states s_t = sum_(j <= t) c^(t-j) b_j (b times the lower-triangular matrix of powers
    of c), summed by recursive doubling: ceil(log2 T) steps (8 for T = 200) of O(T) work per row.

    The closed form as a product with the T x T matrix of powers gives the same sums; at 8 chains and T = 200 (one
    thread, GARCH's energy and gradient) it took 6 ms gathering the matrix and 1.7 ms as a grouped conv1d, against
    0.9 ms here. The partial sums hold powers up to c^(T-1): for |c| > 1 they overflow float64 in long series
    (T = 200: |c| > ~35); a caller whose c can be that large handles those rows."""
    s, power, shift = b, c[:, None], 1
    while shift < b.shape[-1]:
        # s_t holds the terms j in (t - shift, t]; adding c^shift s_(t - shift) brings in (t - 2 shift, t - shift]
        s = torch.cat([s[:, :shift], s[:, shift:] + power * s[:, :-shift]], dim=-1)
        power, shift = power * power, 2 * shift
    return s


class Arma11(_Posteriordb):
    """ARMA(1, 1) (posteriordb arma-arma11): mu ~ N(0, 10^2), phi, theta ~ N(0, 2^2) (no stationarity
    constraint), sigma ~ HalfCauchy(0, 2.5); err_1 = y_1 - (mu + phi mu), err_t = y_t - (mu + phi y_(t-1) +
    theta err_(t-1)), err_t ~ N(0, sigma^2). Parameters (mu, phi, theta, log sigma)."""

    key = "arma-arma11"

    def __init__(self) -> None:
        super().__init__(["mu", "phi", "theta", "log_sigma"])
        self.y = self._tensor("y")

    def forward(self, u: Tensor) -> Tensor:
        mu, phi, theta, log_sigma = u.unbind(-1)
        y = self.y.to(u)
        # err_t = a_t - theta err_(t-1), a_t = y_t - mu - phi y_(t-1), with y_0 = mu (Stan's nu[1] = mu + phi mu)
        previous = torch.cat([mu[:, None], y[:-1].expand(u.shape[0], -1)], dim=-1)
        a = y - mu[:, None] - phi[:, None] * previous
        c = -theta
        # For |theta| > ~35, theta^(T-1) overflows and the recurrence's sums would meet inf - inf = NaN, which is no
        # density. There the exact energy is astronomically large anyway (err_T holds theta^(T-1) a_1; Stan's own
        # loop overflows err_t^2 already at |theta| > ~6), so those rows get energy +inf (zero density: the
        # sampler rejects the point), evaluated at c = 0 so that nothing non-finite enters their gradient. The
        # same goes for a row whose errors overflow at a smaller |theta| (|a_j| beyond ~1e308 / |theta|^(T-1)).
        fits = torch.isfinite(c.detach().abs() ** (y.shape[0] - 1))
        err = linear_recurrence(torch.where(fits, c, 0.0), a)
        fits = fits & torch.isfinite(err).all(-1)
        err = torch.where(fits[:, None], err, 0.0)
        log_p = normal_log_density(mu, 0.0, 10.0) + normal_log_density(phi, 0.0, 2.0)
        log_p = log_p + normal_log_density(theta, 0.0, 2.0) - torch.log1p((torch.exp(log_sigma) / 2.5).square())
        log_p = log_p - 0.5 * (err * torch.exp(-log_sigma)[:, None]).square().sum(-1) - y.shape[0] * log_sigma
        return torch.where(fits, -(log_p + log_sigma), torch.inf)

    def to_constrained(self, u: Tensor) -> Tensor:
        return torch.cat([u[:, :3], torch.exp(u[:, 3:])], dim=-1)


class Garch11(_Posteriordb):
    """GARCH(1, 1) (posteriordb garch-garch11): flat priors on mu, alpha0 > 0, alpha1 in (0, 1) and beta1 in
    (0, 1 - alpha1); sigma_1 = sigma1 (data), sigma_t^2 = alpha0 + alpha1 (y_(t-1) - mu)^2 + beta1 sigma_(t-1)^2,
    y_t ~ N(mu, sigma_t^2).

    Parameters, Stan's transforms: (mu, log alpha0, logit alpha1, logit(beta1 / (1 - alpha1))); log |Jacobian| =
    log alpha0 + log alpha1 + log(1 - alpha1) + log(1 - alpha1) + log v + log(1 - v), v = beta1 / (1 - alpha1)
    (the upper bound 1 - alpha1 scales v)."""

    key = "garch-garch11"

    def __init__(self) -> None:
        super().__init__(["mu", "log_alpha0", "logit_alpha1", "logit_beta1_share"])
        self.y = self._tensor("y")

    def _constrain(self, u: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        mu, log_alpha0, logit_alpha1, logit_share = u.unbind(-1)
        # 1 - alpha1 as sigmoid(-x), not 1 - sigmoid(x): exact where alpha1 rounds to 1
        beta1 = torch.sigmoid(-logit_alpha1) * torch.sigmoid(logit_share)
        return mu, torch.exp(log_alpha0), torch.sigmoid(logit_alpha1), beta1

    def forward(self, u: Tensor) -> Tensor:
        mu, alpha0, alpha1, beta1 = self._constrain(u)
        y = self.y.to(u)
        # sigma_t^2 = beta1 sigma_(t-1)^2 + b_t: b_1 = sigma1^2, b_t = alpha0 + alpha1 (y_(t-1) - mu)^2; 0 <= beta1 < 1,
        # so the powers of beta1 stay in [0, 1]
        b = alpha0[:, None] + alpha1[:, None] * (y[:-1] - mu[:, None]).square()
        b = torch.cat([torch.full_like(b[:, :1], float(self.data["sigma1"]) ** 2), b], dim=-1)
        variance = linear_recurrence(beta1, b)
        log_p = -0.5 * ((y - mu[:, None]).square() / variance + torch.log(variance)).sum(-1)
        log_alpha0, logit_alpha1, logit_share = u[:, 1], u[:, 2], u[:, 3]
        log_jacobian = log_alpha0 + F.logsigmoid(logit_alpha1) + 2 * F.logsigmoid(-logit_alpha1)
        log_jacobian = log_jacobian + F.logsigmoid(logit_share) + F.logsigmoid(-logit_share)
        return -(log_p + log_jacobian)

    def to_constrained(self, u: Tensor) -> Tensor:
        return torch.stack(self._constrain(u), dim=-1)


class GpPoisRegr(_Posteriordb):
    """Latent-GP Poisson regression (posteriordb gp_pois_regr-gp_pois_regr): rho ~ Gamma(25, 4), alpha ~
    HalfNormal(0, 2), f_tilde ~ N(0, I); f = L f_tilde, L L^T = alpha^2 exp(-(x_i - x_j)^2 / (2 rho^2)) + 1e-10 I
    (Stan's gp_exp_quad_cov and jitter); k_i ~ Poisson(exp(f_i)). Parameters (log rho, log alpha, f_tilde[11]);
    log |Jacobian| = log rho + log alpha. A covariance whose Cholesky factorisation fails (extreme rho or alpha:
    Stan's cholesky_decompose throws and the proposal is rejected) gives energy +inf for that row."""

    key = "gp_pois_regr-gp_pois_regr"
    JITTER = 1e-10

    def __init__(self) -> None:
        n = DATA[self.key]["data"]["N"]
        super().__init__(["log_rho", "log_alpha", *(f"f_tilde[{i}]" for i in range(1, n + 1))])
        self.x, self.k = self._tensor("x"), self._tensor("k")

    def _f(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """f = L f_tilde per row, and whether the row's factorisation succeeded (f is computed from the identity
        where it did not, so that no NaN reaches the gradient)."""
        rho, alpha, f_tilde = torch.exp(u[:, 0]), torch.exp(u[:, 1]), u[:, 2:]
        x = self.x.to(u)
        squared = (x[:, None] - x[None, :]).square()
        eye = torch.eye(x.shape[0], dtype=u.dtype, device=u.device)
        cov = alpha[:, None, None].square() * torch.exp(-0.5 * squared / rho[:, None, None].square())
        cov = cov + self.JITTER * eye
        with torch.no_grad():
            factor, info = torch.linalg.cholesky_ex(cov)
            ok = (info == 0) & torch.isfinite(factor).all(-1).all(-1)
        factor = torch.linalg.cholesky_ex(torch.where(ok[:, None, None], cov, eye)).L
        return (factor @ f_tilde.unsqueeze(-1)).squeeze(-1), ok

    def forward(self, u: Tensor) -> Tensor:
        log_rho, log_alpha, f_tilde = u[:, 0], u[:, 1], u[:, 2:]
        f, ok = self._f(u)
        log_p = 24.0 * log_rho - 4.0 * torch.exp(log_rho) + normal_log_density(torch.exp(log_alpha), 0.0, 2.0)
        log_p = log_p - 0.5 * f_tilde.square().sum(-1) + (self.k.to(u) * f - torch.exp(f)).sum(-1)
        return torch.where(ok, -(log_p + log_rho + log_alpha), torch.inf)

    def to_constrained(self, u: Tensor) -> Tensor:
        return torch.cat([torch.exp(u[:, :2]), self._f(u)[0]], dim=-1)


class LowDimGaussMix(_Posteriordb):
    """Two-component normal mixture (posteriordb low_dim_gauss_mix-low_dim_gauss_mix): ordered mu ~ N(0, 2^2)
    each, sigma_k ~ HalfNormal(0, 2), theta ~ Beta(5, 5); y_n ~ theta N(mu_1, sigma_1^2) + (1 - theta)
    N(mu_2, sigma_2^2) (Stan's log_mix).

    Parameters, Stan's transforms: (mu_1, log(mu_2 - mu_1), log sigma_1, log sigma_2, logit theta); log |Jacobian|
    = log(mu_2 - mu_1) + log sigma_1 + log sigma_2 + log theta + log(1 - theta)."""

    key = "low_dim_gauss_mix-low_dim_gauss_mix"

    def __init__(self) -> None:
        super().__init__(["mu[1]", "log_mu_gap", "log_sigma[1]", "log_sigma[2]", "logit_theta"])
        self.y = self._tensor("y")

    def forward(self, u: Tensor) -> Tensor:
        log_gap, log_sigma, logit_theta = u[:, 1], u[:, 2:4], u[:, 4]
        mu = torch.stack([u[:, 0], u[:, 0] + torch.exp(log_gap)], dim=-1)  # ordered: mu_2 = mu_1 + exp(u_2)
        sigma = torch.exp(log_sigma)
        log_theta, log1m_theta = F.logsigmoid(logit_theta), F.logsigmoid(-logit_theta)
        log_p = normal_log_density(sigma, 0.0, 2.0).sum(-1) + normal_log_density(mu, 0.0, 2.0).sum(-1)
        log_p = log_p + 4.0 * (log_theta + log1m_theta)  # Beta(5, 5)
        # normal_lpdf(y_n | mu_k, sigma_k) up to -log sqrt(2 pi), which both components share: (n, N, 2)
        component = -0.5 * ((self.y.to(u)[None, :, None] - mu[:, None, :]) / sigma[:, None, :]).square()
        component = component - log_sigma[:, None, :]
        mixture = torch.logaddexp(log_theta[:, None] + component[..., 0], log1m_theta[:, None] + component[..., 1])
        log_jacobian = log_gap + log_sigma.sum(-1) + log_theta + log1m_theta
        return -(log_p + mixture.sum(-1) + log_jacobian)

    def to_constrained(self, u: Tensor) -> Tensor:
        mu_1 = u[:, :1]
        return torch.cat([mu_1, mu_1 + torch.exp(u[:, 1:2]), torch.exp(u[:, 2:4]), torch.sigmoid(u[:, 4:])], dim=-1)


REGRESSIONS = {
    "kilpisjarvi": Kilpisjarvi,
    "sblrc_blr": BayesianLinearRegression,
    "earnings": Earnings,
    "kidiq": KidIQ,
}


MODELS = {
    **REGRESSIONS,
    "arma11": Arma11,
    "garch11": Garch11,
    "gp_pois_regr": GpPoisRegr,
    "low_dim_gauss_mix": LowDimGaussMix,
}
