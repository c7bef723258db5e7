"""Per-coordinate convergence table through ArviZ 1.x array functions.

Columns: mean, sd, mcse_mean, ess_bulk, ess_tail (0.05/0.95 quantiles, as in Vehtari et al. 2021, not
ArviZ 1.x's 0.11/0.89 default), r_hat (rank-normalised split R-hat), and `flags`, which names each
threshold a coordinate misses: r_hat > 1.01 or ess_bulk < 400 (Vehtari et al. 2021).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from diagnostics._inputs import flatten_coordinates, posterior_arrays

RHAT_MAX = 1.01
ESS_MIN = 400.0
TAIL_QUANTILES = (0.05, 0.95)


def summary(source) -> pd.DataFrame:
    """A DataFrame with one row per coordinate of every posterior variable (see module docstring).

    `source` is a Trace, an `xarray.DataTree` with a posterior group, or an array `(chain, draw, *event)`.
    """
    import arviz as az

    tables = []
    for name, array in posterior_arrays(source).items():
        labels, flat = flatten_coordinates(name, array)
        if flat.shape[1] < 4:
            raise ValueError(f"{name}: {flat.shape[1]} draws per chain; split R-hat and ESS need at least 4")
        table = pd.DataFrame(
            {
                "mean": flat.mean(axis=(0, 1)),
                "sd": flat.std(axis=(0, 1), ddof=1),
                "mcse_mean": az.mcse(flat),
                "ess_bulk": az.ess(flat),
                "ess_tail": az.ess(flat, method="tail", prob=TAIL_QUANTILES),
                "r_hat": az.rhat(flat),
            },
            index=labels,
        )
        tables.append(table)
    table = pd.concat(tables)
    table["flags"] = [_flags(r_hat, ess) for r_hat, ess in zip(table["r_hat"], table["ess_bulk"], strict=True)]
    return table


def _flags(r_hat: float, ess_bulk: float) -> str:
    flags = []
    if not np.isfinite(r_hat) or r_hat > RHAT_MAX:
        flags.append(f"r_hat>{RHAT_MAX}")
    if not np.isfinite(ess_bulk) or ess_bulk < ESS_MIN:
        flags.append(f"ess_bulk<{ESS_MIN:g}")
    return ", ".join(flags)
