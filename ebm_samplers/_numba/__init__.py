"""The compiled CPU path: `ula`, `mala` and `hmc` on a `NumbaEnergy` run as numba loops over chains.

Each kernel's loop lives in its own module (ula.py, mala.py, hmc.py) and is compiled for numba's first-class
function type of `grad_fn`, so one cached machine-code loop (`cache=True`, in `__pycache__`) serves every
energy. A loop module is imported (compiled, or loaded from the cache) only when first needed;
`LOAD_SECONDS[name]` records how long that took in this process.

Randomness: each chain owns a xoshiro256** stream (`_random.py`) seeded from a seed drawn from the run's torch
generator, so a run is reproducible for a given seed whatever the thread count. The draws differ from the
torch path's draws for the same seed (different generators), not in distribution.
"""

from __future__ import annotations

import importlib
import time

import numpy as np
import torch
from torch import Tensor

#: sampler name -> (module, loop function, kernel attributes passed after the shared arguments)
_LOOPS = {"ula": ("ula", "run_ula", ()), "mala": ("mala", "run_mala", ()), "hmc": ("hmc", "run_hmc", ("n_leapfrog",))}
#: seconds spent compiling or loading each loop in this process
LOAD_SECONDS: dict[str, float] = {}


def supports(kernel) -> bool:
    """Whether `kernel` is a built-in kernel with a compiled loop (a user subclass may change `step`)."""
    from ebm_samplers.registry import _REGISTRY

    name = getattr(kernel, "name", "")
    return name in _LOOPS and type(kernel) is _REGISTRY.get(name)


def _loop(name: str):
    module_name, function, _ = _LOOPS[name]
    if name not in LOAD_SECONDS:
        start = time.perf_counter()
        importlib.import_module(f"ebm_samplers._numba.{module_name}")
        LOAD_SECONDS[name] = time.perf_counter() - start
    return getattr(importlib.import_module(f"ebm_samplers._numba.{module_name}"), function)


def run_compiled(
    kernel, energy, init: Tensor, *, warmup: int, n_steps: int, thin: int, generator: torch.Generator
) -> tuple[Tensor, dict[str, Tensor], np.ndarray]:
    """Run every chain of `kernel` from `init` on `energy`; return draws, stats and the first failing step.

    Draws and stats come back as CPU tensors in `init`'s dtype (stats `accepted`/`nonfinite` as bool);
    `first_failure[c]` is the first step (counting warm-up) at which chain c's proposal was not finite, or -1.
    """
    loop = _loop(kernel.name)
    extra = [int(getattr(kernel, attribute)) for attribute in _LOOPS[kernel.name][2]]
    n, keep = init.shape[0], n_steps // thin
    points = np.ascontiguousarray(init.detach().cpu().numpy(), dtype=np.float64).reshape(n, -1)
    step_size = np.full(n, float(kernel.step_size))
    seeds = torch.randint(0, 2**32 - 1, (n,), generator=generator, device=generator.device).cpu().numpy()
    draws = np.empty((n, keep, points.shape[1]))
    energy_out, acceptance = np.empty((n, keep)), np.empty((n, keep))
    accepted, nonfinite = np.zeros((n, keep), dtype=bool), np.zeros((n, keep), dtype=bool)
    first_failure = np.empty(n, dtype=np.int64)
    loop(energy.grad_fn, points, step_size, seeds.astype(np.int64), warmup, n_steps, thin, draws, energy_out,
         acceptance, accepted, nonfinite, first_failure, *extra)  # fmt: skip
    dtype = init.dtype
    stats = {
        "energy": torch.from_numpy(energy_out).to(dtype),
        "step_size": torch.from_numpy(step_size).to(dtype)[:, None].expand(n, keep).clone(),
        "acceptance_rate": torch.from_numpy(acceptance).to(dtype),
        "accepted": torch.from_numpy(accepted),
    }
    if kernel.name != "ula":
        stats["nonfinite"] = torch.from_numpy(nonfinite)
    return torch.from_numpy(draws).to(dtype).reshape(n, keep, *init.shape[1:]), stats, first_failure
