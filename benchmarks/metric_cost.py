"""What a dense metric costs per transition, against the diagonal one, as the dimension grows.

    PYTHONPATH=. python benchmarks/metric_cost.py [--dims 2,10,50,100,200,500,1000] [--chains 8] [--repeats 5]

`hmc` (10 leapfrog steps) and `mala` on a d-dimensional standard Gaussian (the cheapest gradient there is, so
the metric's share of the time is as large as it gets), float64, fixed step size and metric (no warm-up), one
torch thread. The two metrics of one (sampler, d) run alternately in the same process, `repeats` times each,
and the minimum time per transition is kept (the machine is shared: the minimum is the least disturbed run).
Writes `benchmarks/results/metric_cost.json` and prints the dense / diag time ratio per (sampler, d).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ebm_samplers  # noqa: E402
from energies import Gaussian  # noqa: E402

SAMPLERS = {"hmc": dict(n_leapfrog=10, step_size=0.1), "mala": dict(step_size=0.5)}


def seconds_per_transition(sampler: str, d: int, metric: str, chains: int, n_steps: int) -> float:
    energy = Gaussian(torch.zeros(d, dtype=torch.float64))
    init = torch.randn(chains, d, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    params = {**SAMPLERS[sampler], "metric": metric, "inverse_mass": 1.0}
    start = time.perf_counter()
    ebm_samplers.sample(energy, sampler, init=init, n_steps=n_steps, seed=0, backend="torch", **params)
    return (time.perf_counter() - start) / n_steps


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", default="2,10,50,100,200,500,1000")
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-steps", type=int, default=200)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "metric_cost.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = {}
    for sampler in SAMPLERS:
        for d in (int(x) for x in args.dims.split(",")):
            times = {"diag": [], "dense": []}
            for _ in range(args.repeats):
                for metric in times:
                    times[metric].append(seconds_per_transition(sampler, d, metric, args.chains, args.n_steps))
            best = {metric: min(values) for metric, values in times.items()}
            results[f"{sampler}/{d}"] = {
                "sampler": sampler,
                "dim": d,
                "chains": args.chains,
                "ms_per_transition_diag": 1e3 * best["diag"],
                "ms_per_transition_dense": 1e3 * best["dense"],
                "dense_over_diag": best["dense"] / best["diag"],
            }
            figures = results[f"{sampler}/{d}"]
            print(sampler, d, {k: round(v, 4) for k, v in figures.items() if k.startswith(("ms", "de"))},
                  flush=True)  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
