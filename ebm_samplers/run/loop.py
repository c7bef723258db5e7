"""The guarded loop: warm-up transitions (adapting), then sampling transitions (recorded), then the result.

Everything stays on the device of the initial points: draws and stats go into the recorder's preallocated
tensors, and numerical failures are flagged on device by the non-finite guard and checked on the host only
every `CHECK_EVERY` steps, so a step never waits for the host. After warm-up a "compiled" backend runs blocks
of several transitions per call where `plan_block` allows; a "numba" backend hands the rest of the run to the
numba loops. Checkpoints are written between transitions, never inside a block.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from tqdm.auto import tqdm

from ebm_samplers import _numba
from ebm_samplers._compiled_step import plan_block
from ebm_samplers._nonfinite import NonfiniteGuard
from ebm_samplers.adaptation import WarmupAdaptation
from ebm_samplers.checkpoint import Checkpointer, Stateful
from ebm_samplers.kernels.base import Kernel, State
from ebm_samplers.moments import Moments
from ebm_samplers.run.backends import Backend
from ebm_samplers.run.options import RunOptions, kernel_name
from ebm_samplers.run.recording import InMemoryRecorder, Recorder
from ebm_samplers.stopping import ConvergenceMonitor, truncated
from ebm_samplers.trace import Trace
from energies._threads import torch_threads

#: Steps between host-side checks of the failure flags (and progress-bar updates).
CHECK_EVERY = 256
#: Runs of at least this many transitions show a progress bar by default (when stderr is a terminal).
PROGRESS_MIN_STEPS = 2000


def run_loop(
    options: RunOptions,
    *,
    kernel: Kernel,
    state: State,
    generator: torch.Generator,
    backend: Backend,
    adaptation: WarmupAdaptation,
    guard: NonfiniteGuard,
    recorder: Recorder,
    checkpointer: Checkpointer | None,
    parts: dict[str, Stateful],
    start: int,
    attrs: dict[str, Any],
    monitor: ConvergenceMonitor | None = None,
) -> Trace | Moments:
    """Run transitions `start`.. of the run from `state`; return what the recorder (or the numba loops) kept.
    `parts`: what a checkpoint holds besides the state and the generator (see `resume.stateful_parts`)."""
    energy, warmup, total, torch_steps = options.energy, options.warmup, options.total, backend.torch_steps
    # blocks of transitions (see `_compiled_step`): after warm-up, under "raise", kept draws in memory
    blocks = backend.longest_block > 1 and options.on_nonfinite == "raise" and isinstance(recorder, InMemoryRecorder)

    def next_block(step: int) -> tuple[int, tuple[int, ...]]:
        """(length, rows to return) of a compiled block starting at `step`; length 1: one step alone."""
        if not blocks or step < warmup:
            return 1, ()
        length, rows = plan_block(step - warmup, torch_steps - step, options.thin, backend.longest_block)
        if checkpointer is not None and any(checkpointer.due(s, total) for s in range(step + 1, step + length)):
            return 1, ()  # a checkpoint is written between transitions, never inside a block
        return length, rows

    show = options.progress
    if show is None:
        show = total >= PROGRESS_MIN_STEPS and sys.stderr.isatty()
    if backend.threads is not None:
        attrs = {**attrs, "torch_threads": backend.threads}
    bar = tqdm(total=total, disable=not show, desc=kernel_name(kernel), unit="step")
    with torch_threads(backend.threads), bar:
        bar.update(start)
        if start == 0 and warmup > 0 and adaptation.active:
            state = adaptation.start(state, energy, generator)
        step = start
        while step < torch_steps:
            first = step
            length, rows = next_block(step)
            if length > 1:
                state, done = backend.step.block(state, energy, generator, length, rows)
                guard.note_block(step, done.bad, done.state_bad, done.value)
                recorder.record_block(step - warmup, rows, done.positions, done.stats)
                step += length
            else:
                previous = state
                state, step_info = backend.step(state, energy, generator)
                state, info = guard.apply(step, previous, state, step_info, kernel, energy, generator)
                if step < warmup and adaptation.active:  # the guarded stats and the kernel's transient entries
                    state = adaptation.update(step, state, step_info | info)
                if step >= warmup:
                    recorder.record(step - warmup, state, info)
                step += 1
            if step // CHECK_EVERY > first // CHECK_EVERY or step == torch_steps:
                guard.raise_if_failed()
                bar.update(step - bar.n)
            if checkpointer is not None and checkpointer.due(step, total):
                guard.raise_if_failed()  # never save a state the policy would reject
                recorder.flush()
                checkpointer.save(step, state, generator, parts)
            if monitor is not None and step > warmup and monitor.due(recorder.n_recorded):
                if monitor.check(recorder.draws, recorder.n_recorded):  # converged: stop here (see `stopping`)
                    guard.raise_if_failed()
                    bar.update(step - bar.n)
                    break
        if backend.kind == "numba":
            draws, stats, first_failure = _numba.run_numba(
                kernel,
                energy,
                state,
                warmup=warmup - torch_steps,
                n_steps=options.n_steps,
                thin=options.thin,
                generator=generator,
                first_step=torch_steps,
            )
            guard.raise_if_failed()  # failures of the torch warm-up first: they happened earlier
            guard.record_failures(first_failure)
            # the same stats as the torch path: under "raise" a run that returns had no failure
            stats.setdefault("nonfinite", torch.zeros(draws.shape[:2], dtype=torch.bool))
            bar.update(total - bar.n)
            attrs = {**attrs, **adaptation.attrs(state), **guard.attrs(), "backend": "numba"}
            return Trace(draws=draws, stats=stats, attrs=attrs)

    compile_seconds = getattr(backend.step, "compile_seconds", None)
    if compile_seconds is not None:
        attrs = {**attrs, "compile_seconds": compile_seconds}
    if monitor is None:
        return recorder.result({**attrs, **adaptation.attrs(state), **guard.attrs()})
    n_kept = recorder.n_recorded
    monitor.final_check(recorder.draws, n_kept)
    attrs = {**attrs, "n_steps": n_kept * options.thin, **monitor.attrs()}
    return truncated(recorder.result({**attrs, **adaptation.attrs(state), **guard.attrs()}), n_kept)
