"""Dual averaging of the log step size toward a target acceptance rate (Hoffman & Gelman 2014, Alg. 5).

With a_m the acceptance statistic of iteration m and delta the target, starting from H_0 = 0 and
log h-bar_0 = 0:

    H_m            = (1 - 1/(m + t0)) H_{m-1} + (delta - a_m) / (m + t0)
    log h_m        = mu - sqrt(m) / gamma * H_m
    log h-bar_m    = m^-kappa log h_m + (1 - m^-kappa) log h-bar_{m-1}

with mu = log(10 h_0), gamma = 0.05, t0 = 10, kappa = 0.75. The iterates h_m explore; the weighted
average h-bar_m converges and is the step size used after warm-up. Each chain runs its own recursion
(`per_chain=True`) or all chains share one, driven by the acceptance averaged over chains.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

GAMMA = 0.05
T0 = 10.0
KAPPA = 0.75


class DualAveraging:
    """Per-chain (or shared) dual-averaging state for step sizes of shape (n,)."""

    def __init__(self, step_size: Tensor, target_acceptance: float, *, per_chain: bool = True) -> None:
        if not 0.0 < target_acceptance < 1.0:
            raise ValueError(f"target_acceptance must lie strictly between 0 and 1; got {target_acceptance!r}")
        self.target_acceptance = float(target_acceptance)
        self.per_chain = per_chain
        self.restart(step_size)

    def restart(self, step_size: Tensor) -> None:
        """Start a fresh recursion at `step_size` (after a metric update the scale of good steps changes)."""
        log_step = torch.log(step_size if self.per_chain else step_size.mean().expand_as(step_size))
        self._mu = log_step + math.log(10.0)
        self._log_step = log_step.clone()
        self._log_step_average = torch.zeros_like(log_step)
        self._error_average = torch.zeros_like(log_step)
        self._iteration = 0

    def update(self, acceptance: Tensor) -> Tensor:
        """Feed one iteration's acceptance statistic (n,); return the next exploring step size (n,)."""
        statistic = acceptance if self.per_chain else acceptance.mean().expand_as(acceptance)
        # a NaN statistic (a proposal with NaN energy) counts as a rejection, as in metropolis_accept
        statistic = statistic.to(self._log_step).nan_to_num(nan=0.0)
        self._iteration += 1
        m = self._iteration
        weight = 1.0 / (m + T0)
        self._error_average = (1.0 - weight) * self._error_average + weight * (self.target_acceptance - statistic)
        self._log_step = self._mu - math.sqrt(m) / GAMMA * self._error_average
        decay = m**-KAPPA
        self._log_step_average = decay * self._log_step + (1.0 - decay) * self._log_step_average
        return torch.exp(self._log_step)

    def final_step_size(self) -> Tensor:
        """The averaged iterate h-bar, the step size to keep after warm-up."""
        if self._iteration == 0:
            return torch.exp(self._mu - math.log(10.0))
        return torch.exp(self._log_step_average)

    def state_dict(self) -> dict[str, object]:
        """The recursion's state (for checkpoints: resuming mid-warm-up continues it exactly)."""
        return {
            "mu": self._mu,
            "log_step": self._log_step,
            "log_step_average": self._log_step_average,
            "error_average": self._error_average,
            "iteration": self._iteration,
            "per_chain": self.per_chain,  # ChEES's warm-up switches from per chain to shared
        }

    def load_state_dict(self, saved: dict[str, object]) -> None:
        self._mu, self._log_step = saved["mu"], saved["log_step"]
        self._log_step_average, self._error_average = saved["log_step_average"], saved["error_average"]
        self._iteration = int(saved["iteration"])
        self.per_chain = bool(saved.get("per_chain", self.per_chain))
