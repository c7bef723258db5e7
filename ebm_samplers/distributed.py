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

import inspect
from typing import Any

from ebm_samplers._validate import check_count
from ebm_samplers.moments import Moments
from ebm_samplers.run import RunOptions, run_local, sample
from ebm_samplers.run.sharding import (
    init_process_group,
    join_shards,
    launched_by_torchrun,
    local_only,
    rank,
    run_shards,
    settle,
    shard_bounds,
    shard_seed,
    should_shard,
)
from ebm_samplers.trace import Trace

__all__ = [
    "init_process_group",
    "join_shards",
    "launched_by_torchrun",
    "local_only",
    "rank",
    "sample_sharded",
    "settle",
    "shard_bounds",
    "shard_seed",
    "should_shard",
]


def sample_sharded(energy, sampler="mala", *, n_shards: int, **arguments: Any) -> Trace | Moments:
    """`sample(energy, sampler, **arguments)` cut into `n_shards` shards run one after another in this
    process: the same draws as a run over `n_shards` ranks with the same seed (see module docstring)."""
    check_count(n_shards, "n_shards", minimum=1)
    bound = inspect.signature(sample).bind(energy, sampler, **arguments)
    bound.apply_defaults()
    options = RunOptions.build(**bound.arguments)
    return run_shards(run_local, options, n_shards)
