"""End to end: whole `sample()` calls with draws stored, side by side with BlackJAX MALA and a hand-written loop.

    PYTHONPATH=. python benchmarks/end_to_end.py [--threads 2] [--peer-python /work/scratch/bjax/bin/python]

What each row does, how it is timed and what the ratios mean: `benchmarks/README.md` and `docs/performance.md`.
BlackJAX runs in a second Python (`--peer-python`, a scratch environment: never a dependency of this project)
that this script starts and talks to over a pipe, one JSON line per request; the same file is that peer
(`--peer`), which imports jax and numpy only. Prints `name: value` lines and writes
`benchmarks/results/end_to_end.json` and `end_to_end.md`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PEER_PYTHON = "/work/scratch/bjax/bin/python"
#: MALA step size per target (the issue's h = 0.007 on the Gaussian; the mixture's from benchmarks/speed.py)
STEP_SIZES = {"mixture": 0.3, "gaussian100": 0.007}
MIXTURE_MEANS = ((-2.0, -2.0), (2.0, 2.0))
MIXTURE_VARIANCE = 0.5
#: our rows, in the order they run within a round
OURS = ("hand", "hand_one_thread", "eager", "compiled", "numba")
#: rows only run when asked (`--rows`; benchmarks/gpu_check.sh): the hand-written step under torch.compile, in its
#: default mode and in "reduce-overhead" (CUDA graphs on a GPU; on a cpu the same as the default mode)
EXTRA = ("hand_compiled", "hand_graphs")
PEERS = ("blackjax", "blackjax_float64")


def _variances(dim: int = 100) -> list[float]:
    return [10.0 ** (-2.0 + 2.0 * i / (dim - 1)) for i in range(dim)]


def _pin(threads: int) -> None:
    """This process's CPUs (0 .. threads - 1) and, for jax, XLA's thread flags (read once, before import)."""
    eigen = "true" if threads > 1 else "false"
    os.environ["XLA_FLAGS"] = f"--xla_cpu_multi_thread_eigen={eigen} intra_op_parallelism_threads={threads}"
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    # OpenMP threads that spin while they wait made torch's 2-thread steps 80x slower on a shared 2-core machine
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if hasattr(os, "sched_setaffinity"):
        available = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, set(available[:threads]))


# --- the peer: BlackJAX MALA, jit + vmap over chains + scan over steps, storing its trace ----------------------


def _peer_serve(threads: int, float64: bool) -> None:
    """Answer JSON requests on stdin, one per line: {"setup": ...} builds and compiles a run, {"time": name} times
    one call of it. Every answer is one JSON line on stdout."""
    _pin(threads)
    import blackjax
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.scipy.special import logsumexp

    jax.config.update("jax_enable_x64", float64)
    runs = {}

    def logdensity_of(target: str):
        if target == "mixture":
            means = jnp.array(MIXTURE_MEANS)

            def logdensity(x):
                squared = jnp.sum((x[None, :] - means) ** 2, axis=-1)
                return logsumexp(-0.5 * squared / MIXTURE_VARIANCE) + jnp.log(0.5)

            return logdensity
        precision = 1.0 / jnp.array(_variances())
        return lambda x: -0.5 * jnp.sum(precision * x * x)

    def build(target: str, init_file: str, n_steps: int, step_size: float):
        algorithm = blackjax.mala(logdensity_of(target), step_size)
        positions = jnp.asarray(np.load(init_file).astype(np.float64 if float64 else np.float32))
        n = positions.shape[0]

        @jax.jit
        def run(key, positions):
            states = jax.vmap(algorithm.init)(positions)

            def one_step(states, step_key):
                states, info = jax.vmap(algorithm.step)(jax.random.split(step_key, n), states)
                # the same content as our trace: draws, E(x) (= -log density), acceptance rate and decision
                return states, (states.position, states.logdensity, info.acceptance_rate, info.is_accepted)

            _, trace = jax.lax.scan(one_step, states, jax.random.split(key, n_steps))
            return trace

        def call(seed: int):
            trace = run(jax.random.key(seed), positions)
            jax.block_until_ready(trace)
            return trace

        return call

    for line in sys.stdin:
        request = json.loads(line)
        if "setup" in request:
            spec = request["setup"]
            call = build(spec["target"], spec["init"], spec["n_steps"], spec["step_size"])
            start = time.perf_counter()
            trace = call(0)  # traces and compiles
            first = time.perf_counter() - start
            runs[spec["name"]] = call
            answer = {"first_s": first, "acceptance": float(trace[2].mean()), "dtype": str(trace[0].dtype)}
            answer["versions"] = {"jax": jax.__version__, "blackjax": blackjax.__version__}
        else:
            start, cpu = time.perf_counter(), time.process_time()
            runs[request["time"]](request.get("seed", 1))
            answer = {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu}
        print(json.dumps(answer), flush=True)


class _Peer:
    """The driver's end of the pipe to one peer process (one precision)."""

    def __init__(self, python: str, threads: int, float64: bool):
        command = [python, __file__, "--peer", "--threads", str(threads)] + (["--float64"] if float64 else [])
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, request: dict) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the BlackJAX peer exited (status {self.process.wait()}); see its error above")
        return json.loads(line)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


