"""ChEES-HMC (hmc's default) against HMC with a fixed jittered length (n_leapfrog=(5, 15)), same runs otherwise.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/chees.py [--chains 16] [--warmup 1000] [--draws 1000] \
        [--out benchmarks/results/chees.json]

Targets: a 100-d Gaussian with variances log-spaced over two orders of magnitude (0.1 .. 10) and a 2-d Gaussian
with correlation 0.99 (unit variances). Both variants adapt their step size and diagonal metric in the same
warm-up; ChEES also its integration time T. Printed per target and variant (`name: value` lines):

* `min_ess_bulk`: minimum bulk ESS over coordinates (rank-normalised, Vehtari et al. 2021), pooled chains;
* `ess_per_1000_gradients`: that ESS per 1,000 gradient evaluations during sampling, counting what the batch
  computed: chains x, per transition, its longest trajectory (the fixed variant runs 15 steps for every chain,
  masked, whatever a chain drew);
* `trajectory_length` (ChEES's adapted T), `step_size`, `mean_n_leapfrog`, `acceptance`, `max_rhat`,
  `variance_ratio_min/max` (sample / true variance).
Both variants run in the same process, one after the other, with one thread.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import ebm_samplers
from diagnostics.convergence import convergence_figures
from energies import Gaussian


def targets() -> dict[str, tuple[Gaussian, torch.Tensor]]:
    variances = torch.logspace(-1, 1, 100, dtype=torch.float64)
    diagonal = Gaussian(torch.zeros(100, dtype=torch.float64), torch.diag(variances))
    covariance = torch.tensor([[1.0, 0.99], [0.99, 1.0]], dtype=torch.float64)
    correlated = Gaussian(torch.zeros(2, dtype=torch.float64), covariance)
    return {"diagonal_100d": (diagonal, variances), "correlated_2d_rho099": (correlated, torch.ones(2))}


def run(energy, variances, variant: dict, chains: int, warmup: int, draws: int) -> dict[str, float]:
    dimension = variances.shape[0]
    start = time.perf_counter()
    trace = ebm_samplers.sample(
        energy,
        "hmc",
        init=torch.zeros(chains, dimension, dtype=torch.float64),
        n_steps=draws,
        warmup=warmup,
        seed=0,
        **variant,
    )
    seconds = time.perf_counter() - start
    figures = convergence_figures(trace.draws.numpy())
    steps = trace.stats["n_leapfrog"].double()
    batch_gradients = float(steps.max(0).values.sum()) if "n_leapfrog" not in variant else 15.0 * draws
    ratio = trace.draws.var((0, 1)) / variances
    return {
        "min_ess_bulk": float(figures["ess_bulk"].min()),
        "ess_per_1000_gradients": 1000.0 * float(figures["ess_bulk"].min()) / (chains * batch_gradients),
        "trajectory_length": trace.attrs.get("trajectory_length", float("nan")),
        "step_size": trace.attrs["final_step_size"][0],
        "mean_n_leapfrog": float(steps.mean()),
        "acceptance": float(trace.stats["acceptance_rate"].mean()),
        "max_rhat": float(figures["r_hat"].max()),
        "variance_ratio_min": float(ratio.min()),
        "variance_ratio_max": float(ratio.max()),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/chees.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {}
    for target, (energy, variances) in targets().items():
        for name, variant in (("chees", {}), ("fixed_5_15", {"n_leapfrog": (5, 15)})):
            figures = run(energy, variances, variant, args.chains, args.warmup, args.draws)
            results[f"{target}.{name}"] = figures
            for key, value in figures.items():
                print(f"{target}.{name}.{key}: {value:.4g}", flush=True)
    settings = {"chains": args.chains, "warmup": args.warmup, "draws": args.draws, "threads": 1}
    args.out.write_text(json.dumps({"settings": settings, "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
