"""Training checkpoints: every piece of state needed to continue bit-identically, in a pickle-free form.

A checkpoint is a dict of tensors and plain Python (loadable with `torch.load(weights_only=True)`):
model and optimiser state, the method's state (replay buffer, chain state, NCE log-normaliser), the
training generator's RNG state, the iteration count and the history so far. Writes are atomic:
temporary file in the same folder, fsync, then os.replace.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from ebm_samplers.checkpoint import load_plain

FORMAT = "ebm-samplers-training/1"


def save_checkpoint(path: str | os.PathLike, checkpoint: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save({"format": FORMAT, **checkpoint}, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training checkpoint at {path}")
    checkpoint = load_plain(path, "training checkpoint")
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ValueError(f"{path} is not an ebm-samplers training checkpoint (expected format {FORMAT!r})")
    return checkpoint


def plain_options(options: dict) -> dict:
    """The options that survive weights_only loading (numbers, strings, bools, None); others by repr."""
    plain = {}
    for name, value in options.items():
        plain[name] = value if value is None or isinstance(value, (bool, int, float, str)) else repr(value)
    return plain
