"""What a run does when an energy or gradient turns NaN or infinite: `on_nonfinite="raise" | "reject" | "reset"`.

A chain *fails* at a step when its new state has a non-finite energy or gradient. A non-finite *proposal*
of a Metropolis-corrected kernel is never a failure, whatever the policy: the kernel rejects it (acceptance
probability 0, which is exact MH for zero density) and counts it in its `diverging` stat. So the policy
governs non-finite states: those of unadjusted kernels (ULA, annealed Langevin), which keep every proposal,
and of adjusted ones that accepted a proposal at energy -inf. A kernel that knows which chains failed hands
the loop a `StepFailure` (`kernels.base.with_failure`; MALA and HMC read it off their acceptance ratio) and
saves the loop's check of the new state; for any other kernel the loop checks the state with
`kernels.base.nonfinite`, and for a Metropolis kernel among them (one with a `target_acceptance`) takes a new
state with energy +inf or NaN or a non-finite gradient back as a rejected proposal, counted in `diverging`.

* "raise" (default): the run stops with a `FloatingPointError` naming the first failing chain, the
  step and the value. Each step's failure flags (and the tensors that name the value) are kept on the
  device, by reference, until the host checks them every few hundred steps; only then, and only if
  something failed, are they searched for each chain's first failure. So a step adds no work beyond
  the finiteness check itself, and the step, chain and value are still reported exactly.
* "reject": a failing chain keeps its previous state, and the step counts as rejected (`accepted`
  False, `acceptance_rate` 0). For MH kernels this is what the MH step already did; for unadjusted
  kernels (ULA) it is the only change. Costs two `torch.where` per step, no host synchronisation.
* "reset": a failing chain restarts from a fresh point (the chain's initial point, a new N(0, I) draw
  when the run drew its initial points, or the user's `reset(n, generator)`), keeping its step size.
  For a persistent (replay-buffer) kernel, `reset=lambda n, g: kernel.buffer.draw(n, g)[0]` restarts
  from the buffer. A recovery heuristic for exploration and EBM training: a restarted chain is not a
  continuation of a Markov chain with the target as stationary law. Costs one host sync per step.

Every policy records `stats["nonfinite"]` per kept draw and totals per chain (all steps, warm-up
included) in the trace attributes; a returned trace never holds a NaN from the sampler.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
from torch import Tensor

from ebm_samplers.kernels.base import (
    Info,
    Kernel,
    State,
    StepFailure,
    nonfinite,
    recorded,
    step_failure,
    where_state,
)

POLICIES = ("raise", "reject", "reset")

ResetPoints = Callable[[int, torch.Generator], Tensor]


def step_failures(state: State, info: Info) -> StepFailure:
    """Which chains failed in one step and the energy to name: the kernel's `StepFailure`, else the new state
    checked (a kernel that returns a plain Info dict), naming its energy."""
    failure = step_failure(info)
    if failure is None:
        return StepFailure(failed=nonfinite(state.energy, state.grad), value=state.energy)
    return failure if failure.value is not None else StepFailure(failure.failed, state.energy)


def _reject_accepted_divergences(previous: State, state: State, info: Info, bad: Tensor):
    """For a Metropolis kernel that reports no `StepFailure` (a user kernel returning a plain Info dict): a new
    state with energy +inf or NaN or a non-finite gradient is a proposal that should have been rejected (its
    ratio can look finite, e.g. a random walk's ignores the gradient). Rejecting it now is the same event as
    rejecting it before the uniform draw, so the chain keeps its previous state, the step counts as rejected
    and as a divergence, and only energy -inf still fails. `(state, info, still failed)`."""
    diverged = bad & (state.energy != -torch.inf)
    state = where_state(diverged, previous, state)
    if "accepted" in info:
        info["accepted"] = info["accepted"] & ~diverged
    if "acceptance_rate" in info:
        info["acceptance_rate"] = torch.where(diverged, 0.0, info["acceptance_rate"])
    info["diverging"] = info["diverging"] | diverged if "diverging" in info else diverged
    return state, info, bad & ~diverged


def check_policy(policy: object) -> str:
    if policy not in POLICIES:
        raise ValueError(f"on_nonfinite must be one of {', '.join(map(repr, POLICIES))}; got {policy!r}")
    return policy  # type: ignore[return-value]


def default_reset(init: Tensor, drawn: bool) -> ResetPoints:
    """Restart points: new N(0, I) draws if the run drew its initial points, else each chain's own start."""
    start = init.detach().clone()
    if drawn:
        return lambda n, generator: torch.randn(
            start.shape, generator=generator, dtype=start.dtype, device=start.device
        )
    return lambda n, generator: start


class NonfiniteGuard:
    """Applies the policy after every kernel step; `state_dict()` makes it part of a checkpoint."""

    def __init__(
        self,
        policy: str,
        *,
        n_chains: int,
        warmup: int,
        energy_name: str,
        like: Tensor,
        reset: ResetPoints | None = None,
    ):
        self.policy = check_policy(policy)
        self.warmup = warmup
        self.energy_name = energy_name
        self.reset = reset
        self.first_step = torch.full((n_chains,), -1, dtype=torch.long, device=like.device)
        self.first_value = torch.zeros(n_chains, dtype=like.dtype, device=like.device)
        self.count = torch.zeros(n_chains, dtype=torch.long, device=like.device)
        # under "raise": (step, failed, value to name) of the steps not yet checked, and the same for blocks of
        # steps run as one compiled call, each (steps, n)
        self._unchecked: list[tuple[int, Tensor, Tensor]] = []
        self._unchecked_blocks: list[tuple[int, Tensor, Tensor]] = []

    def apply(
        self, step: int, previous: State, state: State, info: Info, kernel: Kernel, energy, generator
    ) -> tuple[State, Info]:
        """The state after the policy and the info to record (with `nonfinite`, without transient keys)."""
        kernel_failure = step_failure(info)
        failure = step_failures(state, info)
        bad = failure.failed
        info = recorded(info)
        if kernel_failure is None and type(kernel).target_acceptance is not None:
            state, info, bad = _reject_accepted_divergences(previous, state, info, bad)

        if self.policy == "raise":  # no count: a run that returns has had no failure
            self._unchecked.append((step, bad, failure.value))
        elif self.policy == "reject":
            self.count += bad
            state = where_state(bad, previous, state)
            if "accepted" in info:
                info["accepted"] = info["accepted"] & ~bad
            if "acceptance_rate" in info:
                info["acceptance_rate"] = torch.where(bad, 0.0, info["acceptance_rate"])
        else:
            self.count += bad
            if bool(bad.any()):  # "reset": drawing fresh points only when needed costs one sync per step
                state = where_state(bad, self._fresh_state(state, kernel, energy, generator, bad), state)
        info["nonfinite"] = bad
        return state, info

    def note_block(self, first_step: int, bad: Tensor, state_bad: Tensor, value: Tensor) -> None:
        """Under "raise", the failure flags of consecutive steps run as one compiled call (see
        `_compiled_step`), each `(steps, n_chains)`: row i is step `first_step + i`; `value` is the energy to
        name. `state_bad` is the same as `bad` (every failure is a new state's since rejected proposals no
        longer fail); the parameter stays for the loop's call."""
        if self.policy != "raise":
            raise ValueError(f"blocks of steps are only run under on_nonfinite='raise', not {self.policy!r}")
        self._unchecked_blocks.append((first_step, bad | state_bad, value))

    def _fresh_state(self, state: State, kernel: Kernel, energy, generator, bad: Tensor) -> State:
        n = state.position.shape[0]
        points = self.reset(n, generator)
        if not isinstance(points, Tensor) or points.shape != state.position.shape:
            got = tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__
            expected = tuple(state.position.shape)
            raise ValueError(f"reset(n, generator) must return a tensor of shape {expected}; got {got}")
        fresh = kernel.init(points.to(state.position), energy)
        # keep what warm-up settled (step size, trajectory length and its jitter counter), not the fresh defaults
        settled = {"step_size", "trajectory_length", "transition"} & {f.name for f in dataclasses.fields(fresh)}
        fresh = dataclasses.replace(fresh, **{name: getattr(state, name) for name in settled})
        if bool((nonfinite(fresh.energy, fresh.grad) & bad).any()):
            raise FloatingPointError(
                f"on_nonfinite='reset': energy {self.energy_name} or its gradient is not finite at the reset points "
                "either; give reset=... that draws points where the energy is finite"
            )
        return fresh

    def _note_unchecked(self) -> None:
        """Fold the unchecked steps into each chain's first failure (step, value, where): one host sync, and
        the per-step search only when some step failed."""
        unchecked, self._unchecked = self._unchecked, []
        blocks, self._unchecked_blocks = self._unchecked_blocks, []
        flags = [torch.stack([bad for _, bad, _ in unchecked])] if unchecked else []
        flags += [bad for _, bad, _ in blocks]
        if not flags or not bool(torch.cat([f.reshape(-1) for f in flags]).any()):
            return
        rows = list(unchecked)
        for first, bad, value in blocks:
            rows += [(first + i, bad[i], value[i]) for i in range(bad.shape[0])]
        for step, bad, value in sorted(rows, key=lambda row: row[0]):  # the first failure per chain
            new = bad & (self.first_step < 0)
            self.first_step = torch.where(new, step, self.first_step)
            self.first_value = torch.where(new, value.to(self.first_value.dtype), self.first_value)

    def raise_if_failed(self) -> None:
        """Under "raise", stop with the first failure (chain, step, value); otherwise nothing to do."""
        self._note_unchecked()
        failed = self.first_step >= 0
        if self.policy != "raise" or not bool(failed.any()):
            return
        steps = torch.where(failed, self.first_step, torch.iinfo(torch.long).max)
        chain = int(torch.argmin(steps))  # the earliest failure, lowest chain on ties
        step = int(self.first_step[chain])
        value = float(self.first_value[chain])
        what = f"energy {value}" if not math.isfinite(value) else f"energy {value:.6g} with a non-finite gradient"
        phase = f"warm-up step {step}" if step < self.warmup else f"step {step - self.warmup}"
        raise FloatingPointError(
            f"energy {self.energy_name} or its gradient became NaN or infinite in {int(failed.sum())} chain(s); "
            f"first: chain {chain} at {phase} (the new state: {what}). Reduce the step size, check the energy for "
            "overflow, or pass on_nonfinite='reject' or 'reset'"
        )

    def record_failures(self, first_step: Tensor) -> None:
        """Raise for failures found by the compiled path, which reports only each chain's first failing step
        (or -1); it runs under the "raise" policy only."""
        failed = first_step >= 0
        if not bool(failed.any()):
            return
        steps = torch.where(failed, first_step, torch.iinfo(torch.long).max)
        chain = int(torch.argmin(steps))
        step = int(first_step[chain])
        phase = f"warm-up step {step}" if step < self.warmup else f"step {step - self.warmup}"
        raise FloatingPointError(
            f"energy {self.energy_name} or its gradient became NaN or infinite in {int(failed.sum())} chain(s); "
            f"first: chain {chain} at {phase}. Reduce the step size, check the energy for overflow, or pass "
            "on_nonfinite='reject' or 'reset' (these run on the torch path)"
        )

    def attrs(self) -> dict[str, object]:
        per_chain = self.count.cpu().tolist()
        return {"on_nonfinite": self.policy, "nonfinite_total": int(sum(per_chain)), "nonfinite_per_chain": per_chain}

    def state_dict(self) -> dict[str, object]:
        self._note_unchecked()
        return {
            "policy": self.policy,
            "first_step": self.first_step,
            "first_value": self.first_value,
            "count": self.count,
        }

    def load_state_dict(self, saved: dict[str, object]) -> None:
        if saved["policy"] != self.policy:
            raise ValueError(f"checkpoint was written with on_nonfinite={saved['policy']!r}, not {self.policy!r}")
        for name in ("first_step", "first_value", "count"):
            setattr(self, name, saved[name].to(getattr(self, name).device))
