"""What NUTS costs per leapfrog step beyond the energy, and what lockstep costs a batch, measured in one run.

    PYTHONPATH=. python benchmarks/nuts_overhead.py [--threads 1] [--out benchmarks/results/nuts_overhead.json]

For each target (2-D correlated Gaussian, 100-d Gaussian with variances log-spaced 0.01..1, both with analytic
gradients; MLP energy 2 -> 64 -> 64 -> 1 through autograd) and chain count (8, 1,000), chains start from exact
draws (the MLP: N(0, I) after a short run) with a fixed step size, and it reports:

    nuts_us_per_leapfrog   CPU time of NUTS transitions / leapfrog steps the batch computed
    hmc_us_per_leapfrog    the same for HMC with 10 leapfrog steps (the same integrator, no tree), same run
    bare_us                one batched energy+gradient evaluation of all chains
    nuts_ratio, hmc_ratio  per-leapfrog time / bare_us: what a step costs beyond its gradient
    ops_per_leapfrog       non-view tensor operations NUTS dispatches per leapfrog step (deterministic; the
                           energy's own operations included, `bare_ops` of them)
    lockstep_waste         leapfrog steps the batch computed / mean leapfrog steps a chain needed
    mean_tree_depth, mean_n_leapfrog, batch_n_leapfrog

Times are CPU time (`time.process_time`, robust to other jobs on a shared machine), medians of repeats;
compare the ratios, measured in the same run, rather than absolute times.
"""

from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

import numpy as np
import torch
from _report import write_json
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import ebm_samplers
from energies import Energy, Gaussian, energy_and_grad

ROOT = Path(__file__).resolve().parents[1]
CHAINS = (8, 1_000)
_VIEWS = {"view", "reshape", "_unsafe_view", "slice", "select", "unsqueeze", "expand", "as_strided", "alias", "t"}
_VIEWS |= {"detach", "squeeze", "_reshape_alias", "transpose"}


class MLPEnergy(Energy):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(2, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1) + 0.5 * x.square().sum(-1)


class _CountOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.counts = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(count for name, count in self.counts.items() if name not in _VIEWS)


def targets():
    covariance = torch.tensor([[2.0, 1.2], [1.2, 1.0]])
    yield "gaussian_2d", Gaussian(torch.zeros(2), covariance), 0.5
    yield "gaussian_100d", Gaussian(torch.zeros(100), torch.logspace(-2, 0, 100)), 0.08
    yield "mlp_2d", MLPEnergy(), 0.2


def start_points(energy, n: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    if isinstance(energy, Gaussian):
        return energy.sample(n, generator)
    trace = ebm_samplers.sample(energy, "mala", init=torch.randn(n, 2, generator=generator), n_steps=200, seed=0)
    return trace.draws[:, -1]


def per_leapfrog(kernel, state, energy, transitions: int, repeats: int = 3) -> tuple[float, dict]:
    """Median over repeats of CPU seconds per leapfrog step the batch computed, and the last run's figures."""
    results = []
    for repeat in range(repeats):
        generator = torch.Generator().manual_seed(repeat)
        current, steps, infos = state, 0, []
        start = time.process_time()
        for _ in range(transitions):
            current, info = kernel.step(current, energy, generator)
            infos.append(info)
        elapsed = time.process_time() - start
        for info in infos:
            steps += int(info["n_leapfrog_batch"][0]) if "n_leapfrog_batch" in info else int(info["n_leapfrog"].max())
        results.append((elapsed / steps, infos))
    results.sort(key=lambda r: r[0])
    return results[len(results) // 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--transitions", type=int, default=40)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/nuts_overhead.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name, energy, step_size in targets():
        for n in CHAINS:
            x = start_points(energy, n)
            nuts = ebm_samplers.get_sampler("nuts", step_size=step_size)
            hmc = ebm_samplers.get_sampler("hmc", step_size=step_size, n_leapfrog=10)
            nuts_state, hmc_state = nuts.init(x, energy), hmc.init(x, energy)
            nuts_s, infos = per_leapfrog(nuts, nuts_state, energy, args.transitions)
            hmc_s, _ = per_leapfrog(hmc, hmc_state, energy, max(1, args.transitions // 4))
            bare_calls = 200
            bare = []
            for _ in range(3):
                start = time.process_time()
                for _ in range(bare_calls):
                    energy_and_grad(energy, x)
                bare.append((time.process_time() - start) / bare_calls)
            bare_s = float(np.median(bare))
            with _CountOps() as counted:
                _, info = nuts.step(nuts_state, energy, torch.Generator().manual_seed(9))
            ops = counted.total / int(info["n_leapfrog_batch"][0])
            with _CountOps() as bare_counted:
                energy_and_grad(energy, x)
            n_leapfrog = torch.stack([i["n_leapfrog"] for i in infos]).double()
            batch = torch.stack([i["n_leapfrog_batch"] for i in infos]).double()
            row = {
                "target": name,
                "chains": n,
                "nuts_us_per_leapfrog": round(nuts_s * 1e6, 1),
                "hmc_us_per_leapfrog": round(hmc_s * 1e6, 1),
                "bare_us": round(bare_s * 1e6, 1),
                "nuts_ratio": round(nuts_s / bare_s, 2),
                "hmc_ratio": round(hmc_s / bare_s, 2),
                "ops_per_leapfrog": round(ops, 1),
                "bare_ops": bare_counted.total,
                "lockstep_waste": round(float(batch[:, 0].sum() / n_leapfrog.mean(1).sum()), 2),
                "mean_tree_depth": round(float(torch.stack([i["tree_depth"] for i in infos]).double().mean()), 2),
                "mean_n_leapfrog": round(float(n_leapfrog.mean()), 1),
                "batch_n_leapfrog": round(float(batch[:, 0].mean()), 1),
            }
            rows.append(row)
            print(", ".join(f"{key}: {value}" for key, value in row.items()), flush=True)
    write_json(args.out, {"threads": args.threads, "transitions": args.transitions, "rows": rows})


if __name__ == "__main__":
    main()
