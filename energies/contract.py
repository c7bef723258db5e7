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
        self.event_shape = None if event_shape is None else _checked_event_shape(event_shape)

    def forward(self, x: Tensor) -> Tensor:
        return self.function(x)

    @property
    def name(self) -> str:
        return _describe(self.function)


def _checked_event_shape(event_shape) -> torch.Size:
    ok = isinstance(event_shape, Sequence) and not isinstance(event_shape, str)
    ok = ok and all(isinstance(size, int) and not isinstance(size, bool) and size >= 1 for size in event_shape)
    if not ok:
        raise ValueError(f"event_shape must be a tuple of integers >= 1, e.g. (2,) for 2-D points; got {event_shape!r}")
    return torch.Size(event_shape)


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
            wanted = _checked_event_shape(event_shape)
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

    Checks, in order: `x` is a finite floating tensor with a batch axis; the energy runs on `x` (if it
    fails and its parameters have another dtype or device than `x`, the error says so); it returns a
    floating tensor of shape `(n,)` with the dtype and device of `x`; every value is finite; each
    sample's energy depends on its own row only; the output has a gradient path to `x` and the
    gradient is finite.

    The per-sample check is cheap: the first k = min(n, 4) rows are evaluated again next to k other
    points (the same rows + 1), and those k + 1-shifted rows once more on their own; each energy must
    agree between batches to sqrt(machine epsilon) relative accuracy. It catches batch statistics
    (`x - x.mean(0)`, BatchNorm in training mode), sums over the batch broadcast back, batch-size
    dependence and random energies (dropout in training mode), which would all make the samplers
    silently wrong. It cannot see a dependence that vanishes at these particular points.
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
    bad_points = ~torch.isfinite(x).reshape(x.shape[0], -1).all(dim=1)
    if bad_points.any():
        raise ValueError(
            f"initial points contain NaN or infinite values in {int(bad_points.sum())} chain(s) "
            f"(first: chain {int(bad_points.nonzero()[0, 0])}); start the chains at finite points"
        )
    n = x.shape[0]
    with torch.no_grad():
        try:
            value = energy(x)
        except RuntimeError as error:
            mismatch = _parameter_mismatch(energy, x)
            if mismatch:
                raise TypeError(f"energy {name} failed on the initial points: {mismatch}") from error
            raise
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
    if value.dtype != x.dtype or value.device != x.device:
        raise TypeError(
            f"energy {name} returned {value.dtype} on {value.device} for initial points of {x.dtype} on {x.device}; "
            "an energy must compute in the dtype and on the device of its input "
            f"({_parameter_mismatch(energy, x) or 'e.g. convert its parameters with energy.to(init)'})"
        )
    bad = ~torch.isfinite(value)
    if bad.any():
        index = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"energy {name} is not finite at {int(bad.sum())} of {n} initial points "
            f"(first: chain {index}, energy {value[index].item()}); start the chains where the energy is finite"
        )
    _check_per_sample(energy, name, x, value)
    _, grad = energy_and_grad(energy, x)
    if grad.shape != x.shape:
        raise ValueError(f"energy {name} gradient has shape {tuple(grad.shape)}; expected {tuple(x.shape)}")
    bad = ~torch.isfinite(grad).reshape(n, -1).all(dim=1)
    if bad.any():
        index = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"gradient of energy {name} is not finite at {int(bad.sum())} of {n} initial points (first: chain {index})"
        )


def _check_per_sample(energy, name: str, x: Tensor, value: Tensor) -> None:
    """Raise unless the first rows' energies are the same in another batch (see `check_energy`)."""
    k = min(x.shape[0], 4)
    shifted = x[:k] + 1.0
    with torch.no_grad():
        try:
            together = _evaluate(energy, name, torch.cat([x[:k], shifted]))
            alone = torch.cat([value[:k], _evaluate(energy, name, shifted)])
        except Exception as error:  # not swallowed: re-raised as a contract error that says what was asked
            raise ValueError(
                f"energy {name} failed on a batch of the first {k} initial points and those points + 1 "
                f"({type(error).__name__}: {error}); an energy must accept any number of points and treat each "
                "row on its own (check_energy evaluates such batches to detect energies that mix samples)"
            ) from error
    tolerance = torch.finfo(x.dtype).eps ** 0.5 * (1.0 + alone.abs())
    agree = ((together - alone).abs() <= tolerance) | (together == alone) | (together.isnan() & alone.isnan())
    if not agree.all():
        i = int((~agree).nonzero()[0, 0])
        point = f"initial point {i}" if i < k else f"initial point {i - k} + 1"
        raise ValueError(
            f"energy {name} is not per-sample: the energy of {point} was {alone[i].item():.6g} in one batch "
            f"but {together[i].item():.6g} next to other points. Each sample's energy must depend on its own row "
            "only: no batch statistics (x.mean(0), BatchNorm in training mode), no sums over the batch, no "
            "randomness (dropout in training mode: call .eval())"
        )


def _evaluate(energy, name: str, x: Tensor) -> Tensor:
    value = energy(x)
    if not isinstance(value, Tensor) or value.shape != x.shape[:1] or value.dtype != x.dtype:
        got = f"{tuple(value.shape)} {value.dtype}" if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"energy {name} returned {got} for {x.shape[0]} points; expected shape ({x.shape[0]},)")
    return value


def _parameter_mismatch(energy, x: Tensor) -> str:
    """Describe parameters/buffers of the energy (or of modules it wraps or closes over) whose floating
    dtype or device differ from `x`; empty when there are none or they cannot be found."""
    modules = [energy] if isinstance(energy, torch.nn.Module) else []
    function = getattr(energy, "function", energy)
    referenced = []  # modules a plain function closes over or names as globals
    for cell in getattr(function, "__closure__", None) or ():
        try:
            referenced.append(cell.cell_contents)
        except ValueError:  # an empty cell
            continue
    code, scope = getattr(function, "__code__", None), getattr(function, "__globals__", {})
    referenced += [scope.get(name) for name in (code.co_names if code is not None else ())]
    modules += [item for item in referenced if isinstance(item, torch.nn.Module)]
    dtypes, devices = set(), set()
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.is_floating_point():
                dtypes.add(tensor.dtype)
                devices.add(tensor.device)
    problems = []
    if dtypes - {x.dtype}:
        found = ", ".join(sorted(map(str, dtypes)))
        problems.append(f"its parameters are {found} but the initial points are {x.dtype}")
    if devices - {x.device}:
        found = ", ".join(sorted(map(str, devices)))
        problems.append(f"its parameters are on {found} but the initial points are on {x.device}")
    if not problems:
        return ""
    return "; ".join(problems) + " (convert one to match the other, e.g. init.to(dtype=..., device=...))"
