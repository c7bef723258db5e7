"""Names, coordinates and derived quantities for the draws of a run.

A sampler moves one flat event `x` of shape `event_shape`; a model usually has several parameters of their own
shapes. `Naming` splits the event, flattened in C order, into named variables (`mu`, `tau`, `theta[8]`), gives
their axes names (`dims`) and labels (`coords`), and records named derived quantities computed from each kept
draw by a `transform` (e.g. `tau = exp(log_tau)`: the sampler stays on the unconstrained space, the summary
reports the natural scale). `Trace` keeps the description in its `attrs` (`names`, `coords`, `dims`,
`event_shape`) and the derived draws in `Trace.derived`; `to_arviz` turns both into posterior variables and
`Trace.load` reads them back.

    names = "mu, log_tau, theta[8]"                        # or ["mu", "log_tau", "theta[8]"], or {"theta": 8, ...}
    dims = {"theta": ["school"]}; coords = {"school": ["Choate", ...]}
    transform = lambda x: {"tau": x[:, 1].exp()}          # x: (n, *event) -> {name: Tensor[n, ...]}
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

Transform = Callable[[Tensor], Mapping[str, Tensor]]
#: Axis names ArviZ uses itself: a variable or dimension may not take them.
_RESERVED = ("chain", "draw", "sample")
_ENTRY = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\[\s*([0-9,\s]*)\s*\])?\s*$")


@dataclass
class Naming:
    """Validated `names` (variable -> shape), `coords` (dim -> labels), `dims` (variable -> dim names) and
    `transform` for draws of one event shape. Build it with `Naming.build`."""

    shapes: dict[str, tuple[int, ...]] | None = None
    coords: dict[str, list] = field(default_factory=dict)
    dims: dict[str, list[str]] = field(default_factory=dict)
    transform: Transform | None = None

    @property
    def empty(self) -> bool:
        return self.shapes is None and not self.coords and not self.dims and self.transform is None

    @classmethod
    def build(cls, names=None, coords=None, dims=None, transform=None) -> Naming:
        """Check the types of the four arguments (sizes are checked against the draws by `check_event`)."""
        if transform is not None and not callable(transform):
            raise TypeError(
                "transform must be a callable x (n, *event) -> {name: Tensor[n, ...]}; "
                f"got {type(transform).__name__}"
            )
        return cls(parse_names(names), _parse_coords(coords), _parse_dims(dims), transform)

    def check_event(self, event_shape: Sequence[int]) -> None:
        """Names must cover the flattened event exactly; dims and coords must fit the variables they name."""
        size = math.prod(event_shape)
        if self.shapes is not None:
            total = sum(math.prod(shape) for shape in self.shapes.values())
            if total != size:
                described = ", ".join(_describe(name, shape) for name, shape in self.shapes.items())
                raise ValueError(
                    f"names ({described}) cover {total} numbers but the event {tuple(event_shape)} has {size}; "
                    "give names whose sizes add up to the event size"
                )
        shapes = self.shapes or {"x": tuple(event_shape)}
        self._check_dims(shapes, known_only=True)

    def _check_dims(self, shapes: Mapping[str, tuple[int, ...]], known_only: bool) -> None:
        for name, axes in self.dims.items():
            if name not in shapes:
                if known_only:  # may name a derived quantity, checked once the transform has run
                    continue
                raise ValueError(
                    f"dims names variable {name!r}, which is neither sampled nor derived ({sorted(shapes)})"
                )
            shape = shapes[name]
            if len(axes) != len(shape):
                raise ValueError(
                    f"dims[{name!r}] has {len(axes)} names for a variable of shape {shape}; give {len(shape)}"
                )
            for axis, length in zip(axes, shape, strict=True):
                labels = self.coords.get(axis)
                if labels is not None and len(labels) != length:
                    raise ValueError(f"coords[{axis!r}] has {len(labels)} labels; {name} has {length} along {axis!r}")

    def derive(self, points: Tensor) -> dict[str, Tensor]:
        """The transform at `points` (n, *event): {name: Tensor[n, ...]}, checked (no gradient kept)."""
        if self.transform is None:
            return {}
        with torch.no_grad():
            outputs = self.transform(points)
        if not isinstance(outputs, Mapping):
            raise TypeError(
                "transform must return a dict {name: Tensor[n, ...]} of derived quantities; "
                f"got {type(outputs).__name__}"
            )
        sampled = set(self.shapes or {"x": ()})
        n = points.shape[0]
        checked = {}
        for name, values in outputs.items():
            _check_identifier(name, "transform output")
            if name in sampled:
                raise ValueError(f"transform output {name!r} has the name of a sampled variable; rename it")
            if not isinstance(values, Tensor):
                raise TypeError(f"transform output {name!r} must be a Tensor[n, ...]; got {type(values).__name__}")
            if values.ndim == 0 or values.shape[0] != n:
                raise ValueError(
                    f"transform output {name!r} has shape {tuple(values.shape)} for {n} points; "
                    f"expected one row per point, shape ({n}, ...)"
                )
            checked[name] = values.detach()
        return checked

    def check(self, init: Tensor) -> None:
        """Everything that can be checked before sampling, at the initial points (n_chains, *event)."""
        self.check_event(init.shape[1:])
        derived = self.derive(init)
        shapes = {
            **(self.shapes or {"x": tuple(init.shape[1:])}),
            **{k: tuple(v.shape[1:]) for k, v in derived.items()},
        }
        self._check_dims(shapes, known_only=False)

    def attrs(self, event_shape: Sequence[int], derived: Mapping[str, Tensor]) -> dict[str, Any]:
        """What a Trace keeps in its attrs to rebuild the named variables (JSON-able)."""
        attrs: dict[str, Any] = {}
        if self.shapes is not None:
            attrs["names"] = {name: list(shape) for name, shape in self.shapes.items()}
            attrs["event_shape"] = list(event_shape)
        if self.coords:
            attrs["coords"] = self.coords
        if self.dims:
            attrs["dims"] = self.dims
        if derived:
            attrs["derived"] = list(derived)
        return attrs

    def apply(self, result):
        """A Trace with these names and the derived quantities of its draws (anything else unchanged)."""
        if self.empty or not hasattr(result, "draws") or not hasattr(result, "to_arviz"):
            return result
        return result.with_names(self.shapes, coords=self.coords, dims=self.dims, transform=self.transform)


def parse_names(names) -> dict[str, tuple[int, ...]] | None:
    """`names` as {variable: shape}: from "mu, tau, theta[8]", a list of such entries, or a dict of shapes."""
    if names is None:
        return None
    if isinstance(names, str):
        entries = [entry for entry in names.split(",") if entry.strip()] if "[" not in names else _split_top(names)
        return parse_names(entries)
    if isinstance(names, Mapping):
        shapes = {}
        for name, shape in names.items():
            _check_identifier(name, "names")
            shapes[name] = _shape(shape, name)
        if not shapes:
            raise ValueError("names is empty; give at least one variable name, e.g. names='mu, tau'")
        return shapes
    if isinstance(names, Sequence):
        shapes = {}
        for entry in names:
            if not isinstance(entry, str):
                raise TypeError(f"names entries must be strings like 'mu' or 'theta[8]'; got {entry!r}")
            match = _ENTRY.match(entry)
            if match is None:
                raise ValueError(f"names entry {entry!r} is not NAME or NAME[SIZE, ...] (e.g. 'theta[8]')")
            name, sizes = match.group(1), match.group(2)
            if name in shapes:
                raise ValueError(f"names lists {name!r} twice; every variable needs its own name")
            shape = () if sizes is None else tuple(int(s) for s in sizes.split(",") if s.strip())
            shapes[name] = _shape(shape, name)
        return parse_names(shapes)
    raise TypeError(
        f"names must be a string 'mu, tau, theta[8]', a list of such names or a dict of shapes; got {names!r}"
    )


def _split_top(text: str) -> list[str]:
    """Split on the commas outside brackets: 'a, b[2, 3]' -> ['a', 'b[2, 3]']."""
    entries, depth, current = [], 0, ""
    for char in text:
        depth += (char == "[") - (char == "]")
        if char == "," and depth == 0:
            entries.append(current)
            current = ""
        else:
            current += char
    entries.append(current)
    return [entry for entry in entries if entry.strip()]


def _shape(shape, name: str) -> tuple[int, ...]:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    ok = isinstance(shape, Sequence) and not isinstance(shape, str)
    ok = ok and all(isinstance(size, int) and not isinstance(size, bool) and size >= 1 for size in shape)
    if not ok:
        raise ValueError(f"names: the shape of {name!r} must be () or a tuple of integers >= 1; got {shape!r}")
    return tuple(shape)


def _check_identifier(name, what: str) -> None:
    if not isinstance(name, str) or not name.isidentifier() or name in _RESERVED:
        raise ValueError(f"{what}: {name!r} is not a usable variable name (a Python identifier, not {_RESERVED})")


def _parse_coords(coords) -> dict[str, list]:
    if coords is None:
        return {}
    if not isinstance(coords, Mapping):
        raise TypeError(f"coords must be a dict {{dim: labels}}; got {type(coords).__name__}")
    parsed = {}
    for dim, labels in coords.items():
        _check_identifier(dim, "coords")
        if isinstance(labels, str) or not isinstance(labels, Sequence | np.ndarray):
            raise TypeError(f"coords[{dim!r}] must be a list of labels; got {labels!r}")
        values = [label.item() if isinstance(label, np.generic) else label for label in labels]
        if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in values):
            raise TypeError(f"coords[{dim!r}] labels must be strings or numbers; got {values!r}")
        if len(set(values)) != len(values):
            raise ValueError(f"coords[{dim!r}] repeats a label; every label along a dimension must be distinct")
        parsed[dim] = values
    return parsed


def _parse_dims(dims) -> dict[str, list[str]]:
    if dims is None:
        return {}
    if not isinstance(dims, Mapping):
        raise TypeError(f"dims must be a dict {{variable: [dim names]}}; got {type(dims).__name__}")
    parsed = {}
    for name, axes in dims.items():
        if isinstance(axes, str):
            axes = [axes]
        if not isinstance(axes, Sequence):
            raise TypeError(f"dims[{name!r}] must be a list of dimension names; got {axes!r}")
        for axis in axes:
            _check_identifier(axis, f"dims[{name!r}]")
        parsed[name] = list(axes)
    return parsed


def _describe(name: str, shape: tuple[int, ...]) -> str:
    return name if not shape else f"{name}[{', '.join(map(str, shape))}]"


def split_event(draws: np.ndarray, shapes: Mapping[str, Sequence[int]]) -> dict[str, np.ndarray]:
    """(chain, draw, *event) -> {name: (chain, draw, *shape)}, the event flattened in C order."""
    flat = draws.reshape(*draws.shape[:2], -1)
    arrays, start = {}, 0
    for name, shape in shapes.items():
        size = math.prod(shape)
        arrays[name] = flat[:, :, start : start + size].reshape(*draws.shape[:2], *shape)
        start += size
    return arrays


def join_event(arrays: Mapping[str, np.ndarray], event_shape: Sequence[int]) -> np.ndarray:
    """The inverse of `split_event`: named (chain, draw, *shape) arrays -> (chain, draw, *event)."""
    parts = [array.reshape(*array.shape[:2], -1) for array in arrays.values()]
    flat = np.concatenate(parts, axis=2)
    return flat.reshape(*flat.shape[:2], *event_shape)
