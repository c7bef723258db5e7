"""What an initial-points tensor without event axes means, said before the user's energy fails on it.

`init` is `(n_chains, *event)`, so `init=torch.zeros(10)` is 10 chains of scalar events. When the energy is
10-dimensional, it then fails inside the user's code (an IndexError from `x[:, 0]`, or one energy for the whole
batch from `x.sum(-1)`); this check names the reading instead.
"""

from __future__ import annotations

import torch
from torch import Tensor

from energies import Energy


def check_init_events(energy: Energy, init: Tensor) -> None:
    """Raise a one-line ValueError when 1-D `init` (read as chains of scalars) does not suit `energy`."""
    if not isinstance(init, Tensor) or init.ndim != 1:
        return
    n = init.shape[0]
    read_as = (
        f"init of shape ({n},) is read as {n} chains of scalar events (init is (n_chains, *event_shape)); "
        f"for one chain of a {n}-dimensional model pass init[None] (shape (1, {n})), or init of shape (n_chains, {n})"
    )
    event_shape = getattr(energy, "event_shape", None)
    if event_shape is not None:
        if tuple(event_shape) != ():
            raise ValueError(f"{read_as}; the energy's event_shape is {tuple(event_shape)}")
        return
    try:
        with torch.no_grad():
            value = energy(init)
    except (IndexError, RuntimeError) as error:
        raise ValueError(f"{read_as}; the energy failed on it ({type(error).__name__}: {error})") from None
    if not isinstance(value, Tensor) or value.shape != (n,):
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"{read_as}; the energy returned {shape} for it, not one energy per chain ({n},)")
