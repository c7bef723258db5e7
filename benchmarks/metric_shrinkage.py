"""Warm-up metric shrinkage: toward the metric in use (shipped) or toward Stan's fixed 1e-3 I, on regressions
whose posteriors have small or strongly correlated scales.

    PYTHONPATH=. python benchmarks/metric_shrinkage.py                # ~15 CPU minutes
    PYTHONPATH=. python benchmarks/metric_shrinkage.py --samplers mala --out /tmp/quick

At the end of each slow window warm-up sets the metric to n / (n + 5) S + 1e-3 * 5 / (n + 5) P, S the pooled
sample (co)variance of the window's n draws (`ebm_samplers.adaptation.metric`). Stan's P is the identity; the
shipped P is the metric the window's draws were made under. The two differ only where a posterior's scales are
far below 1, or its coordinates strongly correlated: there the fixed ridge, not the draws, sets the metric's
narrow directions. This benchmark runs both rules, defaults otherwise (8 chains, 1,000 warm-up + 1,500 draws,
float64, one thread), on four posteriordb posteriors that are not in the panel, each sampled on the unconstrained
scale (sigma = exp(u)) and judged on the constrained parameters against posteriordb's reference moments (Stan
NUTS, 10 chains x 1,000 thinned draws; data and moments in `benchmarks/data/posteriordb_regressions.json`) with
the panel's checks (`posteriors.judge`). Stan's rule is reproduced by calling the estimator with P = I.

* kilpisjarvi_mod-kilpisjarvi: summer temperature on year (1952-2013, not centred): intercept sd 30, slope sd
  0.0075, correlation ~ -1;
* sblrc-blr: a linear regression whose 5 coefficients have posterior sd ~0.001;
* earnings-logearn_interaction: log earnings on height, sex and their product (flat priors, correlated);
* kidiq-kidscore_interaction: a child's test score on the mother's IQ, schooling and their product.

Writes benchmarks/results/metric_shrinkage.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from _report import write_json
from posteriors import CountingEnergy, judge
from torch import Tensor

import ebm_samplers
from ebm_samplers.adaptation.metric import MetricAdaptation
from energies.posteriors import Truth
from energies.posteriors._base import Posterior, normal_log_density

ROOT = Path(__file__).resolve().parent
DATA = json.loads((ROOT / "data" / "posteriordb_regressions.json").read_text())["posteriors"]


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


TARGETS = {"kilpisjarvi": Kilpisjarvi, "sblrc_blr": BayesianLinearRegression, "earnings": Earnings, "kidiq": KidIQ}
RULES = ("metric_in_use", "stan_identity")


@contextlib.contextmanager
def shrinkage(rule: str):
    """Run warm-up with `rule`: the shipped estimator, or the same one told that the draws were made under the
    identity (Stan's fixed 1e-3 I)."""
    if rule == "metric_in_use":
        yield
        return
    shipped = MetricAdaptation.update
    MetricAdaptation.update = lambda self, iteration, position, in_use=None: shipped(self, iteration, position, None)
    try:
        yield
    finally:
        MetricAdaptation.update = shipped


def run(name: str, sampler: str, rule: str, seed: int) -> dict:
    target = TARGETS[name]()
    counting = CountingEnergy(target)
    init = target.initial_point(8, seed=seed)
    start = time.perf_counter()
    with shrinkage(rule):
        trace = ebm_samplers.sample(counting, sampler, init=init, n_steps=1500, warmup=1000, seed=seed)
    seconds = time.perf_counter() - start
    result = judge(target.constrained(trace.draws.double().numpy()), target.reference())
    grads = counting.rows / init.shape[0]
    ess = result["min_ess_bulk"] or 0.0
    result.update(
        seconds=round(seconds, 1),
        ess_per_1k_grads_batch=1000 * ess / grads,
        step_size_median=float(trace.stats["step_size"][:, -1].double().median()),
        divergences=int(trace.stats["diverging"].sum()) if "diverging" in trace.stats else None,
    )
    if "n_leapfrog" in trace.stats:
        result["mean_n_leapfrog"] = float(trace.stats["n_leapfrog"].double().mean())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--samplers", default="mala,nuts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "results"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    results: dict = {"seed": args.seed, "chains": 8, "warmup": 1000, "draws": 1500, "runs": {}}
    for name in args.targets.split(","):
        for sampler in args.samplers.split(","):
            for rule in RULES:
                result = run(name, sampler, rule, args.seed)
                results["runs"].setdefault(name, {}).setdefault(sampler, {})[rule] = result
                verdict = "pass" if result["passed"] else f"fail {result['failed_checks']}"
                print(
                    f"{name} {sampler} {rule}: {verdict}, min ESS {result['min_ess_bulk']:.0f}, "
                    f"ESS per 1,000 gradients {result['ess_per_1k_grads_batch']:.1f}, step "
                    f"{result['step_size_median']:.3g}, {result['seconds']:.0f} s",
                    flush=True,
                )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metric_shrinkage.json", results, indent=1)


if __name__ == "__main__":
    main()
