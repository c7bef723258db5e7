"""`Trace`: the draws and per-step statistics of a run, convertible to ArviZ and saved as netCDF.

Layout: `draws` is `(chain, draw, *event)`; each entry of `stats` is `(chain, draw)`; each entry of `derived`
is `(chain, draw, *shape)`. In ArviZ terms the draws become the posterior variable `x` (event axes `x_dim_0`,
...), or the named variables of `attrs["names"]` (see `ebm_samplers.naming`), the derived quantities become
posterior variables of their own, and the stats become `sample_stats` with the names ArviZ plots understand
(`acceptance_rate`, `step_size`, `diverging`, ...).

Stat names: every trace has `potential_energy`, E(x) of the kept state (the recorders take it from the kernel's
state); HMC-family kernels also record `hamiltonian`, H(x, p) of the kept state, which ArviZ calls `energy`
(Stan's `energy__`: what `az.bfmi` and `az.plot_energy` read), so `to_arviz` exports it under that name and
`load` reads it back as `hamiltonian`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ebm_samplers._atomic import atomic_write
from ebm_samplers.naming import Naming, join_event, split_event

#: Name of the sampled variable in the ArviZ posterior group.
VARIABLE = "x"
#: E(x) of the kept state: recorded for every kernel.
POTENTIAL_ENERGY = "potential_energy"
#: H(x, p) of the kept state: recorded by HMC-family kernels, exported to ArviZ as `energy`.
HAMILTONIAN = "hamiltonian"
#: Our stat name -> ArviZ's, where they differ.
_ARVIZ_NAMES = {HAMILTONIAN: "energy"}
#: The attrs that describe names (see `ebm_samplers.naming`), replaced together by `with_names`.
_NAMING_ATTRS = ("names", "coords", "dims", "event_shape")
#: Attributes ArviZ adds on its own; they are not part of the run's description.
_ARVIZ_ATTRS = ("creation_library", "created_at", "arviz_version", "sample_dims", "inference_library")


@dataclass
class Trace:
    """Draws `(chain, draw, *event)`, per-step `stats` `(chain, draw)`, run `attrs` (JSON-able) and `derived`
    quantities `(chain, draw, *shape)` (the outputs of a `transform`; see `with_names`).

    A trace made by `sample()` holds its draws and stats as views of the run's draw-major storage (strided, not
    contiguous: no copy was made at the end of the run); use `reshape` or `.contiguous()` where a contiguous
    tensor is needed."""

    draws: Tensor
    stats: dict[str, Tensor] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    derived: dict[str, Tensor] = field(default_factory=dict)
    #: Reads a folder written by a streaming run; set by `ebm_samplers.streaming` (which depends on this module).
    folder_reader: ClassVar[Callable[[Path], Trace] | None] = None

    def __post_init__(self) -> None:
        fields = {"draws": self.draws, **{f"stats[{k!r}]": v for k, v in self.stats.items()}}
        fields |= {f"derived[{k!r}]": v for k, v in self.derived.items()}
        for name, values in fields.items():
            if not isinstance(values, Tensor):
                raise TypeError(f"Trace.{name} must be a torch.Tensor; got {type(values).__name__}")
        if self.draws.ndim < 2:
            raise ValueError(f"Trace.draws must have shape (chain, draw, *event); got {tuple(self.draws.shape)}")
        for name, values in self.stats.items():
            if values.shape != self.draws.shape[:2]:
                raise ValueError(
                    f"Trace.stats[{name!r}] has shape {tuple(values.shape)}; expected (chain, draw) = "
                    f"{tuple(self.draws.shape[:2])}"
                )
        for name, values in self.derived.items():
            if values.shape[:2] != self.draws.shape[:2]:
                raise ValueError(
                    f"Trace.derived[{name!r}] has shape {tuple(values.shape)}; expected (chain, draw, ...) = "
                    f"{tuple(self.draws.shape[:2])} first"
                )

    @property
    def n_chains(self) -> int:
        return self.draws.shape[0]

    @property
    def n_draws(self) -> int:
        return self.draws.shape[1]

    @property
    def event_shape(self) -> torch.Size:
        return self.draws.shape[2:]

    def __repr__(self) -> str:
        return (
            f"Trace({self.n_chains} chains x {self.n_draws} draws, event_shape={tuple(self.event_shape)}, "
            f"stats={sorted(self.stats)}, sampler={self.attrs.get('sampler', '?')!r})"
        )

    def with_names(self, names=None, *, coords=None, dims=None, transform=None) -> Trace:
        """This trace with named variables, axis names and labels, and the derived quantities `transform(x)`
        of every draw (see `ebm_samplers.naming`); the draws themselves are unchanged.

        `names`: "mu, log_tau, theta[8]", a list of such entries or {name: shape}, splitting the flattened
        event in order; `dims`: {variable: [dim names]}; `coords`: {dim: labels}; `transform`:
        x (n, *event) -> {name: Tensor[n, ...]}, applied to all draws at once, without gradients.
        """
        naming = Naming.build(names, coords, dims, transform)
        naming.check_event(self.event_shape)
        derived = dict(self.derived)
        if transform is not None:
            flat = self.draws.reshape(-1, *self.event_shape)
            shape = self.draws.shape[:2]
            derived |= {k: v.reshape(*shape, *v.shape[1:]) for k, v in naming.derive(flat).items()}
        shapes = {**(naming.shapes or {VARIABLE: tuple(self.event_shape)})}
        shapes |= {name: tuple(values.shape[2:]) for name, values in derived.items()}
        naming._check_dims(shapes, known_only=False)
        attrs = {key: value for key, value in self.attrs.items() if key not in _NAMING_ATTRS}
        attrs |= naming.attrs(self.event_shape, {})
        return Trace(draws=self.draws, stats=dict(self.stats), attrs=attrs, derived=derived)

    def to_arviz(self, *, names=None, coords=None, dims=None):
        """An `xarray.DataTree` with groups `posterior` and `sample_stats`.

        The posterior holds `x`, or the variables of `attrs["names"]` (or of `names` given here, with `coords` and
        `dims` as in `with_names`), and the derived quantities."""
        import arviz as az

        trace = self if names is None and coords is None and dims is None else self._renamed(names, coords, dims)
        draws = _to_numpy(trace.draws)
        names_attr = trace.attrs.get("names")
        if names_attr is None:
            posterior = {VARIABLE: draws}
        else:
            posterior = split_event(draws, {name: tuple(shape) for name, shape in names_attr.items()})
        posterior |= {name: _to_numpy(values) for name, values in trace.derived.items()}
        given_dims = trace.attrs.get("dims", {})
        dims = {
            name: list(given_dims.get(name) or [f"{name}_dim_{i}" for i in range(array.ndim - 2)])
            for name, array in posterior.items()
        }
        groups: dict[str, dict[str, np.ndarray]] = {"posterior": posterior}
        if trace.stats:
            stats = to_arviz_names(trace.stats)
            groups["sample_stats"] = {name: _to_numpy(values) for name, values in stats.items()}
        attrs = {key: _attr_value(value) for key, value in trace.attrs.items()}
        if trace.derived:
            attrs["derived"] = _attr_value(list(trace.derived))
        attrs.setdefault("inference_library", "ebm-samplers")
        coords = trace.attrs.get("coords") or None
        return az.from_dict(groups, dims=dims, coords=coords, attrs={"/": attrs, "posterior": attrs})

    def _renamed(self, names, coords, dims) -> Trace:
        """with_names, keeping what attrs already say for the arguments not given."""
        names = names if names is not None else self.attrs.get("names")
        coords = coords if coords is not None else self.attrs.get("coords")
        dims = dims if dims is not None else self.attrs.get("dims")
        return self.with_names(names, coords=coords, dims=dims)

    def summary(self, **options):
        """Convergence table per coordinate (see `diagnostics.summary`; `quantiles=`, `hdi_prob=`)."""
        from diagnostics import summary

        return summary(self, **options)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the trace as netCDF (ArviZ layout) atomically: a crash never leaves a half-written file.
        Missing parent folders are created."""
        tree = self.to_arviz()
        path = atomic_write(path, lambda temporary: tree.to_netcdf(temporary, engine="h5netcdf"))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Trace:
        """Read a trace written by `save` (or any ArviZ netCDF file whose posterior holds `x`), or the folder
        of a streaming run (`sample(..., stream=FOLDER)`), up to its last complete chunk: then
        `attrs["n_draws_complete"]` says how many draws it holds and `attrs["complete"]` whether the run finished.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no trace file at {path}")
        if path.is_dir():
            if cls.folder_reader is None:
                raise ValueError(f"{path} is a folder; reading a stream folder needs ebm_samplers.streaming imported")
            return cls.folder_reader(path)
        import arviz as az

        try:
            tree = az.from_netcdf(path).load()
        except (OSError, ValueError) as error:  # not netCDF at all: xarray's message is about its IO backends
            raise ValueError(f"{path} is not a netCDF file; expected a trace written by Trace.save") from error
        if "posterior" not in tree.children:
            raise ValueError(f"{path} is not an ebm-samplers trace: it has no posterior group")
        posterior = tree["posterior"]
        attrs = {key: _parse_attr(value) for key, value in posterior.attrs.items() if not key.startswith(_ARVIZ_ATTRS)}
        derived_names = attrs.pop("derived", [])
        names = attrs.get("names", {VARIABLE: None})
        missing = [name for name in [*names, *derived_names] if name not in posterior.data_vars]
        if missing:
            raise ValueError(f"{path} is not an ebm-samplers trace: it has no posterior variable {missing[0]!r}")

        def read(name: str) -> np.ndarray:
            return np.asarray(posterior[name].transpose("chain", "draw", ...).values)

        if "names" in attrs:
            draws = torch.from_numpy(join_event({name: read(name) for name in names}, attrs["event_shape"]).copy())
        else:
            draws = torch.from_numpy(read(VARIABLE).copy())
        derived = {name: torch.from_numpy(read(name).copy()) for name in derived_names}
        stats = {}
        if "sample_stats" in tree.children:
            for name, values in tree["sample_stats"].data_vars.items():
                stats[str(name)] = torch.from_numpy(np.asarray(values.values).copy())
        return cls(draws=draws, stats=from_arviz_names(stats, attrs), attrs=attrs, derived=derived)


def to_arviz_names(stats: dict[str, Any]) -> dict[str, Any]:
    """`stats` under ArviZ's names (`hamiltonian` -> `energy`)."""
    return {_ARVIZ_NAMES.get(name, name): values for name, values in stats.items()}


