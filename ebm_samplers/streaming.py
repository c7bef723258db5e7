"""Streaming traces: `sample(..., stream=FOLDER)` appends the kept draws to disk in chunks as the run goes.

The store is a folder of netCDF files in the ArviZ layout, one per chunk of `stream_every` kept draws
(`chunk-000000000000.nc` holds draws 0.., named by the index of its first draw), plus `run.json` with
the run's attributes. Each chunk file is written atomically (see `_atomic`), so a run killed at any
moment leaves every completed chunk readable and nothing half-written. (Appending in place to one HDF5
file is not crash-safe: a kill during the write can corrupt the whole file's metadata.)

`Trace.load(FOLDER)` concatenates the chunks; `attrs["n_draws_complete"]` says how many draws it holds
and `attrs["complete"]` whether the run finished; an unfinished store also gives a `UserWarning`.
Resuming from a checkpoint deletes the chunks written after that checkpoint and writes them again.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ebm_samplers._atomic import atomic_write, fsync_directory
from ebm_samplers.kernels.base import Info, State
from ebm_samplers.trace import VARIABLE, Trace, from_arviz_names, kept_stats, to_arviz_names

RUN_FILE = "run.json"
_CHUNK = re.compile(r"^chunk-(\d{12})\.nc$")


def chunk_name(first_draw: int) -> str:
    return f"chunk-{first_draw:012d}.nc"


class StreamingRecorder:
    """Buffers up to `chunk` kept draws on the device and writes each full chunk as one atomic file."""

    def __init__(self, folder: str | os.PathLike, *, n_chains: int, n_keep: int, thin: int, chunk: int, attrs: dict):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"stream={str(folder)!r} is a file; streaming writes a folder of chunk files")
        self.n_chains, self.n_keep, self.thin, self.chunk = n_chains, n_keep, thin, chunk
        self.attrs = {**attrs, "n_draws_expected": n_keep}
        self.before_write = lambda: None  # the run loop's failure check: never write a chunk it would reject
        self.n_written = 0  # draws already in chunk files
        self.n_buffered = 0
        self.draws: Tensor | None = None
        self.stats: dict[str, Tensor] = {}
        self._started = False  # the store is (re)started by the first write, or by a resume

    def _start_store(self, keep_draws: int) -> None:
        """Write run.json and delete chunks from draw `keep_draws` on (left by an interrupted run)."""
        self._started = True
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write_run_file()
        for first, path in _chunks(self.folder):
            if first >= keep_draws:
                path.unlink()
        fsync_directory(self.folder)

    def _write_run_file(self) -> None:
        text = json.dumps(self.attrs, default=str)
        atomic_write(self.folder / RUN_FILE, lambda temporary: temporary.write_text(text))

    def record(self, step: int, state: State, info: Info) -> None:
        if (step + 1) % self.thin:
            return
        values = kept_stats(state, info)
        if self.draws is None:
            size = min(self.chunk, self.n_keep)
            self.draws = state.position.new_empty((self.n_chains, size, *state.position.shape[1:]))
            self.stats = {name: value.new_empty((self.n_chains, size)) for name, value in values.items()}
        self.draws[:, self.n_buffered] = state.position
        for name, value in values.items():
            self.stats[name][:, self.n_buffered] = value
        self.n_buffered += 1
        if self.n_buffered == self.draws.shape[1]:
            self.flush()

    def flush(self) -> None:
        """Write the buffered draws (if any) as the next chunk file."""
        if self.n_buffered == 0:
            return
        self.before_write()
        if not self._started:
            self._start_store(keep_draws=0)
        k = self.n_buffered
        draws = self.draws[:, :k].cpu().numpy()
        stats = to_arviz_names({name: values[:, :k].cpu().numpy() for name, values in self.stats.items()})
        first = self.n_written
        atomic_write(self.folder / chunk_name(first), lambda temporary: _write_chunk(temporary, first, draws, stats))
        self.n_written += k
        self.n_buffered = 0

    def finish(self, attrs: dict[str, Any]) -> None:
        """Write the last chunk and the run's final attributes."""
        self.flush()
        if not self._started:  # a finished run resumed from its checkpoint: nothing was written now
            self._start_store(keep_draws=self.n_written)
        self.attrs = {**self.attrs, **attrs}
        self._write_run_file()

    def result(self, attrs: dict[str, Any]) -> Trace:
        self.finish(attrs)
        return load_stream(self.folder)

    def state_dict(self) -> dict[str, Any]:
        if self.n_buffered:
            raise RuntimeError("flush() the stream before saving its state")
        return {"n_written": self.n_written}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.n_written, self.n_buffered = int(saved["n_written"]), 0
        present = sum(_draws_in(path) for first, path in _chunks(self.folder) if first < self.n_written)
        if present != self.n_written:
            raise ValueError(
                f"stream {self.folder} holds {present} draws before the checkpoint, which recorded {self.n_written}; "
                "the stream and the checkpoint do not belong together"
            )
        self._start_store(keep_draws=self.n_written)


