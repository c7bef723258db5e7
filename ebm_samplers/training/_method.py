"""The contract every training method implements, and the method registry behind `fit(method=...)`.

A method is a dataclass whose fields are its options (so `fit(..., **options)` is checked against them).
`setup` runs once before training; `loss(energy, batch, generator)` returns a scalar to minimise and a
dict of figures recorded in the history. Methods that keep state between iterations (persistent chains,
a learned log-normaliser) expose it through `state_dict`/`load_state_dict` for checkpoints.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import Tensor, nn

_METHODS: dict[str, type[TrainingMethod]] = {}


class TrainingMethod:
    """Base class of training methods; subclasses are dataclasses registered with `register_method`."""

    name: ClassVar[str] = ""
    #: Iterations `fit` runs when the user gives none (tuned for the 2-D toy sets).
    default_iterations: ClassVar[int] = 2000
    #: Adam step size `fit` uses when the user gives none.
    default_learning_rate: ClassVar[float] = 1e-3
    #: How `fit` varies Adam's step over the run when the user gives no schedule ("constant", "cosine" or "cooldown").
    default_learning_rate_schedule: ClassVar[str] = "constant"
    #: Data samples per step `fit` uses when the user gives none.
    default_batch_size: ClassVar[int] = 256
    #: Whether the method draws model samples with a registered sampler (accepts `sampler=`).
    uses_sampler: ClassVar[bool] = False

    def resolve_defaults(self, data: Tensor) -> None:
        """Fill the options left at None, and the default iterations, learning rate and batch size, from the
        training data (e.g. by dimension); called by `fit` before anything else."""

    def setup(self, energy: nn.Module, data: Tensor, generator: torch.Generator) -> None:
        """Prepare for training on `data` (called once, also before a resume)."""

    def loss(self, energy: nn.Module, batch: Tensor, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError

    def parameters(self) -> list[nn.Parameter]:
        """Trainable parameters besides the energy's (e.g. NCE's log-normaliser)."""
        return []

    def default_energy(self, event_shape: torch.Size, generator: torch.Generator) -> nn.Module:
        from energies.neural import ConvEnergy, MLPEnergy

        if len(event_shape) == 1:
            return MLPEnergy(event_shape[0], generator=generator)
        if tuple(event_shape) == (1, 8, 8):
            return ConvEnergy(generator=generator)
        raise ValueError(
            f"no default energy for data of event shape {tuple(event_shape)}: the defaults cover vectors (n, d) "
            "and 8x8 images (n, 1, 8, 8); pass energy=<your nn.Module mapping (n, *event) -> (n,)>"
        )

    def samples(self) -> Tensor | None:
        """The latest model samples the method drew (None for sampler-free methods)."""
        return None

    def extras(self) -> dict[str, object]:
        """Method-specific results `fit` adds to `FitResult.extras` (e.g. PCD's replay buffer contents)."""
        return {}

    def options(self) -> dict[str, object]:
        if not dataclasses.is_dataclass(self):
            return {}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def register_method(name: str):
    def decorator(cls: type[TrainingMethod]) -> type[TrainingMethod]:
        cls.name = name
        _METHODS[name] = cls
        return cls

    return decorator


def available_methods() -> list[str]:
    """Names of the training methods `fit` accepts."""
    return list(_METHODS)


def build_method(name: str, options: dict) -> TrainingMethod:
    if name not in _METHODS:
        raise KeyError(f"unknown training method {name!r}; available: {', '.join(_METHODS)}")
    cls = _METHODS[name]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(
            f"training method {name!r} has no option(s) {', '.join(unknown)}; its options are: "
            f"{', '.join(sorted(known)) or '(none)'}"
        )
    return cls(**options)


def input_gradient(energy: nn.Module, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(x as a leaf, E(x), grad_x E(x)) with the graph kept, so losses on the gradient train the energy."""
    x = x.detach().requires_grad_(True)
    value = energy(x)
    (grad,) = torch.autograd.grad(value.sum(), x, create_graph=True)
    return x, value, grad
