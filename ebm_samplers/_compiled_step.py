"""`sample(..., compile_step=True)`: the kernel's step, energy included, fused by `torch.compile`.

Eager PyTorch pays a few microseconds of dispatch for every tensor operation, whatever its size; a step of a
2-D target at 1,000 chains is a few dozen such operations, so the sampler can cost as much as the energy.
`torch.compile` (TorchInductor) traces one step — the kernel's arithmetic and the energy's, through an
`Energy`'s analytic gradient or autograd — and fuses it into a few generated loops. Random numbers come from
the run's `torch.Generator` as in eager runs: dynamo cannot trace such a draw, so for a kernel that separates
its draws from the rest of the step (`DrawThenAdvance`: ULA, MALA, HMC) the draws run eagerly first and only
`advance` is compiled, together with the check of the new states for non-finite values that the run loop
would otherwise run eagerly: one graph per step. Any other kernel's step is compiled whole and split by
dynamo at every draw. The random numbers are the eager run's, but fused arithmetic rounds differently, so
trajectories agree with the eager ones to rounding over a few steps and statistically over a run, not bit for
bit.

The first call compiles (2-5 s per kernel measured on a 2-core CPU with an empty cache, more on a loaded
machine; TorchInductor caches on disk, so a new process compiling the same step is faster) and its time is
reported; anything dynamo cannot trace runs eagerly (correct, just not faster). On CPU, TorchInductor needs a
working C++ compiler.
"""

from __future__ import annotations

import time

import torch

from ebm_samplers._nonfinite import STATE_NONFINITE
from ebm_samplers.kernels.base import DrawThenAdvance, Info, Kernel, State, nonfinite


class CompiledStep:
    """`kernel.step` through `torch.compile`; `compile_seconds` is the wall time of setting up `torch.compile`
    (its first use in a process imports the compiler stack, seconds) plus the first, compiling, call."""

    def __init__(self, kernel: Kernel):
        self.kernel = kernel
        start = time.perf_counter()
        if isinstance(kernel, DrawThenAdvance):
            self._advance = torch.compile(self._advance_and_check)
            self._step = self._draw_then_advance
        else:
            self._step = torch.compile(kernel.step)
        self._setup_seconds = time.perf_counter() - start
        self.compile_seconds: float | None = None

    def _advance_and_check(self, state: State, energy, draws) -> tuple[State, Info]:
        """`advance`, and which new states are not finite (what the run loop would check eagerly next)."""
        new_state, info = self.kernel.advance(state, energy, draws)
        if STATE_NONFINITE not in info:
            info = {**info, STATE_NONFINITE: nonfinite(new_state.energy, new_state.grad)}
        return new_state, info

    def _draw_then_advance(self, state: State, energy, generator: torch.Generator) -> tuple[State, Info]:
        return self._advance(state, energy, self.kernel.draw(state, generator))

    def __call__(self, state: State, energy, generator: torch.Generator) -> tuple[State, Info]:
        if self.compile_seconds is not None:
            return self._step(state, energy, generator)
        start = time.perf_counter()
        try:
            result = self._step(state, energy, generator)
        except torch._dynamo.exc.BackendCompilerFailed as error:
            name = self.kernel.name or type(self.kernel).__name__
            raise RuntimeError(
                f"compile_step=True: torch.compile could not compile the {name} step ({error}). On CPU, "
                "TorchInductor needs a working C++ compiler; run with compile_step=False"
            ) from error
        self.compile_seconds = self._setup_seconds + time.perf_counter() - start
        return result
