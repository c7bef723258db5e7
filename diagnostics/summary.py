"""Per-coordinate convergence table through ArviZ 1.x array functions.

Columns: mean, sd, mcse_mean, ess_bulk, ess_tail (0.05/0.95 quantiles, as in Vehtari et al. 2021, not
ArviZ 1.x's 0.11/0.89 default), r_hat (rank-normalised split R-hat), and `flags`, which names each
threshold a coordinate misses: r_hat > 1.01 or ess_bulk < 400 (Vehtari et al. 2021). The figures are
ArviZ 1.x's, computed by `diagnostics.convergence` (equal to `az.rhat`/`az.ess`/`az.mcse`, faster).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from diagnostics._inputs import flatten_coordinates, posterior_arrays
from diagnostics.convergence import MIN_DRAWS, TAIL_QUANTILES, convergence_figures

RHAT_MAX = 1.01
ESS_MIN = 400.0
SUMMARY_COLUMNS = ("mean", "sd", "mcse_mean", "ess_bulk", "ess_tail", "r_hat")
__all__ = ["ESS_MIN", "RHAT_MAX", "TAIL_QUANTILES", "summary"]


def summary(source) -> pd.DataFrame:
    """A DataFrame with one row per coordinate of every posterior variable (see module docstring).

    `source` is a Trace, an `xarray.DataTree` with a posterior group, or an array `(chain, draw, *event)`.
    """
    tables = []
    for name, array in posterior_arrays(source).items():
        labels, flat = flatten_coordinates(name, array)
        if flat.shape[1] < MIN_DRAWS:
            raise ValueError(f"{name}: {flat.shape[1]} draws per chain; split R-hat and ESS need at least {MIN_DRAWS}")
        figures = convergence_figures(flat)
        tables.append(pd.DataFrame({column: figures[column] for column in SUMMARY_COLUMNS}, index=labels))
    table = pd.concat(tables)
    table["flags"] = [threshold_flags(r_hat, ess) for r_hat, ess in zip(table["r_hat"], table["ess_bulk"], strict=True)]
    return table


def threshold_flags(r_hat: float, ess_bulk: float, ess_tail: float | None = None) -> str:
    """The thresholds a coordinate misses, e.g. "r_hat>1.01, ess_bulk<400" ("" when none; NaN misses)."""
    flags = []
    if not np.isfinite(r_hat) or r_hat > RHAT_MAX:
        flags.append(f"r_hat>{RHAT_MAX}")
    if not np.isfinite(ess_bulk) or ess_bulk < ESS_MIN:
        flags.append(f"ess_bulk<{ESS_MIN:g}")
    if ess_tail is not None and (not np.isfinite(ess_tail) or ess_tail < ESS_MIN):
        flags.append(f"ess_tail<{ESS_MIN:g}")
    return ", ".join(flags)