# --- ours and the hand-written loop --------------------------------------------------------------------------


#: "callable": the targets as plain torch functions (gradients by autograd, what a user's function gets);
#: "analytic": the project's `GaussianMixture` and `Gaussian`, whose classes write their gradients out (set by main)
_ENERGY = "callable"


def _torch_energy(target: str):
    """The target as a plain torch callable, E(x) for x of shape (n, d): what a user passes to `sample()`; with
    `--energy analytic` the `energies` class of it instead."""
    import torch

    if _ENERGY == "analytic":
        from energies import Gaussian, GaussianMixture

        return GaussianMixture() if target == "mixture" else Gaussian(torch.zeros(100), torch.tensor(_variances()))

    constants = {}  # per (device, dtype): a copy per call would add a host-to-device transfer on a GPU

    def constant(values, x):
        key = (x.device, x.dtype)
        if key not in constants:
            constants[key] = torch.tensor(values, dtype=x.dtype, device=x.device)
        return constants[key]

    if target == "mixture":

        def mixture(x):
            squared = (x[:, None, :] - constant(MIXTURE_MEANS, x)).square().sum(-1)
            return -torch.logsumexp(-0.5 * squared / MIXTURE_VARIANCE, dim=-1) - math.log(0.5)

        return mixture
    precisions = [1.0 / v for v in _variances()]

    def gaussian(x):
        return 0.5 * (constant(precisions, x) * x.square()).sum(-1)

    return gaussian


def _numba_energy(target: str):
    from energies.numba_targets import default_mixture, log_spaced_gaussian

    return default_mixture() if target == "mixture" else log_spaced_gaussian(100)


