"""`Trace`: the draws and per-step statistics of a run, convertible to ArviZ and saved as netCDF.

Layout: `draws` is `(chain, draw, *event)`; each entry of `stats` is `(chain, draw)`. In ArviZ terms the
draws become the posterior variable `x` (event axes `x_dim_0`, ...) and the stats become `sample_stats`
with the names ArviZ plots understand (`acceptance_rate`, `step_size`, `diverging`, ...).

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

#: Name of the sampled variable in the ArviZ posterior group.
VARIABLE = "x"
#: E(x) of the kept state: recorded for every kernel.
POTENTIAL_ENERGY = "potential_energy"
#: H(x, p) of the kept state: recorded by HMC-family kernels, exported to ArviZ as `energy`.
HAMILTONIAN = "hamiltonian"
#: Our stat name -> ArviZ's, where they differ.
_ARVIZ_NAMES = {HAMILTONIAN: "energy"}
#: Attributes ArviZ adds on its own; they are not part of the run's description.
_ARVIZ_ATTRS = ("creation_library", "created_at", "arviz_version", "sample_dims", "inference_library")


@dataclass
class Trace:
    """Draws `(chain, draw, *event)`, per-step `stats` `(chain, draw)` and run `attrs` (JSON-able).

    A trace made by `sample()` holds its draws and stats as views of the run's draw-major storage (strided, not
    contiguous: no copy was made at the end of the run); use `reshape` or `.contiguous()` where a contiguous
    tensor is needed."""

    draws: Tensor
    stats: dict[str, Tensor] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    #: Reads a folder written by a streaming run; set by `ebm_samplers.streaming` (which depends on this module).
    folder_reader: ClassVar[Callable[[Path], Trace] | None] = None

    def __post_init__(self) -> None:
        for name, values in {"draws": self.draws, **{f"stats[{k!r}]": v for k, v in self.stats.items()}}.items():
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

    def to_arviz(self):
        """An `xarray.DataTree` with groups `posterior` (variable `x`) and `sample_stats`."""
        import arviz as az

        draws = _to_numpy(self.draws)
        dims = {VARIABLE: [f"{VARIABLE}_dim_{i}" for i in range(draws.ndim - 2)]}
        groups: dict[str, dict[str, np.ndarray]] = {"posterior": {VARIABLE: draws}}
        if self.stats:
            stats = to_arviz_names(self.stats)
            groups["sample_stats"] = {name: _to_numpy(values) for name, values in stats.items()}
        attrs = {key: _attr_value(value) for key, value in self.attrs.items()}
        attrs.setdefault("inference_library", "ebm-samplers")
        return az.from_dict(groups, dims=dims, attrs={"/": attrs, "posterior": attrs})

    def summary(self):
        """Convergence table per coordinate (see `diagnostics.summary`)."""
        from diagnostics import summary

        return summary(self)

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
        if "posterior" not in tree.children or VARIABLE not in tree["posterior"].data_vars:
            raise ValueError(f"{path} is not an ebm-samplers trace: it has no posterior variable {VARIABLE!r}")
        draws = torch.from_numpy(np.asarray(tree["posterior"][VARIABLE].values).copy())
        stats = {}
        if "sample_stats" in tree.children:
            for name, values in tree["sample_stats"].data_vars.items():
                stats[str(name)] = torch.from_numpy(np.asarray(values.values).copy())
        attrs = {
            key: _parse_attr(value)
            for key, value in tree["posterior"].attrs.items()
            if not key.startswith(_ARVIZ_ATTRS)
        }
        return cls(draws=draws, stats=from_arviz_names(stats, attrs), attrs=attrs)


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