def from_arviz_names(stats: dict[str, Any], attrs: dict[str, Any]) -> dict[str, Any]:
    """`stats` read from an ArviZ layout, under our names: `energy` is the Hamiltonian (ArviZ's meaning), except
    in a trace this package wrote before `potential_energy` existed, where `energy` was E(x)."""
    if "energy" not in stats or HAMILTONIAN in stats:
        return stats
    ours_before_the_rename = "sampler" in attrs and POTENTIAL_ENERGY not in stats
    renamed = POTENTIAL_ENERGY if ours_before_the_rename else HAMILTONIAN
    return {(renamed if name == "energy" else name): values for name, values in stats.items()}


def kept_stats(state, info: dict[str, Tensor]) -> dict[str, Tensor]:
    """The stats a recorder keeps for a kept state: E(x) from the state, its step size, and the kernel's `info`."""
    return {POTENTIAL_ENERGY: state.energy, "step_size": state.step_size, **info}


def _to_numpy(values: Tensor) -> np.ndarray:
    return values.detach().cpu().numpy()


def _attr_value(value: Any) -> Any:
    """netCDF attributes hold numbers and strings; anything else is stored as JSON text."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return value
    return "json:" + json.dumps(value)


def _parse_attr(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("json:"):
        return json.loads(value[5:])
    if isinstance(value, np.generic):
        return value.item()
    return value