def _exact_draws(target: str, n: int, seed: int = 0):
    """float32 draws of the target: every row starts its chains there."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    if target == "mixture":
        component = torch.randint(0, 2, (n,), generator=generator)
        return torch.tensor(MIXTURE_MEANS)[component] + math.sqrt(MIXTURE_VARIANCE) * torch.randn(
            n, 2, generator=generator
        )
    return torch.tensor(_variances()).sqrt() * torch.randn(n, 100, generator=generator)


def _value_and_grad(energy, x):
    """E(x) and grad E(x) by autograd, as a user's loop would write it (an analytic energy's own gradient)."""
    import torch

    if _ENERGY == "analytic":
        return energy.energy_and_grad(x)
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        value = energy(leaf)
        (grad,) = torch.autograd.grad(value.sum(), leaf)
    return value.detach(), grad


def hand_mala(energy, init, n_steps: int, step_size: float, seed: int):
    """A minimal eager MALA loop that stores what `sample()` stores (draws, E(x), acceptance rate and decision) in
    buffers allocated up front, in the order it produces them (draw, chain, ...); no checks, no adaptation."""
    import torch

    generator = torch.Generator(init.device).manual_seed(seed)
    n, like = init.shape[0], dict(dtype=init.dtype, device=init.device)
    draws = torch.empty((n_steps, *init.shape), **like)
    energies = torch.empty((n_steps, n), **like)
    rates = torch.empty((n_steps, n), **like)
    accepted = torch.empty((n_steps, n), dtype=torch.bool, device=init.device)
    h, scale = step_size, math.sqrt(2.0 * step_size)
    x = init
    value, grad = _value_and_grad(energy, x)
    for t in range(n_steps):
        noise = torch.randn(x.shape, generator=generator, **like)
        uniform = torch.rand(n, generator=generator, **like)
        proposal = x - h * grad + scale * noise
        proposal_value, proposal_grad = _value_and_grad(energy, proposal)
        # log q(x | x') - log q(x' | x) = 1/2 (g + g') . (x' - x - h/2 (g' - g))
        shifted = proposal - x - 0.5 * h * (proposal_grad - grad)
        log_ratio = value - proposal_value + 0.5 * ((grad + proposal_grad) * shifted).sum(-1)
        accept = torch.log(uniform) < log_ratio
        x = torch.where(accept[:, None], proposal, x)
        grad = torch.where(accept[:, None], proposal_grad, grad)
        value = torch.where(accept, proposal_value, value)
        draws[t], energies[t], accepted[t] = x, value, accept
        rates[t] = log_ratio.clamp(max=0.0).exp()
    return draws, energies, rates, accepted


def hand_compiled_mala(energy, init, n_steps: int, step_size: float, seed: int, step):
    """`hand_mala` with its transition (everything but the random draws) in `step`, a torch.compile'd
    `_hand_step`; the gradient by `torch.func`, which dynamo traces into the graph."""
    import torch

    generator = torch.Generator(init.device).manual_seed(seed)
    n, like = init.shape[0], dict(dtype=init.dtype, device=init.device)
    draws = torch.empty((n_steps, *init.shape), **like)
    energies = torch.empty((n_steps, n), **like)
    rates = torch.empty((n_steps, n), **like)
    accepted = torch.empty((n_steps, n), dtype=torch.bool, device=init.device)
    x = init
    value, grad = _value_and_grad(energy, x)
    for t in range(n_steps):
        noise = torch.randn(x.shape, generator=generator, **like)
        uniform = torch.rand(n, generator=generator, **like)
        torch.compiler.cudagraph_mark_step_begin()  # this call's outputs replace the last call's (CUDA graphs)
        x, value, grad, rate, accept = step(x, value, grad, noise, uniform)
        draws[t], energies[t], rates[t], accepted[t] = x, value, rate, accept
        x, value, grad = x.clone(), value.clone(), grad.clone()  # inputs that outlive the graph's next replay
    return draws, energies, rates, accepted


def _hand_step(energy, step_size: float):
    import torch

    h, scale = step_size, math.sqrt(2.0 * step_size)

    def value_and_grad(z):
        values = energy(z)
        return values.sum(), values

    autograd = torch.func.grad_and_value(value_and_grad, has_aux=True)

    def gradient(z):
        if _ENERGY == "analytic":
            value, grad = energy.energy_and_grad(z)
            return grad, (None, value)
        return autograd(z)

    def step(x, value, grad, noise, uniform):
        proposal = x - h * grad + scale * noise
        proposal_grad, (_, proposal_value) = gradient(proposal)
        shifted = proposal - x - 0.5 * h * (proposal_grad - grad)
        log_ratio = value - proposal_value + 0.5 * ((grad + proposal_grad) * shifted).sum(-1)
        accept = torch.log(uniform) < log_ratio
        x = torch.where(accept[:, None], proposal, x)
        grad = torch.where(accept[:, None], proposal_grad, grad)
        value = torch.where(accept, proposal_value, value)
        return x, value, grad, log_ratio.clamp(max=0.0).exp(), accept

    return step


def _synchronise(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _ours(path: str, target: str, init, n_steps: int, step_size: float):
    """`run(seed) -> (acceptance, compile seconds or None)` for one of our rows; it returns when the device is
    done."""
    import torch

    import ebm_samplers

    if path in ("hand", "hand_one_thread"):
        from energies._threads import torch_threads

        energy = _torch_energy(target)
        # the same loop on one torch thread: what `sample()` runs a step this small on (`energies._threads`)
        threads = 1 if path == "hand_one_thread" else None

        def run(seed: int):
            with torch_threads(threads):
                acceptance = hand_mala(energy, init, n_steps, step_size, seed)[2].mean()
            return float(acceptance), None  # float(): waits for the device

        return run
    if path in EXTRA:
        energy = _torch_energy(target)
        step = torch.compile(_hand_step(energy, step_size), mode="reduce-overhead" if path == "hand_graphs" else None)

        def run(seed: int):
            return float(hand_compiled_mala(energy, init, n_steps, step_size, seed, step)[2].mean()), None

        return run
    energy = _numba_energy(target) if path == "numba" else _torch_energy(target)
    options = dict(init=init, n_steps=n_steps, warmup=0, step_size=step_size, progress=False)
    if path == "compiled":
        options["compile_step"] = True
    if path == "numba":
        options["backend"] = "numba"

    def run(seed: int):
        trace = ebm_samplers.sample(energy, "mala", seed=seed, **options)
        _synchronise(init.device)
        return float(trace.stats["acceptance_rate"].mean()), trace.attrs.get("compile_seconds")

    return run


def _bare_ms(target: str, init, numba_too: bool) -> dict:
    """One transition's unavoidable work, for every chain: the energy+gradient and the normal and uniform draws;
    torch (the callable by autograd, torch's generator, on init's device) and numba (the compiled `grad_fn` and
    the numba loops' generator over all chains, serially: a parallel launch per call would dominate at 1,000
    chains on a busy machine)."""
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _report import median_seconds

    energy, generator = _torch_energy(target), torch.Generator(init.device).manual_seed(5)
    like = dict(dtype=init.dtype, device=init.device)

    def torch_bare():
        _value_and_grad(energy, init)
        torch.randn(init.shape, generator=generator, **like)
        torch.rand(init.shape[0], generator=generator, **like)
        _synchronise(init.device)

    cpu = time.process_time  # CPU time: the view of a loaded machine that drifts least
    bare = {"torch": 1e3 * median_seconds(torch_bare, 50, cpu)}
    if not numba_too:
        return bare
    import numba
    import numpy as np

    from ebm_samplers._numba._random import fill_standard_normal, seeded_state, uniform
    from energies.numba_energy import function_types

    vectors = numba.float64[:, ::1]
    signature = numba.void(function_types()[1], vectors, numba.float64[::1], vectors, vectors, numba.uint64[:, ::1])

    @numba.njit(signature)
    def batch(grad_fn, x, value, grad, noise, states):  # the numba loops' own generator: one stream per chain
        for i in range(x.shape[0]):
            value[i] = grad_fn(x[i], grad[i])
            fill_standard_normal(noise[i], states[i])
            value[i] += 0.0 * uniform(states[i])

    numba_energy = _numba_energy(target)
    points = np.ascontiguousarray(init.double().cpu().numpy())
    value, grad, noise = np.empty(points.shape[0]), np.empty_like(points), np.empty_like(points)
    states = np.stack([seeded_state(chain) for chain in range(points.shape[0])])
    numba_bare = partial(batch, numba_energy.grad_fn, points, value, grad, noise, states)
    return bare | {"numba": 1e3 * median_seconds(numba_bare, 50, cpu)}


# --- driver ---------------------------------------------------------------------------------------------------


def measure(target: str, args, results: dict) -> None:
    import numpy as np
    import torch

    device = torch.device(args.device)
    init = _exact_draws(target, args.chains)
    step_size = STEP_SIZES[target]
    runs = {}
    for path in (*OURS, *EXTRA):
        if path in args.rows:
            runs[path] = _ours(path, target, init.to(device), args.n_steps, step_size)
    peers = {}
    with tempfile.TemporaryDirectory() as folder:
        init_file = os.path.join(folder, "init.npy")
        np.save(init_file, init.numpy())
        for name in PEERS:
            if name in args.rows and args.peer_python:
                peer = _Peer(args.peer_python, args.threads, float64=name.endswith("float64"))
                spec = dict(name=target, target=target, init=init_file, n_steps=args.n_steps, step_size=step_size)
                answer = peer.ask({"setup": spec})
                peers[name] = peer
                results[f"{target}.{name}.first_s"] = answer["first_s"]
                results[f"{target}.{name}.acceptance"] = answer["acceptance"]
                for package, version in answer["versions"].items():
                    results[f"version.{package}"] = version
    try:
        for path, run in list(runs.items()):  # first calls: compile (torch.compile, numba's energy closures)
            start = time.perf_counter()
            try:
                acceptance, compile_seconds = run(0)
            except Exception as error:  # one row failing (e.g. a compile mode on a new device) keeps the others
                results[f"{target}.{path}.error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
                print(f"{target}.{path}.error: {results[f'{target}.{path}.error']}", file=sys.stderr)
                del runs[path]
                continue
            results[f"{target}.{path}.first_s"] = time.perf_counter() - start
            results[f"{target}.{path}.acceptance"] = acceptance
            if compile_seconds is not None:
                results[f"{target}.{path}.compile_seconds_attr"] = compile_seconds
        seconds = {name: [] for name in [*peers, *runs]}
        cpu_seconds = {name: [] for name in [*peers, *runs]}
        for repeat in range(args.repeats):  # rounds: every row once per round, so drift hits all rows alike
            for name, peer in peers.items():
                answer = peer.ask({"time": target, "seed": repeat + 1})
                seconds[name].append(answer["seconds"])
                cpu_seconds[name].append(answer["cpu_seconds"])
            for path, run in runs.items():
                start, cpu = time.perf_counter(), time.process_time()
                run(repeat + 1)
                seconds[path].append(time.perf_counter() - start)
                cpu_seconds[path].append(time.process_time() - cpu)
    finally:
        for peer in peers.values():
            peer.close()
    bare = _bare_ms(target, init.to(device), numba_too="numba" in runs)
    results[f"{target}.bare_ms"] = bare["torch"]
    if "numba" in bare:
        results[f"{target}.numba_bare_ms"] = bare["numba"]
    for name, times in seconds.items():
        best = min(times)
        row = {
            "step_ms": 1e3 * best / args.n_steps,
            "median_step_ms": 1e3 * sorted(times)[len(times) // 2] / args.n_steps,
            "call_s": best,
            "cpu_step_ms": 1e3 * min(cpu_seconds[name]) / args.n_steps,
            "compile_s": max(results[f"{target}.{name}.first_s"] - best, 0.0),
        }
        row["over_bare"] = row["cpu_step_ms"] / bare["numba" if name == "numba" else "torch"]
        if name == "numba":
            row["over_torch_bare"] = row["cpu_step_ms"] / bare["torch"]
        for key, value in row.items():
            results[f"{target}.{name}.{key}"] = value
    _ratios(results, target)


#: (row, reference, target ratio or None): time per step of row over the reference's, same run
RATIOS = (
    ("compiled", "blackjax", 1.0),
    ("numba", "blackjax", 1.0),
    ("compiled", "blackjax_float64", None),
    ("numba", "blackjax_float64", None),
    ("eager", "hand", 1.15),
    ("eager", "hand_one_thread", None),
    ("eager", "blackjax", None),
    ("hand", "blackjax", None),
    ("compiled", "hand_compiled", None),
    ("hand_graphs", "hand_compiled", None),
    ("compiled", "hand", None),
)


def _ratios(results: dict, target: str) -> None:
    for row, reference, goal in RATIOS:
        mine, theirs = results.get(f"{target}.{row}.step_ms"), results.get(f"{target}.{reference}.step_ms")
        if mine and theirs:
            results[f"{target}.{row}_over_{reference}"] = mine / theirs
            if goal is not None:
                results[f"{target}.{row}_over_{reference}.met"] = mine / theirs <= goal
            mine, theirs = results[f"{target}.{row}.cpu_step_ms"], results[f"{target}.{reference}.cpu_step_ms"]
            results[f"{target}.{row}_over_{reference}.cpu"] = mine / theirs


def _markdown(results: dict, targets: list[str], args) -> str:
    lines = [
        f"End to end, {args.chains} chains x {args.n_steps} steps, draws stored, {args.threads} threads, "
        f"{results['device']}, {args.energy} energies: each row's best of {args.repeats} rounds, in wall time and "
        "in the process's CPU time (all its threads); `python benchmarks/end_to_end.py`.",
        "",
        "| target | row | ms / step | median | CPU ms / step | compile s | CPU x bare | acceptance |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    keys = ("step_ms", "median_step_ms", "cpu_step_ms", "compile_s", "over_bare", "acceptance")
    for target in targets:
        for name in (*PEERS, *OURS, *EXTRA):
            if f"{target}.{name}.step_ms" not in results:
                continue
            row = [results[f"{target}.{name}.{key}"] for key in keys]
            lines.append(f"| {target} | {name} | " + " | ".join(f"{value:.3f}" for value in row[:3]) + " | ")
            lines[-1] += f"{row[3]:.2f} | {row[4]:.2f} | {row[5]:.3f} |"
    lines += ["", "| target | ratio | wall | CPU | goal | met (wall) |", "|---|---|---:|---:|---:|---|"]
    for target in targets:
        for row, reference, goal in RATIOS:
            value = results.get(f"{target}.{row}_over_{reference}")
            if value is not None:
                cpu = results[f"{target}.{row}_over_{reference}.cpu"]
                met = "" if goal is None else ("yes" if value <= goal else "no")
                lines.append(f"| {target} | {row} / {reference} | {value:.2f} | {cpu:.2f} | {goal or ''} | {met} |")
    return "\n".join(lines) + "\n"


def profile(target: str, args) -> None:
    """cProfile of one eager `sample()` call (after a warm-up call): the functions with the most cumulative time."""
    import cProfile
    import pstats

    run = _ours("eager", target, _exact_draws(target, args.chains), args.n_steps, STEP_SIZES[target])
    run(0)
    profiler = cProfile.Profile()
    profiler.enable()
    run(1)
    profiler.disable()
    print(f"--- {target}: eager sample(), cProfile, cumulative time, {args.n_steps} steps")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile_top)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=1_000)
    parser.add_argument("--n-steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5, help="rounds of timed calls; each row's best counts")
    parser.add_argument("--threads", type=int, default=2, help="threads of every package (wall time)")
    parser.add_argument("--targets", default="mixture,gaussian100")
    parser.add_argument("--energy", choices=("callable", "analytic"), default="callable", help="see _ENERGY")
    parser.add_argument("--device", default="cpu", help="our rows' device; on cuda the cpu-only rows are left out")
    parser.add_argument("--rows", default=None, help="subset of: " + ", ".join((*PEERS, *OURS, *EXTRA)))
    parser.add_argument("--peer-python", default=DEFAULT_PEER_PYTHON, help="a Python with jax + blackjax; '' skips")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the eager path instead")
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--out", help="default benchmarks/results/end_to_end.json (end_to_end_analytic.json)")
    parser.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)  # this file as the BlackJAX peer
    parser.add_argument("--float64", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer:
        _peer_serve(args.threads, args.float64)
        return {}
    global _ENERGY
    _ENERGY = args.energy
    if args.out is None:
        suffix = "_analytic" if args.energy == "analytic" else ""
        args.out = str(ROOT / "benchmarks" / "results" / f"end_to_end{suffix}.json")
    for name in ("chains", "n_steps", "repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    on_cpu = args.device == "cpu"
    args.rows = (",".join((*PEERS, *OURS)) if on_cpu else "hand,eager,compiled") if args.rows is None else args.rows
    args.rows = args.rows.split(",")
    unknown = sorted(set(args.rows) - {*PEERS, *OURS, *EXTRA})
    if unknown:
        parser.error(f"--rows: unknown {', '.join(unknown)}; expected some of {', '.join((*PEERS, *OURS, *EXTRA))}")
    if not on_cpu and set(args.rows) & {*PEERS, "numba"}:
        parser.error(f"--rows: {', '.join(PEERS)} and numba run on the cpu only; leave them out with --device")
    targets = args.targets.split(",")
    if set(targets) - set(STEP_SIZES):
        parser.error(f"--targets: expected some of {', '.join(STEP_SIZES)}; got {args.targets}")
    if args.peer_python and not Path(args.peer_python).exists():
        print(f"blackjax: skipped ({args.peer_python} does not exist; pass --peer-python)")
        args.peer_python = ""
    _pin(args.threads)
    import numba
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch sees no CUDA device here")
    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    if args.profile:
        for target in targets:
            profile(target, args)
        return {}
    results: dict = {
        "chains": args.chains,
        "n_steps": args.n_steps,
        "repeats": args.repeats,
        "threads": args.threads,
        "energy": args.energy,
        "device": torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu",
        "version.torch": torch.__version__,
        "version.numba": numba.__version__,
    }
    start = time.perf_counter()
    for target in targets:
        measure(target, args, results)
        for key, value in results.items():
            if key.startswith(f"{target}."):
                print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
        sys.stdout.flush()
    results["wall_s"] = time.perf_counter() - start
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _report import write_json

    out = write_json(args.out, results, indent=1, sort_keys=True)
    table = Path(args.out).with_suffix(".md")
    table.write_text(_markdown(results, targets, args))
    print(f"wall_s: {results['wall_s']:.1f}")
    print(f"json: {out}")
    print(f"markdown: {table}")
    return results


if __name__ == "__main__":
    main()
