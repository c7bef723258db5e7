"""Speed of the samplers against the bare cost of the energy, measured in the same run.

    PYTHONPATH=. python benchmarks/speed.py [--quick] [--threads N] [--out benchmarks/results/speed.json]

Targets: the default 2-D mixture, the 100-d Gaussian (variances log-spaced 0.01..1) and an MLP energy; kernels
ula, mala and hmc; 1 to 10,000 chains; eager torch, `compile_step=True` and numba. Prints `name: value` lines
(step_ms, ratio to the bare energy+gradient, draws_ms, faults_per_step, compile_s, ess_per_s, ...) and writes
JSON; what each figure means and the measured table: docs/performance.md.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
import torch
from _report import median_seconds, write_json
from torch import nn

import ebm_samplers
from energies import Energy, Gaussian, GaussianMixture
from energies.numba_energy import function_types
from energies.numba_targets import default_mixture, log_spaced_gaussian

ROOT = Path(__file__).resolve().parents[1]
CHAINS = (1, 100, 1_000, 10_000)
HMC_LEAPFROG = 10
#: the torch.compile'd step is measured from this many chains (each chain count compiles anew: tens of seconds)
COMPILED_MIN_CHAINS = 1_000
#: the figures printed per configuration (the JSON has every figure)
_PRINTED = (
    "step_ms",
    "grads_per_step",
    "ratio",
    "draws_ms",
    "ratio_beyond_draws",
    "faults_per_step",
    "ess_per_s",
    "compile_s",
)
#: seconds of sampling aimed at per configuration (steps are chosen from the bare cost to fit)
TARGET_SECONDS = 0.7


class MLPEnergy(Energy):
    """E(x) = MLP(x) + |x|^2 / 8 with a fixed random MLP 2 -> 256 -> 256 -> 1 (SiLU); the quadratic keeps it proper."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(2, 256), nn.SiLU(), nn.Linear(256, 256), nn.SiLU(), nn.Linear(256, 1))
        self.event_shape = torch.Size([2])

    def forward(self, x):
        return self.net(x).squeeze(-1) + 0.125 * x.square().sum(-1)


def _targets():
    variances = torch.logspace(-2, 0, 100)
    return {
        "mixture": dict(
            torch=GaussianMixture(), numba=default_mixture(), exact=GaussianMixture(), step=dict(ula=0.05, mala=0.3)
        ),
        "gaussian100": dict(
            torch=Gaussian(torch.zeros(100), variances),
            numba=log_spaced_gaussian(100),
            exact=Gaussian(torch.zeros(100), variances),
            step=dict(ula=0.004, mala=0.006, hmc=0.08),
        ),
        "mlp": dict(torch=MLPEnergy(), numba=None, exact=None, step=dict(ula=0.01, mala=0.05, hmc=0.1)),
    }


def _bare_numba_loop(parallel: bool):
    """All chains' energy+gradient by the compiled `grad_fn`: serially for one thread (a parallel loop would add
    its launch overhead to the bare cost, which the sampling loops pay once per run, not per step)."""

    @numba.njit(numba.void(function_types()[1], numba.float64[:, ::1], numba.float64[::1], numba.float64[:, ::1]),
                parallel=parallel, cache=True)  # fmt: skip
    def batch(grad_fn, x, energy, grad):
        for i in numba.prange(x.shape[0]):
            energy[i] = grad_fn(x[i], grad[i])

    return batch


def bare_seconds(energy, x: torch.Tensor, path: str, batch) -> float:
    if path == "numba":
        points = np.ascontiguousarray(x.double().numpy())
        value, grad = np.empty(points.shape[0]), np.empty_like(points)
        return median_seconds(lambda: batch(energy.grad_fn, points, value, grad), 20)
    return median_seconds(lambda: energy.energy_and_grad(x), 20 if x.shape[0] < 10_000 else 5)


