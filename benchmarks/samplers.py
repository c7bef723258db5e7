"""Sampler benchmark: ESS per gradient and per second, acceptance and R-hat for every registered kernel.

    python benchmarks/samplers.py [--chains 8] [--warmup 500] [--draws 1000] [--out benchmarks/samplers.json]

Targets: the default two-mode mixture, a 100-d Gaussian with variances log-spaced from 0.01 to 1, Neal's
funnel (10-d) and Haario's banana (b = 0.03, 2-d). For each kernel and target it prints `name: value` lines:

* `ess_per_grad`: minimum bulk ESS over coordinates / gradient evaluations per chain (warm-up included:
  the cost of getting the result);
* `ess_per_second` (wall time on this machine, warm-up included) and `ess_per_grad_time`: the same ESS
  per unit of "bare gradient time" (wall time / time of one batched energy+gradient call measured in the
  same run), which is comparable across machines because it divides out the machine's speed;
* `acceptance` (mean over kept draws), `max_rhat`, `divergent` (fraction of kept draws, HMC only);
* `max_variance_error`: max over coordinates of |pooled sample variance / true variance - 1|, which
  shows the bias of unadjusted kernels (and the funnel's unexplored neck and mouth) that ESS cannot.

Step sizes: MALA and HMC adapt theirs in warm-up (HMC also its diagonal metric). The unadjusted kernels
cannot adapt a step size (no acceptance to aim at), so ULA uses the step MALA adapted on the same target
and underdamped Langevin the step and metric HMC adapted (same dynamics time units; without the metric
that step is unstable before its own metric adaptation starts); when a run blows up (NaN) the step is
halved, up to three times, and the step used is reported.
Other registered kernels run with their defaults, and are skipped (with the reason) when they need an
energy of a special kind.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from _report import mean_seconds, write_json

import ebm_samplers
from diagnostics import summary
from energies import Banana, Energy, Funnel, Gaussian, GaussianMixture

#: kernels with known settings run first, in this order (the unadjusted ones borrow adapted steps)
ORDERED = ("mala", "hmc", "ula", "underdamped_langevin")
BORROWED_STEP = {"ula": "mala", "underdamped_langevin": "hmc"}
#: Samplers whose one "step" is not one transition, so per-step budgets make no sense for them:
#: each annealed_langevin draw is a whole pass through its noise schedule (n_levels x steps_per_level).
NOT_PER_STEP = {"annealed_langevin": "each draw is a full annealing pass (thousands of Langevin steps)"}


def targets() -> dict[str, Energy]:
    return {
        "mixture": GaussianMixture(),
        "gauss100": Gaussian(torch.zeros(100), torch.logspace(-2, 0, 100)),
        "funnel10": Funnel(10),
        "banana": Banana(2, b=0.03),
    }


class CountingEnergy(Energy):
    """Delegates to `target` and counts gradient evaluations per chain (rows evaluated / chains)."""

    def __init__(self, target: Energy, n_chains: int):
        super().__init__()
        self.target, self.n_chains, self.rows = target, n_chains, 0
        self.event_shape = target.event_shape

    def forward(self, x):
        self.rows += x.shape[0]
        return self.target(x)

    def energy_and_grad(self, x):
        self.rows += x.shape[0]
        return self.target.energy_and_grad(x)

    @property
    def gradients_per_chain(self) -> float:
        return self.rows / self.n_chains

    @property
    def name(self) -> str:
        return self.target.name


def bare_gradient_seconds(target: Energy, init: torch.Tensor, repeats: int = 200) -> float:
    """Median-free but warm: the mean time of one batched energy+gradient call at the initial points."""
    return mean_seconds(lambda: target.energy_and_grad(init), warmup=10, calls=repeats)


def run_one(name: str, target: Energy, init: torch.Tensor, args, params: dict) -> dict:
    counting = CountingEnergy(target, init.shape[0])
    start = time.perf_counter()
    trace = ebm_samplers.sample(
        counting, name, init=init, n_steps=args.draws, warmup=args.warmup, seed=args.seed, progress=False, **params
    )
    seconds = time.perf_counter() - start
    table = summary(trace)
    ess = float(table["ess_bulk"].min())
    result = {
        "min_ess_bulk": ess,
        "gradients_per_chain": counting.gradients_per_chain,
        "seconds": seconds,
        "ess_per_grad": ess / counting.gradients_per_chain,
        "ess_per_second": ess / seconds,
        "acceptance": float(trace.stats["acceptance_rate"].float().mean()),
        "max_rhat": float(table["r_hat"].max()),
    }
    try:
        variances = trace.draws.double().reshape(-1, trace.draws.shape[-1]).var(0)
        result["max_variance_error"] = float((variances / target.covariance.double().diagonal() - 1).abs().max())
    except NotImplementedError:
        pass
    if "diverging" in trace.stats:
        result["divergent"] = float(trace.stats["diverging"].float().mean())
    if "final_inverse_mass" in trace.attrs:
        result["inverse_mass"] = trace.attrs["final_inverse_mass"]
    if "final_step_size" in trace.attrs:
        result["step_size"] = float(torch.tensor(trace.attrs["final_step_size"]).mean())
    return result


def run_unadjusted(name: str, target: Energy, init: torch.Tensor, args, params: dict) -> dict:
    """An unadjusted kernel at the borrowed step, halved (up to 3 times) while the run blows up."""
    step_size = params["step_size"]
    for _ in range(3):
        try:
            result = run_one(name, target, init, args, {**params, "step_size": step_size})
        except FloatingPointError:
            step_size /= 2
            continue
        result["step_size"] = step_size
        return result
    return run_one(name, target, init, args, {**params, "step_size": step_size})


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # a shared machine: one thread keeps timings comparable between kernels

    names = [n for n in ORDERED if n in ebm_samplers.available_samplers()]
    names += [n for n in ebm_samplers.available_samplers() if n not in ORDERED]
    results: dict[str, dict] = {}
    for target_name, target in targets().items():
        init = torch.randn((args.chains, *target.event_shape), generator=torch.Generator().manual_seed(args.seed))
        grad_seconds = bare_gradient_seconds(target, init)
        print(f"{target_name}/bare_gradient_seconds: {grad_seconds:.3e}")
        for name in names:
            key = f"{name}/{target_name}"
            if name in NOT_PER_STEP:
                print(f"{key}/skipped: {NOT_PER_STEP[name]}")
                results[key] = {"skipped": NOT_PER_STEP[name]}
                continue
            params = {}
            if name in BORROWED_STEP:
                lender = results.get(f"{BORROWED_STEP[name]}/{target_name}", {})
                if "step_size" not in lender:
                    print(f"{key}/skipped: no adapted step of {BORROWED_STEP[name]} to borrow")
                    continue
                params["step_size"] = lender["step_size"]
                if "inverse_mass" in lender:
                    params["inverse_mass"] = lender["inverse_mass"]
            try:
                result = run_unadjusted(name, target, init, args, params) if name in BORROWED_STEP else None
                result = result or run_one(name, target, init, args, params)
            except (TypeError, ValueError, NotImplementedError, FloatingPointError) as error:
                print(f"{key}/skipped: {type(error).__name__}: {str(error).splitlines()[0]}")
                results[key] = {"skipped": f"{type(error).__name__}: {error}"}
                continue
            result["ess_per_grad_time"] = result["min_ess_bulk"] / (result["seconds"] / grad_seconds)
            results[key] = result
            for field, value in result.items():
                if field != "inverse_mass":
                    print(f"{key}/{field}: {value:.4g}")

    payload = {"settings": vars(args), "results": results}
    out = write_json(args.out, payload, indent=2)
    print(f"written: {out}")
    print(markdown_table(results))
    return payload


def markdown_table(results: dict[str, dict]) -> str:
    rows = [
        "| kernel | target | step | min ESS/grad | min ESS/s | ESS per bare-grad time | acceptance | max R-hat "
        "| max var. error | divergent |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in results.items():
        kernel, target = key.split("/")
        if "skipped" in r:
            rows.append(f"| {kernel} | {target} | skipped | | | | | | | |")
            continue
        divergent = f"{r['divergent']:.3f}" if "divergent" in r else ""
        rows.append(
            f"| {kernel} | {target} | {r.get('step_size', float('nan')):.3g} | {r['ess_per_grad']:.2e} | "
            f"{r['ess_per_second']:.3g} | {r['ess_per_grad_time']:.2e} | {r['acceptance']:.3f} | "
            f"{_fmt(r['max_rhat'])} | {r.get('max_variance_error', float('nan')):.3f} | {divergent} |"
        )
    return "\n".join(rows)


def _fmt(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else str(value)


if __name__ == "__main__":
    main()
