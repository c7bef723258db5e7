"""Parallel tempering (replica exchange; Swendsen & Wang 1986, Geyer 1991).

R replicas of every chain run at temperatures 1 = T_0 < T_1 < ... < T_{R-1} (geometric by default:
T_r = max_temperature^(r / (R - 1))), replica r targeting p_r(x) ∝ exp(-beta_r E(x)), beta_r = 1 / T_r.
One step:

1. every replica takes one step of the inner kernel on its tempered energy beta_r E;
2. neighbours (r, r+1) swap states with probability

       min(1, exp((beta_r - beta_{r+1}) (E(x_r) - E(x_{r+1})))),

   for the pairs with r even on even steps and r odd on odd steps (Lingenheil et al. 2009's
   deterministic even/odd scheme), so a state can travel the whole ladder.

The swap is a Metropolis move on the product target prod_r p_r, so each replica keeps its own law and
the T = 1 replica samples p; hot replicas cross energy barriers and hand their states down. Only the
T = 1 replica is returned (`state.position`). With `scale_step_with_temperature`, replica r uses step
size T_r h (tempering by T scales a Gaussian's covariance by T). Swapping exchanges a row's position
and every other per-row field of the inner state except the step size (momentum, if the inner kernel
keeps one, is temperature-free, so swapping it with the position is harmless); the cached energy and
gradient are rescaled to the new temperature, so a swap costs no evaluation.

Layout: replicas are stacked along the batch axis, row r * n + c holding replica r of chain c, so the
inner kernel advances all R * n rows in one call. Trace stats `swap_acceptance_r_s` give, per chain, the
swap probability of the pair (r, s = r + 1) at the current state: the one used for the decision when
the pair was proposed this step; either way, at stationarity its mean is the pair's swap rate.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ebm_samplers._validate import check_count, check_flag
from ebm_samplers.kernels._resolve import resolve_kernel
from ebm_samplers.kernels.base import Info, Kernel, State, nonfinite, per_chain, recorded
from ebm_samplers.registry import register_sampler
from energies import Energy, energy_and_grad


@dataclass
class TemperingState(State):
    """The T = 1 replica in the usual fields, plus every replica's inner state."""

    replicas: State  # inner kernel state over R * n rows, on the tempered energies
    swap_parity: int  # 0: pairs (0, 1), (2, 3), ... are proposed next; 1: pairs (1, 2), (3, 4), ...


@register_sampler("parallel_tempering")
class ParallelTempering(Kernel):
    """Replica exchange over a temperature ladder with any registered kernel inside each replica.

    Args:
        inner: a registered sampler name or a kernel object (then give no `inner_params`).
        n_temperatures, max_temperature: the geometric ladder 1 ... max_temperature.
        temperatures: an explicit ladder instead (starts at 1, strictly increasing).
        scale_step_with_temperature: replica r steps with T_r times the inner step size.
        **inner_params: parameters of the inner sampler, e.g. `step_size=0.1`.
    """

    def __init__(
        self,
        inner: str | Kernel = "mala",
        n_temperatures: int = 8,
        max_temperature: float = 100.0,
        temperatures: Sequence[float] | None = None,
        scale_step_with_temperature: bool = True,
        **inner_params,
    ) -> None:
        self.inner = resolve_kernel(inner, inner_params, owner="parallel_tempering")
        self.temperatures = _ladder(n_temperatures, max_temperature, temperatures)
        check_flag(scale_step_with_temperature, "scale_step_with_temperature")
        self.scale_step_with_temperature = scale_step_with_temperature

    @property
    def step_size(self) -> float:  # the T = 1 replica's
        return self.inner.step_size

    def init(self, x: Tensor, energy) -> TemperingState:
        n, n_replicas = x.shape[0], len(self.temperatures)
        rows = x.detach().repeat(n_replicas, *([1] * (x.ndim - 1)))
        beta = self._row_inverse_temperatures(n, x)
        replicas = self.inner.init(rows, _Tempered(energy, beta))
        step_size = replicas.step_size[:n]
        replicas = dataclasses.replace(replicas, step_size=self._row_step_sizes(step_size))
        return self._with_replicas(replicas, step_size, swap_parity=0)

    def step(self, state: TemperingState, energy, generator: torch.Generator) -> tuple[TemperingState, Info]:
        n, n_replicas = state.position.shape[0], len(self.temperatures)
        beta = self._row_inverse_temperatures(n, state.position)
        replicas = dataclasses.replace(state.replicas, step_size=self._row_step_sizes(state.step_size))
        replicas, inner_info = self.inner.step(replicas, _Tempered(energy, beta), generator)

        # swaps between neighbours: log a = (beta_r - beta_{r+1}) (E(x_r) - E(x_{r+1})), E untempered
        untempered = (replicas.energy / beta).reshape(n_replicas, n)
        beta_ladder = beta.reshape(n_replicas, n)
        log_ratio = (beta_ladder[:-1] - beta_ladder[1:]) * (untempered[:-1] - untempered[1:])  # (R - 1, n)
        probability = torch.exp(torch.clamp(log_ratio, max=0.0).nan_to_num(nan=-math.inf))
        uniform = torch.rand(log_ratio.shape, generator=generator, dtype=log_ratio.dtype, device=log_ratio.device)
        proposed = (torch.arange(n_replicas - 1, device=log_ratio.device) % 2 == state.swap_parity)[:, None]
        swapped = proposed & (torch.log(uniform) < log_ratio)
        replicas = _swap_rows(replicas, swapped, beta)

        info = {  # the inner kernel's transient "_" entries describe its own states, not the swapped ones
            name: (value.reshape(n_replicas, n).any(0) if name == "nonfinite" else value[:n])
            for name, value in recorded(inner_info).items()
        }
        failed = nonfinite(replicas.energy, replicas.grad).reshape(n_replicas, n).any(0)
        info["nonfinite"] = info["nonfinite"] | failed if "nonfinite" in info else failed
        for r in range(n_replicas - 1):
            info[f"swap_acceptance_{r}_{r + 1}"] = probability[r]
        return self._with_replicas(replicas, state.step_size, swap_parity=1 - state.swap_parity), info

    def params(self) -> dict[str, object]:
        return {
            "inner": self.inner.name or type(self.inner).__name__,
            "inner_params": self.inner.params(),
            "temperatures": list(self.temperatures),
            "scale_step_with_temperature": self.scale_step_with_temperature,
        }

    def _row_inverse_temperatures(self, n: int, like: Tensor) -> Tensor:
        temperatures = torch.tensor(self.temperatures, dtype=like.dtype, device=like.device)
        return (1.0 / temperatures).repeat_interleave(n)

    def _row_step_sizes(self, step_size: Tensor) -> Tensor:
        """Per row: the T = 1 chain's step size, times T_r when scaling with temperature."""
        rows = step_size.repeat(len(self.temperatures))
        if not self.scale_step_with_temperature:
            return rows
        temperatures = torch.tensor(self.temperatures, dtype=step_size.dtype, device=step_size.device)
        return rows * temperatures.repeat_interleave(step_size.shape[0])

    def _with_replicas(self, replicas: State, step_size: Tensor, swap_parity: int) -> TemperingState:
        n = step_size.shape[0]
        return TemperingState(
            position=replicas.position[:n],
            energy=replicas.energy[:n],  # beta_0 = 1: the tempered energy is E itself
            grad=replicas.grad[:n],
            step_size=step_size,
            replicas=replicas,
            swap_parity=swap_parity,
        )