def bare_faults(energy, x: torch.Tensor, calls: int = 10) -> float:
    """Minor page faults per batched energy+gradient evaluation (after one warm-up call)."""
    energy.energy_and_grad(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        energy.energy_and_grad(x)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


def compiled_bare_seconds(energy, x: torch.Tensor) -> float:
    """One batched energy+gradient through `torch.compile` (what the compiled step's gradient part can cost)."""
    fused = torch.compile(energy.energy_and_grad)
    return median_seconds(lambda: fused(x), 20 if x.shape[0] < 10_000 else 5)


def _ess_per_second(trace, seconds: float) -> float | None:
    import arviz as az

    if trace.n_draws < 100:
        return None
    draws = trace.draws.double().numpy()
    subset = min(64, draws.shape[0]) if draws.shape[0] > 1 else 1
    coordinates = [0, draws.shape[2] - 1]
    if subset == 1:  # one chain: ESS of one chain is still defined
        flat = draws[:1, :, coordinates]
    else:
        flat = draws[:subset, :, coordinates]
    ess = float(np.min(az.ess(flat)))
    return ess * draws.shape[0] / subset / seconds


def run_one(target, kernel: str, n: int, path: str, bare: float, seed: int = 0):
    """One configuration; `path` is "torch" (eager), "compiled" (torch, `compile_step=True`) or "numba"."""
    energy = target["torch"] if path == "compiled" else target[path]
    grads = HMC_LEAPFROG if kernel == "hmc" else 1
    dim = target["torch"].event_shape[0]
    if path == "numba":  # a compiled step: ~25 ns per gradient and ~2-5 ns per coordinate, no launch overhead
        estimate = n * grads * (5e-8 + 5e-9 * dim)
    else:
        estimate = 4.0 * bare * grads + 2e-4
    steps = int(min(2_000_000, max(20, TARGET_SECONDS / estimate)))
    thin = max(1, steps // 200)
    steps = thin * (steps // thin)
    generator = torch.Generator().manual_seed(seed)
    init = target["exact"].sample(n, generator).float() if target["exact"] is not None else None
    params = dict(step_size=target["step"].get(kernel, 0.1))
    if kernel == "hmc":
        params["n_leapfrog"] = HMC_LEAPFROG
    run = dict(seed=seed, warmup=0, backend="torch" if path == "compiled" else path, progress=False, **params)
    if path == "compiled":
        run["compile_step"] = True
    if init is None:
        run["n_chains"] = n
    else:
        run["init"] = init

    def timed(n_steps, n_thin):
        start = time.perf_counter()
        trace = ebm_samplers.sample(energy, kernel, n_steps=n_steps, thin=n_thin, **run)
        return trace, time.perf_counter() - start

    # the first run compiles (the energy's numba functions, not cached: closures; or the torch.compile'd step)
    first, _ = timed(1, 1)
    _, setup = timed(1, 1)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    (trace, total), (_, again) = timed(steps, thin), timed(steps, thin)  # the first compiles blocks, if any
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / (2 * steps)
    total = min(total, again)  # the less disturbed of two runs: the machine is shared
    sampling = max(total - setup, 1e-9)
    step = sampling / (steps - 1)
    row = {"step_ms": 1e3 * step, "grads_per_step": grads, "bare_ms": 1e3 * bare, "ratio": step / (grads * bare)}
    if path != "numba":
        draws = draw_seconds(ebm_samplers.get_sampler(kernel, **params), energy, init, n, dim)
        row |= {"draws_ms": 1e3 * draws, "ratio_beyond_draws": (step - draws) / (grads * bare)}
        row["faults_per_step"] = faults
    if path == "compiled":  # the single step's graph (the 1-step run) plus the blocks' (the first long run)
        row["compile_s"] = first.attrs["compile_seconds"] + trace.attrs["compile_seconds"]
    return {
        **row,
        "ess_per_s": _ess_per_second(trace, sampling),
        "steps": steps,
        "acceptance": float(trace.stats["acceptance_rate"].mean()),
    }


def draw_seconds(kernel, energy, init, n: int, dim: int) -> float:
    """One transition's random numbers for every chain (`kernel.draw`), timed alone: median of 20 loops of 20."""
    x = init if init is not None else torch.randn(n, dim, generator=torch.Generator().manual_seed(2))
    state = kernel.init(x, energy)
    generator = torch.Generator().manual_seed(3)
    return median_seconds(lambda: [kernel.draw(state, generator) for _ in range(20)], 20) / 20


def compile_seconds() -> dict[str, float]:
    """Compile (empty cache) and load (warm cache) time of the numba loops, each measured in a fresh process."""
    code = (
        "import time, importlib, numba, torch, ebm_samplers, energies.numba_energy; out = {}\n"
        "for name in ('ula', 'mala', 'hmc'):\n"
        "    start = time.perf_counter(); importlib.import_module('ebm_samplers._numba.' + name)\n"
        "    out[name] = time.perf_counter() - start\n"
        "print(repr(out))"
    )
    results = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
        for phase in ("compile", "cached_load"):
            done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            for name, seconds in eval(done.stdout.strip().splitlines()[-1]).items():
                results[f"numba_{phase}_s.{name}"] = seconds
    return results


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="chains 1, 100, 1000 only; skip compile timing")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch and numba threads (default 1: fair and stable on a shared machine)",
    )
    parser.add_argument("--targets", default="mixture,gaussian100,mlp")
    parser.add_argument("--kernels", default="ula,mala,hmc")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "speed.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    chains = CHAINS[:3] if args.quick else CHAINS
    results: dict = {"threads": args.threads, "torch": torch.__version__, "numba": numba.__version__}
    print(f"threads: {args.threads}")
    start = time.perf_counter()
    if not args.quick:
        for name, value in compile_seconds().items():
            results[name] = value
            print(f"{name}: {value:.2f}")
    batch = _bare_numba_loop(parallel=args.threads > 1)
    targets = _targets()
    with torch.inference_mode(False):
        for target_name in args.targets.split(","):
            target = targets[target_name]
            for path in ("torch", "compiled", "numba"):
                if target["torch" if path == "compiled" else path] is None:
                    continue
                for n in chains:
                    if path == "compiled" and n < COMPILED_MIN_CHAINS:
                        continue
                    generator = torch.Generator().manual_seed(1)
                    x = torch.randn(n, *target["torch"].event_shape, generator=generator)
                    if path == "compiled":  # compared with the eager gradient, and with a compiled one for scale
                        bare = results[f"{target_name}.torch.bare_ms.{n}"] / 1e3
                        fused = compiled_bare_seconds(target["torch"], x)
                        results[f"{target_name}.compiled.compiled_bare_ms.{n}"] = 1e3 * fused
                        print(f"{target_name}.compiled.compiled_bare_ms.{n}: {1e3 * fused:.4g}")
                    else:
                        bare = bare_seconds(target[path], x, path, batch)
                    results[f"{target_name}.{path}.bare_ms.{n}"] = 1e3 * bare
                    if path == "torch":
                        faults = bare_faults(target["torch"], x)
                        results[f"{target_name}.torch.bare_faults.{n}"] = faults
                        print(f"{target_name}.torch.bare_faults.{n}: {faults:.4g}")
                    for kernel in args.kernels.split(","):
                        row = run_one(target, kernel, n, path, bare)
                        prefix = f"{target_name}.{kernel}.{path}.{n}"
                        for key, value in row.items():
                            results[f"{prefix}.{key}"] = value
                        shown = {k: v for k, v in row.items() if k in _PRINTED}
                        for key, value in shown.items():
                            print(f"{prefix}.{key}: {'n/a' if value is None else f'{value:.4g}'}")
                        sys.stdout.flush()
    _speedups(results, chains, args.targets.split(","))
    results["wall_s"] = time.perf_counter() - start
    print(f"wall_s: {results['wall_s']:.1f}")
    out = write_json(args.out, results, indent=1, sort_keys=True)
    print(f"json: {out}")
    return results


def _speedups(results: dict, chains, targets) -> None:
    """numba step time vs torch step time, same target, kernel and chain count."""
    for target in targets:
        for kernel in ("ula", "mala", "hmc"):
            for n in chains:
                torch_ms = results.get(f"{target}.{kernel}.torch.{n}.step_ms")
                numba_ms = results.get(f"{target}.{kernel}.numba.{n}.step_ms")
                if torch_ms and numba_ms and math.isfinite(numba_ms) and numba_ms > 0:
                    results[f"{target}.{kernel}.numba_speedup.{n}"] = torch_ms / numba_ms
                    print(f"{target}.{kernel}.numba_speedup.{n}: {torch_ms / numba_ms:.3g}")


if __name__ == "__main__":
    main()
