"""Default samplers on a bounded support: a 2-d standard Gaussian restricted to the box [-1, 1.5]^2 (+inf outside).

    OMP_NUM_THREADS=1 python benchmarks/bounded_support.py [--out benchmarks/results/bounded_support.json]

An energy of +inf outside a support is zero density, a legitimate value: every Metropolis-corrected kernel rejects a
proposal there and counts it as a divergence. What differs is how each sampler's warm-up reacts. Per sampler (its
defaults, and HMC with a fixed jittered length `n_leapfrog=(5, 15)`), 32 chains from the origin, 200 warm-up +
600 draws, seed 11, one thread, printed as `name: value` lines and written as JSON:

* `step_size` (the adapted step: the chains' median; `smallest_step_size`, the smallest chain's),
  `trajectory_length` (ChEES's T), `mean_n_leapfrog` per chain and transition, and for NUTS
  `mean_n_leapfrog_batch`, what the lockstep batch computed per transition (its longest tree);
* `min_ess_bulk` over both coordinates, pooled chains, and `ess_per_1000_gradients`: that ESS per 1,000
  gradient evaluations per chain over the whole run (warm-up included; NUTS: what its chains used on average);
* `acceptance`, `divergences` (kept draws), `mean_error_z`: the largest |mean - truth| / MCSE of both coordinates
  against the truncated normal's exact mean; `seconds`.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from _report import write_json

import ebm_samplers
from diagnostics.convergence import convergence_figures

LOW, HIGH = -1.0, 1.5
RUNS = [("nuts", {}), ("hmc", {}), ("hmc", {"n_leapfrog": (5, 15)}), ("mala", {})]


def box_gaussian(x: torch.Tensor) -> torch.Tensor:
    inside = ((x >= LOW) & (x <= HIGH)).all(-1)
    return torch.where(inside, 0.5 * x.square().sum(-1), torch.full_like(x[:, 0], math.inf))


def truncated_mean() -> float:
    """E[x] of N(0, 1) restricted to [LOW, HIGH]: (phi(LOW) - phi(HIGH)) / (Phi(HIGH) - Phi(LOW))."""
    phi = lambda t: math.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda t: 0.5 * (1 + math.erf(t / math.sqrt(2)))  # noqa: E731
    return (phi(LOW) - phi(HIGH)) / (cdf(HIGH) - cdf(LOW))


def run(sampler: str, options: dict, chains: int, warmup: int, draws: int, seed: int) -> dict:
    start = time.perf_counter()
    init = torch.zeros(chains, 2, dtype=torch.float64)
    trace = ebm_samplers.sample(box_gaussian, sampler, init=init, n_steps=draws, warmup=warmup, seed=seed, **options)
    seconds = time.perf_counter() - start
    values = trace.draws.double().numpy()
    figures = convergence_figures(values)
    ess = figures["ess_bulk"]
    error_z = np.max(np.abs(values.mean(axis=(0, 1)) - truncated_mean()) / figures["mcse_mean"])
    n_leapfrog = trace.stats.get("n_leapfrog")
    steps = float(n_leapfrog.double().mean()) if n_leapfrog is not None else 1.0
    # gradients per chain over the run: warm-up transitions cost about what sampling ones do
    gradients = steps * (warmup + draws)
    return {
        "sampler": sampler,
        "options": {key: list(value) if isinstance(value, tuple) else value for key, value in options.items()},
        "step_size": float(np.median(trace.attrs["final_step_size"])),
        "smallest_step_size": float(np.min(trace.attrs["final_step_size"])),
        "trajectory_length": trace.attrs.get("trajectory_length"),
        "mean_n_leapfrog": steps,
        "mean_n_leapfrog_batch": float(batch.double().mean())
        if (batch := trace.stats.get("n_leapfrog_batch")) is not None
        else None,
        "min_ess_bulk": float(ess.min()),
        "ess_per_1000_gradients": float(ess.min()) / gradients * 1000,
        "acceptance": float(trace.stats["acceptance_rate"].double().mean()),
        "divergences": int(trace.stats["diverging"].sum()),
        "mean_error_z": float(error_z),
        "seconds": seconds,
    }


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--draws", type=int, default=600)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bounded_support.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = []
    for sampler, options in RUNS:
        result = run(sampler, options, args.chains, args.warmup, args.draws, args.seed)
        label = sampler + "".join(f" {key}={value}" for key, value in options.items())
        for key, value in result.items():
            if isinstance(value, float):
                print(f"{label}: {key}: {np.round(value, 4)}", flush=True)
        results.append(result)
    write_json(args.out, {"target": f"N(0, I_2) on [{LOW}, {HIGH}]^2", **vars(args), "runs": results}, indent=1)
    return results


if __name__ == "__main__":
    main()
