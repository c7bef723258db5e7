"""Persistent chains through a replay buffer (Tieleman 2008; Du & Mordatch 2019).

One persistent call:

    x_0, fresh = buffer.draw(n)          each row: init_distribution w.p. reinit_probability, else a stored state
    x_k = K^k(x_0)                       k = n_inner_steps transitions of any registered kernel K on the current E
                                         (plus one energy+gradient evaluation at x_0 to start K)
    x_k = J(x_k)                         optionally, one jump J between modes (`ModeJump`: an independence
                                         Metropolis-Hastings move from a kernel density of the data)
    buffer.push(x_k, E(x_k))             with lineage(x_k) = lineage(x_0) + k (0 for a fresh x_0)

Because the energy is read at every call, the chains follow an energy that training changes between
calls (persistent contrastive divergence). On a fixed energy, a stored state that is distributed as
p = exp(-E)/Z stays so after K (K leaves p invariant), so with reinit_probability = 0 repeated calls
converge to p; with reinit_probability > 0 a fraction of the returned rows has run only k steps from
the init distribution, which is the point in training (fresh modes) and a bias when sampling.

Two faces of the same call:

* `PersistentChains` is the API for your own training loop: `chains.sample(energy, n)` returns the negatives
  with what they cost and each chain's health (`Negatives`), and raises on a non-finite chain by default.
* `Persistent`, registered as the "persistent" sampler, is the call as a kernel step for `sample()` and `fit()`;
  the `position` argument of its `init` only fixes the number of chains, their event shape, dtype and device
  (every call starts from the buffer, not from the state's position).

Health is checked here, whatever the inner kernel reports: a chain failed when its final energy, gradient or
position is NaN or infinite (or the inner kernel reported a failed chain, a `StepFailure`), and a failed
chain's state never enters the buffer. Before the first call on an energy, the energy is checked as `sample()`
checks it (`energies.check_energy`), so an energy that is not per-sample (BatchNorm or dropout in training
mode) is refused with the same message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ebm_samplers._validate import check_count
from ebm_samplers.kernels._resolve import resolve_kernel
from ebm_samplers.kernels.base import (
    Info,
    Kernel,
    State,
    StepFailure,
    nonfinite,
    not_finite,
    step_failure,
    with_failure,
)
from ebm_samplers.kernels.data_jump import ModeJump
from ebm_samplers.registry import register_sampler
from ebm_samplers.replay_buffer import ReplayBuffer
from energies import check_energy

_POLICIES = ("raise", "reject", "reset")


@register_sampler("persistent")
class Persistent(Kernel):
    """`n_inner_steps` of the kernel `inner` per call, started from (and written back to) `buffer`.

    Args:
        inner: a registered sampler name or a kernel object (then give no `inner_params`).
        n_inner_steps: transitions of `inner` per call.
        buffer: a `ReplayBuffer` to share or resume; None creates one with `capacity`, `reinit_probability`,
            `init_distribution` and `mode`, shaped like the chains: at once when `event_shape` is given (so
            `kernel.buffer.load_state_dict(...)` works before the first call), else on the first `init`.
        jump: a `ModeJump` run once per call after the inner transitions (one more energy+gradient evaluation):
            exact Metropolis-Hastings for exp(-E), so it keeps what K keeps, and it moves chains between modes
            that K cannot cross, which `fit(method="pcd")` needs to learn the modes' weights.
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
        event_shape: tuple[int, ...] | None = None,
        jump: ModeJump | None = None,
        **inner_params,
    ) -> None:
        check_count(n_inner_steps, "persistent n_inner_steps", minimum=1)
        if jump is not None and not isinstance(jump, ModeJump):
            raise TypeError(f"persistent jump must be a ModeJump or None; got {type(jump).__name__}")
        self.jump = jump
        self.inner = resolve_kernel(inner, inner_params, owner="persistent")
        if buffer is not None and not isinstance(buffer, ReplayBuffer):
            raise TypeError(f"persistent buffer must be a ReplayBuffer or None; got {type(buffer).__name__}")
        if buffer is None:  # validate the settings now rather than at the first init
            settings = dict(reinit_probability=reinit_probability, init_distribution=init_distribution, mode=mode)
            probe = ReplayBuffer(capacity, (1,) if event_shape is None else event_shape, **settings)
            buffer = None if event_shape is None else probe
        self.n_inner_steps = n_inner_steps
        self.buffer = buffer
        self.capacity = capacity
        self.reinit_probability = reinit_probability
        self.init_distribution = init_distribution
        self.mode = mode
        self._checked: set[int] = set()  # ids of the energies `check_energy` has passed

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
        else:
            self._check_shape(x)
        self._check_energy(energy, x)
        state = self.inner.init(x, energy)
        return State(position=state.position, energy=state.energy, grad=state.grad, step_size=state.step_size)

    def step(self, state: State, energy, generator: torch.Generator) -> tuple[State, Info]:
        new_state, info = self.call(state.position.shape[0], energy, generator, state.step_size)
        info["lineage"] = info["lineage"].to(state.energy.dtype)  # recorded with the other per-chain figures
        return new_state, info

    def call(
        self, n: int, energy, generator: torch.Generator, step_size: Tensor, on_nonfinite: str = "report"
    ) -> tuple[State, Info]:
        """One persistent call on `n` chains with per-chain `step_size` (n,): the final state and per-chain Info
        ("acceptance_rate", "accepted", "reinitialised", "nonfinite", "lineage", and with a `jump` "jump_accepted").

        A failed chain's state never enters the buffer. `on_nonfinite`: "report" returns it as it is, "reject"
        returns the chain's start point instead (lineage unchanged), "reset" a fresh draw from the buffer's init
        distribution (lineage 0); both flag it in Info["nonfinite"]. The inner kernel's first state is built
        with one extra energy+gradient evaluation.
        """
        start, reinitialised, lineage = self.buffer.draw_chains(n, generator)
        first = self.inner.init(start.to(step_size), energy)
        inner = dataclasses.replace(first, step_size=step_size)
        acceptance = torch.zeros_like(inner.energy)
        flagged = torch.zeros_like(reinitialised)
        for _ in range(self.n_inner_steps):
            inner, info = self.inner.step(inner, energy, generator)
            acceptance = acceptance + info["acceptance_rate"]
            inner_failure = step_failure(info)
            if inner_failure is not None:  # the inner kernel's typed report (a rejected proposal is not a failure)
                flagged = flagged | inner_failure.failed
        jump_accepted = None
        if self.jump is not None:
            inner, jump_accepted = self.jump(inner, energy, generator)
        # the chains' own state decides too, whatever the inner kernel reports (ULA reports nothing): an energy,
        # a gradient or a position that is NaN or infinite (a bounded energy can be finite at an infinite point)
        positions = not_finite(inner.position.reshape(n, -1).sum(-1))
        broken = nonfinite(inner.energy, inner.grad) | positions | flagged
        lineage = lineage + self.n_inner_steps
        if bool(broken.any()):  # one host sync per call of n_inner_steps transitions
            finite = ~broken
            self.buffer.push(inner.position[finite], inner.energy[finite], lineage=lineage[finite], generator=generator)
            if on_nonfinite == "reject":
                inner = _where(broken, first, inner)
                lineage = torch.where(broken, lineage - self.n_inner_steps, lineage)
            elif on_nonfinite == "reset":
                fresh = self.inner.init(self.buffer.draw_fresh(n, generator).to(step_size), energy)
                inner = _where(broken, dataclasses.replace(fresh, step_size=step_size), inner)
                lineage = torch.where(broken, 0, lineage)
        else:
            self.buffer.push(inner.position, inner.energy, lineage=lineage, generator=generator)
        new_state = State(position=inner.position.detach(), energy=inner.energy, grad=inner.grad, step_size=step_size)
        info = {
            "acceptance_rate": acceptance / self.n_inner_steps,
            "accepted": torch.ones_like(reinitialised),  # every call's result is kept and pushed
            "reinitialised": reinitialised,
            "nonfinite": broken,
            "lineage": lineage,
        }
        if jump_accepted is not None:
            # the name `data_jump` records it under: how often chains cross between modes
            info["jump_accepted"] = jump_accepted
        # "report" hands a failed chain, as it is, to the run's on_nonfinite policy; "reject" and "reset" replaced it
        reported = broken if on_nonfinite == "report" else torch.zeros_like(broken)
        return new_state, with_failure(info, StepFailure(failed=reported))

    def _check_shape(self, x: Tensor) -> None:
        if self.buffer.event_shape != x.shape[1:]:
            raise ValueError(
                f"the replay buffer holds samples of shape {tuple(self.buffer.event_shape)}; "
                f"the chains have shape {tuple(x.shape[1:])}"
            )

    def _check_energy(self, energy, x: Tensor) -> None:
        """`sample()`'s contract check (per-sample, finite, right shape), once per energy object."""
        if id(energy) not in self._checked:
            check_energy(energy, x)
            self._checked.add(id(energy))

    def params(self) -> dict[str, object]:
        init = self.init_distribution
        return {
            "inner": self.inner.name or type(self.inner).__name__,
            "inner_params": self.inner.params(),
            "n_inner_steps": self.n_inner_steps,
            "capacity": self.buffer.capacity if self.buffer is not None else self.capacity,
            "reinit_probability": (self if self.buffer is None else self.buffer).reinit_probability,
            "init_distribution": "uniform on init_range" if init is None else getattr(init, "__name__", repr(init)),
            "mode": self.buffer.mode if self.buffer is not None else self.mode,
            "jump": None if self.jump is None else self.jump.params(),
        }


