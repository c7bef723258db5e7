"""Cost of the convergence checks of `until=Converged(...)` against the cost of the sampling they watch.

For each target and run length: time a MALA run of `n_steps` transitions (4 chains, CPU time, one thread), then
replay the `ConvergenceMonitor`'s check schedule over the kept draws with thresholds no run meets, so that
every check up to the end is paid (the worst case: a run that never converges and stops at max_steps), the
sampling time at each kept draw taken as its share of the measured run. Wall seconds, both measured in this
process and run; the share is check seconds / sampling seconds. `budget=1.0` replays the geometric schedule
alone (no time budget), for comparison.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/convergence_checks.py
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from _report import write_json

import ebm_samplers
from ebm_samplers.stopping import Converged, ConvergenceMonitor
from energies import Gaussian

CASES = [(2, 2000), (2, 20_000), (10, 2000), (10, 20_000), (100, 2000), (100, 10_000)]


def main() -> None:
    torch.set_num_threads(1)
    rows = []
    for dim, n_steps in CASES:
        target = Gaussian(torch.zeros(dim), torch.linspace(0.5, 2.0, dim))
        start = time.perf_counter()
        trace = ebm_samplers.sample(target, "mala", n_chains=4, n_steps=n_steps, warmup=500, seed=0)
        sampling = time.perf_counter() - start
        row = {"dim": dim, "n_steps": n_steps, "sampling_s": round(sampling, 3)}
        for name, budget in (("budget_5pct", 0.05), ("geometric_only", 1.0)):
            # thresholds no run meets: every check up to the end is paid
            monitor = ConvergenceMonitor(Converged(r_hat=1 + 1e-12, budget=budget), n_chains=4)
            for n_kept in range(1, trace.n_draws + 1):
                if monitor.due(n_kept, sampling_seconds=sampling * n_kept / trace.n_draws):
                    monitor.check(trace.draws, n_kept)
            row |= {f"{name}_checks": monitor.checks, f"{name}_share": round(monitor.seconds / sampling, 4)}
        rows.append(row)
        print(f"convergence_checks d={dim} steps={n_steps}: " + ", ".join(f"{k}={v}" for k, v in row.items()))
    path = write_json(Path(__file__).parent / "results" / "convergence_checks.json", rows, indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
