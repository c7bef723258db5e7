"""`RunOptions`: every argument of `sample()`, checked once and frozen.

`RunOptions.build` holds all of `sample()`'s argument checks (in the order a user meets them) and the hint for
a misspelt `sample()` argument that landed among the sampler's keywords. Everything downstream (the recorder,
the backend choice, the loop, sharding across ranks) reads a `RunOptions` and checks nothing again.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import secrets
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ebm_samplers._nonfinite import ResetPoints, check_policy
from ebm_samplers._validate import check_count, check_flag, check_positive
from ebm_samplers.adaptation.warmup import default_step_size_per_chain, default_warmup
from ebm_samplers.checkpoint import stored_seed
from ebm_samplers.kernels._resolve import resolve_kernel
from ebm_samplers.kernels.base import Kernel
from ebm_samplers.naming import Naming
from ebm_samplers.stopping import Converged, check_until
from energies import Energy, as_energy

KEEP = ("draws", "moments")
BACKENDS = ("auto", "torch", "numba")


@dataclass(frozen=True)
class RunOptions:
    """The validated arguments of one `sample()` call (see `sample` for their meaning).

    The fields are named as `sample()`'s arguments; `kernel` is the sampler resolved from `sampler` and
    `sampler_params`. `seed` may still be None: `resolved_seed()` picks it when the run starts.
    """

    energy: Energy
    sampler: str | Kernel
    kernel: Kernel
    init: Tensor | None
    n_chains: int | None
    n_steps: int
    warmup: int
    thin: int
    seed: int | None
    progress: bool | None
    device: torch.device | None
    dtype: torch.dtype | None
    adapt_step_size: bool
    target_acceptance: float | None
    step_size_per_chain: bool  # resolved: None in sample() becomes True or False here
    adapt_mass_matrix: bool
    backend: str
    on_nonfinite: str
    reset: ResetPoints | None
    checkpoint: str | os.PathLike | None
    checkpoint_every: int
    stream: str | os.PathLike | None
    stream_every: int
    keep: str
    compile_step: bool
    sampler_params: dict[str, Any] = field(default_factory=dict)
    naming: Naming = field(default_factory=Naming)
    until: Converged | None = None

    @classmethod
    def build(
        cls,
        energy,
        sampler: str | Kernel,
        *,
        init,
        n_chains,
        n_steps,
        warmup,
        thin,
        seed,
        progress,
        device,
        dtype,
        adapt_step_size,
        target_acceptance,
        step_size_per_chain,
        adapt_mass_matrix,
        backend,
        on_nonfinite,
        reset,
        checkpoint,
        checkpoint_every,
        stream,
        stream_every,
        keep,
        compile_step,
        sampler_params: dict[str, Any],
        names=None,
        coords=None,
        dims=None,
        transform=None,
        until: Converged | None = None,
        max_steps: int | None = None,
    ) -> RunOptions:
        """Check every argument; the first one that is wrong raises a one-line error saying what was expected."""
        kernel = _kernel(sampler, sampler_params)
        adapting = {"adapt_step_size": adapt_step_size, "adapt_mass_matrix": adapt_mass_matrix}
        if warmup is None:  # the default: warm up kernels that have something to adapt, for as long as the run
            planned = max_steps if until is not None else n_steps
            valid = isinstance(planned, int) and not isinstance(planned, bool) and planned >= 1
            warmup = default_warmup(kernel, planned, **adapting) if valid else 0  # else the checks below raise
        warmup = check_count(warmup, "warmup", minimum=0)
        adapts = default_warmup(kernel, 1, **adapting) > 0  # has something to adapt, with adaptation on
        if step_size_per_chain is None:
            step_size_per_chain = default_step_size_per_chain(kernel, warmup, adapt_step_size=adapt_step_size)
        n_steps = check_until(
            until, max_steps, n_steps, warmup=warmup, adapts=adapts, keep=keep, stream=stream, checkpoint=checkpoint
        )
        n_steps = check_count(n_steps, "n_steps", minimum=1)
        naming = Naming.build(names, coords, dims, transform)
        if keep == "moments" and not naming.empty:
            raise ValueError("names, coords, dims and transform describe kept draws; keep='moments' keeps none")
        thin = check_count(thin, "thin", minimum=1)
        if n_steps < thin:
            raise ValueError(f"n_steps ({n_steps}) must be at least thin ({thin}) so that one draw is kept")
        on_nonfinite = check_policy(on_nonfinite)
        if keep not in KEEP:
            raise ValueError(f"keep must be 'draws' or 'moments'; got {keep!r}")
        check_flag(compile_step, "compile_step")
        if progress is not None and not isinstance(progress, bool):
            raise TypeError(
                f"progress must be True, False or None (shown on long runs in a terminal); got {progress!r}"
            )
        if keep == "moments" and n_steps // thin < 2:
            raise ValueError(f"keep='moments' needs at least 2 kept draws for a variance; got {n_steps // thin}")
        checkpoint_every = check_count(checkpoint_every, "checkpoint_every", minimum=1)
        stream_every = check_count(stream_every, "stream_every", minimum=1)
        if reset is not None and not callable(reset):
            raise TypeError(f"reset must be a callable reset(n, generator) -> Tensor; got {type(reset).__name__}")
        if reset is not None and on_nonfinite != "reset":
            raise ValueError(f"reset= is used only with on_nonfinite='reset'; got on_nonfinite={on_nonfinite!r}")
        if isinstance(getattr(kernel, "step_size", None), (int, float)):
            check_positive(kernel.step_size, f"{kernel_name(kernel)} step_size")
        if seed is not None:
            seed = check_count(seed, "seed", minimum=0)
            if seed >= 2**64:  # torch.Generator.manual_seed takes 64 bits
                raise ValueError(f"seed must be an integer in [0, 2**64); got {seed}")
        device, dtype = _check_device(device), _check_dtype(dtype)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be 'auto', 'torch' or 'numba'; got {backend!r}")
        _check_init(init, n_chains, device, dtype)
        return cls(
            energy=as_energy(energy),
            sampler=sampler,
            kernel=kernel,
            init=init,
            n_chains=n_chains,
            n_steps=n_steps,
            warmup=warmup,
            thin=thin,
            seed=seed,
            progress=progress,
            device=device,
            dtype=dtype,
            adapt_step_size=adapt_step_size,
            target_acceptance=target_acceptance,
            step_size_per_chain=step_size_per_chain,
            adapt_mass_matrix=adapt_mass_matrix,
            backend=backend,
            on_nonfinite=on_nonfinite,
            reset=reset,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            stream=stream,
            stream_every=stream_every,
            keep=keep,
            compile_step=compile_step,
            sampler_params=dict(sampler_params),
            naming=naming,
            until=until,
        )

    @property
    def total(self) -> int:
        """Transitions in all: warm-up, then sampling."""
        return self.warmup + self.n_steps

    @property
    def n_keep(self) -> int:
        """Kept draws per chain."""
        return self.n_steps // self.thin

    @property
    def plain(self) -> bool:
        """Draws kept in memory, no checkpoint, and a run that stops at the first non-finite state."""
        return self.on_nonfinite == "raise" and self.checkpoint is None and self.stream is None and self.keep == "draws"

    def resolved_seed(self) -> int:
        """The seed given; else the one stored by the checkpoint this run resumes; else a fresh one."""
        if self.seed is not None:
            return self.seed
        stored = stored_seed(self.checkpoint) if self.checkpoint is not None else None
        return secrets.randbits(63) if stored is None else check_count(stored, "seed", minimum=0)

    def for_shard(self, start: int, stop: int, seed: int, suffix: str) -> RunOptions:
        """These options for chains [start, stop) run with `seed`, writing checkpoint/stream paths + `suffix`.

        A sampler given by name gets a kernel of its own, as a separate run would."""
        changes: dict[str, Any] = {"seed": seed}
        if self.init is not None:
            changes["init"], changes["n_chains"] = self.init[start:stop], None
        else:
            changes["n_chains"] = stop - start
        for per_shard_path in ("checkpoint", "stream"):  # each shard writes its own file or folder
            if getattr(self, per_shard_path) is not None:
                changes[per_shard_path] = f"{getattr(self, per_shard_path)}{suffix}"
        if isinstance(self.sampler, str):
            changes["kernel"] = resolve_kernel(self.sampler, self.sampler_params)
        return dataclasses.replace(self, **changes)

    @property
    def chain_count(self) -> int:
        """Chains in the run (from `init`, else `n_chains`)."""
        if self.init is not None:
            return self.init.shape[0]
        if self.n_chains is None:
            raise ValueError("give init (a tensor of shape (n_chains, *event_shape)) or n_chains")
        return self.n_chains


def kernel_name(kernel: Kernel) -> str:
    return kernel.name or type(kernel).__name__


def _kernel(sampler: str | Kernel, sampler_params: dict[str, Any]) -> Kernel:
    try:
        return resolve_kernel(sampler, sampler_params)
    except TypeError as error:  # extra keywords go to the sampler: a misspelt sample() argument lands there too
        hint = _misspelt_run_arguments(sampler_params)
        if not hint:
            raise
        raise TypeError(f"{error} ({hint})") from None


def _misspelt_run_arguments(sampler_params: dict) -> str:
    """'did you mean sample()'s n_chains= for n_chain=?' for keywords that look like sample()'s own."""
    own = [f.name for f in dataclasses.fields(RunOptions) if f.name not in ("kernel", "sampler_params")]
    guesses = []
    for name in sampler_params:
        close = difflib.get_close_matches(name, own, n=1, cutoff=0.8)
        if close:
            guesses.append(f"sample()'s {close[0]}= for {name}=")
    return f"did you mean {', '.join(guesses)}?" if guesses else ""


def _check_device(device) -> torch.device | None:
    """`device` as a torch.device that exists here; a clear error instead of torch's for a typo or a missing GPU."""
    if device is None:
        return None
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be a torch device such as 'cpu', 'cuda' or 'cuda:0'; got {device!r}") from None
    try:
        torch.empty(0, device=device)
    except RuntimeError as error:  # no such GPU, no driver, a build without that backend
        reason = str(error).strip().splitlines()[0].split(". ")[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"device {str(device)!r} is not usable on this machine ({reason})") from None
    return device


