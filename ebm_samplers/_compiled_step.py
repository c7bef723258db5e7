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

An energy without an analytic gradient (a neural energy, a plain callable) is differentiated by
`torch.autograd.grad`, which dynamo traces into the graph too (`trace_autograd_ops`, set around the compiled
calls only): otherwise the step would break at the gradient, and its pieces run slower than eager ones.

Blocks of transitions. Even as one graph, each call pays dynamo's wrapper and guards and the run loop's
bookkeeping (recording, the failure flags), tens of microseconds: as much as a 2-D target's whole gradient at
1,000 chains. After warm-up, when nothing changes between transitions but the state, `block` therefore runs
several transitions in one compiled call (unrolled; up to `_GRADIENTS_PER_CALL` gradient evaluations in
all, so HMC's long trajectories stay one transition per call, and `_COORDINATES_PER_CALL` coordinates, so
many chains or dimensions run one transition per call; an energy differentiated by autograd runs blocks only
when its step is small, since otherwise its evaluation, typically a network, dwarfs a call's overhead, and of at
most `_AUTOGRAD_GRADIENTS_PER_CALL` gradients, since each unrolled backward pass adds about half a second of
compilation) and returns the kept draws and every step's failure flags stacked, which the run loop records
with one copy per field. Their random numbers are drawn first, transition by transition, in the order of the
eager run — `DrawThenAdvance.draw` depends on the state only through what stays fixed after warm-up — so blocks
compute the same chain as single steps. Blocks are planned around `thin` (`plan_block`) so that a run compiles
at most two of them, beside the single step (warm-up, and the transitions left over at the end).

Threads and vectors. TorchInductor's C++ parallelises loops of a few thousand numbers, where waking a second
thread costs more than the loop; a step the run finds small (`energies._threads.is_small`) compiles for one
thread. It also vectorises every loop along its tensors' last dimension: when all of them are narrower than one
SIMD vector (a 2-D target: rows of 2 numbers against 16 float32 lanes of AVX-512), every vector operation is
a masked one through a temporary buffer, slower than plain scalar code, so such a step (`narrow_rows`)
compiles without vectors.

The first call of each graph compiles (seconds to tens of seconds; figures in `docs/performance.md`); the time
is reported. Later runs in the same process reuse the compiled graphs, and TorchInductor caches on disk, so a
new process compiling the same step is faster. Anything dynamo cannot trace runs eagerly (correct, just not
faster). On CPU, TorchInductor needs a working C++ compiler.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ebm_samplers._nonfinite import step_failures
from ebm_samplers.kernels.base import DrawThenAdvance, Info, Kernel, State, recorded, with_failure
from ebm_samplers.trace import kept_stats
from energies.base import has_analytic_gradient

#: Gradient evaluations per compiled block: longer blocks run faster per transition but compile longer (once per
#: process and kernel); 16 was the best trade measured (`docs/performance.md`, "Compiled blocks").
_GRADIENTS_PER_CALL = 16
#: The same for an energy differentiated by autograd: half the compile time of 16 for nearly the same speed
#: (`docs/performance.md`, "Compiled blocks").
_AUTOGRAD_GRADIENTS_PER_CALL = 8
#: Coordinates of all chains times transitions per block, at most. A block's intermediates grow with it, and once
#: they leave the CPU's cache a block is slower than single steps, whose call overhead is by then small against
#: the arithmetic (measured: `docs/performance.md`, "Compiled blocks").
_COORDINATES_PER_CALL = 32_768
#: Compiled graphs dynamo keeps per function (its default, 8, is reached by a notebook that samples a few kernels
#: and energies; beyond it dynamo silently runs the step eagerly). Set around the compiling calls only.
_RECOMPILE_LIMIT = 256


def narrow_rows(widest_row: int, dtype: torch.dtype, device: torch.device) -> bool:
    """Whether TorchInductor's C++ for tensors whose rows (last dimensions) are at most `widest_row` numbers runs
    faster without SIMD vectors: on a CPU, when no row fills one vector of `dtype` (0: no tensor has rows, every
    loop runs along the chains and vectors fit)."""
    if device.type != "cpu" or widest_row == 0:
        return False
    return widest_row < _vector_bits() // (8 * dtype.itemsize)


def _vector_bits() -> int:
    """Bits of one SIMD vector of this CPU, from ATen's CPU capability (AVX-512, AVX2, else 128), which
    TorchInductor also follows; asking TorchInductor itself would build its probe programs in every compiled run."""
    capability = torch.backends.cpu.get_cpu_capability()
    return 512 if "AVX512" in capability else 256 if "AVX2" in capability else 128


@dataclass
class Block:
    """What a block of transitions run as one call returns to the run loop.

    `positions` `(rows, n, *event)` and `stats` `(rows, n)` (energy, step size, the kernel's recorded info and
    `nonfinite`) are the states at the rows `plan_block` asked for; `bad` and `value` `(steps, n)` are every
    step's failure flags and the energy to name (see `NonfiniteGuard.note_block`; `state_bad` is `bad`, kept
    for the guard's call signature).
    """

    positions: Tensor
    stats: dict[str, Tensor]
    bad: Tensor
    state_bad: Tensor
    value: Tensor


def plan_block(sampling_step: int, remaining: int, thin: int, longest: int) -> tuple[int, tuple[int, ...]]:
    """(length, rows to return) of a block starting `sampling_step` transitions after warm-up with `remaining`
    transitions left, at most `longest` long; length 1: run one transition alone.

    With `thin` <= `longest`, blocks are the longest multiple of `thin` and return every kept row; otherwise
    a block runs up to the next kept step and returns its last row (kept or not): at most two lengths, so
    two compiled graphs, for any `thin`.
    """
    if thin <= longest:
        length = longest // thin * thin
        rows = tuple(range(thin - 1, length, thin))
        aligned = sampling_step % thin == 0
    else:
        length = min(longest, thin - sampling_step % thin)
        rows, aligned = (length - 1,), True
    if not aligned or length < 2 or length > remaining:
        return 1, ()
    return length, rows


