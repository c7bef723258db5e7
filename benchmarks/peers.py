"""Peers side by side: BlackJAX MALA and TorchEBM Langevin against our MALA and ULA on the same work.

    python benchmarks/peers.py [--chains 1000] [--seconds 0.6] [--cpu 0] [--threads 1] [--out FILE.json]

Run it with a Python that has jax + blackjax and/or torchebm (a scratch environment: they are never this
project's dependencies) and, for our own rows, this project on the path (`PYTHONPATH=.`). Each missing package
skips its rows with a message; with none of the peers the script says so and exits with status 2. Per-step
cost with the final state kept only (no trace): one pinned thread and CPU time by default, `--threads N` and
wall time otherwise. What each row runs and how it is timed: docs/performance.md. Prints `name: value` lines
and writes JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: MALA and ULA step sizes h per target, as in benchmarks/speed.py
STEP_SIZES = {"mixture": dict(mala=0.3, ula=0.05), "gaussian100": dict(mala=0.006, ula=0.004)}
MIXTURE_MEANS = ((-2.0, -2.0), (2.0, 2.0))
MIXTURE_VARIANCE = 0.5


def _pin_threads(cpu: int, threads: int) -> None:
    """XLA's threads and the process's CPUs; must run before jax is imported (XLA reads its flags once)."""
    eigen = "true" if threads > 1 else "false"
    os.environ["XLA_FLAGS"] = f"--xla_cpu_multi_thread_eigen={eigen} intra_op_parallelism_threads={threads}"
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(range(cpu, cpu + threads)))


#: the clock of `_per_step_seconds`: CPU time for one thread, wall time for several (set by `main`)
_clock = time.process_time


def _variances(dim: int = 100):
    return [10.0 ** (-2.0 + 2.0 * i / (dim - 1)) for i in range(dim)]


def _exact_draws(target: str, n: int, seed: int = 0):
    """float32 torch draws of the target (the same start for every sampler)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    if target == "mixture":
        means = torch.tensor(MIXTURE_MEANS)
        component = torch.randint(0, 2, (n,), generator=generator)
        return means[component] + math.sqrt(MIXTURE_VARIANCE) * torch.randn(n, 2, generator=generator)
    return torch.tensor(_variances()).sqrt() * torch.randn(n, 100, generator=generator)


def _per_step_seconds(run, seconds: float) -> tuple[float, int]:
    """(CPU seconds per step, long run's steps) of `run(n_steps)`, by the difference of a long and a short run."""
    short = 5
    run(short)  # warm-up: compiles and fills caches
    start = _clock()
    run(short)
    per_step = max((_clock() - start) / short, 1e-7)
    steps = int(min(100_000, max(50, seconds / per_step)))
    run(steps)  # compiles the long length where that is static (jax)

    def fastest(n_steps: int) -> float:
        times = []
        for _ in range(2):
            start = _clock()
            run(n_steps)
            times.append(_clock() - start)
        return min(times)

    return max(fastest(steps) - fastest(short), 1e-12) / (steps - short), steps


# --- BlackJAX -------------------------------------------------------------------------------------------------


def _jax_logdensity(target: str):
    import jax.numpy as jnp
    from jax.scipy.special import logsumexp

    if target == "mixture":
        means = jnp.array(MIXTURE_MEANS)

        def logdensity(x):
            squared = jnp.sum((x[None, :] - means) ** 2, axis=-1)
            return logsumexp(-0.5 * squared / MIXTURE_VARIANCE) + jnp.log(0.5)

        return logdensity
    precision = 1.0 / jnp.array(_variances())

    def logdensity(x):
        return -0.5 * jnp.sum(precision * x * x)

    return logdensity


def blackjax_mala(target: str, init, step_size: float, seconds: float, float64: bool = False) -> dict:
    import blackjax
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", float64)  # before any array or trace of this run is made
    algorithm = blackjax.mala(_jax_logdensity(target), step_size)
    positions = jnp.asarray(init.double().numpy() if float64 else init.numpy())
    assert positions.dtype == (jnp.float64 if float64 else jnp.float32)
    n = positions.shape[0]
    compiled = {}

    def sampler(n_steps: int):
        def run(key, positions):
            states = jax.vmap(algorithm.init)(positions)

            def one_step(carry, step_key):
                states, acceptance = carry
                states, info = jax.vmap(algorithm.step)(jax.random.split(step_key, n), states)
                return (states, acceptance + info.acceptance_rate), None

            carry = (states, jnp.zeros(n, dtype=positions.dtype))
            (states, acceptance), _ = jax.lax.scan(one_step, carry, jax.random.split(key, n_steps))
            return states.position, acceptance / n_steps

        return jax.jit(run)

    result = {}

    def run(n_steps: int):
        if n_steps not in compiled:
            compiled[n_steps] = sampler(n_steps)
        final, acceptance = compiled[n_steps](jax.random.key(0), positions)
        final.block_until_ready()
        result["acceptance"] = float(acceptance.mean())

    per_step, steps = _per_step_seconds(run, seconds)
    return {"step_ms": 1e3 * per_step, "steps": steps, "acceptance": result["acceptance"]}


# --- TorchEBM -------------------------------------------------------------------------------------------------


def _torchebm_model(target: str):
    import torch
    from torchebm.core import BaseModel

    class MixtureEnergy(BaseModel):
        def __init__(self):
            super().__init__()
            self.register_buffer("means", torch.tensor(MIXTURE_MEANS))

        def forward(self, x):
            squared = (x[:, None, :] - self.means).square().sum(-1)
            return -torch.logsumexp(-0.5 * squared / MIXTURE_VARIANCE, dim=-1) - math.log(0.5)

    class DiagonalGaussianEnergy(BaseModel):
        def __init__(self):
            super().__init__()
            self.register_buffer("precision", 1.0 / torch.tensor(_variances()))

        def forward(self, x):
            return 0.5 * (self.precision * x.square()).sum(-1)

    return MixtureEnergy() if target == "mixture" else DiagonalGaussianEnergy()


