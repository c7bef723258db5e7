"""Where the compiled (numba) path's time goes: normal draws, the bare gradient, and whole steps.

    PYTHONPATH=. python benchmarks/numba_profile.py [--chains 1000] [--repeats 7] [--out ...numba_profile.json]

One thread, CPU time (`time.process_time`, robust to other jobs on a shared machine), median of `--repeats`
runs after a warm-up run. For the 2-D default mixture and the 100-d Gaussian (variances log-spaced 0.01..1) at
`--chains` chains it prints `name: value` lines and writes JSON:

    normal_ns          one N(0, 1) draw, from a numba loop that only fills each chain's vector of normals
                       (the same `fill_standard_normal` the kernels call, one stream per chain)
    grad_ms            one energy+gradient evaluation of every chain, through the compiled `grad_fn` type
    <kernel>.step_ms   one transition of every chain (ula, mala, hmc with 10 leapfrog steps), the kernels'
                       numba loops called directly with thin = 10 (as a long benchmark run records rarely)
    <kernel>.ratio     step_ms / (gradients per step x grad_ms)

It runs in well under a minute and needs no other package than the project's.
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path

import numba
import numpy as np
from _report import median_seconds, write_json

from ebm_samplers._numba import load_loop
from ebm_samplers._numba._random import fill_standard_normal, seeded_state
from energies.numba_energy import function_types
from energies.numba_targets import default_mixture, log_spaced_gaussian

ROOT = Path(__file__).resolve().parents[1]
STEPS = 200
THIN = 10
HMC_LEAPFROG = 10
STEP_SIZES = {
    "mixture": dict(ula=0.05, mala=0.3, hmc=0.1),
    "gaussian100": dict(ula=0.004, mala=0.006, hmc=0.08),
}


# not cached on disk: numba's cache would not notice a change to the inlined generator in another file
@numba.njit
def _fill_normals(n_chains, dim, steps):
    out = np.empty(dim)
    checksum = 0.0  # keeps the draws alive, so the compiler cannot drop them
    for chain in range(n_chains):
        rng = seeded_state(chain)
        for _ in range(steps):
            fill_standard_normal(out, rng)
            checksum += out[0]
    return checksum


@numba.njit(numba.float64(function_types()[1], numba.float64[:, ::1], numba.int64))
def _gradients(grad_fn, points, steps):
    n, dim = points.shape
    grad = np.empty(dim)
    checksum = 0.0
    for _ in range(steps):
        for chain in range(n):
            checksum += grad_fn(points[chain], grad)
    return checksum


def _step_call(kernel: str, energy, points: np.ndarray, step_size: float):
    """A call of the kernel's numba loop: STEPS transitions (STEPS / 10 for HMC) of every chain."""
    n, dim = points.shape
    steps = STEPS // HMC_LEAPFROG * 2 if kernel == "hmc" else STEPS
    keep = steps // THIN
    outputs = [np.empty((n, keep, dim), dtype=np.float32), np.empty((n, keep)), np.empty((n, keep))]
    outputs += [np.zeros((n, keep), dtype=bool), np.zeros((n, keep), dtype=bool), np.empty(n, dtype=np.int64)]
    shared = (energy.grad_fn, points, np.full(n, step_size), np.arange(n, dtype=np.int64), 0, steps, THIN, *outputs)
    loop = load_loop(kernel, np.float32)  # float32 draws, as for the default float32 chains
    if kernel == "hmc":
        extra = (np.ones((n, dim)), HMC_LEAPFROG, HMC_LEAPFROG, 1000.0)
        extra += (np.empty((n, keep), dtype=np.int64), np.empty((n, keep)), np.empty((n, keep)))
        return steps, lambda: loop(*shared, *extra)
    return steps, lambda: loop(*shared)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "numba_profile.json"))
    args = parser.parse_args(argv)
    numba.set_num_threads(1)
    n = args.chains
    results: dict = {"chains": n, "threads": 1, "numba": numba.__version__}
    for name, energy in (("mixture", default_mixture()), ("gaussian100", log_spaced_gaussian(100))):
        dim = energy.dim
        points = np.ascontiguousarray(np.random.default_rng(0).normal(size=(n, dim)) * 0.3)
        seconds = median_seconds(partial(_fill_normals, n, dim, STEPS), args.repeats, time.process_time)
        results[f"{name}.normal_ns"] = 1e9 * seconds / (n * dim * STEPS)
        grad = (
            median_seconds(partial(_gradients, energy.grad_fn, points, STEPS), args.repeats, time.process_time) / STEPS
        )
        results[f"{name}.grad_ms"] = 1e3 * grad
        for kernel, step_size in STEP_SIZES[name].items():
            steps, call = _step_call(kernel, energy, points.copy(), step_size)
            step = median_seconds(call, args.repeats, time.process_time) / steps
            results[f"{name}.{kernel}.step_ms"] = 1e3 * step
            results[f"{name}.{kernel}.ratio"] = step / ((HMC_LEAPFROG if kernel == "hmc" else 1) * grad)
        for key in [k for k in results if k.startswith(name)]:
            print(f"{key}: {results[key]:.4g}")
    out = write_json(args.out, results, indent=1, sort_keys=True)
    print(f"json: {out}")
    return results


if __name__ == "__main__":
    main()
