"""A replay buffer of past chain states for persistent chains (Tieleman 2008; Du & Mordatch 2019).

Persistent contrastive divergence keeps its negative samples alive across calls: each call starts the
chains where earlier calls left them, so the chains keep converging while the energy changes slowly.
The buffer stores those states. `draw(n)` returns n start points, each one independently

    a fresh draw from `init_distribution`   with probability `reinit_probability` (always when empty),
    a uniformly random stored entry         otherwise,

and `push(x)` stores the states the sampler produced. Two replacement rules once the buffer is full:

* "fifo": the oldest entry is overwritten first (a ring buffer), so the buffer holds the last
  `capacity` pushed samples;
* "reservoir": Vitter's (1985) algorithm R, so after `seen` pushed samples every one of them is stored
  with probability capacity / seen (a uniform sample of the whole history). Pushing then needs the
  run's `torch.Generator`.

Each entry carries its lineage: the number of sampler transitions (Langevin steps) its chain has run since
it was last drawn fresh from `init_distribution`, the quantity that separates short-run from long-run
(persistent) chains (Nijkamp et al. 2019). `draw_chains` returns it with the start points, and `push(x,
lineage=...)` stores the new count; a fresh draw has lineage 0. The age of an entry, a different thing, is the
number of `push` calls since it was written.

The filled part is readable as `samples`, `energy` and `lineage` (copies: writing to them leaves the buffer
unchanged), so `diagnostics.plot_replay_buffer(buffer, path)` and your own code see the contents. Everything
lives on the buffer's device; nothing synchronises with the host except `statistics()` and those properties.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ebm_samplers._validate import check_count

_MODES = ("fifo", "reservoir")
_STATE_VERSION = 2  # 2: per-entry lineage (version 1 states load with lineage 0)


class ReplayBuffer:
    """Up to `capacity` stored samples of shape `event_shape`, drawn from and pushed to in batches.

    Args:
        capacity: the most samples kept.
        event_shape: shape of one sample, e.g. `(2,)` or `(1, 28, 28)`.
        reinit_probability: chance that a drawn row is a fresh draw from `init_distribution`.
        init_distribution: `f(n, generator) -> Tensor[n, *event_shape]`; None draws uniformly from the box
            `init_range`. Its output is moved to the buffer's device and dtype.
        init_range: `(low, high)`, numbers or tensors broadcastable to `event_shape` (e.g. per-pixel bounds):
            fresh draws are uniform on that box; default (-1, 1). Give it or `init_distribution`, not both.
            `ReplayBuffer.for_data(data, capacity)` sets it from the data's range.
        mode: "fifo" or "reservoir" (see the module docstring).
        device, dtype: where and how samples are stored (default: CPU, torch's default dtype).
    """

    def __init__(
        self,
        capacity: int,
        event_shape: Sequence[int],
        *,
        reinit_probability: float = 0.05,
        init_distribution: Callable[[int, torch.Generator], Tensor] | None = None,
        init_range: tuple[float | Tensor, float | Tensor] | None = None,
        mode: str = "fifo",
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        check_count(capacity, "ReplayBuffer capacity", minimum=1)
        if isinstance(event_shape, int):
            event_shape = (event_shape,)
        try:
            event_shape = torch.Size(event_shape)
        except TypeError:
            raise TypeError(f"ReplayBuffer event_shape must be a sequence of ints; got {event_shape!r}") from None
        if any(size < 1 for size in event_shape):
            raise ValueError(f"ReplayBuffer event_shape must have positive sizes; got {tuple(event_shape)}")
        if (
            isinstance(reinit_probability, bool)
            or not isinstance(reinit_probability, (int, float))
            or not 0.0 <= reinit_probability <= 1.0
        ):
            raise ValueError(f"ReplayBuffer reinit_probability must be a number in [0, 1]; got {reinit_probability!r}")
        if init_distribution is not None and not callable(init_distribution):
            raise TypeError(
                "ReplayBuffer init_distribution must be callable as f(n, generator) -> Tensor[n, *event_shape]; "
                f"got {type(init_distribution).__name__}"
            )
        if mode not in _MODES:
            raise ValueError(f"ReplayBuffer mode must be one of {', '.join(map(repr, _MODES))}; got {mode!r}")
        dtype = dtype or torch.get_default_dtype()
        if not dtype.is_floating_point:
            raise TypeError(f"ReplayBuffer dtype must be a floating dtype; got {dtype}")

        self.capacity = capacity
        self.event_shape = event_shape
        self.reinit_probability = float(reinit_probability)
        self.init_distribution = init_distribution
        self.mode = mode
        self.device = torch.device(device or "cpu")
        self.dtype = dtype
        if init_range is not None and init_distribution is not None:
            raise ValueError("ReplayBuffer takes init_range or init_distribution, not both")
        self._low, self._high = _check_range((-1.0, 1.0) if init_range is None else init_range, event_shape)
        self._low = self._low.to(device=self.device, dtype=dtype)
        self._high = self._high.to(device=self.device, dtype=dtype)

        self._samples = torch.zeros((capacity, *event_shape), dtype=dtype, device=self.device)
        self._energy = torch.full((capacity,), math.nan, dtype=dtype, device=self.device)  # NaN: not known
        self._written_at = torch.zeros(capacity, dtype=torch.long, device=self.device)  # push count at write
        self._lineage = torch.zeros(capacity, dtype=torch.long, device=self.device)  # transitions since fresh
        self._size = 0
        self._seen = 0  # samples ever pushed
        self._pushes = 0  # push calls
        self._drawn = 0  # rows ever drawn
        # rows drawn fresh: a device tensor, so draw() never waits for the host
        self._reinitialised_total = torch.zeros((), dtype=torch.long, device=self.device)

    @classmethod
    def for_data(cls, data: Tensor, capacity: int, *, margin: float = 0.1, **options) -> ReplayBuffer:
        """A buffer for chains shaped like `data` (n, *event): fresh draws uniform on the data's per-coordinate
        range widened by `margin` times its width on each side; stored on the data's device in its dtype.
        `options` are the other constructor arguments (reinit_probability, mode)."""
        if not isinstance(data, Tensor) or data.ndim < 2 or data.shape[0] == 0 or not data.is_floating_point():
            got = f"shape {tuple(data.shape)} {data.dtype}" if isinstance(data, Tensor) else type(data).__name__
            raise ValueError(f"ReplayBuffer.for_data expects a floating data tensor of shape (n, *event); got {got}")
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin >= 0:
            raise ValueError(f"ReplayBuffer.for_data margin must be a number >= 0; got {margin!r}")
        data = data.detach()
        low, high = data.amin(0), data.amax(0)
        width = torch.where(high > low, high - low, torch.ones_like(low))  # a constant coordinate gets width 1
        low, high = low - margin * width, high + margin * width
        return cls(capacity, data.shape[1:], init_range=(low, high), device=data.device, dtype=data.dtype, **options)

    def __len__(self) -> int:
        return self._size

    @property
    def samples(self) -> Tensor:
        """The stored samples `(len(self), *event_shape)`, in slot order (a copy)."""
        return self._samples[: self._size].clone()

    @property
    def energy(self) -> Tensor:
        """Their energies `(len(self),)` as pushed (NaN where none was given; a copy)."""
        return self._energy[: self._size].clone()

    @property
    def lineage(self) -> Tensor:
        """Their lineages `(len(self),)`: sampler transitions since each chain's fresh start (a copy)."""
        return self._lineage[: self._size].clone()

    @property
    def age(self) -> Tensor:
        """Their ages `(len(self),)`: `push` calls since each entry was written."""
        return self._pushes - self._written_at[: self._size]

    def __repr__(self) -> str:
        return (
            f"ReplayBuffer(capacity={self.capacity}, event_shape={tuple(self.event_shape)}, size={self._size}, "
            f"mode={self.mode!r}, reinit_probability={self.reinit_probability})"
        )

    def draw(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """`(x, reinitialised)`: n start points `(n, *event_shape)` and which rows are fresh draws `(n,)`."""
        x, reinitialised, _ = self.draw_chains(n, generator)
        return x, reinitialised

    def draw_chains(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """`(x, reinitialised, lineage)`: n start points, which are fresh draws, and each one's lineage `(n,)`
        (0 for fresh draws).

        The random numbers used do not depend on the buffer's contents (a coin, a stored index and an
        init draw are taken for every row, and the row keeps one of the two), so runs stay reproducible
        whatever was pushed and nothing waits for the host; the price is `init_distribution(n)` per call.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"ReplayBuffer.draw needs a number of rows n >= 1; got {n!r}")
        _check_generator(generator, "draw")
        coin = torch.rand(n, generator=generator, device=self.device, dtype=torch.float64)
        index = torch.randint(0, max(self._size, 1), (n,), generator=generator, device=self.device)
        fresh = self._initial_points(n, generator)
        if self._size == 0:
            reinitialised = torch.ones(n, dtype=torch.bool, device=self.device)
        else:
            reinitialised = coin < self.reinit_probability
        stored = self._samples[index]
        x = torch.where(reinitialised.reshape(n, *([1] * len(self.event_shape))), fresh, stored)
        lineage = torch.where(reinitialised, 0, self._lineage[index])
        self._drawn += n
        self._reinitialised_total += reinitialised.sum()
        return x, reinitialised, lineage

    def push(
        self,
        x: Tensor,
        energy: Tensor | None = None,
        *,
        lineage: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        """Store the samples `x` `(m, *event_shape)` (detached), with their energies `(m,)` if known and their
        lineages `(m,)` (transitions since a fresh start; 0 when not given).

        FIFO overwrites the oldest entries (of a batch larger than the capacity only the last
        `capacity` rows survive, as if pushed one at a time). Reservoir mode needs `generator`.
        """
        if not isinstance(x, Tensor) or x.ndim != 1 + len(self.event_shape) or x.shape[1:] != self.event_shape:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"ReplayBuffer.push expects samples of shape (m, {', '.join(map(str, self.event_shape))}); got {got}"
            )
        if not x.is_floating_point():
            raise TypeError(f"ReplayBuffer.push expects floating samples; got {x.dtype}")
        if x.shape[0] and not bool(torch.isfinite(x.detach()).all()):  # a stored NaN would be drawn again and again
            bad = ~torch.isfinite(x.detach().reshape(x.shape[0], -1)).all(1)
            raise ValueError(
                f"ReplayBuffer.push: {int(bad.sum())} sample(s) contain NaN or infinite values "
                f"(first: row {int(bad.nonzero()[0, 0])}); the buffer holds only finite states"
            )
        m = x.shape[0]
        if energy is not None:
            if not isinstance(energy, Tensor) or energy.shape != (m,):
                got = tuple(energy.shape) if isinstance(energy, Tensor) else type(energy).__name__
                raise ValueError(f"ReplayBuffer.push: energy must have shape ({m},), one per sample; got {got}")
        if lineage is not None and (not isinstance(lineage, Tensor) or lineage.shape != (m,)):
            got = tuple(lineage.shape) if isinstance(lineage, Tensor) else type(lineage).__name__
            raise ValueError(f"ReplayBuffer.push: lineage must have shape ({m},), one per sample; got {got}")
        if m == 0:
            return
        x = x.detach().to(device=self.device, dtype=self.dtype)
        energy = (
            torch.full((m,), math.nan, dtype=self.dtype, device=self.device)
            if energy is None
            else energy.detach().to(device=self.device, dtype=self.dtype)
        )
        lineage = (
            torch.zeros(m, dtype=torch.long, device=self.device)
            if lineage is None
            else lineage.detach().to(device=self.device, dtype=torch.long)
        )
        if self.mode == "fifo":
            rows, slots = self._fifo_slots(m)
        else:
            if generator is None:
                raise ValueError("ReplayBuffer.push in reservoir mode needs the run's generator: push(x, generator=g)")
            _check_generator(generator, "push")
            rows, slots = self._reservoir_slots(m, generator)
        self._pushes += 1
        self._samples[slots] = x[rows]
        self._energy[slots] = energy[rows]
        self._written_at[slots] = self._pushes
        self._lineage[slots] = lineage[rows]
        self._seen += m
        self._size = min(self._seen, self.capacity)

    def _fifo_slots(self, m: int) -> tuple[Tensor, Tensor]:
        """Rows of the batch to store and their slots: a ring buffer whose next slot is seen % capacity."""
        first = max(m - self.capacity, 0)  # earlier rows would be overwritten within this very batch
        rows = torch.arange(first, m, device=self.device)
        return rows, (self._seen + rows) % self.capacity

    def _reservoir_slots(self, m: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Algorithm R for a batch: the t-th sample ever pushed (t = 1, 2, ...) takes slot t - 1 while
        t <= capacity, else slot j ~ Uniform{0, ..., t - 1}, kept only if j < capacity. When several
        rows of one batch pick the same slot, the latest wins, exactly as pushing them one by one."""
        t = self._seen + 1 + torch.arange(m, device=self.device)
        uniform = torch.rand(m, generator=generator, device=self.device, dtype=torch.float64)
        slot = torch.where(t <= self.capacity, t - 1, torch.floor(uniform * t).long())
        keep = slot < self.capacity
        rows = torch.arange(m, device=self.device)
        last_writer = torch.full((self.capacity,), -1, dtype=torch.long, device=self.device)
        last_writer.scatter_reduce_(0, slot[keep], rows[keep], reduce="amax")
        winners = last_writer >= 0
        return last_writer[winners], winners.nonzero().squeeze(1)

    def draw_fresh(self, n: int, generator: torch.Generator) -> Tensor:
        """n fresh start points `(n, *event_shape)` from the init distribution (no buffer entry, no counter
        changes)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"ReplayBuffer.draw_fresh needs a number of rows n >= 1; got {n!r}")
        _check_generator(generator, "draw_fresh")
        return self._initial_points(n, generator)

    def _initial_points(self, n: int, generator: torch.Generator) -> Tensor:
        if self.init_distribution is None:
            uniform = torch.rand((n, *self.event_shape), generator=generator, device=self.device, dtype=self.dtype)
            return torch.addcmul(self._low, uniform, self._high - self._low)
        points = self.init_distribution(n, generator)
        if not isinstance(points, Tensor) or points.shape != (n, *self.event_shape):
            got = tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__
            raise ValueError(
                f"ReplayBuffer init_distribution(n={n}, generator) must return a tensor of shape "
                f"({n}, {', '.join(map(str, self.event_shape))}); got {got}"
            )
        if not points.is_floating_point():
            raise TypeError(f"ReplayBuffer init_distribution must return floating samples; got {points.dtype}")
        return points.detach().to(device=self.device, dtype=self.dtype)

    def statistics(self) -> dict[str, float]:
        """Size, capacity, counts, sample age (in pushes), lineage (in transitions) and stored energy, as floats.

        `mean_energy` averages the entries whose energy was pushed with them (NaN when none was);
        `reinitialised_fraction` is the share of all rows ever drawn that were fresh.
        """
        size = self._size
        stats = {
            "size": float(size),
            "capacity": float(self.capacity),
            "seen": float(self._seen),
            "pushes": float(self._pushes),
            "drawn": float(self._drawn),
            "reinitialised_fraction": float(self._reinitialised_total) / self._drawn if self._drawn else math.nan,
        }
        if size == 0:
            empty = ("mean_age", "max_age", "mean_lineage", "max_lineage", "mean_energy")
            return {**stats, **dict.fromkeys(empty, math.nan)}
        age = (self._pushes - self._written_at[:size]).double()
        energy = self._energy[:size].double()
        known = ~torch.isnan(energy)
        stats["mean_age"] = float(age.mean())
        stats["max_age"] = float(age.max())
        lineage = self._lineage[:size].double()
        stats["mean_lineage"] = float(lineage.mean())
        stats["max_lineage"] = float(lineage.max())
        stats["mean_energy"] = float(energy[known].mean()) if bool(known.any()) else math.nan
        stats["energy_known_fraction"] = float(known.double().mean())
        return stats

    def state_dict(self) -> dict[str, object]:
        """Contents and counters as tensors and plain Python (loads with `torch.load(weights_only=True)`).

        The init distribution is code, not state: build the buffer with the same one before loading.
        """
        return {
            "version": _STATE_VERSION,
            "capacity": self.capacity,
            "event_shape": list(self.event_shape),
            "mode": self.mode,
            "reinit_probability": self.reinit_probability,
            "samples": self._samples.clone(),
            "energy": self._energy.clone(),
            "written_at": self._written_at.clone(),
            "lineage": self._lineage.clone(),
            "size": self._size,
            "seen": self._seen,
            "pushes": self._pushes,
            "drawn": self._drawn,
            "reinitialised_total": self._reinitialised_total.clone(),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore contents, counters and reinit probability into a buffer of the same capacity, event
        shape, mode and dtype."""
        if not isinstance(state, dict) or state.get("version") not in (1, _STATE_VERSION):
            raise ValueError(
                f"not a ReplayBuffer state (version {_STATE_VERSION} expected); got "
                f"{state.get('version') if isinstance(state, dict) else type(state).__name__}"
            )
        expected = {"capacity": self.capacity, "event_shape": list(self.event_shape), "mode": self.mode}
        for key, value in expected.items():
            if state.get(key) != value:
                raise ValueError(
                    f"ReplayBuffer state has {key}={state.get(key)!r} but this buffer has {key}={value!r}; "
                    "build the buffer with the checkpoint's settings"
                )
        samples = state["samples"]
        if not isinstance(samples, Tensor) or samples.dtype != self.dtype:
            got = samples.dtype if isinstance(samples, Tensor) else type(samples).__name__
            raise TypeError(f"ReplayBuffer state holds samples of dtype {got}; this buffer stores {self.dtype}")
        self.reinit_probability = float(state["reinit_probability"])
        self._samples = samples.to(self.device).clone()
        self._energy = state["energy"].to(self.device).clone()
        self._written_at = state["written_at"].to(self.device).clone()
        saved_lineage = state.get("lineage")  # absent from version 1 states: unknown, taken as 0
        self._lineage = (
            torch.zeros(self.capacity, dtype=torch.long, device=self.device)
            if saved_lineage is None
            else saved_lineage.to(self.device).clone()
        )
        self._size = int(state["size"])
        self._seen = int(state["seen"])
        self._pushes = int(state["pushes"])
        self._drawn = int(state["drawn"])
        self._reinitialised_total = state["reinitialised_total"].to(self.device).clone()


def _check_range(init_range, event_shape: torch.Size) -> tuple[Tensor, Tensor]:
    """`(low, high)` as tensors broadcastable to `event_shape`, with low < high everywhere."""
    if not isinstance(init_range, (tuple, list)) or len(init_range) != 2:
        raise ValueError(f"ReplayBuffer init_range must be a pair (low, high); got {init_range!r}")
    low, high = (torch.as_tensor(bound, dtype=torch.float64).detach().cpu() for bound in init_range)
    for bound in (low, high):
        try:
            torch.broadcast_shapes(bound.shape, event_shape)
        except RuntimeError:
            raise ValueError(
                f"ReplayBuffer init_range bounds must be numbers or tensors broadcastable to the event shape "
                f"{tuple(event_shape)}; got a bound of shape {tuple(bound.shape)}"
            ) from None
    if not bool(torch.isfinite(low).all() & torch.isfinite(high).all()) or not bool((low < high).all()):
        raise ValueError(f"ReplayBuffer init_range needs finite low < high everywhere; got low={low}, high={high}")
    return low, high


def _check_generator(generator, where: str) -> None:
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"ReplayBuffer.{where} needs a torch.Generator; got {type(generator).__name__}")