def _where(mask: Tensor, chosen: State, other: State) -> State:
    """Per chain, `chosen`'s position, energy and gradient where `mask`, else `other`'s."""
    pick = mask.reshape(-1, *([1] * (other.position.ndim - 1)))
    return dataclasses.replace(
        other,
        position=torch.where(pick, chosen.position, other.position),
        energy=torch.where(mask, chosen.energy, other.energy),
        grad=torch.where(pick, chosen.grad, other.grad),
    )


@dataclass(frozen=True)
class Negatives:
    """What one `PersistentChains.sample` call returns; per-chain tensors have shape (n,)."""

    samples: Tensor  # (n, *event): the chains' final states, detached: the negatives of the contrastive loss
    energy: Tensor  # E at the samples, detached
    gradient_evaluations: int  # energy+gradient evaluations of single samples this call spent (at most)
    nonfinite: Tensor  # bool: the chain's energy, gradient or position became NaN or infinite
    reinitialised: Tensor  # bool: the chain started fresh from the init distribution in this call
    lineage: Tensor  # long: sampler transitions since the chain's last fresh start
    acceptance_rate: Tensor  # mean over the call's transitions (1 for unadjusted kernels)
    jump_accepted: Tensor | None = None  # bool: the chain's jump between modes was accepted (None: no `jump`)