def _check_dtype(dtype) -> torch.dtype | None:
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch.dtype such as torch.float32 or torch.float64; got {dtype!r}")
    return dtype


def _check_init(init, n_chains, device: torch.device | None, dtype: torch.dtype | None) -> None:
    """`init` and `n_chains` describe the chains; `device` and `dtype` only place drawn initial points."""
    if init is None:
        if n_chains is None:
            raise ValueError("give init (a tensor of shape (n_chains, *event_shape)) or n_chains")
        check_count(n_chains, "n_chains", minimum=1)
        return
    if n_chains is not None and isinstance(init, Tensor) and init.ndim >= 1 and init.shape[0] != n_chains:
        raise ValueError(f"init has {init.shape[0]} chains but n_chains={n_chains}; give one or make them agree")
    if not isinstance(init, Tensor):
        raise TypeError(f"init must be a torch.Tensor of shape (n_chains, *event); got {type(init).__name__}")
    # device and dtype place drawn initial points; silently ignoring them for a given init would run elsewhere
    other_device = device is not None and (
        device.type != init.device.type or device.index not in (None, init.device.index)
    )
    if other_device or (dtype is not None and dtype != init.dtype):
        raise ValueError(
            f"device={str(device) if device is not None else None!r} and dtype={dtype} describe the N(0, I) "
            f"initial points drawn when init is None, but init is {init.dtype} on {init.device}; "
            "move init itself (init.to(device, dtype)) or leave device and dtype out"
        )
