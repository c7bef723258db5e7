"""Warm-up adaptation: what the run loop calls after every warm-up transition.

It composes the two mechanisms of this package. The step size follows dual averaging toward the
kernel's target acceptance (kernels whose class has `target_acceptance`); kernels whose state carries
an `inverse_mass` (HMC, underdamped Langevin, MALA, ULA) also get a metric, diagonal or dense as the
kernel's `metric` says, from the positions in Stan's slow windows (`metric.MetricAdaptation`), after each
of which the step-size recursion restarts from the step size averaged so far. At the end of warm-up the
step size is the averaged iterate h-bar.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ebm_samplers._validate import check_flag
from ebm_samplers.adaptation.dual_averaging import DualAveraging
from ebm_samplers.adaptation.metric import MetricAdaptation
from ebm_samplers.kernels._kinetic import DenseMetric, metric_in_use, momentum_from_whitened, whiten_momentum
from ebm_samplers.kernels.base import Info, Kernel, State


class WarmupAdaptation:
    """Adapts step size and (where the state has one) the inverse mass over `warmup` steps."""

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
        # pooled over chains: a per-chain estimate from a 25-draw window of autocorrelated draws is too
        # noisy (and biased low for slowly moving chains, which a smaller metric then slows further)
        self._metric = (
            MetricAdaptation(metric_in_use(kernel, state), warmup) if adapt_mass_matrix and has_metric else None
        )
        self._windows = self._metric.windows if self._metric is not None else []

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
        changes: dict[str, object] = {}
        inverse_mass = self._metric.update(iteration, state.position) if self._windows else None
        if inverse_mass is not None:
            changes["inverse_mass"] = inverse_mass
            if hasattr(state, "momentum"):
                # keep the whitened momentum M^{-1/2} p: a momentum drawn under the old metric would
                # otherwise move at the wrong speed (and can blow up an unadjusted integrator)
                whitened = whiten_momentum(state.momentum, state.inverse_mass)
                changes["momentum"] = momentum_from_whitened(whitened, inverse_mass)
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
            attrs["metric"] = self._metric.kind
            if isinstance(state.inverse_mass, DenseMetric):
                # the diagonal (the variances) under the same name as a diagonal metric's, and the whole
                # (d, d) matrix over the flattened event
                attrs["final_inverse_mass"] = state.inverse_mass.diagonal().tolist()
                attrs["final_inverse_mass_dense"] = state.inverse_mass.inverse_mass.tolist()
                attrs["metric_ridge_retries"] = self._metric.ridge_retries
            elif state.inverse_mass is not None:
                # pooled over chains, so one (flattened event) row describes every chain
                attrs["final_inverse_mass"] = state.inverse_mass[0].reshape(-1).tolist()
        return attrs

    def state_dict(self) -> dict[str, object]:
        """Everything a checkpoint taken mid-warm-up needs to continue the adaptation exactly."""
        return {
            "step_size": None if self._step_size is None else self._step_size.state_dict(),
            "metric": None if self._metric is None else self._metric.state_dict(),
        }

    def load_state_dict(self, saved: dict[str, object]) -> None:
        if (saved["step_size"] is None) != (self._step_size is None):
            raise ValueError("checkpoint was written with a different step-size adaptation setting")
        if self._step_size is not None:
            self._step_size.load_state_dict(saved["step_size"])
        if (saved.get("metric") is None) != (self._metric is None):
            raise ValueError(
                "checkpoint was written with a different metric adaptation setting (or before the metric's "
                "estimator was saved as 'metric'); delete it to start afresh"
            )
        if self._metric is not None:
            self._metric.load_state_dict(saved["metric"])