class CompiledStep:
    """`kernel.step` through `torch.compile`, and for `DrawThenAdvance` kernels `block`: up to `longest_block`
    transitions in one compiled call. `compile_seconds` is the wall time of setting up `torch.compile` (its
    first use in a process imports the compiler stack, seconds) plus the first, compiling, call of each."""

    def __init__(self, kernel: Kernel, energy, coordinates: int, *, small: bool = False, scalar_loops: bool = False):
        """`coordinates`: of all chains together (the state's position's number of elements); `small`: a step the run
        found small (`energies._threads.is_small`), whose C++ is compiled for one thread and whose transitions run
        in blocks even with an autograd gradient; `scalar_loops`: compile the C++ without SIMD vectors
        (`narrow_rows`)."""
        if not getattr(kernel, "compile_step_supported", True):
            name = kernel.name or type(kernel).__name__
            raise ValueError(
                f"compile_step=True cannot compile the {name} step (its number of gradient evaluations depends on "
                "the draws); run with compile_step=False"
            )
        self.kernel = kernel
        start = time.perf_counter()
        analytic = has_analytic_gradient(energy)
        autograd = {} if analytic else {"trace_autograd_ops": True}
        self._calling = torch._dynamo.config.patch(**autograd) if autograd else contextlib.nullcontext()
        self._compiling = torch._dynamo.config.patch(recompile_limit=_RECOMPILE_LIMIT, **autograd)
        #: the most transitions `block` runs in one call; 1: no blocks (a kernel without the draw/advance split,
        #: an energy differentiated by autograd in a step too large for blocks to pay, too many chains)
        self.longest_block = 1
        options = {"cpp.threads": 1} if small else {}
        if scalar_loops:
            options["cpp.simdlen"] = 1  # no vector ISA has 1-bit vectors: scalar C++ (`cpp.vec_isa_ok=False` would
            # also switch vectors off for every later compilation in the process, through TorchInductor's cache)
        #: TorchInductor's options (None: its defaults)
        self.options = options or None
        if isinstance(kernel, DrawThenAdvance):
            self._advance = torch.compile(self._advance_and_check, options=self.options)
            self._step = self._draw_then_advance
            if analytic or small:
                per_call = _GRADIENTS_PER_CALL if analytic else _AUTOGRAD_GRADIENTS_PER_CALL
                by_gradients = per_call // kernel.gradients_per_transition
                self.longest_block = max(1, min(by_gradients, _COORDINATES_PER_CALL // coordinates))
            self._block = torch.compile(self._advance_block, options=self.options)
        else:
            self._step = torch.compile(kernel.step, options=self.options)
        self._setup_seconds = time.perf_counter() - start
        self.compile_seconds: float | None = None
        self._compiled: set = set()

    def _advance_and_check(self, state: State, energy, draws) -> tuple[State, Info]:
        """`advance`, and which new states are not finite (what the run loop would check eagerly next)."""
        new_state, info = self.kernel.advance(state, energy, draws)
        return new_state, with_failure(dict(info), step_failures(new_state, info))

    def _draw_then_advance(self, state: State, energy, generator: torch.Generator) -> tuple[State, Info]:
        return self._advance(state, energy, self.kernel.draw(state, generator))

    def _advance_block(self, state: State, energy, draws: list, rows: tuple[int, ...]) -> tuple[State, Block]:
        """The transitions of a block, unrolled; what the run loop's guard and recorder would take from each (the
        states only at `rows`). torch.compile specialises on the number of draws and on `rows`."""
        kept, bad, value = [], [], []
        for row, row_draws in enumerate(draws):
            state, info = self.kernel.advance(state, energy, row_draws)
            failure = step_failures(state, info)
            failed = failure.failed
            bad.append(failed), value.append(failure.value)
            if row in rows:
                stats = {**kept_stats(state, recorded(info)), "nonfinite": failed}
                kept.append((state.position, stats))
        stats = {name: torch.stack([row_stats[name] for _, row_stats in kept]) for name in kept[0][1]}
        positions = torch.stack([position for position, _ in kept])
        flags = torch.stack(bad)
        return state, Block(positions, stats, flags, flags, torch.stack(value))

    def __call__(self, state: State, energy, generator: torch.Generator) -> tuple[State, Info]:
        return self._timed("step", self._step, state, energy, generator)

    def block(
        self, state: State, energy, generator: torch.Generator, length: int, rows: tuple[int, ...]
    ) -> tuple[State, Block]:
        """`length` transitions of a `DrawThenAdvance` kernel whose state changes only in position, energy and
        gradient (after warm-up), with their random numbers drawn in the eager run's order; see `plan_block`."""
        draws = [self.kernel.draw(state, generator) for _ in range(length)]
        return self._timed(("block", length, rows), self._block, state, energy, draws, rows)

    def _timed(self, what: object, function: Callable, *args):
        if what in self._compiled:
            with self._calling:
                return function(*args)
        start = time.perf_counter()
        try:
            with self._compiling:
                result = function(*args)
        except torch._dynamo.exc.BackendCompilerFailed as error:
            name = self.kernel.name or type(self.kernel).__name__
            raise RuntimeError(
                f"compile_step=True: torch.compile could not compile the {name} step ({error}). On CPU, "
                "TorchInductor needs a working C++ compiler; run with compile_step=False"
            ) from error
        self._compiled.add(what)
        self.compile_seconds = (self.compile_seconds or self._setup_seconds) + time.perf_counter() - start
        return result
