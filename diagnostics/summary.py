"""Per-coordinate table of estimates and convergence figures, as statisticians read it from Stan and ArviZ.

Columns: mean, sd, mcse_mean, the quantiles of the pooled draws (`5%`, `50%`, `95%` by default, as cmdstanpy
shows them), optionally the highest-density interval (`hdi94_lb`, `hdi94_ub` for `hdi_prob=0.94`, ArviZ's
names), ess_bulk, ess_tail (0.05/0.95 quantiles, as in Vehtari et al. 2021, not ArviZ 1.x's 0.11/0.89 default),
r_hat (rank-normalised split R-hat) and `flags`, which names each threshold a coordinate misses: r_hat > 1.01
or ess_bulk < 400 (Vehtari et al. 2021); an R-hat that cannot be computed (one chain, constant draws) is
flagged `r_hat undefined`, not as above the threshold. The convergence figures are ArviZ 1.x's, computed by
`diagnostics.convergence` (equal to `az.rhat`/`az.ess`/`az.mcse`, faster).

The table is a `SummaryTable`, a pandas DataFrame that prints every row and column, with estimates rounded
to 4 significant figures, ESS to integers and R-hat to 3 decimals (`undefined` where it is NaN).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from diagnostics._inputs import read_chains
from diagnostics.convergence import MIN_DRAWS, TAIL_QUANTILES, convergence_figures

RHAT_MAX = 1.01
ESS_MIN = 400.0
DEFAULT_QUANTILES = (0.05, 0.5, 0.95)
#: Significant figures of the estimates in the printed table.
SIGNIFICANT = 4
__all__ = ["DEFAULT_QUANTILES", "ESS_MIN", "RHAT_MAX", "TAIL_QUANTILES", "SummaryTable", "summary"]


class SummaryTable(pd.DataFrame):
    """A DataFrame whose printed form rounds to significant figures and never hides a row or column."""

    @property
    def _constructor(self):
        return SummaryTable

    def to_text(self) -> str:
        """Every row and column, estimates to `SIGNIFICANT` figures, ESS as integers, R-hat to 3 decimals."""
        # formatted here, not through to_string(formatters=...): pandas prints NaN as na_rep, skipping them
        text = pd.DataFrame(
            {column: [_formatter(column)(value) for value in self[column]] for column in self.columns},
            index=self.index,
        )
        return text.to_string(max_rows=None, max_cols=None, max_colwidth=None, line_width=None)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return self.to_text()


def summary(source, *, quantiles: Sequence[float] = DEFAULT_QUANTILES, hdi_prob: float | None = None) -> SummaryTable:
    """A `SummaryTable` with one row per coordinate of every posterior variable (see module docstring).

    `source` is a Trace, an `xarray.DataTree` with a posterior group, or an array `(chain, draw, *event)`.
    `quantiles`: probabilities in (0, 1), one column each (`()` for none); `hdi_prob`: in (0, 1) adds the
    shortest interval holding that share of the pooled draws.
    """
    quantiles = _check_quantiles(quantiles)
    if hdi_prob is not None:
        _check_probability(hdi_prob, "hdi_prob")
    chains = read_chains(source)
    if chains.n_draws < MIN_DRAWS:
        name = next(iter(chains.posterior))
        raise ValueError(f"{name}: {chains.n_draws} draws per chain; split R-hat and ESS need at least {MIN_DRAWS}")
    labels, draws = chains.coordinates()
    figures = convergence_figures(draws)
    pooled = draws.reshape(-1, draws.shape[2])
    columns = {name: figures[name] for name in ("mean", "sd", "mcse_mean")}
    if quantiles:
        values = np.quantile(pooled, quantiles, axis=0)
        columns |= {_percent(q): row for q, row in zip(quantiles, values, strict=True)}
    if hdi_prob is not None:
        low, high = hdi(pooled, hdi_prob)
        name = f"hdi{_percent(hdi_prob)[:-1]}"
        columns |= {f"{name}_lb": low, f"{name}_ub": high}
    columns |= {name: figures[name] for name in ("ess_bulk", "ess_tail", "r_hat")}
    table = SummaryTable(columns, index=labels)
    table["flags"] = [threshold_flags(r_hat, ess) for r_hat, ess in zip(table["r_hat"], table["ess_bulk"], strict=True)]
    return table


def hdi(pooled: np.ndarray, prob: float) -> tuple[np.ndarray, np.ndarray]:
    """Per column of `pooled` (n, K): the shortest interval [low, high] holding ceil(prob * n) of the draws."""
    ordered = np.sort(pooled, axis=0)
    n = ordered.shape[0]
    inside = min(n, max(1, math.ceil(prob * n)))
    widths = ordered[inside - 1 :] - ordered[: n - inside + 1]
    start = np.argmin(widths, axis=0)
    columns = np.arange(ordered.shape[1])
    return ordered[start, columns], ordered[start + inside - 1, columns]


def threshold_flags(r_hat: float, ess_bulk: float, ess_tail: float | None = None) -> str:
    """The thresholds a coordinate misses, e.g. "r_hat>1.01, ess_bulk<400" ("" when none).

    A NaN R-hat (one chain, or draws with no spread) is "r_hat undefined": it is not above the threshold."""
    flags = []
    if np.isnan(r_hat):
        flags.append("r_hat undefined")
    elif r_hat > RHAT_MAX:
        flags.append(f"r_hat>{RHAT_MAX}")
    if not np.isfinite(ess_bulk) or ess_bulk < ESS_MIN:
        flags.append(f"ess_bulk<{ESS_MIN:g}")
    if ess_tail is not None and (not np.isfinite(ess_tail) or ess_tail < ESS_MIN):
        flags.append(f"ess_tail<{ESS_MIN:g}")
    return ", ".join(flags)


def _check_probability(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating) or not 0 < value < 1:
        raise ValueError(f"{what} must be a probability strictly between 0 and 1; got {value!r}")
    return float(value)


def _check_quantiles(quantiles) -> tuple[float, ...]:
    if isinstance(quantiles, str) or not isinstance(quantiles, Sequence | np.ndarray):
        raise TypeError(
            f"quantiles must be a sequence of probabilities in (0, 1), e.g. (0.05, 0.5, 0.95); got {quantiles!r}"
        )
    checked = tuple(_check_probability(q, "every quantile") for q in quantiles)
    if len(set(map(_percent, checked))) != len(checked):
        raise ValueError(f"quantiles repeat a value; got {quantiles!r}")
    return checked


def _percent(q: float) -> str:
    return f"{100 * q:.10g}%"


def significant(value: float, figures: int = SIGNIFICANT) -> str:
    """`value` rounded to `figures` significant figures, in plain notation where that stays short."""
    if not np.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if -4 <= magnitude < 6:
        return f"{value:.{max(0, figures - 1 - magnitude)}f}"
    return f"{value:.{figures - 1}e}"


def format_rhat(value: float) -> str:
    """R-hat to 3 decimals, more when 3 would round a value above `RHAT_MAX` down onto it; NaN is 'undefined'."""
    if np.isnan(value):
        return "undefined"
    decimals = 3
    while decimals < 8 and value > RHAT_MAX and round(value, decimals) <= RHAT_MAX:
        decimals += 1
    return f"{value:.{decimals}f}"


def _formatter(column: str):
    if column == "flags":
        return str
    if column.startswith("ess"):
        return lambda v: "nan" if not np.isfinite(v) else f"{v:.0f}"
    if column == "r_hat":
        return format_rhat
    return significant
