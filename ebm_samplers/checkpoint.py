"""Checkpoint and resume for long runs: `sample(..., checkpoint=PATH, checkpoint_every=N)`.

Semantics. Every `N` transitions (warm-up included) and at the end, the run writes PATH atomically
(temporary file, fsync, rename, fsync of the folder), so a kill at any moment leaves the previous
checkpoint intact. Calling `sample` again with `checkpoint=PATH` and the same arguments continues from
PATH when it exists, and returns exactly what the uninterrupted run would have returned: on CPU the
draws are bit-identical (same seed, same kernel arithmetic, generator state restored). A finished run's
checkpoint resumes to its result at once. Arguments that would change the draws (sampler and its
parameters, energy name and parameters, initial points, seed, warmup, n_steps, thin, dtype, device,
on_nonfinite, keep, stream) are compared, and a mismatch raises a `ValueError` naming them.
With `seed=None`, the seed stored in the checkpoint is used.

Contents (tensors and plain Python only; read with `torch.load(weights_only=True)`, never unpickled):
every field of the kernel's `State` dataclass (`dataclasses.fields`; a dense metric as its tensors and the
batch shape, rebuilt exactly on restore), the `torch.Generator` state, the
step counter, and `state_dict()` of each stateful component of the run (the recorder, the non-finite
guard, a kernel that has `state_dict`, and whatever else the run loop registers, e.g. adaptation).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from ebm_samplers._atomic import atomic_write
from ebm_samplers.kernels._kinetic import DenseMetric
from ebm_samplers.kernels.base import State

FORMAT = "ebm-samplers/sample-checkpoint"
_DENSE_METRIC = "dense_metric"
VERSION = 1


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, saved: dict[str, Any]) -> None: ...


class Checkpointer:
    """Saves and restores one run's progress at `path` every `every` transitions."""

    def __init__(self, path: str | os.PathLike, every: int, run: dict[str, Any]):
        self.path = Path(path)
        if self.path.is_dir():
            raise ValueError(f"checkpoint={str(path)!r} is a folder; give a file path such as run.ckpt")
        self.every = every
        self.run = plain(run)

    def due(self, steps_done: int, total: int) -> bool:
        return steps_done % self.every == 0 or steps_done == total

    def save(self, steps_done: int, state: State, generator: torch.Generator, components: Mapping[str, Stateful]):
        fields = {}
        for field in dataclasses.fields(state):
            value = getattr(state, field.name)
            if isinstance(value, DenseMetric):
                value = {_DENSE_METRIC: value.tensors(), "shape": list(value.shape)}
            elif not isinstance(value, (Tensor, int, float, bool, str, type(None))):
                raise TypeError(
                    f"cannot checkpoint {type(state).__name__}.{field.name} of type {type(value).__name__}: "
                    "state fields must be tensors or plain numbers"
                )
            fields[field.name] = value
        payload = {
            "format": FORMAT,
            "version": VERSION,
            "run": self.run,
            "step": steps_done,
            "state_type": type(state).__qualname__,
            "state": fields,
            "generator": generator.get_state(),
            "components": {name: component.state_dict() for name, component in components.items()},
        }
        payload = _map_tensors(payload, lambda t: t.detach().cpu().clone())  # clone: a view would save its base
        atomic_write(self.path, lambda temporary: torch.save(payload, temporary))

    def load(self) -> dict[str, Any] | None:
        """The saved checkpoint if `path` exists (checked against this run), else None."""
        if not self.path.exists():
            return None
        payload = read_checkpoint(self.path)
        differences = [
            f"{key}: other values" if _is_digest(self.run.get(key)) else
            f"{key}: checkpoint has {payload['run'].get(key)!r}, this call {self.run.get(key)!r}"
            for key in sorted(set(payload["run"]) | set(self.run))
            if payload["run"].get(key) != self.run.get(key)
        ]  # fmt: skip
        if differences:
            raise ValueError(
                f"checkpoint {self.path} belongs to a different run ({'; '.join(differences)}); pass the same "
                "arguments to resume it, or delete the file to start afresh"
            )
        return payload

    def restore(
        self,
        payload: dict[str, Any],
        template: State,
        generator: torch.Generator,
        components: Mapping[str, Stateful],
    ) -> tuple[State, int]:
        """Load the saved state into `generator` and `components`; return the state and the steps done."""
        device = template.position.device
        if payload["state_type"] != type(template).__qualname__:
            raise ValueError(
                f"checkpoint {self.path} holds a {payload['state_type']} state; this kernel uses "
                f"{type(template).__qualname__}"
            )
        fields = _map_tensors(payload["state"], lambda t: t.to(device))
        for name, value in fields.items():
            if isinstance(value, dict) and _DENSE_METRIC in value:
                fields[name] = DenseMetric.from_tensors(value[_DENSE_METRIC], value["shape"])
        state = dataclasses.replace(template, **fields)
        generator.set_state(payload["generator"])
        saved = payload["components"]
        if set(saved) != set(components):
            raise ValueError(
                f"checkpoint {self.path} has state for {sorted(saved)}; this run needs {sorted(components)}"
            )
        for name, component in components.items():
            component.load_state_dict(_map_tensors(saved[name], lambda t: t.to(device)))
        return state, int(payload["step"])


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint's contents, loaded without unpickling arbitrary objects (`weights_only=True`)."""
    payload = load_plain(path, "checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not an ebm-samplers sample() checkpoint")
    if payload.get("version") != VERSION:
        raise ValueError(f"checkpoint {path} has format version {payload.get('version')}; this version reads {VERSION}")
    return payload


def stored_seed(path: str | os.PathLike) -> int | None:
    """The seed of the run saved at `path`, or None when there is no checkpoint yet."""
    return int(read_checkpoint(path)["run"]["seed"]) if Path(path).exists() else None


def fingerprint(*values: Any) -> str:
    """SHA-256 over tensors (shape, dtype, bytes) and the tensors of modules' state_dicts."""
    digest = hashlib.sha256()
    for value in values:
        tensors = value.state_dict().items() if isinstance(value, torch.nn.Module) else [("", value)]
        for name, tensor in tensors:
            if isinstance(tensor, Tensor):
                tensor = tensor.detach().cpu().contiguous()
                digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
                digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _is_digest(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def plain(value: Any) -> Any:
    """Numbers, strings, lists and dicts as they are; anything else by its type (what weights_only can load)."""
    if isinstance(value, (bool, int, float, str, type(None))):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, Tensor):
        return value.detach().cpu().tolist()
    return f"{type(value).__module__}.{type(value).__qualname__}"


def _map_tensors(value: Any, function: Callable[[Tensor], Tensor]) -> Any:
    if isinstance(value, Tensor):
        return function(value)
    if isinstance(value, dict):
        return {key: _map_tensors(item, function) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_map_tensors(item, function) for item in value)
    return value


def load_plain(path: str | os.PathLike, what: str) -> Any:
    """`torch.load(path, weights_only=True)` on the CPU, with a clear error for a foreign, damaged or unsafe file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # weights_only refused an object: name it, never load it
        if "Unsupported operand" in str(error):  # not a pickle at all: a text or other foreign file
            raise ValueError(
                f"cannot read {what} {path}: it is not a file written by torch.save; delete it to start afresh"
            ) from error
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
        unsafe = found.group(1) if found else "objects other than tensors and plain Python values"
        raise ValueError(
            f"cannot read {what} {path}: it holds {unsafe}, and {what}s are never unpickled; delete it to start afresh"
        ) from error
    except Exception as error:  # a foreign or damaged file: say which and what to do
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"cannot read {what} {path}: {first_line}; delete it to start afresh") from error
