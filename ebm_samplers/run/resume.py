"""Checkpoints of a run: what identifies it, what a checkpoint holds, and continuing from one.

A checkpoint is accepted only by a call with the same arguments (`identity`); it holds the kernel state, the
generator and every stateful part of the run by name (`stateful_parts`); see `ebm_samplers.checkpoint`.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor

from ebm_samplers.checkpoint import Checkpointer, Stateful, fingerprint
from ebm_samplers.kernels.base import Kernel, State
from ebm_samplers.run.options import RunOptions


def stateful_parts(recorder: Stateful, guard: Stateful, adaptation: Stateful, kernel: Kernel) -> dict[str, Stateful]:
    """Everything stateful that a checkpoint must hold, by name: each has state_dict()/load_state_dict()."""
    parts: dict[str, Any] = {"recorder": recorder, "nonfinite": guard, "adaptation": adaptation}
    if hasattr(kernel, "state_dict") and hasattr(kernel, "load_state_dict"):
        parts["kernel"] = kernel
    elif hasattr(getattr(kernel, "buffer", None), "state_dict"):  # the persistent kernel's replay buffer
        parts["kernel_buffer"] = kernel.buffer
    return parts


def identity(options: RunOptions, attrs: dict[str, Any], init: Tensor) -> dict[str, Any]:
    """What a checkpoint must agree on to be resumed by this call."""
    run = {**attrs, "init": fingerprint(init), "energy_parameters": fingerprint(options.energy), "keep": options.keep}
    run |= {"on_nonfinite": options.on_nonfinite, "device": init.device.type, "dtype": str(init.dtype)}
    run |= {
        "stream": None if options.stream is None else os.fspath(options.stream),
        "stream_every": options.stream_every,
    }
    run |= {"adapt_step_size": options.adapt_step_size, "target_acceptance": options.target_acceptance}
    run |= {"step_size_per_chain": options.step_size_per_chain, "adapt_mass_matrix": options.adapt_mass_matrix}
    run |= {"compile_step": options.compile_step}  # compiled arithmetic rounds differently: no bit-identical resume
    return run


def resume(
    options: RunOptions,
    attrs: dict[str, Any],
    init: Tensor,
    state: State,
    generator: torch.Generator,
    parts: dict[str, Stateful],
) -> tuple[Checkpointer | None, State, int]:
    """The run's checkpointer (None without `checkpoint=`), and the state and step to continue from."""
    if options.checkpoint is None:
        return None, state, 0
    checkpointer = Checkpointer(options.checkpoint, options.checkpoint_every, identity(options, attrs, init))
    saved = checkpointer.load()
    if saved is None:
        return checkpointer, state, 0
    state, start = checkpointer.restore(saved, state, generator, parts)
    return checkpointer, state, start
