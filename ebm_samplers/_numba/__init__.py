"""The numba path: `ula`, `mala` and `hmc` on a `NumbaEnergy` run as numba loops over chains.

Each kernel's loop lives in its own module (ula.py, mala.py, hmc.py) and is compiled for numba's first-class
function type of `grad_fn`, so one cached machine-code loop (`cache=True`, in `__pycache__`) serves every
energy. A loop module is imported (compiled, or loaded from the cache) only when first needed;
`LOAD_SECONDS[name]` records how long that took in this process. Each loop has a version per dtype of the
draws it writes (`_loop.py`): float32 is made on import, float64 on first use. numba's cache is keyed on the
loop's own file only, so the cache entries are named with a digest of the helpers compiled into the loops
(`_blocks.py`, `_random.py`, `_moves.py`): changing a helper makes the loops compile afresh. Each thread runs
blocks of a few chains in lock-step, so the CPU overlaps their independent work (`_blocks.py`).

The loops start from a kernel `State` (after any adapting warm-up, which runs on the torch kernel) and use its
per-chain step sizes and diagonal metric (inverse mass; the identity where the Langevin state has none) unchanged.
A kernel with `metric="dense"` has no numba loop: `supports` is False and it runs on the torch path (the
default `metric=None` resolves to "diag" on a `NumbaEnergy`, see `kernels._kinetic.resolve_metric`).

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

from ebm_samplers.kernels.hmc import HMC
from ebm_samplers.kernels.mala import MALA
from ebm_samplers.kernels.ula import ULA
from energies._threads import torch_threads_kept

_MODULES = {"ula": "run_ula", "mala": "run_mala", "hmc": "run_hmc"}
#: the kernel classes whose transitions the loops implement, by loop name
_KERNELS = {"ula": ULA, "mala": MALA, "hmc": HMC}
#: seconds spent compiling or loading each loop in this process
LOAD_SECONDS: dict[str, float] = {}


def supports(kernel) -> bool:
    """Whether `kernel` is a built-in kernel with a numba loop (a user subclass may change `step`); the loops
    take a diagonal metric only, so a dense one keeps the torch path."""
    name = getattr(kernel, "name", "")
    return name in _KERNELS and type(kernel) is _KERNELS[name] and getattr(kernel, "metric", None) != "dense"


def load_loop(name: str, draws_dtype=np.float32):
    """The numba loop of sampler `name` that writes draws of `draws_dtype` (float32 or float64), compiled (or
    loaded from the disk cache) on first use; `LOAD_SECONDS` keeps the first use's time, keyed `name` for
    float32 and `name.float64`."""
    dtype = np.dtype(draws_dtype)
    start = time.perf_counter()
    loop = getattr(importlib.import_module(f"ebm_samplers._numba.{name}"), _MODULES[name])[dtype]
    LOAD_SECONDS.setdefault(name if dtype == np.float32 else f"{name}.{dtype}", time.perf_counter() - start)
    return loop


def _numpy(values: Tensor, n: int) -> np.ndarray:
    return np.ascontiguousarray(values.detach().cpu().numpy(), dtype=np.float64).reshape(n, -1)


def run_numba(
    kernel, energy, state, *, warmup: int, n_steps: int, thin: int, generator: torch.Generator, first_step: int = 0
) -> tuple[Tensor, dict[str, Tensor], Tensor]:
    """Run `warmup + n_steps` transitions of every chain from `state`; return draws, stats and failures.

    Draws and stats are CPU tensors in the state's dtype, with the same names as the torch kernel's. The
    third value holds, per chain, the first step (counting from `first_step`) whose proposal or state was not
    finite, or -1.
    """
    name = kernel.name
    position = state.position
    draws_dtype = np.float64 if position.dtype == torch.float64 else np.float32  # written as such, not converted
    loop = load_loop(name, draws_dtype)
    n, keep = position.shape[0], n_steps // thin
    points = _numpy(position, n)
    step_size = _numpy(state.step_size, n)[:, 0].copy()
    seeds = torch.randint(0, 2**62, (n,), generator=generator, device=generator.device).cpu().numpy()
    out = {
        "draws": np.empty((n, keep, points.shape[1]), dtype=draws_dtype),
        "energy": np.empty((n, keep)),
        "acceptance_rate": np.empty((n, keep)),
        "accepted": np.zeros((n, keep), dtype=bool),
        "nonfinite": np.zeros((n, keep), dtype=bool),
    }
    failure = np.empty(n, dtype=np.int64)
    shared = (energy.grad_fn, points, step_size, seeds, warmup, n_steps, thin, *out.values(), failure)
    if name == "hmc":
        low, high = _leapfrog_bounds(kernel.n_leapfrog, state)
        out["n_leapfrog"] = np.empty((n, keep), dtype=np.int64)
        out["energy_error"] = np.empty((n, keep))
        out["potential_energy"] = np.empty((n, keep))
        inverse_mass = _numpy(state.inverse_mass, n)
        with torch_threads_kept():
            loop(*shared, inverse_mass, low, high, float(kernel.divergence_threshold),
                 out["n_leapfrog"], out["energy_error"], out["potential_energy"])  # fmt: skip
        out["diverging"] = out.pop("nonfinite")  # the HMC loop flags divergences there, as the torch kernel does
        if kernel.n_leapfrog is None:  # as the torch kernel records it: the time integrated, L h
            out["trajectory_length"] = out["n_leapfrog"] * step_size[:, None]
    else:
        inverse_mass = _diagonal_metric(state, n, points.shape[1])
        with torch_threads_kept():
            loop(*shared, inverse_mass, np.sqrt(inverse_mass))
        if name == "mala":
            out["diverging"] = out.pop("nonfinite")  # rejected non-finite proposals, as the torch kernel flags them
    del shared  # it holds the float64 outputs, which are freed one by one below as they are converted
    if name == "ula":
        del out["nonfinite"]  # the torch ULA reports no per-proposal flag either

    # the loops' shared `energy` output holds what the torch kernel records: H for HMC, else E(x)
    out["hamiltonian" if name == "hmc" else "potential_energy"] = out.pop("energy")

    dtype = position.dtype
    draws = torch.from_numpy(out.pop("draws")).to(dtype).reshape(n, keep, *position.shape[1:])
    stats = {"step_size": torch.from_numpy(step_size).to(dtype)[:, None].expand(n, keep).clone()}
    for key in list(out):  # convert one array at a time, so peak memory holds one float64 array at most
        tensor = torch.from_numpy(out.pop(key))
        stats[key] = tensor.to(dtype) if tensor.is_floating_point() else tensor
    failure = torch.from_numpy(failure)
    return draws, stats, torch.where(failure >= 0, failure + first_step, failure)


def _diagonal_metric(state, n: int, d: int) -> np.ndarray:
    """The Langevin state's diagonal metric (n, d), ones where it has none (the identity)."""
    inverse_mass = getattr(state, "inverse_mass", None)
    if inverse_mass is None:
        return np.ones((n, d))
    if not isinstance(inverse_mass, Tensor):
        raise TypeError(f"the numba loops take a diagonal metric; got {type(inverse_mass).__name__}")
    return _numpy(inverse_mass, n)


def _leapfrog_bounds(n_leapfrog, state) -> tuple[int, int]:
    """The loop draws L uniformly from [low, high] per chain and transition. With an adapted trajectory length T
    (`n_leapfrog=None`), [1, ceil(2 T / h)]: the torch kernel's jittered time 2 u T drawn uniformly per chain
    rather than on the shared Halton sequence (both jitters are independent of the state, so both are exact)."""
    if n_leapfrog is None:
        from ebm_samplers.kernels.hmc import MAX_LEAPFROG

        longest = torch.ceil(2.0 * state.trajectory_length / state.step_size).max()
        return 1, int(min(max(float(longest), 1.0), MAX_LEAPFROG))
    if isinstance(n_leapfrog, (tuple, list)):
        return int(n_leapfrog[0]), int(n_leapfrog[1])
    return int(n_leapfrog), int(n_leapfrog)
