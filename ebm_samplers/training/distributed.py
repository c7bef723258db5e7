"""PCD training with DistributedDataParallel under `torchrun`: one model, one replay buffer per rank.

When `fit(method="pcd")` runs in a multi-process job (torchrun's environment, or a process group the
script created), every rank

* draws `batch_size / W` data rows per step, with replacement from the FULL data set, using its own
  generator seeded by `shard_seed(seed, rank)`; the W shares together are one batch of `batch_size`, as
  in a single-process run, and DDP averages the W gradients, so the update is the gradient of the loss
  over the whole batch;
* keeps its OWN replay buffer (`buffer_size` entries per rank) and persistent chains, moved by the
  same rank-derived generator, so the ranks' negatives are independent;
* optionally, every `buffer_mixing_every` steps, trades a random `buffer_mixing_fraction` of its buffer
  with its ring neighbour (rank r receives rank r-1's chosen rows through `all_gather`), so a buffer that
  lost a mode can get it back from another rank.

The initial weights come from `seed` on every rank (DDP also broadcasts rank 0's). A checkpoint holds the
model, the optimiser (identical on all ranks) and EVERY rank's method state and generator state,
gathered to rank 0, which writes the one file atomically; `resume=` reads it on rank 0 and scatters each
rank's part back, so resuming needs the same world size. Only rank 0 writes and shows progress; every
rank returns a `FitResult` with the same weights and its own last samples.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ebm_samplers import distributed
from ebm_samplers.training.checkpoint import load_checkpoint, save_checkpoint


def wants_data_parallel() -> bool:
    """True when fit() runs in a multi-process job (under torchrun, or inside a process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    return distributed.launched_by_torchrun()


def local_module(energy: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper. Samplers need only input gradients: running them through DDP
    would make its reducer wait for a parameter backward that never comes."""
    return energy.module if isinstance(energy, DistributedDataParallel) else energy


@dataclass
class DataParallelRun:
    """This rank's part of a data-parallel training run (see module docstring)."""

    rank: int
    world_size: int
    seed: int
    buffer_mixing_every: int | None
    buffer_mixing_fraction: float

    @classmethod
    def join(
        cls, method: str, seed: int, device: torch.device, buffer_mixing_every: int | None, buffer_mixing_fraction
    ) -> DataParallelRun:
        if method != "pcd":
            raise ValueError(
                f"data-parallel training (under torchrun) supports method='pcd' only; got {method!r}. "
                "Run other methods in a single process"
            )
        if buffer_mixing_every is not None and (
            isinstance(buffer_mixing_every, bool) or not isinstance(buffer_mixing_every, int) or buffer_mixing_every < 1
        ):
            raise ValueError(f"buffer_mixing_every must be None or an integer >= 1; got {buffer_mixing_every!r}")
        if not isinstance(buffer_mixing_fraction, (int, float)) or not 0 < buffer_mixing_fraction <= 1:
            raise ValueError(f"buffer_mixing_fraction must be in (0, 1]; got {buffer_mixing_fraction!r}")
        distributed.init_process_group(device)
        agreed = [seed]
        dist.broadcast_object_list(agreed, src=0)
        if agreed[0] != seed:
            raise ValueError(f"every rank must train with the same seed; rank 0 has {agreed[0]}, this rank {seed}")
        return cls(dist.get_rank(), dist.get_world_size(), seed, buffer_mixing_every, float(buffer_mixing_fraction))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def rank_seed(self) -> int:
        """The seed of this rank's generator (batches, sampler noise, buffer)."""
        return distributed.shard_seed(self.seed, self.rank)

    def local_batch_size(self, batch_size: int) -> int:
        if batch_size % self.world_size != 0:
            raise ValueError(
                f"batch_size {batch_size} must be divisible by the number of ranks ({self.world_size}): each "
                "rank draws an equal share of every batch"
            )
        return batch_size // self.world_size

    def wrap(self, energy: nn.Module, device: torch.device) -> nn.Module:
        device_ids = [device] if device.type == "cuda" else None
        return DistributedDataParallel(energy, device_ids=device_ids)

    def finish(self) -> None:
        """Wait until every rank has finished training, with no collective work left in flight
        (`distributed.settle`)."""
        distributed.settle()

    def after_step(self, iteration: int, trainer, generator: torch.Generator) -> None:
        if self.buffer_mixing_every is not None and (iteration + 1) % self.buffer_mixing_every == 0:
            self._mix_buffers(trainer.buffer, generator)

    def _mix_buffers(self, buffer, generator: torch.Generator) -> None:
        """Rank r overwrites a random fraction of its filled rows with rank r-1's randomly chosen rows."""
        filled = torch.tensor([len(buffer)], device=buffer.device)
        dist.all_reduce(filled, op=dist.ReduceOp.MIN)  # the same row count on every rank, as all_gather needs
        n = int(int(filled) * self.buffer_mixing_fraction)
        if n == 0:
            return
        state = buffer.state_dict()
        chosen = torch.randperm(len(buffer), generator=generator, device=generator.device)[:n].to(buffer.device)
        outgoing = torch.cat([state["samples"][chosen].reshape(n, -1), state["energy"][chosen, None]], dim=1)
        received = [torch.empty_like(outgoing) for _ in range(self.world_size)]
        dist.all_gather(received, outgoing.contiguous())
        incoming = received[(self.rank - 1) % self.world_size]
        state["samples"][chosen] = incoming[:, :-1].reshape(n, *buffer.event_shape)
        state["energy"][chosen] = incoming[:, -1]
        buffer.load_state_dict(state)

    def save(self, path: str | os.PathLike, snapshot: dict) -> None:
        """Gather every rank's method and generator state to rank 0, which writes one checkpoint."""
        mine = {"method_state": _to_cpu(snapshot.pop("method_state")), "generator": snapshot.pop("generator")}
        gathered: list | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(mine, gathered, dst=0)
        if self.is_main:
            save_checkpoint(path, {**snapshot, "world_size": self.world_size, "ranks": gathered})
        dist.barrier()  # no rank returns (and perhaps reads the file) before it is written

    def load(self, path: str | os.PathLike) -> dict:
        """Rank 0 reads the checkpoint and scatters each rank's method and generator state back."""
        shared: list = [None]
        parts: list | None = None
        if self.is_main:
            saved = load_checkpoint(path)
            if saved.get("world_size") != self.world_size:
                raise ValueError(
                    f"checkpoint {path} was written by {saved.get('world_size', 1)} rank(s); resume it with "
                    f"{saved.get('world_size', 1)}, not {self.world_size}"
                )
            parts = saved.pop("ranks")
            shared = [saved]
        dist.broadcast_object_list(shared, src=0)
        mine: list = [None]
        dist.scatter_object_list(mine, parts, src=0)
        return {**shared[0], **mine[0]}


def _to_cpu(value):
    if isinstance(value, Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(item) for item in value)
    return value


def check_single_process_checkpoint(saved: dict, path) -> None:
    """A data-parallel checkpoint holds one state per rank; a single-process run cannot resume it."""
    if "ranks" in saved:
        raise ValueError(
            f"checkpoint {path} was written by {saved['world_size']} ranks; resume it under torchrun with "
            f"--nproc_per_node={saved['world_size']}"
        )
