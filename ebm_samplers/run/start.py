"""Where a run starts: its random generator, its initial points, and the checks only a built state allows."""

from __future__ import annotations

import torch
from torch import Tensor

from ebm_samplers.kernels.base import Kernel, State
from ebm_samplers.run.options import RunOptions, kernel_name
from energies._threads import TensorSizes


def make_generator(options: RunOptions, seed: int) -> torch.Generator:
    """The run's only random generator, on the device of the initial points."""
    device = options.init.device if options.init is not None else torch.device(options.device or "cpu")
    return torch.Generator(device=device).manual_seed(seed)


def initial_points(options: RunOptions, generator: torch.Generator) -> Tensor:
    """A copy of `init`, or `n_chains` N(0, I) draws of the energy's event shape."""
    if options.init is not None:
        return options.init.detach().clone()
    energy = options.energy
    if energy.event_shape is None:
        raise ValueError(
            f"energy {energy.name} does not declare its event_shape, so n_chains alone cannot place the chains; "
            "pass init of shape (n_chains, *event_shape) or wrap it with as_energy(f, event_shape=...)"
        )
    dtype = options.dtype or torch.get_default_dtype()
    shape = (options.n_chains, *energy.event_shape)
    return torch.randn(shape, generator=generator, dtype=dtype, device=options.device or generator.device)


def check_step_size_fits(state: State, kernel: Kernel) -> None:
    """A step size valid as a Python float can still round to 0 or overflow in the run's dtype."""
    step_size = getattr(state, "step_size", None)
    if isinstance(step_size, Tensor) and not bool(((step_size > 0) & torch.isfinite(step_size)).all()):
        raise ValueError(
            f"{kernel_name(kernel)} step_size {getattr(kernel, 'step_size', '?')!r} becomes "
            f"{step_size.flatten()[0].item()} in {step_size.dtype}; it must be a finite number > 0 in the run's dtype"
        )


def init_state(kernel: Kernel, init: Tensor, energy) -> tuple[State, TensorSizes | None]:
    """The kernel's initial state, and the sizes of its positions and of the tensors its energy and gradient
    evaluation made (`energies._threads.TensorSizes`, which sizes the run's steps for the thread count and a
    compiled step's loops at no extra evaluation); None for an energy that cannot run under a dispatch mode: it
    runs plain, and the run keeps the caller's thread count and TorchInductor's defaults."""
    try:
        with TensorSizes() as seen:
            state = kernel.init(init, energy)
    except Exception:  # a genuine error raises again from the plain call
        return kernel.init(init, energy), None
    seen.note(state.position)
    return state, seen
