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
NUTS, 10 chains x 1,000 thinned draws; data and moments in `benchmarks/data/posteriordb.json`) with
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
from pathlib import Path

import torch
from _posteriordb import REGRESSIONS
from _report import write_json
from outside_panel import run as run_default

from ebm_samplers.adaptation.metric import MetricAdaptation

ROOT = Path(__file__).resolve().parent

TARGETS = REGRESSIONS
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
    """The outside panel's default run (`outside_panel.run`: 1,000 warm-up + 1,500 draws) under `rule`."""
    with shrinkage(rule):
        return run_default(name, sampler, seed=seed, warmup=1000, draws=1500)


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
                if "error" in result:
                    print(f"{name} {sampler} {rule}: error {result['error']}", flush=True)
                    continue
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