def _swap_rows(replicas: State, swapped: Tensor, beta: Tensor) -> State:
    """Exchange the rows of the pairs (r, r + 1) marked in `swapped` (R - 1, n), except step sizes;
    the cached tempered energy and gradient are rescaled from the old row's beta to the new one's."""
    n_pairs, n = swapped.shape
    source = torch.arange(n_pairs + 1, device=swapped.device)[:, None].expand(n_pairs + 1, n).clone()
    source[:-1] += swapped.long()  # row r takes row r + 1's state
    source[1:] -= swapped.long()  # row r + 1 takes row r's
    index = (source * n + torch.arange(n, device=swapped.device)).reshape(-1)
    rescale = beta / beta[index]
    fields = {}
    for field in dataclasses.fields(replicas):
        value = getattr(replicas, field.name)
        if field.name != "step_size" and isinstance(value, Tensor) and value.shape[:1] == index.shape:
            value = value[index]
        fields[field.name] = value
    fields["energy"] = fields["energy"] * rescale
    fields["grad"] = fields["grad"] * per_chain(rescale, fields["grad"])
    return type(replicas)(**fields)


class _Tempered(Energy):
    """beta_row * E(x) for a batch whose rows have their own inverse temperatures."""

    def __init__(self, energy, inverse_temperature: Tensor):
        super().__init__()
        self.base = energy
        self.inverse_temperature = inverse_temperature

    def forward(self, x: Tensor) -> Tensor:
        return self.inverse_temperature * self.base(x)

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:  # the base's analytic gradient, if any
        value, grad = energy_and_grad(self.base, x)
        return self.inverse_temperature * value, per_chain(self.inverse_temperature, grad) * grad


def _ladder(n_temperatures: int, max_temperature: float, temperatures: Sequence[float] | None) -> list[float]:
    if temperatures is not None:
        ladder = [float(t) for t in temperatures]
        if len(ladder) < 2 or ladder[0] != 1.0 or not all(math.isfinite(t) for t in ladder):
            raise ValueError(
                f"parallel_tempering temperatures must start at 1.0 and have >= 2 finite values; got {ladder}"
            )
        if any(b <= a for a, b in itertools.pairwise(ladder)):
            raise ValueError(f"parallel_tempering temperatures must be strictly increasing; got {ladder}")
        return ladder
    check_count(n_temperatures, "parallel_tempering n_temperatures", minimum=2)
    if (
        isinstance(max_temperature, bool)
        or not isinstance(max_temperature, (int, float))
        or not math.isfinite(max_temperature)
        or max_temperature <= 1.0
    ):
        raise ValueError(f"parallel_tempering max_temperature must be a finite number > 1; got {max_temperature!r}")
    return [max_temperature ** (r / (n_temperatures - 1)) for r in range(n_temperatures - 1)] + [float(max_temperature)]
