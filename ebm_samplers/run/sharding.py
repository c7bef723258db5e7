"""Chains sharded: one run's chains cut into shards, each an ordinary local run with its own seed.

The N chains are cut into W contiguous shards (the first N mod W get one chain more); shard r runs the local
run on its chains with the seed `shard_seed(seed, r)`, and `join_shards` puts the results back together in shard
order. `run_across_ranks` runs this rank's shard of a `torch.distributed` job (rank 0 gathers and returns all
chains); `run_shards` runs every shard in this process, one after another: the same draws. Both wrap the local
run they are given; neither re-enters `sample()`. The public face of this is `ebm_samplers.distributed`.
"""

from __future__ import annotations

import atexit
import contextvars
import dataclasses
import hashlib
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist

from ebm_samplers.moments import Moments
from ebm_samplers.run.options import RunOptions
from ebm_samplers.trace import Trace

LocalRun = Callable[[RunOptions], Trace | Moments]

# Set by `local_only()`: the user asked for this process alone to run, even under torchrun.
_LOCAL_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("ebm_samplers_local_only", default=False)


def launched_by_torchrun() -> bool:
    """True when the environment describes a multi-process job (torchrun sets these variables)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "MASTER_ADDR" in os.environ


def should_shard() -> bool:
    """True when sample() should split its chains across ranks."""
    if _LOCAL_ONLY.get():
        return False
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    return launched_by_torchrun()


@contextmanager
def local_only() -> Iterator[None]:
    """Within this block sample() runs in this process only, even under torchrun (e.g. rank 0 evaluating
    a model after the other ranks are done)."""
    token = _LOCAL_ONLY.set(True)
    try:
        yield
    finally:
        _LOCAL_ONLY.reset(token)


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
    exception"; how often, with and without the barrier: `docs/performance.md`). Scripts that destroy the
    process group themselves should call it first.
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


def shard_options(options: RunOptions, shard: int, n_shards: int, seed: int) -> RunOptions:
    """The options of shard `shard` of `n_shards` of a run with base `seed`."""
    start, stop = shard_bounds(options.chain_count, n_shards, shard)
    return options.for_shard(start, stop, shard_seed(seed, shard), f".shard{shard}-of-{n_shards}")


def run_shards(run: LocalRun, options: RunOptions, n_shards: int) -> Trace | Moments:
    """Every shard run in this process, one after another: the draws of a run over `n_shards` ranks."""
    seed = secrets.randbits(63) if options.seed is None else options.seed
    shards = [run(shard_options(options, shard, n_shards, seed)) for shard in range(n_shards)]
    return join_shards(shards, seed)


def run_across_ranks(run: LocalRun, options: RunOptions) -> Trace | Moments:
    """Run this rank's shard; rank 0 returns all chains, other ranks their own shard."""
    init_process_group(options.init.device if options.init is not None else options.device)
    world, me = dist.get_world_size(), dist.get_rank()
    seed = _seed_agreed_by_all_ranks(options.seed)
    local = run(shard_options(options, me, world, seed))
    gathered: list[Any] | None = [None] * world if me == 0 else None
    dist.gather_object(_on_cpu(local), gathered, dst=0)
    settle()
    if me != 0:
        return local
    return join_shards(gathered, seed)


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
