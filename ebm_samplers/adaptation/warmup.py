"""Warm-up adaptation: what the run loop calls after every warm-up transition.

It composes the two mechanisms of this package. The step size follows dual averaging toward the
kernel's target acceptance (kernels whose class has `target_acceptance`), from the step size found by the
initial search in `start` (`step_size_search`); kernels whose state carries an `inverse_mass` (HMC, NUTS,
underdamped Langevin, MALA, ULA) also get a metric, diagonal or dense as the kernel's `metric` says, from the
positions in Stan's slow windows (`metric.MetricAdaptation`), after each of which the step-size recursion
restarts from the step size averaged so far; a chain the metric left out whose energies stay far above the
others' continues from an agreeing chain (`stragglers`). At the end of warm-up the step size is the averaged
iterate h-bar.
HMC with an adapted trajectory length (`n_leapfrog=None`) also gets its integration time from `chees` (started
again at one step after each metric update), and its step size aims at `chees.TARGET_ACCEPTANCE` (a user's
`target_acceptance` replaces it): per chain on each chain's acceptance until the first slow window, then one
step shared by the chains on their harmonic-mean acceptance, restarted at the median of the chains' steps.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ebm_samplers._validate import check_flag
from ebm_samplers.adaptation import chees
from ebm_samplers.adaptation.dual_averaging import DualAveraging
from ebm_samplers.adaptation.metric import MetricAdaptation
from ebm_samplers.adaptation.step_size_search import search_step_size
from ebm_samplers.adaptation.stragglers import Stragglers
from ebm_samplers.kernels._kinetic import DenseMetric, metric_in_use, momentum_from_whitened, whiten_momentum
from ebm_samplers.kernels.base import Info, Kernel, State, take_chains

#: `sample(..., warmup=None)` runs min(n_steps, DEFAULT_WARMUP) warm-up transitions for a kernel that adapts.
DEFAULT_WARMUP = 1000


def default_warmup(
    kernel: Kernel, n_steps: int, *, adapt_step_size: bool = True, adapt_mass_matrix: bool = True
) -> int:
    """Warm-up length when none is given: min(n_steps, 1000) for a kernel with something to adapt (a target
    acceptance for its step size, or a metric: an `inverse_mass` parameter, as HMC and underdamped Langevin have),
    with that adaptation switched on, else 0 (and 0 for a kernel whose class says `warmup_by_default = False`:
    ULA, whose bias is set by the step size given). Stan and NumPyro also default to as many warm-up transitions as kept
    ones (Stan: 1,000); a kernel that adapts nothing would only discard draws. Decided from the kernel alone, so
    the run's options are settled before any chain exists."""
    if not type(kernel).warmup_by_default:
        return 0
    metric = adapt_mass_matrix is True and hasattr(kernel, "inverse_mass")
    return min(n_steps, DEFAULT_WARMUP) if _tunes_step_size(kernel, adapt_step_size) or metric else 0


def default_step_size_per_chain(kernel: Kernel, warmup: int, *, adapt_step_size: bool = True) -> bool:
    """`step_size_per_chain` when none is given: per chain wherever a step size is adapted (Stan's and BlackJAX's
    way: a shared step lets one chain that starts far out drag every chain's step toward zero), except for
    ChEES-HMC, whose chains share one trajectory length, so the batch would pay for the chain with the smallest
    step: it shares one step size on the harmonic-mean acceptance, as its paper does (after a first window per
    chain, see `WarmupAdaptation`)."""
    shares_length = bool(getattr(kernel, "chees", False))
    return warmup > 0 and _tunes_step_size(kernel, adapt_step_size) and not shares_length