def torchebm_langevin(target: str, init, step_size: float, seconds: float) -> dict:
    from torchebm.samplers import LangevinDynamics

    sampler = LangevinDynamics(_torchebm_model(target), step_size=step_size, noise_scale=1.0)

    def run(n_steps: int):
        sampler.sample(x=init.clone(), n_steps=n_steps)

    per_step, steps = _per_step_seconds(run, seconds)
    return {"step_ms": 1e3 * per_step, "steps": steps}


# --- ours -----------------------------------------------------------------------------------------------------


def ours(target: str, kernel: str, path: str, init, step_size: float, seconds: float) -> dict:
    import torch

    import ebm_samplers
    from energies import Gaussian, GaussianMixture
    from energies.numba_targets import default_mixture, log_spaced_gaussian

    if path == "numba":
        energy = default_mixture() if target == "mixture" else log_spaced_gaussian(100)
    else:
        energy = GaussianMixture() if target == "mixture" else Gaussian(torch.zeros(100), torch.tensor(_variances()))
    result = {}

    def run(n_steps: int):  # thin = n_steps keeps the final state only, as the peers' runs do
        trace = ebm_samplers.sample(
            energy,
            kernel,
            init=init,
            n_steps=n_steps,
            warmup=0,  # a fixed step size h, as the peers' runs
            thin=n_steps,
            step_size=step_size,
            seed=0,
            backend="torch" if path == "compiled" else path,
            compile_step=path == "compiled",
            progress=False,
        )
        result["acceptance"] = float(trace.stats["acceptance_rate"].mean())

    per_step, steps = _per_step_seconds(run, seconds)
    return {"step_ms": 1e3 * per_step, "steps": steps, "acceptance": result["acceptance"]}


# --- driver ---------------------------------------------------------------------------------------------------


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=0.6, help="CPU seconds aimed at per long run")
    parser.add_argument("--cpu", type=int, default=0, help="the first CPU to pin the process to")
    parser.add_argument("--threads", type=int, default=1, help="threads per package (> 1: wall time)")
    parser.add_argument("--targets", default="mixture,gaussian100")
    parser.add_argument("--out", help="default benchmarks/results/peers.json, peers_threadsN.json with --threads N")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1; got {args.threads}")
    if args.out is None:
        suffix = "" if args.threads == 1 else f"_threads{args.threads}"
        args.out = str(ROOT / "benchmarks" / "results" / f"peers{suffix}.json")
    global _clock
    _clock = time.process_time if args.threads == 1 else time.perf_counter
    _pin_threads(args.cpu, args.threads)
    peers = {"blackjax": _available("blackjax") and _available("jax"), "torchebm": _available("torchebm")}
    for name, present in peers.items():
        if not present:
            print(f"{name}: skipped (not importable here; install it in a scratch environment, not this project's)")
    if not any(peers.values()):
        print("peers: none of blackjax, torchebm is importable; nothing to compare", file=sys.stderr)
        sys.exit(2)
    import torch

    torch.set_num_threads(args.threads)
    have_ours = _available("ebm_samplers") and _available("numba")
    if have_ours:
        import numba

        numba.set_num_threads(args.threads)
    else:
        print("ours: skipped (ebm_samplers not importable: run from the repository with PYTHONPATH=.)")
    results: dict = {"chains": args.chains, "threads": args.threads, "cpu_time": args.threads == 1}
    for package in ("jax", "blackjax", "torchebm", "torch", "numba"):
        if _available(package):
            results[f"version.{package}"] = getattr(importlib.import_module(package), "__version__", "?")

    def record(name: str, row: dict) -> None:
        for key, value in row.items():
            results[f"{name}.{key}"] = value
        print(f"{name}.step_ms: {row['step_ms']:.4g}")
        sys.stdout.flush()

    for target in args.targets.split(","):
        init = _exact_draws(target, args.chains)
        sizes = STEP_SIZES[target]
        if peers["blackjax"]:
            record(f"{target}.blackjax_mala", blackjax_mala(target, init, sizes["mala"], args.seconds))
            row = blackjax_mala(target, init, sizes["mala"], args.seconds, float64=True)
            record(f"{target}.blackjax_mala_float64", row)
        if peers["torchebm"]:
            record(f"{target}.torchebm_langevin", torchebm_langevin(target, init, sizes["ula"], args.seconds))
        if have_ours:
            for kernel in ("mala", "ula"):
                for path in ("numba", "torch", "compiled"):
                    record(
                        f"{target}.ours_{kernel}_{path}", ours(target, kernel, path, init, sizes[kernel], args.seconds)
                    )
        _ratios(results, target)
    text = json.dumps(results, indent=1, sort_keys=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.tmp")
    with open(temporary, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, out)
    print(f"json: {out}")
    return results


def _ratios(results: dict, target: str) -> None:
    """Peer's step time over ours, same target and run: above 1 means ours is faster."""
    pairs = (("blackjax_mala", "mala"), ("blackjax_mala_float64", "mala"), ("torchebm_langevin", "ula"))
    for peer, kernel in pairs:
        for path in ("numba", "torch", "compiled"):
            theirs, mine = (
                results.get(f"{target}.{peer}.step_ms"),
                results.get(f"{target}.ours_{kernel}_{path}.step_ms"),
            )
            if theirs and mine:
                results[f"{target}.{peer}_over_ours_{path}"] = theirs / mine
                print(f"{target}.{peer}_over_ours_{path}: {theirs / mine:.3g}")


if __name__ == "__main__":
    main()
