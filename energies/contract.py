"""The energy contract: `as_energy` wraps any callable, `check_energy` validates it at given points.

Contract: `f(x)` with `x: Tensor[n, *event_shape]` returns a floating `Tensor[n]`, finite at the points
where sampling starts, with a gradient path to `x` (autograd supplies the gradient).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from energies.base import Energy, _describe, energy_and_grad


class CallableEnergy(Energy):
    """An `Energy` around a plain callable (function, lambda, or user `nn.Module`)."""

    def __init__(self, function: Callable[[Tensor], Tensor], event_shape: Sequence[int] | None = None):
        super().__init__()
        self.function = function
        self.event_shape = None if event_shape is None else torch.Size(event_shape)

    def forward(self, x: Tensor) -> Tensor:
        return self.function(x)

    @property
    def name(self) -> str:
        return _describe(self.function)


def as_energy(
    function: Callable[[Tensor], Tensor],
    *,
    event_shape: Sequence[int] | None = None,
    example: Tensor | None = None,
) -> Energy:
    """Wrap any callable as an `Energy`; validate it at `example` points when given.

    An `Energy` is returned unchanged (its `event_shape` is set if it had none). A non-callable raises
    `TypeError`. With `example`, `check_energy(energy, example)` runs immediately.
    """
    if isinstance(function, Energy):
        energy = function
        if event_shape is not None:
            wanted = torch.Size(event_shape)
            if energy.event_shape is not None and energy.event_shape != wanted:
                raise ValueError(
                    f"energy {energy.name} has event_shape {tuple(energy.event_shape)}, "
                    f"but event_shape={tuple(wanted)} was requested"
                )
            energy.event_shape = wanted
    elif callable(function):
        energy = CallableEnergy(function, event_shape)
    else:
        raise TypeError(
            f"an energy must be callable as f(x: Tensor[n, *event]) -> Tensor[n]; got {type(function).__name__}"
        )
    if example is not None:
        check_energy(energy, example)
    return energy


def check_energy(energy: Callable[[Tensor], Tensor], x: Tensor) -> None:
    """Raise a clear error unless `energy(x)` honours the contract at the points `x`.

    Checks, in order: `x` is a floating tensor with a batch axis; the energy returns a floating
    tensor of shape `(n,)`; every value is finite; the output has a gradient path to `x` and the
    gradient is finite.
    """
    name = _describe(energy)
    if not isinstance(x, Tensor):
        raise TypeError(f"initial points must be a torch.Tensor of shape (n_chains, *event); got {type(x).__name__}")
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(
            f"initial points must have shape (n_chains, *event) with n_chains >= 1; got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"initial points must be a floating tensor (float32 or float64); got {x.dtype}")
    if isinstance(energy, Energy) and energy.event_shape is not None and x.shape[1:] != energy.event_shape:
        raise ValueError(
            f"energy {name} expects points of shape (n, {', '.join(map(str, energy.event_shape))}); "
            f"got initial points of shape {tuple(x.shape)}"
        )
    n = x.shape[0]
    with torch.no_grad():
        value = energy(x)
    if not isinstance(value, Tensor):
        raise TypeError(f"energy {name} returned {type(value).__name__}; expected a torch.Tensor of shape ({n},)")
    if value.shape != (n,):
        hint = " (a scalar: did it sum or average over the batch?)" if value.ndim == 0 else ""
        if value.ndim == 2 and value.shape[0] == n and value.shape[1] == 1:
            hint = " (squeeze the last axis: return shape (n,), not (n, 1))"
        raise ValueError(
            f"energy {name} returned shape {tuple(value.shape)} for input of shape {tuple(x.shape)}; "
            f"expected one energy per sample, shape ({n},){hint}"
        )
    if not value.is_floating_point():
        raise TypeError(f"energy {name} returned dtype {value.dtype}; expected a floating tensor")
    bad = ~torch.isfinite(value)
    if bad.any():
        index = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"energy {name} is not finite at {int(bad.sum())} of {n} initial points "
            f"(first: chain {index}, energy {value[index].item()}); start the chains where the energy is finite"
        )
    _, grad = energy_and_grad(energy, x)
    if grad.shape != x.shape:
        raise ValueError(f"energy {name} gradient has shape {tuple(grad.shape)}; expected {tuple(x.shape)}")
    bad = ~torch.isfinite(grad).reshape(n, -1).all(dim=1)
    if bad.any():
        index = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"gradient of energy {name} is not finite at {int(bad.sum())} of {n} initial points (first: chain {index})"
        )
