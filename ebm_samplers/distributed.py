"""Chains sharded across `torch.distributed` ranks (e.g. under `torchrun`), reproducibly.

The N chains of a run are cut into W contiguous shards, one per rank (the first N mod W shards get one
chain more). Shard r runs an ordinary single-process `sample()` on its chains with its own random stream,
seeded by `shard_seed(seed, r)`, so

* the same seed and world size give the same draws, on any machine layout;
* `sample_sharded(..., n_shards=W)` in ONE process runs the same shards one after another and returns the
  same draws as a W-rank run: the reference for tests and for users without a cluster.

Rank 0 gathers every shard and returns one `Trace` holding all chains in shard order (the order of a
single-process `sample_sharded` run); diagnostics computed from it (R-hat, ESS) therefore use every chain.
Other ranks return their own shard. Under `torchrun` the process group is created on first use (gloo for
CPU runs, NCCL when the chains live on CUDA, one GPU per rank chosen by LOCAL_RANK).
"""

from __future__ import annotations

import atexit
import contextvars
import dataclasses
import hashlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist

from ebm_samplers.moments import Moments
from ebm_samplers.trace import Trace

# Set while a shard runs, so the sample() it calls runs locally instead of sharding again.
_INSIDE_SHARD: contextvars.ContextVar[bool] = contextvars.ContextVar("ebm_samplers_inside_shard", default=False)


def launched_by_torchrun() -> bool:
    """True when the environment describes a multi-process job (torchrun sets these variables)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "MASTER_ADDR" in os.environ


def should_shard() -> bool:
    """True when sample() should split its chains across ranks."""
    if _INSIDE_SHARD.get():
        return False
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    return launched_by_torchrun()


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else int(os.environ.get("RANK", "0"))


def init_process_group(device: torch.device | str | None = None) -> None:
    """Create the default process group from torchrun's environment, if it does not exist yet."""
    if dist.is_initialized():
        return
    on_cuda = device is not None and torch.device(device).type == "cuda"
    if on_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if on_cuda else "gloo")
    # A process group left for interpreter teardown can abort a rank that exits early ("terminate called
    # without an active exception", seen on the CLI under torchrun): the group we made, we also take down.
    atexit.register(_destroy_process_group)


def _destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def settle() -> None:
    """A barrier after a rank's last collective of a job, so that no rank exits with collective work in flight.

    Beyond synchronising, it drains gloo's queue of work: a rank that exits while a gloo worker thread still
    holds a finished work object can abort at interpreter teardown ("terminate called without an active
    exception"): measured on this 2-core machine under load, two-rank training aborted in 1 of 8 runs without
    it and in none of 28 with it. Scripts that destroy the process group themselves should call it first.
    """
    dist.barrier()


def shard_bounds(n_chains: int, n_shards: int, shard: int) -> tuple[int, int]:
    """Chains [start, stop) of `shard` when `n_chains` are split as evenly as possible."""
    if n_shards < 1 or not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} of {n_shards} is not a valid shard index")
    if n_chains < n_shards:
        raise ValueError(f"{n_chains} chains cannot be split over {n_shards} shards: give at least one chain per rank")
    base, extra = divmod(n_chains, n_shards)
    start = shard * base + min(shard, extra)
    return start, start + base + (1 if shard < extra else 0)


