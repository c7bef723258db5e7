"""ChEES: adapting HMC's integration time T during warm-up (Hoffman, Radul & Sountsov, AISTATS 2021).

The criterion is the expected change of the centred squared distance over one transition,

    ChEES(T) = 1/4 E[(||x' - E x||^2 - ||x - E x||^2)^2],

which grows with T until the trajectory starts to turn back, i.e. it favours lengths of the order of the
target's largest scale. Many chains estimate it and its gradient at once. Per chain, with x the start, x~ the
proposal at the trajectory's end and v~ = M^-1 p~ its velocity (dx~/dt), the gradient with respect to the
integration time t is

    g = (||x~ - m~||^2 - ||x - m||^2) (x~ - m~) . v~,

m the chains' mean of the starts and m~ the acceptance-weighted mean of the proposals (both treated as
constants). With t = 2 u T (u the transition's Halton point), dt / d log T = t, so the gradient on log T is
t g, averaged over chains with weights the acceptance probabilities a (chains with a < 1e-4 or a non-finite
g count 0). log T then takes one Adam step: no momentum (beta1 = 0), second moment decay beta2 = 0.95 with
bias correction, learning rate 0.025, each gradient clipped to 5 running RMS before it enters the second
moment (not in the paper: one chain far out before the chains meet gives gradients ~1e6 times the usual ones,
which would freeze T for hundreds of transitions), the step clipped to +-0.35 (T changes by at most ~40 % per
transition); T stays between one and `MAX_LEAPFROG` times the chains' median averaged step size h-bar (also not
in the paper: below one step the criterion says nothing, as every transition takes at least one; h-bar rather
than dual averaging's exploring iterate, which tries ~10 h-bar after each restart and would push T up with it).
After each metric update
`WarmupAdaptation` starts T again at one step size (not in the paper, whose metric is fixed during the
adaptation of T: on a Gaussian the criterion of jittered trajectories peaks at T ~ 1.2 whitened time units and
again, lower, every pi/2 after that, so a T grown under the previous metric stays on a later peak of the new
one; 8 chains' gradient is too noisy to bring it back: a logistic regression of the panel ended warm-up at
T = 22 instead of ~7). The T kept after warm-up is the running average of log T since that last start, with
weights m^-1/2 at its iteration m (iterate averaging). The other constants are the paper's reference
implementation's (TFP's GradientBasedTrajectoryLengthAdaptation).

The step size meanwhile follows dual averaging toward `TARGET_ACCEPTANCE` = 0.8 (the paper aims at 0.651, the
optimal mean acceptance of HMC on high-dimensional product targets, Beskos et al. 2013; the panel's posteriors
sampled more reliably and mostly more cheaply at 0.8: `docs/samplers/hmc.md`, "The step-size target"):
of each chain's own acceptance while the steps are per chain (by default until the first slow window), and
with one shared step size of the harmonic mean of the chains' acceptance probabilities over the chains that did
not diverge, times their share (`harmonic_mean_acceptance`): one chain
that accepts nothing then pulls the step size down, as the paper intends, but a divergence (a rejected
non-finite proposal, e.g. outside a support) does not pin it to zero. See `WarmupAdaptation`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ebm_samplers.kernels.base import Info, State

LEARNING_RATE = 0.025
BETA2 = 0.95
MAX_LOG_STEP = 0.35
TARGET_ACCEPTANCE = 0.8
MIN_WEIGHT = 1e-4
MAX_OUTLIER = 5.0


def harmonic_mean_acceptance(info: Info) -> Tensor:
    """The harmonic mean (0-d) of the acceptance probabilities of the chains that did not diverge, times the
    fraction of chains that did not diverge (0 if all did).

    A diverging chain counts as acceptance 0 in the fraction but not in the harmonic mean, where one 0 would pin
    the statistic (and so the step size) to 0: a rare divergence (a proposal outside a support) lowers the step
    a little, while divergences in most chains (a trajectory too long for the step on a curved target) lower it
    as they should."""
    probability = info["acceptance_rate"].nan_to_num(nan=0.0)
    kept = ~info["diverging"] if "diverging" in info else torch.ones_like(probability, dtype=torch.bool)
    count = kept.sum()
    inverse = torch.where(kept, 1.0 / probability, 0.0).sum()  # a kept chain with probability 0 gives +inf
    return torch.where(count > 0, count / inverse * (count / probability.numel()), 0.0)


def chees_gradient(info: Info) -> Tensor:
    """The acceptance-weighted mean over chains of d ChEES / d log T for this transition (0-d)."""
    start = info["_start"].reshape(info["_start"].shape[0], -1)
    proposal = info["_proposal"].reshape(start.shape)
    velocity = info["_velocity"].reshape(start.shape)
    probability = info["acceptance_rate"].nan_to_num(nan=0.0)
    weight = torch.where(probability > MIN_WEIGHT, probability, 0.0)
    finite = torch.isfinite(proposal).all(-1) & torch.isfinite(velocity).all(-1)
    weight = torch.where(finite, weight, 0.0)
    safe_proposal = torch.where(finite[:, None], proposal, 0.0)
    centre = (weight[:, None] * safe_proposal).sum(0) / (weight.sum() + 1e-20)
    centred = safe_proposal - centre
    change = centred.square().sum(-1) - (start - start.mean(0)).square().sum(-1)
    time = info["_time"]  # t = 2 u T, so d t / d log T = t
    per_chain = change * (centred * torch.where(finite[:, None], velocity, 0.0)).sum(-1) * time
    per_chain = torch.where(torch.isfinite(per_chain), per_chain, 0.0)
    return (weight * per_chain).sum() / (weight.sum() + 1e-20)


class ChEES:
    """Adam on log T over warm-up; `update` returns the T for the next transition, `final_length` the average."""

    def __init__(self, learning_rate: float = LEARNING_RATE) -> None:
        self.learning_rate = float(learning_rate)
        self.iteration = 0
        self.log_length: Tensor | None = None
        self.log_length_average: Tensor | None = None
        self.squared_gradient: Tensor | None = None

    def start(self, trajectory_length: Tensor) -> None:
        """Begin from the integration time `trajectory_length` (0-d)."""
        self.iteration = 0
        self.log_length = torch.log(trajectory_length)
        self.log_length_average = self.log_length.clone()
        self.squared_gradient = torch.zeros_like(self.log_length)

    def update(self, state: State, info: Info, step_size: Tensor | None = None) -> Tensor:
        """One Adam step on log T from this transition; the new T (0-d), between one and MAX_LEAPFROG step sizes:
        `step_size` (0-d), or the chains' median step where none is given."""
        from ebm_samplers.kernels.hmc import MAX_LEAPFROG

        if self.log_length is None:
            self.start(state.trajectory_length[0])
        gradient = chees_gradient(info).to(self.log_length)
        if self.iteration > 0:
            # an outlier (one chain far from the rest: the criterion grows with the fourth power of distance)
            # enters the second moment at most MAX_OUTLIER running RMS in size; unclipped, a gradient 1e6 times
            # the usual would hold every later Adam step near zero for ~700 transitions (beta2 = 0.95)
            scale = MAX_OUTLIER * torch.sqrt(self.squared_gradient / (1.0 - BETA2**self.iteration))
            gradient = torch.where(scale > 0, gradient.clamp(-scale, scale), gradient)
        self.iteration += 1
        self.squared_gradient = BETA2 * self.squared_gradient + (1.0 - BETA2) * gradient.square()
        corrected = self.squared_gradient / (1.0 - BETA2**self.iteration)
        step = (self.learning_rate * gradient / torch.sqrt(corrected + 1e-20)).clamp(-MAX_LOG_STEP, MAX_LOG_STEP)
        # the median chain's step, not the smallest: with per-chain step sizes one chain stuck far out (its step
        # size collapsing) would otherwise cap T for every chain near zero; that chain's L is capped in the kernel
        floor = state.step_size.median() if step_size is None else step_size
        log_step = torch.log(floor).to(self.log_length)
        # and floored at one step: below it every transition still takes one leapfrog step (L = ceil(2uT/h)), so
        # the criterion's gradient says nothing about it, and T would lag far behind a step size that grows
        self.log_length = (self.log_length + step).clamp(log_step, log_step + math.log(MAX_LEAPFROG))
        weight = self.iteration**-0.5
        self.log_length_average = weight * self.log_length + (1.0 - weight) * self.log_length_average
        return torch.exp(self.log_length)

    def final_length(self) -> Tensor:
        """The averaged T to keep after warm-up (0-d)."""
        return torch.exp(self.log_length_average)

    def state_dict(self) -> dict[str, object]:
        return {
            "iteration": self.iteration,
            "log_length": self.log_length,
            "log_length_average": self.log_length_average,
            "squared_gradient": self.squared_gradient,
        }

    def load_state_dict(self, saved: dict[str, object]) -> None:
        self.iteration = int(saved["iteration"])
        self.log_length, self.log_length_average = saved["log_length"], saved["log_length_average"]
        self.squared_gradient = saved["squared_gradient"]
