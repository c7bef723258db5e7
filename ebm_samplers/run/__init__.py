"""`sample()`: run any kernel on any energy, many chains at once, and collect a `Trace`.

`sample()` is the recipe; each step of it is a module with one job:

* `options`: every argument checked once, into a frozen `RunOptions`;
* `sharding`: under torchrun, the chains split across ranks, each rank running the local run on its shard;
* `start`: the run's generator and initial points;
* `backends`: eager torch, `torch.compile` or numba;
* `recording`: where kept draws go (memory, a streaming folder, running moments);
* `resume`: checkpoints;
* `loop`: the guarded loop, warm-up then sampling.

The non-finite guard (`ebm_samplers._nonfinite`) and the warm-up adaptation (`ebm_samplers.adaptation`) are
built here and called from the loop.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import Tensor

from ebm_samplers._event_check import check_init_events
from ebm_samplers._nonfinite import NonfiniteGuard, ResetPoints, default_reset
from ebm_samplers.adaptation import WarmupAdaptation
from ebm_samplers.kernels.base import Kernel
from ebm_samplers.moments import Moments
from ebm_samplers.naming import Transform
from ebm_samplers.run import sharding
from ebm_samplers.run.backends import choose_backend
from ebm_samplers.run.loop import run_loop
from ebm_samplers.run.options import RunOptions, kernel_name
from ebm_samplers.run.recording import make_recorder
from ebm_samplers.run.resume import resume, stateful_parts
from ebm_samplers.run.start import check_step_size_fits, init_state, initial_points, make_generator
from ebm_samplers.stopping import Converged, ConvergenceMonitor
from ebm_samplers.trace import Trace
from energies import check_energy

__all__ = ["RunOptions", "run_local", "sample"]


def sample(
    energy: Callable[[Tensor], Tensor],
    sampler: str | Kernel = "mala",
    *,
    init: Tensor | None = None,
    n_chains: int | None = None,
    n_steps: int | None = None,
    warmup: int | None = None,
    thin: int = 1,
    seed: int | None = None,
    progress: bool | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    adapt_step_size: bool = True,
    target_acceptance: float | None = None,
    step_size_per_chain: bool | None = None,
    adapt_mass_matrix: bool = True,
    backend: str = "auto",
    on_nonfinite: str = "raise",
    reset: ResetPoints | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 1000,
    stream: str | os.PathLike | None = None,
    stream_every: int = 1000,
    keep: str = "draws",
    compile_step: bool = False,
    names=None,
    coords: dict | None = None,
    dims: dict | None = None,
    transform: Transform | None = None,
    until: Converged | None = None,
    max_steps: int | None = None,
    **sampler_params,
) -> Trace | Moments:
    """Draw `n_steps // thin` kept states from each of many chains targeting exp(-energy).

    Args:
        energy: any callable `f(x: Tensor[n, *event]) -> Tensor[n]`, or an `energies.Energy`.
        sampler: a registered sampler name (see `available_samplers()`) or a kernel object.
        init: initial points `(n_chains, *event_shape)`; their device and dtype are used throughout.
        n_chains: with no `init`, start this many chains from N(0, I) (needs `energy.event_shape`).
        n_steps: transitions after warm-up; every `thin`-th one is kept (with `until`, give `max_steps` instead).
        warmup: transitions run first and discarded, during which the step size (and metric) adapt. None (the
            default): min(n_steps, 1000) for a kernel with something to adapt (a target acceptance, as MALA and
            HMC, or a metric), else 0; `warmup=0` samples with the kernel's parameters as given. The value used
            is `trace.attrs["warmup"]`. Before the first warm-up transition an initial step-size search
            (Hoffman & Gelman 2014) replaces a step size off by orders of magnitude.
        seed: seeds the run's only random generator; None picks a fresh seed, stored in `trace.attrs`.
        progress: show a progress bar; None shows it on long runs when stderr is a terminal.
        device, dtype: for the N(0, I) initial points when `init` is None (with `init`, leave them out or match it).
        adapt_step_size: during warm-up, tune the step size (starting from the kernel's) by dual averaging
            toward the kernel's target acceptance; kernels without an accept step (ULA) never adapt it.
        target_acceptance: overrides the kernel's target (MALA 0.574, HMC 0.8).
        step_size_per_chain: adapt one step size per chain (each chain's own acceptance, as Stan and BlackJAX
            adapt each chain), or False: one shared step size driven by the acceptance averaged over chains.
            None (the default) adapts per chain whenever the step size is adapted (a shared step size lets
            one chain that starts far out and rejects everything drag every chain's step size to zero), except
            for ChEES-HMC, whose chains share one trajectory length and, after the first slow window of warm-up,
            one step size, as in its paper.
        adapt_mass_matrix: estimate a diagonal inverse mass in warm-up for kernels that have one (HMC,
            underdamped Langevin). What warm-up settled on is in `trace.attrs` and `stats["step_size"]`.
        backend: "auto" runs `ula`, `mala` and `hmc` on an `energies.NumbaEnergy` as numba loops (same
            Trace; its draws differ from the torch path's for the same seed, reproducibly) and everything else
            with torch; "torch" always uses the torch kernels; "numba" requires the numba path. The numba
            path keeps draws in memory and raises on non-finite values: with on_nonfinite other than "raise",
            checkpoint, stream or keep="moments", "auto" uses torch. On a CPU, torch steps whose tensors all stay
            below 32,768 numbers (a few thousand coordinates and a small energy) run on one torch thread, which
            is faster than several there, and the caller's thread count is back afterwards (`attrs
            ["torch_threads"]`; `energies._threads`).
        on_nonfinite: "raise" (stop, naming chain, step and value), "reject" (the chain keeps its previous
            state) or "reset" (the chain restarts); see `ebm_samplers._nonfinite`.
        reset: for "reset", `reset(n_chains, generator) -> Tensor[n_chains, *event]` giving restart points
            (rows of failing chains are used); default: each chain's initial point, or new N(0, I) draws
            when the run drew its initial points.
        checkpoint: a file to save progress to every `checkpoint_every` transitions and at the end; if it
            exists, the run continues from it (same arguments required; see `ebm_samplers.checkpoint`).
        stream: a folder to append the kept draws to in chunks of `stream_every` draws; the returned
            trace is read back from it (see `ebm_samplers.streaming`). A new run replaces a stream already
            in the folder; only a run resuming from `checkpoint` continues it.
        keep: "draws" returns a `Trace`; "moments" keeps only per-chain running means and variances and
            returns `Moments` (memory independent of the run length).
        compile_step: run the kernel's step (energy included) through `torch.compile`, after warm-up several
            ULA or MALA transitions per compiled call. Faster per step once compiled, most on small targets
            whose eager steps are dominated by dispatch (figures in `docs/performance.md`), but the first calls
            compile (seconds to tens of seconds; the time is in `attrs["compile_seconds"]`), and trajectories
            agree with the eager path's to rounding, not bit for bit. Worth it for long runs; see
            `ebm_samplers._compiled_step`. Torch kernels only.
        names, coords, dims: name the parts of the flattened event ("mu, log_tau, theta[8]"), their axes
            ({"theta": ["school"]}) and the axes' labels ({"school": [...]}) in the trace and its DataTree (see
            `ebm_samplers.naming`). The sampler still moves the flat event.
        transform: x (n, *event) -> {name: Tensor[n, ...]}, derived quantities of each kept draw (e.g. a
            constraining map `{"tau": x[:, 1].exp()}`), recorded in `trace.derived` and summarised with the draws.
            Checked on the initial points before sampling.
        until: `Converged(r_hat=1.01, ess_bulk=400, ess_tail=400)` stops the run after warm-up as soon as every
            coordinate meets the thresholds, checked on the kept draws at growing intervals within 5% of the
            sampling time (see `ebm_samplers.stopping`); give `max_steps` (the cap) instead of `n_steps`. The
            trace's attrs say whether it converged, when, and the shortfall otherwise.
        max_steps: with `until`, the most transitions after warm-up.
        **sampler_params: parameters for a sampler given by name (e.g. `step_size=0.1`).

    Under `torchrun` (or any initialised process group of several ranks) the chains are split across
    ranks; rank 0 returns all of them (see `ebm_samplers.distributed`).
    """
    options = RunOptions.build(
        energy,
        sampler,
        init=init,
        n_chains=n_chains,
        n_steps=n_steps,
        warmup=warmup,
        thin=thin,
        seed=seed,
        progress=progress,
        device=device,
        dtype=dtype,
        adapt_step_size=adapt_step_size,
        target_acceptance=target_acceptance,
        step_size_per_chain=step_size_per_chain,
        adapt_mass_matrix=adapt_mass_matrix,
        backend=backend,
        on_nonfinite=on_nonfinite,
        reset=reset,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        stream=stream,
        stream_every=stream_every,
        keep=keep,
        compile_step=compile_step,
        sampler_params=sampler_params,
        names=names,
        coords=coords,
        dims=dims,
        transform=transform,
        until=until,
        max_steps=max_steps,
    )
    if sharding.should_shard():
        if options.until is not None:
            raise ValueError("until=Converged(...) stops chains together; it is not supported across ranks yet")
        return options.naming.apply(sharding.run_across_ranks(run_local, options))  # named once, when joined
    return options.naming.apply(run_local(options))


def run_local(options: RunOptions) -> Trace | Moments:
    """One run in this process, on all of `options`' chains: what `sample()` does on each shard."""
    seed = options.resolved_seed()
    energy, kernel = options.energy, options.kernel
    generator = make_generator(options, seed)
    init = initial_points(options, generator)
    check_init_events(energy, init)
    check_energy(energy, init)
    options.naming.check(init)
    state, sizes = init_state(kernel, init, energy)
    check_step_size_fits(state, kernel)
    adaptation = WarmupAdaptation(
        kernel,
        state,
        options.warmup,
        adapt_step_size=options.adapt_step_size,
        target_acceptance=options.target_acceptance,
        step_size_per_chain=options.step_size_per_chain,
        adapt_mass_matrix=options.adapt_mass_matrix,
    )
    backend = choose_backend(options, kernel, energy, state.position, adaptation.active, sizes=sizes)
    monitor = None
    if options.until is not None:
        if backend.kind == "numba":
            raise ValueError("until=Converged(...) checks draws as the torch loop keeps them; pass backend='torch'")
        monitor = ConvergenceMonitor(options.until, init.shape[0])
    attrs = {
        "sampler": kernel_name(kernel),
        "sampler_params": kernel.params(),
        "energy": energy.name,
        "seed": seed,
        "warmup": options.warmup,
        "thin": options.thin,
        "n_steps": options.n_steps,
    }
    reset = options.reset or default_reset(init, drawn=options.init is None)
    guard = NonfiniteGuard(
        options.on_nonfinite,
        n_chains=init.shape[0],
        warmup=options.warmup,
        energy_name=energy.name,
        like=state.energy,
        reset=reset,
    )
    recorder = make_recorder(options, init, attrs, guard)
    parts = stateful_parts(recorder, guard, adaptation, kernel)
    checkpointer, state, start = resume(options, attrs, init, state, generator, parts)
    return run_loop(
        options,
        kernel=kernel,
        state=state,
        generator=generator,
        backend=backend,
        adaptation=adaptation,
        guard=guard,
        recorder=recorder,
        checkpointer=checkpointer,
        parts=parts,
        start=start,
        attrs=attrs,
        monitor=monitor,
    )
