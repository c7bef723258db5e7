"""Where kept draws go: one `Recorder` protocol and its implementations, chosen by `make_recorder`.

* `InMemoryRecorder`: preallocated tensors on the run's device, returned as a `Trace`;
* `StreamingRecorder` (`ebm_samplers.streaming`): chunks appended to a folder on disk;
* `MomentsRecorder` (`ebm_samplers.moments`): per-chain running means and variances only (`keep="moments"`);
* `Tee`: running moments returned, draws streamed to disk as well.

The loop calls `record` for every post-warm-up transition (the recorder keeps every `thin`-th), `flush` before
a checkpoint, and `result` once at the end; checkpoints hold `state_dict()`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from ebm_samplers._nonfinite import NonfiniteGuard
from ebm_samplers.kernels.base import Info, State
from ebm_samplers.moments import Moments, MomentsRecorder
from ebm_samplers.run.options import RunOptions
from ebm_samplers.streaming import StreamingRecorder
from ebm_samplers.trace import Trace, kept_stats

__all__ = ["InMemoryRecorder", "MomentsRecorder", "Recorder", "StreamingRecorder", "Tee", "make_recorder"]


class Recorder(Protocol):
    """What the run loop needs of a recorder."""

    def record(self, step: int, state: State, info: Info) -> None:
        """Post-warm-up transition `step` (0-based) produced `state`, `info`; kept when `(step + 1) % thin == 0`."""

    def flush(self) -> None:
        """Write anything buffered (before a checkpoint)."""

    def result(self, attrs: dict[str, Any]) -> Trace | Moments:
        """What `sample()` returns, with the run's `attrs`."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, saved: dict[str, Any]) -> None: ...


def make_recorder(options: RunOptions, init: Tensor, attrs: dict[str, Any], guard: NonfiniteGuard) -> Recorder:
    """Memory, running moments, a streaming folder, or moments with the draws streamed too; draws kept in memory
    are first checked to fit there (`check_trace_fits`)."""
    n_chains = init.shape[0]
    streaming = None
    if options.stream is not None:
        streaming = StreamingRecorder(
            options.stream,
            n_chains=n_chains,
            n_keep=options.n_keep,
            thin=options.thin,
            chunk=options.stream_every,
            attrs=attrs,
        )
        streaming.before_write = guard.raise_if_failed  # never write a chunk the policy would reject
    if options.keep == "moments":
        moments = MomentsRecorder(n_chains, options.thin)
        return moments if streaming is None else Tee(moments, streaming)
    if streaming is not None:
        return streaming
    check_trace_fits(options.n_keep, init)
    return InMemoryRecorder(n_chains=n_chains, n_keep=options.n_keep, thin=options.thin)


#: Stats per kept draw assumed when sizing a trace before the first step says how many there are.
_STATS_ASSUMED = 8


def check_trace_fits(n_keep: int, init: Tensor) -> None:
    """Raise MemoryError, before anything is allocated, if `n_keep` draws of states like `init` (plus their stats)
    would not fit in the memory available now: on the device of `init`, and on the host that receives them."""
    n_chains = init.shape[0]
    needed = n_keep * (init.numel() * init.element_size() + n_chains * 8 * _STATS_ASSUMED)
    places = [init.device] if init.device.type == "cpu" else [init.device, torch.device("cpu")]
    for device in places:
        available = available_memory(device)
        if available is not None and needed > available:
            raise MemoryError(
                f"keeping {n_keep} draws of {n_chains} chains x {tuple(init.shape[1:])} ({init.dtype}) needs "
                f"{needed / 2**30:.1f} GiB but {available / 2**30:.1f} GiB of {device.type} memory is available; "
                "keep fewer draws (thin=), write them to disk (stream= with keep='moments'), or keep only "
                "running means and variances (keep='moments')"
            )


