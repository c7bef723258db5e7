"""Training checkpoints: every piece of state needed to continue bit-identically, in a pickle-free form.

A checkpoint is a dict of tensors and plain Python (loadable with `torch.load(weights_only=True)`):
model and optimiser state, the method's state (replay buffer, chain state, NCE log-normaliser), the
training generator's RNG state, the iteration count and the history so far. Writes are atomic:
temporary file in the same folder, fsync, os.replace, fsync of the folder (`ebm_samplers._atomic`).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ebm_samplers._atomic import atomic_write
from ebm_samplers.checkpoint import load_plain

FORMAT = "ebm-samplers-training/1"


def save_checkpoint(path: str | os.PathLike, checkpoint: dict) -> Path:
    return atomic_write(path, lambda temporary: torch.save({"format": FORMAT, **checkpoint}, temporary))


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
