"""Runs that stop when converged: `sample(..., until=Converged(...), max_steps=...)`.

After warm-up the run loop asks a `ConvergenceMonitor` after every kept draw whether a check is `due`; when
it is, the monitor computes the fast convergence figures of the draws kept so far (rank-normalised split
R-hat, bulk and tail ESS: `diagnostics.convergence_figures`, every coordinate at once) and the loop stops
as soon as every coordinate meets all three thresholds of `Converged`, or at `max_steps`. What happened
is in the trace's attrs (`converged`, `until`, `convergence_checks`, `check_seconds`, `check_share`, and
the `shortfall` when the cap came first), so `diagnose` can say why a capped run is not done.

Checks are spaced geometrically: the next one comes after `check_every` more kept draws, or after
`growth` times the draws kept so far when that is later, so a run stops at most a factor `growth` later
than the first draw count at which it met the thresholds. On top of that the checks keep to a time
`budget`: a check is put off while the seconds spent checking, plus the expected cost of this check (the
last one's), would exceed `budget` (5%) of the seconds spent sampling. On cheap
targets, where one check on many draws costs more than many transitions, this spaces checks further apart
(a later stop, never a wrong one); on costly energies the geometric schedule alone applies.

Each check looks at an evenly thinned subset of at most `check_draws` draws per chain (more when the ESS
thresholds need them), so its cost does not grow with the run. Thinning lowers the ESS estimate (never
raises it beyond the subset's size), so a thinned check errs on the side of running on; when it passes,
one check on all the draws confirms it before the run stops.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from torch import Tensor

#: The fewest draws per chain split R-hat and ESS need (diagnostics.convergence.MIN_DRAWS; diagnostics is
#: imported only when a check runs, so that `import ebm_samplers` does not load numba's kernels).
MIN_DRAWS = 4


def convergence_figures(draws: np.ndarray) -> dict[str, np.ndarray]:
    from diagnostics.convergence import convergence_figures as figures

    return figures(draws)


@dataclass(frozen=True)
class Converged:
    """Stop when every coordinate has R-hat <= `r_hat`, bulk ESS >= `ess_bulk` and tail ESS >= `ess_tail`
    (Vehtari et al. 2021's thresholds by default). Checked after `check_every` kept draws, then at kept
    draw counts growing by at least the factor `growth`, within a `budget` share of the sampling time
    (see the module docstring)."""

    r_hat: float = 1.01
    ess_bulk: float = 400.0
    ess_tail: float = 400.0
    check_every: int = 100
    growth: float = 1.25
    budget: float = 0.05
    check_draws: int = 1000

    def __post_init__(self) -> None:
        if not (isinstance(self.r_hat, int | float) and math.isfinite(self.r_hat) and self.r_hat > 1.0):
            raise ValueError(f"Converged: r_hat must be a number > 1 (e.g. 1.01); got {self.r_hat!r}")
        for name in ("ess_bulk", "ess_tail"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"Converged: {name} must be a number > 0 (e.g. 400); got {value!r}")
        every = self.check_every
        if isinstance(every, bool) or not isinstance(every, int) or every < MIN_DRAWS:
            raise ValueError(f"Converged: check_every must be an integer >= {MIN_DRAWS} (kept draws); got {every!r}")
        if not (isinstance(self.growth, int | float) and self.growth > 1.0):
            raise ValueError(f"Converged: growth must be a number > 1 (e.g. 1.25); got {self.growth!r}")
        draws = self.check_draws
        if isinstance(draws, bool) or not isinstance(draws, int) or draws < MIN_DRAWS:
            raise ValueError(f"Converged: check_draws must be an integer >= {MIN_DRAWS}; got {draws!r}")
        if not (isinstance(self.budget, int | float) and 0 < self.budget <= 1):
            raise ValueError(f"Converged: budget must be a share of the sampling time in (0, 1]; got {self.budget!r}")

    def met(self, figures: dict[str, np.ndarray]) -> bool:
        """Whether every coordinate meets every threshold (a NaN figure never does)."""
        with np.errstate(invalid="ignore"):
            return bool(
                (figures["r_hat"] <= self.r_hat).all()
                and (figures["ess_bulk"] >= self.ess_bulk).all()
                and (figures["ess_tail"] >= self.ess_tail).all()
            )

    def shortfall(self, figures: dict[str, np.ndarray]) -> dict[str, Any]:
        """The worst figure of each threshold and how many coordinates miss it (JSON-able)."""
        with np.errstate(invalid="ignore"):
            missing = {
                "r_hat": int((~(figures["r_hat"] <= self.r_hat)).sum()),
                "ess_bulk": int((~(figures["ess_bulk"] >= self.ess_bulk)).sum()),
                "ess_tail": int((~(figures["ess_tail"] >= self.ess_tail)).sum()),
            }
        worst = {
            "r_hat": _plain(np.nanmax(figures["r_hat"]) if np.isfinite(figures["r_hat"]).any() else np.nan),
            "ess_bulk": _plain(np.nanmin(figures["ess_bulk"])),
            "ess_tail": _plain(np.nanmin(figures["ess_tail"])),
        }
        return {"worst": worst, "coordinates_missing": missing}


def _plain(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def check_until(until, max_steps, n_steps, *, warmup: int, adapts: bool, keep: str, stream, checkpoint) -> int:
    """Validate `until`/`max_steps` against the rest of `sample()`'s arguments; return the transitions to
    allocate (after warm-up): `max_steps` with `until`, else `n_steps`. One-line errors."""
    if until is None:
        if max_steps is not None:
            raise ValueError("max_steps caps a run that stops when converged; give it with until=Converged(...)")
        if n_steps is None:
            raise ValueError(
                "n_steps must be given (transitions after warm-up), or until=Converged(...) with max_steps"
            )
        return n_steps
    if not isinstance(until, Converged):
        raise TypeError(f"until must be an ebm_samplers.Converged(...); got {type(until).__name__}")
    if n_steps is not None:
        raise ValueError("with until=Converged(...) give max_steps (the cap after warm-up), not n_steps")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"until=Converged(...) needs max_steps, an integer >= 1 capping the run; got {max_steps!r}")
    if warmup == 0 and adapts:
        raise ValueError(
            "until=Converged(...) with warmup=0 on a kernel that adapts its step size or mass matrix: the "
            "thresholds would be judged on an untuned sampler; give warmup > 0 (or switch adaptation off)"
        )
    if keep != "draws" or stream is not None or checkpoint is not None:
        raise ValueError(
            "until=Converged(...) checks the draws kept in memory: use keep='draws', no stream, no checkpoint"
        )
    return max_steps


class ConvergenceMonitor:
    """Decides when to check, checks, and reports (see the module docstring)."""

    def __init__(self, until: Converged, n_chains: int):
        self.until = until
        self.n_chains = n_chains
        self.next_check = max(until.check_every, MIN_DRAWS)
        self.checks = 0
        self.seconds = 0.0
        self.converged_at: int | None = None
        self.last_figures: dict[str, np.ndarray] | None = None
        self.last_cost: float | None = None  # seconds of the last check
        # the figures' numba kernels load (or compile) on first use: not a cost of the checks to budget for
        convergence_figures(np.linspace(0.0, 1.0, 2 * MIN_DRAWS).reshape(2, MIN_DRAWS, 1))
        self.started = time.perf_counter()

    def due(self, n_kept: int, sampling_seconds: float | None = None) -> bool:
        """Whether to check now, with `n_kept` draws kept. `sampling_seconds`: the time spent sampling so far
        (default: the wall time since the monitor started, less the time spent checking)."""
        if self.converged_at is not None or n_kept < self.next_check:
            return False
        if self.last_cost is None:
            return True
        if sampling_seconds is None:
            sampling_seconds = time.perf_counter() - self.started - self.seconds
        # the last check's cost stands for this one's: small checks are mostly fixed overhead (extrapolating
        # them linearly would forbid every later check), and large ones are at most `growth` apart
        return self.seconds + self.last_cost <= self.until.budget * sampling_seconds

    def check(self, draws: Tensor, n_kept: int) -> bool:
        """Check the first `n_kept` draws of `draws` (chain, n_keep, *event); True when converged."""
        start = time.perf_counter()
        # enough draws per chain that the subset could show the ESS thresholds, at least check_draws
        wanted = max(
            self.until.check_draws, math.ceil(2 * max(self.until.ess_bulk, self.until.ess_tail) / self.n_chains)
        )
        step = max(1, n_kept // wanted)
        figures = self._figures(draws, n_kept, step)
        met = self.until.met(figures)
        if met and step > 1:  # confirm on every draw before stopping
            figures = self._figures(draws, n_kept, 1)
            met = self.until.met(figures)
        self.last_figures = figures
        self.checks += 1
        if met:
            self.converged_at = n_kept
        self.next_check = max(n_kept + self.until.check_every, math.ceil(n_kept * self.until.growth))
        spent = time.perf_counter() - start
        self.seconds += spent
        self.last_cost = spent
        return met

    @staticmethod
    def _figures(draws: Tensor, n_kept: int, step: int) -> dict[str, np.ndarray]:
        kept = draws[:, (n_kept - 1) % step : n_kept : step].detach()  # every step-th, ending at the last draw
        return convergence_figures(kept.reshape(kept.shape[0], kept.shape[1], -1).double().cpu().numpy())

    def final_check(self, draws: Tensor, n_kept: int) -> None:
        """At the cap, when no check has run (a run shorter than `check_every`): one, for the shortfall. Otherwise
        the shortfall is the last check's (diagnose recomputes every figure on all the draws anyway)."""
        if self.converged_at is None and n_kept >= MIN_DRAWS and self.checks == 0:
            self.check(draws, n_kept)

    def attrs(self) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.started
        attrs: dict[str, Any] = {
            "until": asdict(self.until),
            "converged": self.converged_at is not None,
            "convergence_checks": self.checks,
            "check_seconds": self.seconds,
            "check_share": self.seconds / elapsed if elapsed > 0 else 0.0,
        }
        if self.converged_at is not None:
            attrs["converged_at_draw"] = self.converged_at
        elif self.last_figures is not None:
            attrs["shortfall"] = self.until.shortfall(self.last_figures)
        return attrs


def truncated(trace, n_kept: int):
    """The trace's first `n_kept` draws (a run that stopped early filled only those)."""
    if n_kept >= trace.n_draws:
        return trace
    return type(trace)(
        draws=trace.draws[:, :n_kept].contiguous(),
        stats={name: values[:, :n_kept].contiguous() for name, values in trace.stats.items()},
        attrs=trace.attrs,
        derived={name: values[:, :n_kept].contiguous() for name, values in trace.derived.items()},
    )
