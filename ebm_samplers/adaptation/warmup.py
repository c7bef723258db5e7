"""Warm-up adaptation: what the run loop calls after every warm-up transition.

It composes the two mechanisms of this package. The step size follows dual averaging toward the
kernel's target acceptance (kernels whose class has `target_acceptance`); kernels whose state carries
an `inverse_mass` (HMC, underdamped Langevin) also get a diagonal metric from the variance of the
positions in Stan's slow windows, after each of which the step-size recursion restarts from the
step size averaged so far. At the end of warm-up the step size is the averaged iterate h-bar.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from ebm_samplers._validate import check_flag
from ebm_samplers.adaptation.dual_averaging import DualAveraging
from ebm_samplers.adaptation.schedule import slow_windows
from ebm_samplers.adaptation.welford import WelfordVariance
from ebm_samplers.kernels.base import Info, Kernel, State


class WarmupAdaptation:
    """Adapts step size and (where the state has one) diagonal inverse mass over `warmup` steps."""

    def __init__(
        self,
        kernel: Kernel,
        state: State,
        warmup: int,
        *,
        adapt_step_size: bool = True,
        target_acceptance: float | None = None,
        step_size_per_chain: bool = False,
        adapt_mass_matrix: bool = True,
    ) -> None:
        for name, flag in [
            ("adapt_step_size", adapt_step_size),
            ("step_size_per_chain", step_size_per_chain),
            ("adapt_mass_matrix", adapt_mass_matrix),
        ]:
            check_flag(flag, name)
        if target_acceptance is not None and (
            isinstance(target_acceptance, bool)
            or not isinstance(target_acceptance, (int, float))
            or not 0.0 < target_acceptance < 1.0
        ):
            raise ValueError(f"target_acceptance must be a number strictly between 0 and 1; got {target_acceptance!r}")
        kernel_target = type(kernel).target_acceptance
        if target_acceptance is not None and kernel_target is None:
            raise ValueError(
                f"sampler {kernel.name or type(kernel).__name__} has no accept/reject step, so target_acceptance "
                f"cannot be used; got target_acceptance={target_acceptance!r}"
            )
        ignored = [f"target_acceptance={target_acceptance!r}"] if target_acceptance is not None else []
        ignored += ["step_size_per_chain=True"] if step_size_per_chain else []
        if ignored and (warmup == 0 or not adapt_step_size):
            raise ValueError(
                f"{' and '.join(ignored)}: options of the step-size adaptation during warm-up, but this run "
                f"has {'warmup=0' if warmup == 0 else 'adapt_step_size=False'}, so they would be ignored; "
                "give warmup > 0 with adapt_step_size=True, or leave them out"
            )
        target = kernel_target if target_acceptance is None else target_acceptance
        self.warmup = warmup
        self.target_acceptance = target
        self._step_size = (
            DualAveraging(state.step_size, target, per_chain=step_size_per_chain)
            if warmup > 0 and adapt_step_size and target is not None
            else None
        )
        has_metric = hasattr(state, "inverse_mass")
        self._windows = slow_windows(warmup) if adapt_mass_matrix and has_metric else []
        # pooled over chains: a per-chain estimate from a 25-draw window of autocorrelated draws is too
        # noisy (and biased low for slowly moving chains, which a smaller metric then slows further)
        self._variance = WelfordVariance(per_chain=False)

    @property
    def active(self) -> bool:
        return self._step_size is not None or bool(self._windows)

    def start(self, state: State, energy, generator: torch.Generator) -> State:
        """The state to begin warm-up from. The run loop calls it once, before the first warm-up transition of a
        run that is not resumed past step 0 (and only while `active`). Nothing is set up here yet: the state is
        returned unchanged (an initial step-size search would go here)."""
        return state

    def update(self, iteration: int, state: State, info: Info) -> State:
        """The state to continue from after warm-up iteration `iteration` (0-based) produced `state`."""
        changes: dict[str, Tensor] = {}
        window = next((w for w in self._windows if w[0] <= iteration < w[1]), None)
        if window is not None:
            self._variance.update(state.position)
            if iteration + 1 == window[1]:
                inverse_mass = self._variance.regularised_variance(state.inverse_mass)
                changes["inverse_mass"] = inverse_mass
                if hasattr(state, "momentum"):
                    # keep the whitened momentum p / sqrt(M): a momentum drawn under the old metric would
                    # otherwise move at the wrong speed (and can blow up an unadjusted integrator)
                    changes["momentum"] = state.momentum * torch.sqrt(state.inverse_mass / inverse_mass)
                self._variance.reset()
        if self._step_size is not None:
            if "inverse_mass" in changes:
                # restart from the average so far: the last exploring iterate is noisy
                restart = self._step_size.final_step_size().to(state.step_size)
                self._step_size.restart(restart)
                changes["step_size"] = restart
            else:
                changes["step_size"] = self._step_size.update(info["acceptance_rate"]).to(state.step_size)
            if iteration + 1 == self.warmup:
                changes["step_size"] = self._step_size.final_step_size().to(state.step_size)
        return dataclasses.replace(state, **changes) if changes else state

    def attrs(self, state: State) -> dict[str, Any]:
        """What warm-up settled on, for the trace attributes (plain Python, JSON-able)."""
        attrs: dict[str, Any] = {"adapted_step_size": self._step_size is not None}
        if self._step_size is not None:
            attrs["target_acceptance"] = self.target_acceptance
            attrs["final_step_size"] = state.step_size.tolist()
        if self._windows:
            attrs["adapted_mass_matrix"] = True
            # pooled over chains, so one (flattened event) row describes every chain
            attrs["final_inverse_mass"] = state.inverse_mass[0].reshape(-1).tolist()
        return attrs

    def state_dict(self) -> dict[str, object]:
        """Everything a checkpoint taken mid-warm-up needs to continue the adaptation exactly."""
        return {
            "step_size": None if self._step_size is None else self._step_size.state_dict(),
            "variance": self._variance.state_dict(),
        }

    def load_state_dict(self, saved: dict[str, object]) -> None:
        if (saved["step_size"] is None) != (self._step_size is None):
            raise ValueError("checkpoint was written with a different step-size adaptation setting")
        if self._step_size is not None:
            self._step_size.load_state_dict(saved["step_size"])
        self._variance.load_state_dict(saved["variance"])
