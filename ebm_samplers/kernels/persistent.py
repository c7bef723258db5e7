"""Persistent chains through a replay buffer (Tieleman 2008; Du & Mordatch 2019).

One step of this kernel is one persistent call:

    x_0, fresh = buffer.draw(n)          each row: init_distribution w.p. reinit_probability, else a stored state
    x_k = K^k(x_0)                       k = n_inner_steps transitions of any registered kernel K on the current E
                                         (plus one energy+gradient evaluation at x_0 to start K)
    buffer.push(x_k, E(x_k))             and x_k is returned as the new position

Because the energy is read at every call, the chains follow an energy that training changes between
calls (persistent contrastive divergence). On a fixed energy, a stored state that is distributed as
p = exp(-E)/Z stays so after K (K leaves p invariant), so with reinit_probability = 0 repeated calls
converge to p; with reinit_probability > 0 a fraction of the returned rows has run only k steps from
the init distribution, which is the point in training (fresh modes) and a bias when sampling.

The `position` argument of `init` only fixes the number of chains, their event shape, dtype and
device: the start points of every call come from the buffer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import Tensor

from ebm_samplers._validate import check_count
from ebm_samplers.kernels._resolve import resolve_kernel
from ebm_samplers.kernels.base import Info, Kernel, State, nonfinite
from ebm_samplers.registry import register_sampler
from ebm_samplers.replay_buffer import ReplayBuffer


@register_sampler("persistent")
class Persistent(Kernel):
    """`n_inner_steps` of the kernel `inner` per call, started from (and written back to) `buffer`.

    Args:
        inner: a registered sampler name or a kernel object (then give no `inner_params`).
        n_inner_steps: transitions of `inner` per call.
        buffer: a `ReplayBuffer` to share or resume; None creates one on the first `init` with
            `capacity`, `reinit_probability`, `init_distribution` and `mode`, shaped like the chains.
        **inner_params: parameters of the inner sampler, e.g. `step_size=0.01`.
    """

    def __init__(
        self,
        inner: str | Kernel = "ula",
        n_inner_steps: int = 20,
        buffer: ReplayBuffer | None = None,
        capacity: int = 10_000,
        reinit_probability: float = 0.05,
        init_distribution: Callable[[int, torch.Generator], Tensor] | None = None,
        mode: str = "fifo",
        **inner_params,
    ) -> None:
        check_count(n_inner_steps, "persistent n_inner_steps", minimum=1)
        self.inner = resolve_kernel(inner, inner_params, owner="persistent")
        if buffer is not None and not isinstance(buffer, ReplayBuffer):
            raise TypeError(f"persistent buffer must be a ReplayBuffer or None; got {type(buffer).__name__}")
        if buffer is None:  # validate the settings now rather than at the first init
            ReplayBuffer(
                capacity,
                (1,),
                reinit_probability=reinit_probability,
                init_distribution=init_distribution,
                mode=mode,
            )
        self.n_inner_steps = n_inner_steps
        self.buffer = buffer
        self.capacity = capacity
        self.reinit_probability = reinit_probability
        self.init_distribution = init_distribution
        self.mode = mode

    @property
    def step_size(self) -> float:  # the inner kernel's, so `Kernel.init` and warm-up see the right one
        return self.inner.step_size

    def init(self, x: Tensor, energy) -> State:
        if self.buffer is None:
            self.buffer = ReplayBuffer(
                self.capacity,
                x.shape[1:],
                reinit_probability=self.reinit_probability,
                init_distribution=self.init_distribution,
                mode=self.mode,
                device=x.device,
                dtype=x.dtype,
            )
        elif self.buffer.event_shape != x.shape[1:]:
            raise ValueError(
                f"the replay buffer holds samples of shape {tuple(self.buffer.event_shape)}; "
                f"the chains have shape {tuple(x.shape[1:])}"
            )
        state = self.inner.init(x, energy)
        return State(position=state.position, energy=state.energy, grad=state.grad, step_size=state.step_size)

    def step(self, state: State, energy, generator: torch.Generator) -> tuple[State, Info]:
        n = state.position.shape[0]
        start, reinitialised = self.buffer.draw(n, generator)
        inner = self.inner.init(start.to(state.position), energy)
        inner = dataclasses.replace(inner, step_size=state.step_size)
        acceptance = torch.zeros_like(state.energy)
        failed = nonfinite(inner.energy, inner.grad)
        for _ in range(self.n_inner_steps):
            inner, info = self.inner.step(inner, energy, generator)
            acceptance = acceptance + info["acceptance_rate"]
            if "nonfinite" in info:
                failed = failed | info["nonfinite"]
        # A chain that blew up is reported in info["nonfinite"] and handled by the run's on_nonfinite policy; its
        # state must not enter the buffer, or later calls keep restarting from it (a buffer full of NaN).
        finite = ~nonfinite(inner.energy, inner.grad)
        if bool(finite.all()):  # one host sync per call of n_inner_steps transitions
            self.buffer.push(inner.position, inner.energy, generator=generator)
        else:
            self.buffer.push(inner.position[finite], inner.energy[finite], generator=generator)
        new_state = State(
            position=inner.position.detach(), energy=inner.energy, grad=inner.grad, step_size=state.step_size
        )
        info = {
            "acceptance_rate": acceptance / self.n_inner_steps,
            "accepted": torch.ones_like(reinitialised),  # every call's result is kept and pushed
            "reinitialised": reinitialised,
            "nonfinite": failed,
        }
        return new_state, info

    def params(self) -> dict[str, object]:
        init = self.init_distribution
        return {
            "inner": self.inner.name or type(self.inner).__name__,
            "inner_params": self.inner.params(),
            "n_inner_steps": self.n_inner_steps,
            "capacity": self.buffer.capacity if self.buffer is not None else self.capacity,
            "reinit_probability": (self if self.buffer is None else self.buffer).reinit_probability,
            "init_distribution": "uniform[-1, 1]" if init is None else getattr(init, "__name__", repr(init)),
            "mode": self.buffer.mode if self.buffer is not None else self.mode,
        }