def load_stream(folder: str | os.PathLike) -> Trace:
    """The trace held by a streaming store, up to its last complete chunk."""
    folder = Path(folder)
    run_file = folder / RUN_FILE
    if not run_file.exists():
        raise ValueError(f"{folder} is not an ebm-samplers stream: it has no {RUN_FILE}")
    attrs = json.loads(run_file.read_text())
    parts: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
    n_draws = 0
    for first, path in _chunks(folder):
        if first != n_draws:  # cannot happen with atomic chunk writes; refuse to glue across a gap
            message = f"{folder}: chunk {path.name} does not follow draw {n_draws}; reading up to the gap"
            warnings.warn(message, stacklevel=2)
            break
        parts.append(_read_chunk(path))
        n_draws += parts[-1][0].shape[1]
    expected = attrs.get("n_draws_expected")
    attrs = {**attrs, "n_draws_complete": n_draws, "complete": n_draws == expected}
    attrs.pop("first_draw", None)
    if not parts:
        raise ValueError(f"stream {folder} holds no complete chunk yet (0 of {expected} draws)")
    if n_draws != expected:
        warnings.warn(f"stream {folder} holds {n_draws} of {expected} draws: the run did not finish", stacklevel=2)
    draws = torch.from_numpy(np.concatenate([part[0] for part in parts], axis=1))
    stats = {name: torch.from_numpy(np.concatenate([part[1][name] for part in parts], axis=1)) for name in parts[0][1]}
    return Trace(draws=draws, stats=from_arviz_names(stats, attrs), attrs=attrs)


def _write_chunk(path: Path, first_draw: int, draws: np.ndarray, stats: dict[str, np.ndarray]) -> None:
    """One chunk as netCDF4 in the ArviZ layout (groups `posterior`/`sample_stats`, dims chain, draw, x_dim_i),
    written with h5netcdf directly: about a hundred times faster than going through xarray for small chunks.
    `draw` holds the global draw indices, so xarray can concatenate chunk files along it."""
    import h5netcdf

    n_chains, n_draws = draws.shape[:2]
    event_dims = {f"{VARIABLE}_dim_{i}": size for i, size in enumerate(draws.shape[2:])}
    with h5netcdf.File(path, "w") as file:
        file.attrs["first_draw"] = first_draw
        groups = (("posterior", {VARIABLE: draws}, event_dims), ("sample_stats", stats, {}))
        for group_name, variables, extra_dims in groups:
            group = file.create_group(group_name)
            group.dimensions = {"chain": n_chains, "draw": n_draws, **extra_dims}
            group.create_variable("chain", ("chain",), data=np.arange(n_chains))
            group.create_variable("draw", ("draw",), data=np.arange(first_draw, first_draw + n_draws))
            for name, values in variables.items():
                dims = ("chain", "draw", *extra_dims)[: values.ndim]
                if values.dtype == np.bool_:  # netCDF has no bool; xarray's convention marks it
                    group.create_variable(name, dims, data=values.astype(np.int8)).attrs["dtype"] = "bool"
                else:
                    group.create_variable(name, dims, data=values)


def _read_chunk(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    import h5py

    with h5py.File(path, "r") as file:
        draws = file["posterior"][VARIABLE][...]
        stats = {}
        for name, variable in file["sample_stats"].items():
            if variable.ndim != 2:  # the chain and draw coordinates
                continue
            values = variable[...]
            stats[name] = values.astype(np.bool_) if variable.attrs.get("dtype") in ("bool", b"bool") else values
    return draws, stats


def _chunks(folder: Path) -> list[tuple[int, Path]]:
    found = []
    if not folder.is_dir():
        return found
    for path in folder.iterdir():
        match = _CHUNK.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def _draws_in(path: Path) -> int:
    import h5py

    with h5py.File(path, "r") as file:
        return int(file["posterior"]["x"].shape[1])


Trace.folder_reader = load_stream  # `Trace.load(FOLDER)` reads a stream; trace.py does not import this module
