"""Turn what users hold (a Trace, an ArviZ DataTree, a numpy array or tensor) into named numpy arrays.

Every array comes out as `(chain, draw, *event)` float64. `diagnostics` never imports `ebm_samplers`:
a trace is recognised by its `to_arviz()` method.
"""

from __future__ import annotations

import numpy as np


def posterior_arrays(source) -> dict[str, np.ndarray]:
    """Named `(chain, draw, *event)` arrays from a Trace, a DataTree/Dataset, or one array."""
    if hasattr(source, "to_arviz") and hasattr(source, "draws"):
        source = source.to_arviz()
    if hasattr(source, "children") and "posterior" in getattr(source, "children", {}):
        source = source["posterior"]
    if hasattr(source, "data_vars"):
        arrays = {
            str(name): np.asarray(var.transpose("chain", "draw", ...).values) for name, var in source.data_vars.items()
        }
        if not arrays:
            raise ValueError("the posterior group holds no variables")
        return {name: _check(array, name) for name, array in arrays.items()}
    if hasattr(source, "detach"):  # torch tensor
        source = source.detach().cpu().numpy()
    if isinstance(source, np.ndarray):
        return {"x": _check(source, "x")}
    raise TypeError(
        "expected a Trace, an xarray.DataTree with a posterior group, or an array of shape (chain, draw, *event); "
        f"got {type(source).__name__}"
    )


def _check(array: np.ndarray, name: str) -> np.ndarray:
    if array.ndim < 2:
        raise ValueError(
            f"{name}: expected shape (chain, draw, *event); got {array.shape}. "
            "A single chain needs a chain axis: a[None]"
        )
    if not np.issubdtype(array.dtype, np.number) and array.dtype != bool:
        raise TypeError(f"{name}: expected numbers; got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or infinite values; diagnostics need finite draws")
    return array


def flatten_coordinates(name: str, array: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Labels like `x[0, 1]` and the array reshaped to (chain, draw, n_coordinates)."""
    event = array.shape[2:]
    flat = array.reshape(array.shape[0], array.shape[1], -1)
    if not event:
        return [name], flat
    labels = [f"{name}[{', '.join(map(str, index))}]" for index in np.ndindex(*event)]
    return labels, flat
