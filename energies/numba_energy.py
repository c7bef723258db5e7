"""`NumbaEnergy`: an energy written as numba-jitted scalar functions, usable by compiled and torch samplers.

Contract for the two functions (both `numba.njit`-compiled, called on one point at a time):

    energy_fn(x) -> float                 E(x) for x: float64[::1] of shape (dim,)
    grad_fn(x, grad_out) -> float         writes grad E(x) into grad_out (float64[::1], shape (dim,))
                                          and returns E(x) (one call gives both, so shared work is done once)

Neither may modify `x` or keep a reference to `grad_out`. They are called through numba's first-class function
type, so each is compiled once for those exact signatures and the compiled sampler loops that call them
(`ebm_samplers._numba`) are cached on disk independently of which energy they run.

A `NumbaEnergy` is also an ordinary torch `Energy`: `forward(x)` evaluates `energy_fn` row by row on a float64
numpy copy of `x` (`x: Tensor[n, dim]`, any float dtype/device; the result has x's dtype and device) and is
differentiable: its backward pass uses `grad_fn`, not autograd through the numba code, and `energy_and_grad`
calls `grad_fn` directly. So `check_energy`, diagnostics and every torch kernel work on it unchanged; the
`ula`, `mala` and `hmc` samplers instead run whole chains in compiled code (see `ebm_samplers.sample`).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
from torch import Tensor

from energies.base import Energy


@cache
def function_types():
    """The numba first-class function types of `energy_fn` and `grad_fn`."""
    from numba import types

    vector = types.float64[::1]
    return types.FunctionType(types.float64(vector)), types.FunctionType(types.float64(vector, vector))


@cache
def _batch_functions():
    """Row-wise evaluators, compiled (and cached on disk) on first use so `import energies` stays light."""
    import numba

    energy_type, grad_type = function_types()

    @numba.njit(numba.void(energy_type, numba.float64[:, ::1], numba.float64[::1]), cache=True)
    def batch_energy(energy_fn, x, out):
        for i in range(x.shape[0]):
            out[i] = energy_fn(x[i])

    @numba.njit(numba.void(grad_type, numba.float64[:, ::1], numba.float64[::1], numba.float64[:, ::1]), cache=True)
    def batch_energy_and_grad(grad_fn, x, energy_out, grad_out):
        for i in range(x.shape[0]):
            energy_out[i] = grad_fn(x[i], grad_out[i])

    return batch_energy, batch_energy_and_grad


class NumbaEnergy(Energy):
    """An energy over `x: Tensor[n, dim]` given by numba-jitted `energy_fn(x)` and `grad_fn(x, grad_out)`.

    See the module docstring for the exact contract. `name` labels the energy in traces and errors.
    """

    def __init__(self, energy_fn, grad_fn, dim: int, *, name: str | None = None):
        super().__init__()
        for function, what in ((energy_fn, "energy_fn"), (grad_fn, "grad_fn")):
            if not hasattr(function, "py_func"):
                raise TypeError(
                    f"NumbaEnergy {what} must be a numba.njit-compiled function; got {type(function).__name__}"
                )
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"NumbaEnergy dim must be an integer >= 1; got {dim!r}")
        self.energy_fn = energy_fn
        self.grad_fn = grad_fn
        self.dim = dim
        self.event_shape = torch.Size([dim])
        self._name = name or getattr(energy_fn, "__name__", "NumbaEnergy")

    @property
    def name(self) -> str:
        return self._name

    def _points(self, x: Tensor) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"energy {self.name} expects points of shape (n, {self.dim}); got {tuple(x.shape)}")
        return np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float64)

    def numpy_energy_and_grad(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(E, grad E) at float64 points of shape (n, dim), by the compiled `grad_fn`."""
        energy = np.empty(points.shape[0])
        grad = np.empty_like(points)
        _batch_functions()[1](self.grad_fn, points, energy, grad)
        return energy, grad

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        energy, grad = self.numpy_energy_and_grad(self._points(x))
        return torch.from_numpy(energy).to(x), torch.from_numpy(grad).to(x)

    def forward(self, x: Tensor) -> Tensor:
        if x.requires_grad and torch.is_grad_enabled():
            return _GradFromNumba.apply(x, self)
        points = self._points(x)
        energy = np.empty(points.shape[0])
        _batch_functions()[0](self.energy_fn, points, energy)
        return torch.from_numpy(energy).to(x)


class _GradFromNumba(torch.autograd.Function):
    """E(x) whose backward pass is grad_output * grad_fn(x): autograd never looks inside the numba code."""

    @staticmethod
    def forward(ctx, x: Tensor, energy: NumbaEnergy) -> Tensor:
        value, grad = energy.energy_and_grad(x)
        ctx.save_for_backward(grad)
        return value

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        (grad,) = ctx.saved_tensors
        return grad_output[:, None] * grad, None
