"""Turn what users hold (a Trace, an ArviZ DataTree, a numpy array or tensor) into named numpy arrays.

Every array comes out as `(chain, draw, *event)` float64. `diagnostics` never imports `ebm_samplers`:
a trace is recognised by its `to_arviz()` method.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

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
    if (not np.issubdtype(array.dtype, np.number) and array.dtype != bool) or np.iscomplexobj(array):
        raise TypeError(f"{name}: expected real numbers; got dtype {array.dtype}")
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


@dataclass
class Chains:
    """What diagnostics read from any source: named posterior arrays, per-step stats and attributes."""

    posterior: dict[str, np.ndarray]
    #: per-step statistics, each (chain, draw): acceptance_rate, accepted, diverging, energy, ...
    sample_stats: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)

    @property
    def n_chains(self) -> int:
        return next(iter(self.posterior.values())).shape[0]

    @property
    def n_draws(self) -> int:
        return next(iter(self.posterior.values())).shape[1]

    def coordinates(self) -> tuple[list[str], np.ndarray]:
        """Labels of every scalar coordinate of every variable and the draws as (chain, draw, K)."""
        labels, flats = [], []
        for name, array in self.posterior.items():
            names, flat = flatten_coordinates(name, array)
            labels += names
            flats.append(flat)
        return labels, flats[0] if len(flats) == 1 else np.concatenate(flats, axis=2)

    @property
    def hamiltonian_energy(self) -> bool:
        """Whether there is a Hamiltonian (potential + kinetic) energy per draw, so that E-BFMI and the energy
        plot mean something: sample_stats "energy", ArviZ's (and Stan's `energy__`) name for it, which a
        toolkit trace exports from its `hamiltonian` stat. A `potential_energy` stat is never used for them."""
        return "energy" in self.sample_stats


#: A toolkit trace's stat names that ArviZ knows by another name (a Trace's `to_arviz` renames them itself).
_ARVIZ_NAMES = {"hamiltonian": "energy"}


def read_chains(source, sample_stats: dict | None = None) -> Chains:
    """`Chains` from a Trace, a DataTree (posterior + optional sample_stats) or an array.

    `sample_stats` adds or replaces per-step statistics (arrays or tensors of shape (chain, draw)); under
    ArviZ's names, or a trace's (`hamiltonian`, taken as ArviZ's `energy`).
    """
    attrs: dict = {}
    stats: dict[str, np.ndarray] = {}
    if hasattr(source, "to_arviz") and hasattr(source, "draws"):
        source = source.to_arviz()
    if hasattr(source, "children") and "posterior" in getattr(source, "children", {}):
        attrs.update(source.attrs)
        attrs.update(source["posterior"].attrs)
        if "sample_stats" in source.children:
            group = source["sample_stats"]
            attrs.update(group.attrs)
            for name, values in group.data_vars.items():
                if set(values.dims) == {"chain", "draw"}:
                    stats[str(name)] = np.asarray(values.transpose("chain", "draw").values)
    posterior = posterior_arrays(source)
    shapes = {array.shape[:2] for array in posterior.values()}
    if len(shapes) != 1:
        raise ValueError(f"posterior variables disagree on (chain, draw): {sorted(shapes)}")
    (shape,) = shapes
    if sample_stats is not None and not isinstance(sample_stats, Mapping):
        kind = type(sample_stats).__name__
        raise TypeError(f"sample_stats must be a dict of (chain, draw) arrays by name; got {kind}")
    for name, values in (sample_stats or {}).items():
        if hasattr(values, "detach"):
            values = values.detach().cpu().numpy()
        stats[_ARVIZ_NAMES.get(name, name)] = np.asarray(values)
    for name, values in stats.items():
        if values.shape != shape:
            raise ValueError(f"sample stat {name!r} has shape {values.shape}; expected (chain, draw) = {shape}")
    return Chains(posterior=posterior, sample_stats=stats, attrs=attrs)


def chain_draws_of(source):
    """The draws (chain, draw, *event) of a Trace or of a DataTree whose posterior holds one variable;
    any other object is returned unchanged (arrays and tensors are taken as they are)."""
    if hasattr(source, "to_arviz") and hasattr(source, "draws"):
        return source.draws
    if hasattr(source, "children") and "posterior" in getattr(source, "children", {}):
        arrays = posterior_arrays(source)
        if len(arrays) != 1:
            raise ValueError(
                f"expected a posterior with one variable to take samples from; got {len(arrays)}: {sorted(arrays)}"
            )
        return next(iter(arrays.values()))
    return source
