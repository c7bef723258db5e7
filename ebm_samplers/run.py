"""`sample()`: run any kernel on any energy, many chains at once, and collect a `Trace`.

The loop keeps everything on the device of the initial points: draws and stats go into preallocated
tensors, and numerical failures are detected on device and checked on the host only every
`_CHECK_EVERY` steps, so a step never waits for the host. Reliability mechanisms live in their own
modules and are only called from here: `_nonfinite` (on_nonfinite policy), `checkpoint` (resume),
`streaming` (chunked traces on disk) and `moments` (running moments instead of draws).
"""

from __future__ import annotations

import difflib
import inspect
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ebm_samplers import distributed
from ebm_samplers._compiled_step import CompiledStep, plan_block
from ebm_samplers._event_check import check_init_events
from ebm_samplers._nonfinite import NonfiniteGuard, ResetPoints, check_policy, default_reset
from ebm_samplers.adaptation import WarmupAdaptation
from ebm_samplers.checkpoint import Checkpointer, fingerprint, stored_seed
from ebm_samplers.kernels._resolve import resolve_kernel
from ebm_samplers.kernels.base import Info, Kernel, State, check_positive
from ebm_samplers.moments import Moments, MomentsRecorder
from ebm_samplers.naming import Naming, Transform
from ebm_samplers.streaming import StreamingRecorder
from ebm_samplers.trace import Trace
from energies import Energy, as_energy, check_energy

_CHECK_EVERY = 256
_PROGRESS_MIN_STEPS = 2000