def shard_seed(seed: int, shard: int) -> int:
    """A 63-bit seed for shard `shard`, derived by hashing so nearby seeds give unrelated streams."""
    digest = hashlib.sha256(f"ebm-samplers/shard/{seed}/{shard}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def sample_sharded(energy, sampler="mala", *, n_shards: int, **arguments: Any) -> Trace:
    """`sample(energy, sampler, **arguments)` cut into `n_shards` shards run one after another in this
    process: the same draws as a run over `n_shards` ranks with the same seed (see module docstring)."""
    from ebm_samplers.run import sample

    if isinstance(n_shards, bool) or not isinstance(n_shards, int) or n_shards < 1:
        raise ValueError(f"n_shards must be an integer >= 1; got {n_shards!r}")
    arguments = {"energy": energy, "sampler": sampler, **arguments}
    if arguments.get("seed") is None:
        arguments["seed"] = secrets.randbits(63)
    shards = [_run_shard(sample, arguments, shard, n_shards) for shard in range(n_shards)]
    return join_shards(shards, arguments["seed"])


def sample_distributed(sample_fn, arguments: dict[str, Any]) -> Trace:
    """Run this rank's shard; rank 0 returns all chains, other ranks their own shard."""
    init = arguments.get("init")
    init_process_group(init.device if isinstance(init, torch.Tensor) else arguments.get("device"))
    world, me = dist.get_world_size(), dist.get_rank()
    arguments = dict(arguments)
    arguments["seed"] = _seed_agreed_by_all_ranks(arguments.get("seed"))
    local = _run_shard(sample_fn, arguments, me, world)
    gathered: list[Any] | None = [None] * world if me == 0 else None
    dist.gather_object(_on_cpu(local), gathered, dst=0)
    settle()
    if me != 0:
        return local
    return join_shards(gathered, arguments["seed"])


def join_shards(shards: list[Trace] | list[Moments], seed: int) -> Trace | Moments:
    """One result with the shards' chains in shard order; attrs record the base seed and the sharding.

    Traces join their draws and stats; `Moments` (keep="moments") join their per-chain means, variances and
    stat means, which are per chain and so need no pooling."""
    attrs = dict(shards[0].attrs)
    attrs.update(seed=seed, n_shards=len(shards), shard_seeds=[shard.attrs["seed"] for shard in shards])
    if isinstance(shards[0], Moments):
        return Moments(
            count=shards[0].count,
            mean=torch.cat([shard.mean for shard in shards]),
            variance=torch.cat([shard.variance for shard in shards]),
            stats_mean={name: torch.cat([s.stats_mean[name] for s in shards]) for name in shards[0].stats_mean},
            attrs=attrs,
        )
    stats = {name: torch.cat([shard.stats[name] for shard in shards]) for name in shards[0].stats}
    return Trace(draws=torch.cat([shard.draws for shard in shards]), stats=stats, attrs=attrs)


def _run_shard(sample_fn, arguments: dict[str, Any], shard: int, n_shards: int) -> Trace:
    arguments = dict(arguments)
    init, n_chains = arguments.get("init"), arguments.get("n_chains")
    total = init.shape[0] if isinstance(init, torch.Tensor) else n_chains
    if total is None:
        raise ValueError("give init (a tensor of shape (n_chains, *event_shape)) or n_chains")
    start, stop = shard_bounds(total, n_shards, shard)
    if isinstance(init, torch.Tensor):
        arguments["init"] = init[start:stop]
        arguments["n_chains"] = None
    else:
        arguments["n_chains"] = stop - start
    arguments["seed"] = shard_seed(arguments["seed"], shard)
    for per_shard_path in ("checkpoint", "stream"):  # each shard writes its own file or folder
        if arguments.get(per_shard_path) is not None:
            arguments[per_shard_path] = f"{arguments[per_shard_path]}.shard{shard}-of-{n_shards}"
    with _inside_shard():
        return sample_fn(**arguments)


@contextmanager
def local_only() -> Iterator[None]:
    """Within this block sample() runs in this process only, even under torchrun (e.g. rank 0 evaluating
    a model after the other ranks are done)."""
    with _inside_shard():
        yield


@contextmanager
def _inside_shard() -> Iterator[None]:
    token = _INSIDE_SHARD.set(True)
    try:
        yield
    finally:
        _INSIDE_SHARD.reset(token)


def _seed_agreed_by_all_ranks(seed: int | None) -> int:
    """Rank 0's seed (drawn fresh when None) broadcast to every rank."""
    chosen = [seed if seed is not None else secrets.randbits(63)]
    dist.broadcast_object_list(chosen, src=0)
    return chosen[0]


def _on_cpu(result: Trace | Moments) -> Trace | Moments:
    """The result with every tensor on the CPU, so rank 0 can unpickle it whatever device made it."""
    changes = {}
    for field in dataclasses.fields(result):
        value = getattr(result, field.name)
        if isinstance(value, torch.Tensor):
            changes[field.name] = value.cpu()
        elif isinstance(value, dict) and field.name != "attrs":
            changes[field.name] = {k: v.cpu() for k, v in value.items()}
    return dataclasses.replace(result, **changes)
