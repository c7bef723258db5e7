"""posteriordb posteriors used by the benchmarks outside the panel, as energies on the unconstrained scale.

Each model is the Stan program of posteriordb (github.com/stan-dev/posteriordb) written as a torch `Posterior`:
E(u) = -log p(theta(u) | data) - log |d theta / d u| up to a constant, u unconstrained (Stan's transforms: a
positive parameter enters as its logarithm), batched over chains. `constrained()` maps draws of u to posteriordb's
parameters in the order of its reference (`parameter_names`), and `reference()` gives posteriordb's reference
moments of those parameters (Stan NUTS, 10 chains x 1,000 thinned draws). Data and moments:
`benchmarks/data/posteriordb.json` (each posterior's data, the fields its model reads, and the reference's
`parameter_names`, `mean`, `sd`, `mcse_mean`).

Imported as `_posteriordb` by the scripts in this folder (run as `python benchmarks/<name>.py`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from energies.posteriors import Truth
from energies.posteriors._base import Posterior, normal_log_density

DATA = json.loads((Path(__file__).resolve().parent / "data" / "posteriordb.json").read_text())["posteriors"]


class _Regression(Posterior):
    """A posteriordb regression on the unconstrained scale: the coefficients as they are, log sigma last."""

    key: str

    def __init__(self, coefficients: list[str]) -> None:
        super().__init__()
        self._setup([*coefficients, "log_sigma"])
        self.data = DATA[self.key]["data"]

    def _tensor(self, name: str) -> Tensor:
        return torch.as_tensor(np.asarray(self.data[name], dtype=np.float64))

    def constrained(self, draws: np.ndarray) -> np.ndarray:
        """(..., d) unconstrained draws -> posteriordb's parameters (the coefficients, then sigma)."""
        return np.concatenate([draws[..., :-1], np.exp(draws[..., -1:])], axis=-1)

    def reference(self) -> Truth:
        ref = DATA[self.key]["reference"]
        return Truth(np.asarray(ref["mean"]), np.asarray(ref["sd"]), np.asarray(ref["mcse_mean"]), "posteriordb")


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


REGRESSIONS = {
    "kilpisjarvi": Kilpisjarvi,
    "sblrc_blr": BayesianLinearRegression,
    "earnings": Earnings,
    "kidiq": KidIQ,
}