def _tunes_step_size(kernel: Kernel, adapt_step_size: bool) -> bool:
    """Whether warm-up adapts the kernel's step size: it has a target acceptance, and adaptation is on."""
    return adapt_step_size is True and type(kernel).target_acceptance is not None


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
        # HMC with an adapted trajectory length (ChEES): its own adaptation of T, and its step-size target
        adapts_length = warmup > 0 and bool(getattr(kernel, "chees", False))
        self._chees = chees.ChEES(kernel.chees_learning_rate or chees.LEARNING_RATE) if adapts_length else None
        if adapts_length:
            kernel_target = chees.TARGET_ACCEPTANCE
        target = kernel_target if target_acceptance is None else target_acceptance
        self.warmup = warmup
        self.target_acceptance = target
        self._kernel = kernel
        has_metric = hasattr(state, "inverse_mass")
        # pooled over the chains that agree: a per-chain estimate from a 25-draw window of autocorrelated draws is
        # too noisy (and biased low for slowly moving chains, which a smaller metric then slows further)
        self._metric = (
            MetricAdaptation(metric_in_use(kernel, state), warmup) if adapt_mass_matrix and has_metric else None
        )
        self._windows = self._metric.windows if self._metric is not None else []
        # a chain the metric leaves out whose energies stay far above the others' continues from one that agrees
        self._stragglers = Stragglers(self._windows) if self._metric is not None else None
        # ChEES with one shared step size still adapts one per chain until the first slow window: a chain that
        # starts far out (a hierarchical scale near zero) then finds its own step and walks into the bulk instead
        # of diverging on every transition under a step that fits the others
        shares_later = adapts_length and not step_size_per_chain and bool(self._windows)
        self._shared_from = self._windows[0][0] if shares_later else None
        self._step_size = (
            DualAveraging(state.step_size, target, per_chain=step_size_per_chain or shares_later)
            if warmup > 0 and adapt_step_size and target is not None
            else None
        )
        self._searched_step_size: list[float] | None = None

    @property
    def active(self) -> bool:
        return self._step_size is not None or bool(self._windows) or self._chees is not None

    def start(self, state: State, energy, generator) -> State:
        """The state to start warm-up from (called once, before the first warm-up transition of a run that is not
        resumed): the step size of the initial search (Hoffman & Gelman 2014, Alg. 4), from which dual
        averaging starts with mu = log(10 h)."""
        if self._step_size is not None:
            step = search_step_size(self._kernel, state, energy, generator, self.target_acceptance).to(state.step_size)
            self._step_size.restart(step)
            self._searched_step_size = [float(step[0])]
            state = dataclasses.replace(state, step_size=step)
        if self._chees is not None:
            given = self._kernel.trajectory_length
            # ChEES starts short, at one (searched) step, and grows T: started long, it can settle on a later, lower
            # peak of the criterion (on Gaussians it is periodic in T), which costs gradients for nothing
            length = state.trajectory_length if given is not None else state.step_size
            state = dataclasses.replace(state, trajectory_length=length.clone())
            self._chees.start(length[0])
        return state

    def update(self, iteration: int, state: State, info: Info) -> State:
        """The state to continue from after warm-up iteration `iteration` (0-based) produced `state`."""
        changes: dict[str, object] = {}
        sources = None
        if self._windows:
            self._stragglers.update(iteration, state.energy)
        inverse_mass = self._metric.update(iteration, state.position, state.inverse_mass) if self._windows else None
        if inverse_mass is not None:
            left_out = self._metric.chains_left_out[-1]
            sources = self._stragglers.donors(iteration, left_out, state.position[0].numel())
            if sources is not None:
                state = take_chains(state, sources)
            changes["inverse_mass"] = inverse_mass
            if hasattr(state, "momentum"):
                # keep the whitened momentum M^{-1/2} p: a momentum drawn under the old metric would
                # otherwise move at the wrong speed (and can blow up an unadjusted integrator)
                whitened = whiten_momentum(state.momentum, state.inverse_mass)
                changes["momentum"] = momentum_from_whitened(whitened, inverse_mass)
        if self._step_size is not None and iteration + 1 == self._shared_from:
            # from here on one shared step: the chains' median of what each found
            shared = self._step_size.final_step_size().median().expand_as(state.step_size)
            self._step_size.per_chain = False
            self._step_size.restart(shared.to(state.step_size))
            changes["step_size"] = shared.to(state.step_size)
        elif self._step_size is not None:
            if "inverse_mass" in changes:
                # restart from the average so far: the last exploring iterate is noisy
                restart = self._step_size.final_step_size().to(state.step_size)
                if sources is not None and self._step_size.per_chain:
                    restart = restart[sources]  # a moved chain continues with its donor's step too
                self._step_size.restart(restart)
                changes["step_size"] = restart
            else:
                statistic = info["acceptance_rate"]
                if self._chees is not None and not self._step_size.per_chain:
                    statistic = chees.harmonic_mean_acceptance(info).expand_as(statistic)
                changes["step_size"] = self._step_size.update(statistic).to(state.step_size)
            if iteration + 1 == self.warmup:
                changes["step_size"] = self._step_size.final_step_size().to(state.step_size)
        if self._chees is not None:
            if "inverse_mass" in changes:
                # a new metric changes the time scale of the dynamics, and the criterion is periodic in T on a
                # Gaussian: grown under the old metric, T sits on a later, lower peak of the new one, from which its
                # noisy gradient does not bring it back; ChEES starts short again, as at the start of warm-up
                length = changes.get("step_size", state.step_size).median()
                self._chees.start(length)
            else:
                # T's floor is the averaged step h-bar, not the exploring iterate: right after a restart dual
                # averaging tries steps ~10 times h-bar, and T pushed up to one of them stayed on a later peak
                averaged = self._step_size.final_step_size().median() if self._step_size is not None else None
                length = self._chees.update(state, info, averaged)
            if iteration + 1 == self.warmup:
                length = self._chees.final_length()
            changes["trajectory_length"] = length.to(state.trajectory_length).expand_as(state.trajectory_length)
        return dataclasses.replace(state, **changes) if changes else state

    def attrs(self, state: State) -> dict[str, Any]:
        """What warm-up settled on, for the trace attributes (plain Python, JSON-able)."""
        attrs: dict[str, Any] = {"adapted_step_size": self._step_size is not None}
        if self._step_size is not None:
            attrs["target_acceptance"] = self.target_acceptance
            if self._searched_step_size is not None:
                attrs["initial_step_size"] = self._searched_step_size[0]
            attrs["final_step_size"] = state.step_size.tolist()
        if self._chees is not None:
            attrs["adapted_trajectory_length"] = True
            attrs["trajectory_length"] = float(state.trajectory_length[0])
        if self._windows:
            attrs["adapted_mass_matrix"] = True
            attrs["metric"] = self._metric.kind
            attrs["metric_chains_left_out"] = self._metric.chains_left_out
            attrs["warmup_chains_moved"] = self._stragglers.moves
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
            "stragglers": None if self._stragglers is None else self._stragglers.state_dict(),
            "searched_step_size": self._searched_step_size,
            "chees": None if self._chees is None else self._chees.state_dict(),
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
            if saved.get("stragglers") is None:
                raise ValueError(
                    "checkpoint was written before warm-up moved straggling chains; delete it to start afresh"
                )
            self._stragglers.load_state_dict(saved["stragglers"])
        self._searched_step_size = saved.get("searched_step_size")
        if (saved.get("chees") is None) != (self._chees is None):
            raise ValueError("checkpoint was written with a different trajectory-length adaptation setting")
        if self._chees is not None:
            self._chees.load_state_dict(saved["chees"])