def available_memory(device: torch.device) -> int | None:
    """Bytes that can be allocated now on `device` without swapping (None where unknown)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as meminfo:  # MemAvailable counts reclaimable cache, unlike free pages
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


class Tee:
    """Running moments returned, draws streamed to disk as well."""

    def __init__(self, moments: MomentsRecorder, streaming: StreamingRecorder):
        self.moments, self.streaming = moments, streaming

    def record(self, step: int, state: State, info: Info) -> None:
        self.moments.record(step, state, info)
        self.streaming.record(step, state, info)

    def flush(self) -> None:
        self.streaming.flush()

    def result(self, attrs: dict) -> Moments:
        self.streaming.finish(attrs)  # without reading the draws back: that is what keep="moments" avoids
        return self.moments.result(attrs)

    def state_dict(self) -> dict[str, Any]:
        return {"moments": self.moments.state_dict(), "streaming": self.streaming.state_dict()}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.moments.load_state_dict(saved["moments"])
        self.streaming.load_state_dict(saved["streaming"])


@dataclass
class InMemoryRecorder:
    """Preallocated storage for kept draws and stats.

    Draws and stats are stored draw-major, `(n_keep, n_chains, ...)`, so recording a step writes one
    contiguous block per field (a `(chain, draw)` write is strided, and runs every step), and `result` hands
    them to the `Trace` as `(chain, draw, ...)` views of that storage, without copying (see
    `docs/performance.md` for the measurements behind this layout).

    A stat that is the very tensor recorded last time, unmodified since (a step size that is not adapting,
    ULA's all-accepted flags), is not copied again: its rows are filled from the earlier row when the stats
    are read. At a few microseconds of dispatch per copy, that is most of recording on small targets.
    """

    n_chains: int
    n_keep: int
    thin: int

    def __post_init__(self) -> None:
        self._draws_by_draw: Tensor | None = None
        self._stats_by_draw: dict[str, Tensor] = {}
        self.n_recorded = 0
        # per stat: the tensor copied last, its version counter then, and the row it was copied to
        self._last_copied: dict[str, tuple[Tensor, int | None, int]] = {}

    def record(self, step: int, state: State, info: Info) -> None:
        if (step + 1) % self.thin:
            return
        index = (step + 1) // self.thin - 1
        stats = kept_stats(state, info)
        if self._draws_by_draw is None:
            self._allocate(state.position, stats)
        self._draws_by_draw[index] = state.position
        for name, value in stats.items():
            self._record_stat(name, value, index)
        self.n_recorded = index + 1

    def record_block(self, first_step: int, rows: tuple[int, ...], positions: Tensor, stats: dict[str, Tensor]) -> None:
        """The states of steps `first_step + row` for `rows` (a compiled block's; see `_compiled_step`), stacked
        along a first axis: those that `thin` keeps, with one copy per field."""
        kept = [i for i, row in enumerate(rows) if (first_step + row + 1) % self.thin == 0]
        if not kept:
            return
        index = (first_step + rows[kept[0]] + 1) // self.thin - 1
        end = index + len(kept)  # consecutive rows, consecutive draws: a block's rows are `thin` apart
        block_rows = slice(kept[0], kept[-1] + 1)
        if self._draws_by_draw is None:
            self._allocate(positions[0], {name: values[0] for name, values in stats.items()})
        self._draws_by_draw[index:end] = positions[block_rows]
        for name, values in stats.items():
            self._fill_repeats(name, index)
            self._stats_by_draw[name][index:end] = values[block_rows]
            self._last_copied[name] = (values, None, end - 1)  # no version: never taken as unchanged
        self.n_recorded = end

    def _allocate(self, position: Tensor, stats: dict[str, Tensor]) -> None:
        self._draws_by_draw = position.new_empty((self.n_keep, *position.shape))
        self._stats_by_draw = {name: value.new_empty((self.n_keep, self.n_chains)) for name, value in stats.items()}

    def _record_stat(self, name: str, value: Tensor, index: int) -> None:
        version = _version(value)
        last = self._last_copied.get(name)
        if last is not None and last[0] is value and version is not None and last[1] == version:
            return  # unchanged: the rows up to `index` are filled from row last[2] when read
        self._fill_repeats(name, index)
        self._stats_by_draw[name][index] = value
        self._last_copied[name] = (value, version, index)

    def _fill_repeats(self, name: str, end: int) -> None:
        """Rows after the last copied one, up to `end` (exclusive), repeat it."""
        last = self._last_copied.get(name)
        if last is not None and last[2] + 1 < end:
            values = self._stats_by_draw[name]
            values[last[2] + 1 : end] = values[last[2]]
            self._last_copied[name] = (last[0], last[1], end - 1)

    @property
    def draws(self) -> Tensor | None:
        """Recorded draws as a `(chain, draw, *event)` view."""
        return None if self._draws_by_draw is None else self._draws_by_draw.transpose(0, 1)

    def _fill_all_repeats(self) -> None:
        for name in self._last_copied:
            self._fill_repeats(name, self.n_recorded)

    @property
    def stats(self) -> dict[str, Tensor]:
        """Recorded stats as `(chain, draw)` views (the rows not copied are filled first)."""
        self._fill_all_repeats()
        return {name: values.T for name, values in self._stats_by_draw.items()}

    def flush(self) -> None:
        """Nothing to write: the draws stay in memory."""

    def result(self, attrs: dict[str, Any]) -> Trace:
        """The recorded draws and stats as `(chain, draw, ...)` views of the storage (copied only to move them
        to the CPU, field by field, keeping the layout)."""
        stats = {}
        self._fill_all_repeats()
        self._last_copied = {}
        for name in list(self._stats_by_draw):
            stats[name] = self._stats_by_draw.pop(name).T.cpu()
        draws, self._draws_by_draw = self.draws.cpu(), None
        return Trace(draws=draws, stats=stats, attrs=attrs)

    def state_dict(self) -> dict[str, Any]:
        k = self.n_recorded
        draws = None if self._draws_by_draw is None else self.draws[:, :k]
        return {"n_recorded": k, "draws": draws, "stats": {name: values[:, :k] for name, values in self.stats.items()}}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.n_recorded = k = saved["n_recorded"]
        self._last_copied = {}
        if saved["draws"] is None:
            return
        draws = saved["draws"]
        self._draws_by_draw = draws.new_empty((self.n_keep, draws.shape[0], *draws.shape[2:]))
        self._draws_by_draw[:k] = draws.transpose(0, 1)
        self._stats_by_draw = {}
        for name, values in saved["stats"].items():
            self._stats_by_draw[name] = values.new_empty((self.n_keep, self.n_chains))
            self._stats_by_draw[name][:k] = values.T


def _version(value: Tensor) -> int | None:
    """The tensor's in-place modification counter; None where it has none (inference-mode tensors)."""
    try:
        return value._version
    except RuntimeError:
        return None
