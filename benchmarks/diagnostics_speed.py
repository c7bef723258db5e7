"""Speed of the diagnostics against ArviZ in the same run (absolute times drift on shared machines).

    python benchmarks/diagnostics_speed.py        (from the repository root)

Prints `name: value` lines. Workloads: 8 chains x 10,000 draws x 100 coordinates of AR(1) draws
(rho = 0.5, and rho = 0.95 where the ESS needs the FFT path) for `diagnose` against `az.summary`;
KSD of n = 10,000 two-dimensional draws; MMD of 2 x 5,000 draws. Compilation (numba, cached on disk
after the first run) is timed separately as `*_first_call_s`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

# this file is named like the package it measures: import the package, not this script
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def _timed(function, repeats: int = 1) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def _ar1(rng, rho, shape):
    noise = rng.normal(size=shape)
    x = np.empty(shape)
    x[:, 0] = noise[:, 0]
    for t in range(1, shape[1]):
        x[:, t] = rho * x[:, t - 1] + np.sqrt(1 - rho**2) * noise[:, t]
    return x


def main() -> None:
    import arviz as az

    from diagnostics import diagnose, ksd, mmd
    from energies import Gaussian

    print(f"cores: {len(os.sched_getaffinity(0))}")
    print(f"torch_threads: {torch.get_num_threads()}")
    rng = np.random.default_rng(0)
    small = rng.normal(size=(4, 100, 2))
    print(f"diagnose_first_call_s: {_timed(lambda: diagnose(small)):.3f}")
    for rho in (0.5, 0.95):
        draws = _ar1(rng, rho, (8, 10_000, 100))
        tree = az.from_dict({"posterior": {"x": draws}})
        ours = _timed(lambda draws=draws: diagnose(draws), repeats=2)
        summary = _timed(lambda tree=tree: az.summary(tree, round_to="none"))
        rhat = _timed(lambda draws=draws: az.rhat(draws))
        print(f"diagnose_8x10000x100_rho{rho}_s: {ours:.3f}")
        print(f"az_summary_8x10000x100_rho{rho}_s: {summary:.3f}")
        print(f"az_rhat_8x10000x100_rho{rho}_s: {rhat:.3f}")
        print(f"diagnose_over_az_summary_rho{rho}: {ours / summary:.3f}")

    target = Gaussian([0.0, 0.0])
    generator = torch.Generator().manual_seed(0)
    points = target.sample(10_000, generator).double()
    print(f"ksd_first_call_s: {_timed(lambda: ksd(points[:100], target)):.3f}")
    print(f"ksd_n10000_d2_s: {_timed(lambda: ksd(points, target), repeats=2):.3f}")
    print(f"ksd_n2000_d2_bootstrap500_s: {_timed(lambda: ksd(points[:2000], target, n_bootstrap=500)):.3f}")
    a, b = points[:5000], target.sample(5000, generator).double()
    print(f"mmd_2x5000_d2_s: {_timed(lambda: mmd(a, b)):.3f}")
    matmul = _timed(lambda: points @ points.T, repeats=2)
    print(f"baseline_matmul_10000x2x10000_s: {matmul:.3f}")


if __name__ == "__main__":
    main()