def sample(
    energy: Callable[[Tensor], Tensor],
    sampler: str | Kernel = "mala",
    *,
    init: Tensor | None = None,
    n_chains: int | None = None,
    n_steps: int,
    warmup: int = 0,
    thin: int = 1,
    seed: int | None = None,
    progress: bool | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    adapt_step_size: bool = True,
    target_acceptance: float | None = None,
    step_size_per_chain: bool = False,
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
    **sampler_params,
) -> Trace | Moments:
    """Draw `n_steps // thin` kept states from each of many chains targeting exp(-energy).

    Args:
        energy: any callable `f(x: Tensor[n, *event]) -> Tensor[n]`, or an `energies.Energy`.
        sampler: a registered sampler name (see `available_samplers()`) or a kernel object.
        init: initial points `(n_chains, *event_shape)`; their device and dtype are used throughout.
        n_chains: with no `init`, start this many chains from N(0, I) (needs `energy.event_shape`).
        n_steps: transitions after warm-up; every `thin`-th one is kept.
        warmup: transitions run first and discarded.
        seed: seeds the run's only random generator; None picks a fresh seed, stored in `trace.attrs`.
        progress: show a progress bar; None shows it on long runs when stderr is a terminal.
        device, dtype: for the N(0, I) initial points when `init` is None (with `init`, leave them out or match it).
        adapt_step_size: during warm-up, tune the step size (starting from the kernel's) by dual averaging
            toward the kernel's target acceptance; kernels without an accept step (ULA) never adapt it.
        target_acceptance: overrides the kernel's target (MALA 0.574, HMC 0.8).
        step_size_per_chain: adapt one step size per chain; by default all chains share one, driven by the
            acceptance averaged over chains (far less noisy, so it lands on the target; see the README).
        adapt_mass_matrix: estimate a diagonal inverse mass in warm-up for kernels that have one (HMC,
            underdamped Langevin). What warm-up settled on is in `trace.attrs` and `stats["step_size"]`.
        backend: "auto" runs `ula`, `mala` and `hmc` on an `energies.NumbaEnergy` as compiled numba loops (same
            Trace; its draws differ from the torch path's for the same seed, reproducibly) and everything else
            with torch; "torch" always uses the torch kernels; "numba" requires the compiled path. The compiled
            path keeps draws in memory and raises on non-finite values: with on_nonfinite other than "raise",
            checkpoint, stream or keep="moments", "auto" uses torch.
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
            ULA or MALA transitions per compiled call: 2.5-3.5x faster per step on small targets once compiled
            (within 10% of eager on neural energies), but the first calls compile (seconds to tens of seconds;
            the time is in `attrs["compile_seconds"]`), and trajectories agree with the eager path's to
            rounding, not bit for bit. Worth it for long runs; see `ebm_samplers._compiled_step`. Torch kernels
            only.
        names, coords, dims: name the parts of the flattened event ("mu, log_tau, theta[8]"), their axes
            ({"theta": ["school"]}) and the axes' labels ({"school": [...]}) in the trace and its DataTree (see
            `ebm_samplers.naming`). The sampler still moves the flat event.
        transform: x (n, *event) -> {name: Tensor[n, ...]}, derived quantities of each kept draw (e.g. a
            constraining map `{"tau": x[:, 1].exp()}`), recorded in `trace.derived` and summarised with the draws.
            Checked on the initial points before sampling.
        **sampler_params: parameters for a sampler given by name (e.g. `step_size=0.1`).

    Under `torchrun` (or any initialised process group of several ranks) the chains are split across
    ranks; rank 0 returns all of them (see `ebm_samplers.distributed`).
    """
    naming = Naming.build(names, coords, dims, transform)
    if distributed.should_shard():
        arguments = {name: value for name, value in locals().items() if name not in ("sampler_params", "naming")}
        arguments |= dict.fromkeys(("names", "coords", "dims", "transform"))  # named once, on the joined trace
        return naming.apply(distributed.sample_distributed(sample, {**arguments, **sampler_params}))
    try:
        kernel = resolve_kernel(sampler, sampler_params)
    except TypeError as error:  # extra keywords go to the sampler: a misspelt sample() argument lands there too
        hint = _misspelt_run_arguments(sampler_params)
        if not hint:
            raise
        raise TypeError(f"{error} ({hint})") from None
    n_steps = _check_count(n_steps, "n_steps", minimum=1)
    warmup = _check_count(warmup, "warmup", minimum=0)
    thin = _check_count(thin, "thin", minimum=1)
    if n_steps < thin:
        raise ValueError(f"n_steps ({n_steps}) must be at least thin ({thin}) so that one draw is kept")
    on_nonfinite = check_policy(on_nonfinite)
    if keep not in ("draws", "moments"):
        raise ValueError(f"keep must be 'draws' or 'moments'; got {keep!r}")
    if not isinstance(compile_step, bool):
        raise TypeError(f"compile_step must be True or False; got {compile_step!r}")
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress must be True, False or None (shown on long runs in a terminal); got {progress!r}")
    if keep == "moments" and n_steps // thin < 2:
        raise ValueError(f"keep='moments' needs at least 2 kept draws for a variance; got {n_steps // thin}")
    checkpoint_every = _check_count(checkpoint_every, "checkpoint_every", minimum=1)
    stream_every = _check_count(stream_every, "stream_every", minimum=1)
    if reset is not None and not callable(reset):
        raise TypeError(f"reset must be a callable reset(n, generator) -> Tensor; got {type(reset).__name__}")
    if reset is not None and on_nonfinite != "reset":
        raise ValueError(f"reset= is used only with on_nonfinite='reset'; got on_nonfinite={on_nonfinite!r}")
    if isinstance(getattr(kernel, "step_size", None), (int, float)):
        check_positive(kernel.step_size, f"{kernel.name or type(kernel).__name__} step_size")
    if seed is None and checkpoint is not None:
        seed = stored_seed(checkpoint)  # resuming a run that picked its own seed
    seed = secrets.randbits(63) if seed is None else _check_count(seed, "seed", minimum=0)
    if seed >= 2**64:  # torch.Generator.manual_seed takes 64 bits
        raise ValueError(f"seed must be an integer in [0, 2**64); got {seed}")
    device, dtype = _check_device(device), _check_dtype(dtype)

    energy = as_energy(energy)
    generator_device = init.device if isinstance(init, Tensor) else torch.device(device or "cpu")
    generator = torch.Generator(device=generator_device).manual_seed(seed)
    drawn_init = init is None
    init = _initial_points(energy, init, n_chains, generator, device, dtype)
    check_init_events(energy, init)
    check_energy(energy, init)
    if keep == "moments" and not naming.empty:
        raise ValueError("names, coords, dims and transform describe kept draws; keep='moments' keeps none")
    naming.check(init)

    state = kernel.init(init, energy)
    _check_step_size_fits(state, kernel)
    adaptation = WarmupAdaptation(
        kernel,
        state,
        warmup,
        adapt_step_size=adapt_step_size,
        target_acceptance=target_acceptance,
        step_size_per_chain=step_size_per_chain,
        adapt_mass_matrix=adapt_mass_matrix,
    )
    plain_run = on_nonfinite == "raise" and checkpoint is None and stream is None and keep == "draws"
    compiled = _compiled_backend(backend, kernel, energy, plain_run)
    if compiled and compile_step:
        raise ValueError(
            "compile_step=True compiles the torch kernel's step, but this run uses the numba loops "
            "(a NumbaEnergy with backend='auto' or 'numba'); pass backend='torch' or compile_step=False"
        )
    step_function = CompiledStep(kernel, energy, state.position.numel()) if compile_step else kernel.step
    total = warmup + n_steps
    # the compiled loops do not adapt: an adapting warm-up runs here on the torch kernel, the rest compiled
    torch_steps = (warmup if adaptation.active else 0) if compiled else total
    show = progress if progress is not None else (total >= _PROGRESS_MIN_STEPS and sys.stderr.isatty())
    attrs = {
        "sampler": kernel.name or type(kernel).__name__,
        "sampler_params": kernel.params(),
        "energy": energy.name,
        "seed": seed,
        "warmup": warmup,
        "thin": thin,
        "n_steps": n_steps,
    }
    guard = NonfiniteGuard(
        on_nonfinite,
        n_chains=init.shape[0],
        warmup=warmup,
        energy_name=energy.name,
        like=state.energy,
        reset=reset or default_reset(init, drawn=drawn_init),
    )
    recorder = _make_recorder(keep, stream, stream_every, init.shape[0], n_steps // thin, thin, attrs, guard)
    # Everything stateful that a checkpoint must hold, by name: each has state_dict()/load_state_dict().
    components: dict[str, Any] = {"recorder": recorder, "nonfinite": guard, "adaptation": adaptation}
    if hasattr(kernel, "state_dict") and hasattr(kernel, "load_state_dict"):
        components["kernel"] = kernel
    elif hasattr(getattr(kernel, "buffer", None), "state_dict"):  # the persistent kernel's replay buffer
        components["kernel_buffer"] = kernel.buffer
    start = 0
    if checkpoint is not None:
        run = {**attrs, "init": fingerprint(init), "energy_parameters": fingerprint(energy), "keep": keep}
        run |= {"on_nonfinite": on_nonfinite, "device": init.device.type, "dtype": str(init.dtype)}
        run |= {"stream": None if stream is None else os.fspath(stream), "stream_every": stream_every}
        run |= {"adapt_step_size": adapt_step_size, "target_acceptance": target_acceptance}
        run |= {"step_size_per_chain": step_size_per_chain, "adapt_mass_matrix": adapt_mass_matrix}
        run |= {"compile_step": compile_step}  # compiled arithmetic rounds differently: no bit-identical resume
        checkpointer = Checkpointer(checkpoint, checkpoint_every, run)
        saved = checkpointer.load()
        if saved is not None:
            state, start = checkpointer.restore(saved, state, generator, components)
    # compiled blocks of transitions (see `_compiled_step`): after warm-up, under "raise", kept draws in memory
    blocks = compile_step and step_function.longest_block > 1 and on_nonfinite == "raise"
    blocks = blocks and isinstance(recorder, _Recorder)

    def next_block(step: int) -> tuple[int, tuple[int, ...]]:
        """(length, rows to return) of a compiled block starting at `step`; length 1: one step alone."""
        if not blocks or step < warmup:
            return 1, ()
        length, rows = plan_block(step - warmup, torch_steps - step, thin, step_function.longest_block)
        if checkpoint is not None and any(checkpointer.due(s, total) for s in range(step + 1, step + length)):
            return 1, ()  # a checkpoint is written between transitions, never inside a block
        return length, rows

    with tqdm(total=total, disable=not show, desc=f"{kernel.name or type(kernel).__name__}", unit="step") as bar:
        bar.update(start)
        step = start
        while step < torch_steps:
            first = step
            length, rows = next_block(step)
            if length > 1:
                state, done = step_function.block(state, energy, generator, length, rows)
                guard.note_block(step, done.bad, done.state_bad, done.value)
                recorder.record_block(step - warmup, rows, done.positions, done.stats)
                step += length
            else:
                previous = state
                state, info = step_function(state, energy, generator)
                state, info = guard.apply(step, previous, state, info, kernel, energy, generator)
                if step < warmup and adaptation.active:
                    state = adaptation.update(step, state, info)
                if step >= warmup:
                    recorder.record(step - warmup, state, info)
                step += 1
            if step // _CHECK_EVERY > first // _CHECK_EVERY or step == torch_steps:
                guard.raise_if_failed()
                bar.update(step - bar.n)
            if checkpoint is not None and checkpointer.due(step, total):
                guard.raise_if_failed()  # never save a state the policy would reject
                recorder.flush()
                checkpointer.save(step, state, generator, components)
        if compiled:
            from ebm_samplers._numba import run_compiled

            draws, stats, first_failure = run_compiled(
                kernel,
                energy,
                state,
                warmup=warmup - torch_steps,
                n_steps=n_steps,
                thin=thin,
                generator=generator,
                first_step=torch_steps,
            )
            guard.raise_if_failed()  # failures of the torch warm-up first: they happened earlier
            guard.record_failures(first_failure)
            # the same stats as the torch path: under "raise" a run that returns had no failure
            stats.setdefault("nonfinite", torch.zeros(draws.shape[:2], dtype=torch.bool))
            bar.update(total - bar.n)
            attrs |= {**adaptation.attrs(state), **guard.attrs(), "backend": "numba"}
            return naming.apply(Trace(draws=draws, stats=stats, attrs=attrs))

    if compile_step and step_function.compile_seconds is not None:
        attrs["compile_seconds"] = step_function.compile_seconds
    return naming.apply(recorder.result({**attrs, **adaptation.attrs(state), **guard.attrs()}))


def _misspelt_run_arguments(sampler_params: dict) -> str:
    """'did you mean sample()'s n_chains= for n_chain=?' for keywords that look like sample()'s own."""
    own = [name for name in inspect.signature(sample).parameters if name != "sampler_params"]
    guesses = []
    for name in sampler_params:
        close = difflib.get_close_matches(name, own, n=1, cutoff=0.8)
        if close:
            guesses.append(f"sample()'s {close[0]}= for {name}=")
    return f"did you mean {', '.join(guesses)}?" if guesses else ""


def _check_step_size_fits(state: State, kernel: Kernel) -> None:
    """A step size valid as a Python float can still round to 0 or overflow in the run's dtype."""
    step_size = getattr(state, "step_size", None)
    if isinstance(step_size, Tensor) and not bool(((step_size > 0) & torch.isfinite(step_size)).all()):
        raise ValueError(
            f"{kernel.name or type(kernel).__name__} step_size {getattr(kernel, 'step_size', '?')!r} becomes "
            f"{step_size.flatten()[0].item()} in {step_size.dtype}; it must be a finite number > 0 in the run's dtype"
        )


def _make_recorder(
    keep: str, stream, stream_every: int, n_chains: int, n_keep: int, thin: int, attrs: dict, guard: NonfiniteGuard
):
    """Where kept draws go: memory (`_Recorder`), running moments, a streaming folder, or both of the last two."""
    streaming = None
    if stream is not None:
        streaming = StreamingRecorder(
            stream, n_chains=n_chains, n_keep=n_keep, thin=thin, chunk=stream_every, attrs=attrs
        )
        streaming.before_write = guard.raise_if_failed  # never write a chunk the policy would reject
    if keep == "moments":
        moments = MomentsRecorder(n_chains, thin)
        return moments if streaming is None else _Tee(moments, streaming)
    return streaming or _Recorder(n_chains=n_chains, n_keep=n_keep, thin=thin, warmup=0)


class _Tee:
    """Running moments returned, draws streamed to disk as well."""

    def __init__(self, moments: MomentsRecorder, streaming: StreamingRecorder):
        self.moments, self.streaming = moments, streaming

    def record(self, step: int, state: State, info: Info) -> None:
        self.moments.record(step, state, info)
        self.streaming.record(step, state, info)

    def flush(self) -> None:
        self.streaming.flush()

    def result(self, attrs: dict) -> Moments:
        self.streaming.finish(attrs)  # without reading the draws back: that is what keep="moments" avoids
        return self.moments.result(attrs)

    def state_dict(self) -> dict[str, Any]:
        return {"moments": self.moments.state_dict(), "streaming": self.streaming.state_dict()}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.moments.load_state_dict(saved["moments"])
        self.streaming.load_state_dict(saved["streaming"])


def _compiled_backend(backend: str, kernel: Kernel, energy: Energy, plain_run: bool) -> bool:
    """Whether to run the compiled numba loop (see `sample`'s `backend`)."""
    if backend not in ("auto", "torch", "numba"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'numba'; got {backend!r}")
    if backend == "torch":
        return False
    if not plain_run:
        if backend == "numba":
            raise ValueError(
                "backend='numba' keeps draws in memory and stops on non-finite values: it cannot be combined with "
                "on_nonfinite other than 'raise', checkpoint, stream or keep='moments'; use backend='auto' or 'torch'"
            )
        return False
    from energies.numba_energy import NumbaEnergy

    if isinstance(energy, NumbaEnergy):
        from ebm_samplers._numba import supports

        if supports(kernel):
            return True
    if backend == "numba":
        raise ValueError(
            f"backend='numba' needs an energies.NumbaEnergy and a built-in ula, mala or hmc kernel; "
            f"got energy {energy.name} and sampler {kernel.name or type(kernel).__name__}"
        )
    return False


def _check_count(value, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}; got {value!r}")
    return value


def _check_device(device) -> torch.device | None:
    """`device` as a torch.device that exists here; a clear error instead of torch's for a typo or a missing GPU."""
    if device is None:
        return None
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be a torch device such as 'cpu', 'cuda' or 'cuda:0'; got {device!r}") from None
    try:
        torch.empty(0, device=device)
    except RuntimeError as error:  # no such GPU, no driver, a build without that backend
        reason = str(error).strip().splitlines()[0].split(". ")[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"device {str(device)!r} is not usable on this machine ({reason})") from None
    return device


def _check_dtype(dtype) -> torch.dtype | None:
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch.dtype such as torch.float32 or torch.float64; got {dtype!r}")
    return dtype


def _initial_points(
    energy: Energy,
    init: Tensor | None,
    n_chains: int | None,
    generator: torch.Generator,
    device,
    dtype,
) -> Tensor:
    if init is not None:
        if n_chains is not None and isinstance(init, Tensor) and init.ndim >= 1 and init.shape[0] != n_chains:
            raise ValueError(f"init has {init.shape[0]} chains but n_chains={n_chains}; give one or make them agree")
        if not isinstance(init, Tensor):
            raise TypeError(f"init must be a torch.Tensor of shape (n_chains, *event); got {type(init).__name__}")
        # device and dtype place drawn initial points; silently ignoring them for a given init would run elsewhere
        other_device = device is not None and (
            device.type != init.device.type or device.index not in (None, init.device.index)
        )
        if other_device or (dtype is not None and dtype != init.dtype):
            raise ValueError(
                f"device={str(device) if device is not None else None!r} and dtype={dtype} describe the N(0, I) "
                f"initial points drawn when init is None, but init is {init.dtype} on {init.device}; "
                "move init itself (init.to(device, dtype)) or leave device and dtype out"
            )
        return init.detach().clone()
    if n_chains is None:
        raise ValueError("give init (a tensor of shape (n_chains, *event_shape)) or n_chains")
    n_chains = _check_count(n_chains, "n_chains", minimum=1)
    if energy.event_shape is None:
        raise ValueError(
            f"energy {energy.name} does not declare its event_shape, so n_chains alone cannot place the chains; "
            "pass init of shape (n_chains, *event_shape) or wrap it with as_energy(f, event_shape=...)"
        )
    dtype = dtype or torch.get_default_dtype()
    return torch.randn(
        (n_chains, *energy.event_shape), generator=generator, dtype=dtype, device=device or generator.device
    )


@dataclass
class _Recorder:
    """Preallocated storage for kept draws and stats.

    Draws and stats are stored draw-major, `(n_keep, n_chains, ...)`, so recording a step writes one
    contiguous block per field (a `(chain, draw)` write is strided, and runs every step); `result`
    transposes them once, one field at a time.

    A stat that is the very tensor recorded last time, unmodified since (a step size that is not adapting,
    ULA's all-accepted flags), is not copied again: its rows are filled from the earlier row when the stats
    are read. At a few microseconds of dispatch per copy, that is most of recording on small targets.
    """

    n_chains: int
    n_keep: int
    thin: int
    warmup: int

    def __post_init__(self) -> None:
        self._draws_by_draw: Tensor | None = None
        self._stats_by_draw: dict[str, Tensor] = {}
        self.n_recorded = 0
        # per stat: the tensor copied last, its version counter then, and the row it was copied to
        self._last_copied: dict[str, tuple[Tensor, int | None, int]] = {}

    def record(self, step: int, state: State, info: Info) -> None:
        if (step + 1) % self.thin:
            return
        index = (step + 1) // self.thin - 1
        if self._draws_by_draw is None:
            self._allocate(state.position, {"energy": state.energy, "step_size": state.step_size, **info})
        self._draws_by_draw[index] = state.position
        self._record_stat("energy", state.energy, index)
        self._record_stat("step_size", state.step_size, index)
        for name, value in info.items():
            self._record_stat(name, value, index)
        self.n_recorded = index + 1

    def record_block(self, first_step: int, rows: tuple[int, ...], positions: Tensor, stats: dict[str, Tensor]) -> None:
        """The states of steps `first_step + row` for `rows` (a compiled block's; see `_compiled_step`), stacked
        along a first axis: those that `thin` keeps, with one copy per field."""
        kept = [i for i, row in enumerate(rows) if (first_step + row + 1) % self.thin == 0]
        if not kept:
            return
        index = (first_step + rows[kept[0]] + 1) // self.thin - 1
        end = index + len(kept)  # consecutive rows, consecutive draws: a block's rows are `thin` apart
        block_rows = slice(kept[0], kept[-1] + 1)
        if self._draws_by_draw is None:
            self._allocate(positions[0], {name: values[0] for name, values in stats.items()})
        self._draws_by_draw[index:end] = positions[block_rows]
        for name, values in stats.items():
            self._fill_repeats(name, index)
            self._stats_by_draw[name][index:end] = values[block_rows]
            self._last_copied[name] = (values, None, end - 1)  # no version: never taken as unchanged
        self.n_recorded = end

    def _allocate(self, position: Tensor, stats: dict[str, Tensor]) -> None:
        self._draws_by_draw = position.new_empty((self.n_keep, *position.shape))
        self._stats_by_draw = {name: value.new_empty((self.n_keep, self.n_chains)) for name, value in stats.items()}

    def _record_stat(self, name: str, value: Tensor, index: int) -> None:
        version = _version(value)
        last = self._last_copied.get(name)
        if last is not None and last[0] is value and version is not None and last[1] == version:
            return  # unchanged: the rows up to `index` are filled from row last[2] when read
        self._fill_repeats(name, index)
        self._stats_by_draw[name][index] = value
        self._last_copied[name] = (value, version, index)

    def _fill_repeats(self, name: str, end: int) -> None:
        """Rows after the last copied one, up to `end` (exclusive), repeat it."""
        last = self._last_copied.get(name)
        if last is not None and last[2] + 1 < end:
            values = self._stats_by_draw[name]
            values[last[2] + 1 : end] = values[last[2]]
            self._last_copied[name] = (last[0], last[1], end - 1)

    @property
    def draws(self) -> Tensor | None:
        """Recorded draws as a `(chain, draw, *event)` view."""
        return None if self._draws_by_draw is None else self._draws_by_draw.transpose(0, 1)

    def _fill_all_repeats(self) -> None:
        for name in self._last_copied:
            self._fill_repeats(name, self.n_recorded)

    @property
    def stats(self) -> dict[str, Tensor]:
        """Recorded stats as `(chain, draw)` views (the rows not copied are filled first)."""
        self._fill_all_repeats()
        return {name: values.T for name, values in self._stats_by_draw.items()}

    def flush(self) -> None:
        """Nothing to write: the draws stay in memory."""

    def result(self, attrs: dict[str, Any]) -> Trace:
        stats = {}
        self._fill_all_repeats()
        self._last_copied = {}
        for name in list(self._stats_by_draw):  # one transposed copy at a time
            stats[name] = self._stats_by_draw.pop(name).T.contiguous().cpu()
        draws, self._draws_by_draw = self.draws.contiguous().cpu(), None
        return Trace(draws=draws, stats=stats, attrs=attrs)

    def state_dict(self) -> dict[str, Any]:
        k = self.n_recorded
        draws = None if self._draws_by_draw is None else self.draws[:, :k]
        return {"n_recorded": k, "draws": draws, "stats": {name: values[:, :k] for name, values in self.stats.items()}}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.n_recorded = k = saved["n_recorded"]
        self._last_copied = {}
        if saved["draws"] is None:
            return
        draws = saved["draws"]
        self._draws_by_draw = draws.new_empty((self.n_keep, draws.shape[0], *draws.shape[2:]))
        self._draws_by_draw[:k] = draws.transpose(0, 1)
        self._stats_by_draw = {}
        for name, values in saved["stats"].items():
            self._stats_by_draw[name] = values.new_empty((self.n_keep, self.n_chains))
            self._stats_by_draw[name][:k] = values.T


def _version(value: Tensor) -> int | None:
    """The tensor's in-place modification counter; None where it has none (inference-mode tensors)."""
    try:
        return value._version
    except RuntimeError:
        return None
