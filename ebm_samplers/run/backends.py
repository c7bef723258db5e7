"""How the transitions run: `choose_backend` picks one of three ways, once per run.

* "eager": the kernel's `step`, one PyTorch operation at a time (any kernel, any energy, any device);
* "compiled": the step through `torch.compile` (`sample(..., compile_step=True)`; see `ebm_samplers._compiled_step`);
* "numba": the numba loops of `ebm_samplers._numba` (`ula`, `mala`, `hmc` on an `energies.NumbaEnergy`). They do
  not adapt, so an adapting warm-up runs eagerly on the torch kernel and the numba loops take over after it.

A torch step too small for a second CPU thread (`energies._threads.is_small`, from the tensors of the run's first
energy and gradient evaluation) runs on one, eager or compiled; the caller's thread count is back after the run.
The same tensors' widest row tells a compiled step whether its loops are wide enough for SIMD vectors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from ebm_samplers import _numba
from ebm_samplers._compiled_step import CompiledStep, narrow_rows
from ebm_samplers.kernels.base import Info, Kernel, State
from ebm_samplers.run.options import RunOptions, kernel_name
from energies import Energy
from energies._threads import TensorSizes, is_small
from energies.numba_energy import NumbaEnergy


@dataclass(frozen=True)
class Backend:
    """`kind` ("eager", "compiled" or "numba"); `step(state, energy, generator) -> (state, info)` runs the torch
    transitions, the first `torch_steps` of the run (all of them unless `kind == "numba"`)."""

    kind: str
    step: Callable[..., tuple[State, Info]]
    torch_steps: int
    #: torch threads for the torch transitions: 1 for a step too small for a second one, None: the caller's
    threads: int | None = None

    @property
    def longest_block(self) -> int:
        """The most transitions one compiled call may run (1: one at a time)."""
        return getattr(self.step, "longest_block", 1)


def choose_backend(
    options: RunOptions,
    kernel: Kernel,
    energy: Energy,
    position: Tensor,
    adapting: bool,
    *,
    sizes: TensorSizes | None,
) -> Backend:
    """The backend of this run (see `sample`'s `backend` and `compile_step`); `position`: the initial state's;
    `sizes`: of the positions and the tensors of the run's first energy and gradient evaluation
    (`run.start.init_state`; None: unknown, the caller's thread count and TorchInductor's defaults stay)."""
    if _uses_numba(options, kernel, energy):
        if options.compile_step:
            raise ValueError(
                "compile_step=True compiles the torch kernel's step, but this run uses the numba loops "
                "(a NumbaEnergy with backend='auto' or 'numba'); pass backend='torch' or compile_step=False"
            )
        return Backend("numba", kernel.step, options.warmup if adapting else 0)
    # eager torch and TorchInductor's C++ both run loops of a few thousand numbers on several threads, where waking
    # a second thread costs more than the loop (`energies._threads`)
    threads = 1 if sizes is not None and is_small(sizes.elements, position.device) else None
    if options.compile_step:
        scalar = sizes is not None and narrow_rows(sizes.widest_row, position.dtype, position.device)
        step = CompiledStep(kernel, energy, position.numel(), small=threads == 1, scalar_loops=scalar)
        return Backend("compiled", step, options.total, threads)
    return Backend("eager", kernel.step, options.total, threads)


def _uses_numba(options: RunOptions, kernel: Kernel, energy: Energy) -> bool:
    if options.backend == "torch":
        return False
    if not options.plain:
        if options.backend == "numba":
            raise ValueError(
                "backend='numba' keeps draws in memory and stops on non-finite values: it cannot be combined with "
                "on_nonfinite other than 'raise', checkpoint, stream or keep='moments'; use backend='auto' or 'torch'"
            )
        return False
    if isinstance(energy, NumbaEnergy) and _numba.supports(kernel):
        return True
    if options.backend == "numba":
        raise ValueError(
            f"backend='numba' needs an energies.NumbaEnergy and a built-in ula, mala or hmc kernel; "
            f"got energy {energy.name} and sampler {kernel_name(kernel)}"
        )
    return False
