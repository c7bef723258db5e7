"""A numba energy: write E and its gradient as scalar numba functions, and `sample()` runs numba loops.

`energies.NumbaEnergy` takes `energy_fn(x) -> float` and `grad_fn(x, grad_out) -> float` (writes grad E, returns E),
both `numba.njit` functions, for one point `x: float64[dim]`. With such an energy, `ula`, `mala` and `hmc` run as
numba loops over chains and steps (same `Trace` as the torch path); the energy also works as an ordinary torch
energy everywhere else. Here: a 20-d Gaussian with a strongly correlated neighbouring pair structure (a tridiagonal
precision matrix), where the exact covariance is known.

    python examples/numba_energy.py [OUT_DIR]
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numba
import numpy as np
import torch

import diagnostics
import ebm_samplers
from energies import NumbaEnergy

out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/gallery/img")
out.mkdir(parents=True, exist_ok=True)
DIM, RHO = 20, 0.45  # precision: 1 on the diagonal, -RHO next to it (positive definite for RHO < 0.5)


@numba.njit
def energy_fn(x):
    value = 0.0
    for i in range(DIM):
        value += 0.5 * x[i] * x[i] - (RHO * x[i] * x[i + 1] if i + 1 < DIM else 0.0)
    return value


@numba.njit
def grad_fn(x, grad_out):
    for i in range(DIM):
        grad_out[i] = x[i] - RHO * ((x[i - 1] if i > 0 else 0.0) + (x[i + 1] if i + 1 < DIM else 0.0))
    return energy_fn(x)


energy = NumbaEnergy(energy_fn, grad_fn, DIM, name="tridiagonal_gaussian")
precision = np.eye(DIM) - RHO * (np.eye(DIM, k=1) + np.eye(DIM, k=-1))
exact_variance = np.diag(np.linalg.inv(precision))
trace = ebm_samplers.sample(energy, "mala", n_chains=8, n_steps=4000, warmup=1000, seed=0, dtype=torch.float64)
print(f"backend: {trace.attrs.get('backend', 'torch')}")
print(diagnostics.diagnose(trace))
variance = trace.draws.reshape(-1, DIM).var(0).numpy()
print(f"largest relative variance error: {np.abs(variance / exact_variance - 1).max():.3f}")

figure, axis = plt.subplots(figsize=(6.5, 3.4), layout="constrained")
axis.plot(exact_variance, "k-", label="exact")
axis.plot(variance, "o", ms=4, label="MALA (numba loops), 8 chains")
axis.set(xlabel="coordinate", ylabel="marginal variance", title="A 20-d numba energy sampled by MALA on the numba path")
axis.legend()
figure.savefig(out / "numba_energy.png", dpi=110)