class PersistentChains:
    """Persistent chains for your own training loop: `chains.sample(energy, n)` returns `Negatives`.

    Each call draws n chain states from `buffer` (a fresh start from its init distribution with probability
    `buffer.reinit_probability`), runs `n_steps` transitions of `kernel` on the energy as it is now, pushes the
    results back and returns them. A typical loop (see docs/training/persistent.md):

        chains = PersistentChains(ReplayBuffer.for_data(data, 10_000), "ula", n_steps=20, step_size=0.01)
        for x in loader:
            negatives = chains.sample(model, x)      # as many negatives as x has rows, checked against the buffer
            loss = model(x).mean() - model(negatives.samples).mean()

    Args:
        buffer: the `ReplayBuffer` that holds the chains (build it with `ReplayBuffer(capacity, event_shape,
            init_range=...)` or `ReplayBuffer.for_data(data, capacity)`; restore it with `load_state_dict`).
        kernel: a registered sampler name or a kernel object; "sgld" has the IGEBM/JEM knobs (noise_scale,
            gradient_clip, clamp) and is not a sampler of exp(-E) unless noise_scale^2 = 2 step_size.
        n_steps: transitions per call.
        on_nonfinite: "raise" (default: a `FloatingPointError` naming the chain, as `sample()` raises), "reject"
            (a failed chain returns its start point) or "reset" (a fresh start); failed chains are always flagged
            in `Negatives.nonfinite` and never stored.
        seed: seeds this object's own `torch.Generator` (used when `sample` gets no generator).
        **kernel_params: parameters of the kernel given by name, e.g. `step_size=0.01`.
    """

    def __init__(
        self,
        buffer: ReplayBuffer,
        kernel: str | Kernel = "ula",
        n_steps: int = 20,
        *,
        on_nonfinite: str = "raise",
        seed: int = 0,
        **kernel_params,
    ) -> None:
        if not isinstance(buffer, ReplayBuffer):
            raise TypeError(
                "PersistentChains needs a ReplayBuffer, e.g. ReplayBuffer(capacity, event_shape) or "
                f"ReplayBuffer.for_data(data, capacity); got {type(buffer).__name__}"
            )
        if on_nonfinite not in _POLICIES:
            raise ValueError(f"on_nonfinite must be one of {', '.join(map(repr, _POLICIES))}; got {on_nonfinite!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"PersistentChains seed must be an integer >= 0; got {seed!r}")
        self._kernel = Persistent(kernel, n_steps, buffer=buffer, **kernel_params)
        self.on_nonfinite = on_nonfinite
        self.generator = torch.Generator(device=buffer.device).manual_seed(seed)

    @property
    def buffer(self) -> ReplayBuffer:
        return self._kernel.buffer

    @property
    def kernel(self) -> Kernel:
        return self._kernel.inner

    @property
    def n_steps(self) -> int:
        return self._kernel.n_inner_steps

    def sample(self, energy, n: int | Tensor, generator: torch.Generator | None = None) -> Negatives:
        """`n` negatives from the persistent chains under `energy` (any callable (m, *event) -> (m,), e.g. your
        nn.Module). `n` may be the data batch itself: then as many negatives as it has rows, and its event shape
        must be the buffer's. `generator`: default this object's own."""
        n = self._count(n)
        generator = self.generator if generator is None else generator
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"PersistentChains.sample needs a torch.Generator; got {type(generator).__name__}")
        buffer = self.buffer
        if id(energy) not in self._kernel._checked:
            # the check sample() does, on points where chains start: stored ones, else fresh ones drawn with a
            # generator of its own (checking must not change the chains' random numbers)
            probe = buffer.samples[:4] if len(buffer) else buffer.draw_fresh(4, torch.Generator(device=buffer.device))
            self._kernel._check_energy(energy, probe)
        step_size = torch.full((n,), float(self.kernel.step_size), dtype=buffer.dtype, device=buffer.device)
        policy = "report" if self.on_nonfinite == "raise" else self.on_nonfinite
        state, info = self._kernel.call(n, energy, generator, step_size, policy)
        failed = info["nonfinite"]
        if self.on_nonfinite == "raise" and bool(failed.any()):
            chain = int(failed.nonzero()[0, 0])
            raise FloatingPointError(
                f"energy or its gradient became NaN or infinite in {int(failed.sum())} of {n} persistent chain(s) "
                f"(first: chain {chain}, energy {state.energy[chain].item()}, after {self.n_steps} steps of "
                f"{self.kernel.name or type(self.kernel).__name__}); failed chains were not stored. Reduce the step "
                "size, clip gradients or clamp (kernel='sgld'), or pass on_nonfinite='reject' or 'reset'"
            )
        per_transition = getattr(self.kernel, "gradients_per_transition", 1)
        jumps = 0 if self._kernel.jump is None else 1  # a jump evaluates its proposal once
        return Negatives(
            samples=state.position.detach(),
            energy=state.energy.detach(),
            gradient_evaluations=n * (1 + self.n_steps * per_transition + jumps),
            nonfinite=failed,
            reinitialised=info["reinitialised"],
            lineage=info["lineage"],
            acceptance_rate=info["acceptance_rate"].detach(),
            jump_accepted=info.get("jump_accepted"),
        )

    def _count(self, n) -> int:
        if isinstance(n, Tensor):
            shape = tuple(self.buffer.event_shape)
            if n.ndim != 1 + len(shape) or tuple(n.shape[1:]) != shape or n.shape[0] == 0:
                raise ValueError(
                    f"PersistentChains.sample: the data batch has shape {tuple(n.shape)}; the buffer holds samples "
                    f"of shape {shape}, so expected (batch, {', '.join(map(str, shape))})"
                )
            return n.shape[0]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"PersistentChains.sample needs n >= 1 chains or a data batch tensor; got {n!r}")
        return n

    def state_dict(self) -> dict[str, object]:
        """The buffer's state and the generator's (loads with `torch.load(weights_only=True)`)."""
        return {"buffer": self.buffer.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore what `state_dict` saved, before or after the first `sample`."""
        self.buffer.load_state_dict(state["buffer"])
        self.generator.set_state(state["generator"])
