"""Torch's thread count: kept through numba's parallel loops, and one thread for small steps.

numba's OpenMP threading layer sets the process's OpenMP thread count to its own (NUMBA_NUM_THREADS, all cores)
the first time a `parallel=True` function runs, and torch's CPU operations read that same OpenMP setting: a
user's `torch.set_num_threads(1)` was silently replaced by 2 after the first KSD, MMD or numba-backend run in the
process, and every later torch operation ran on 2 threads (measured: a second PCD fit in the same process took
3 to 6 times the CPU seconds of the first while another process shared the cores). Every call into a numba
parallel loop goes through `torch_threads_kept`.

Small steps. Several of torch's CPU operations (exp, the random normals, reductions) and TorchInductor's generated
C++ loops go parallel on tensors of a few thousand numbers, where waking a second thread costs more than the loop
(a MALA step of 1,000 chains on a 2-D target runs 2-3 times faster on one thread; figures in
docs/performance.md). `TensorSizes` watches a run's first energy and gradient evaluation, `is_small` tells from
it whether every tensor stays below torch's own smallest parallel loop, and `torch_threads` runs a block on a
given number of threads. The same watch records the widest row (last dimension) of the evaluation's tensors,
which tells a compiled step whether SIMD vectors fit its loops (`ebm_samplers._compiled_step`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

#: Elements of torch's own smallest parallel loop (`at::internal::GRAIN_SIZE`): below it no tensor is worth a
#: second thread.
PARALLEL_GRAIN = 32_768


@contextmanager
def torch_threads_kept() -> Iterator[None]:
    """Run the block, then give torch back the thread count it had before (if the block changed it)."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with torch on `count` threads (None: as it is), then give torch back its thread count."""
    with torch_threads_kept():
        if count is not None and count != torch.get_num_threads():
            torch.set_num_threads(count)
        yield


class TensorSizes(TorchDispatchMode):
    """Inside `with TensorSizes() as seen:`, `seen.elements` is the most elements of any tensor an operation
    produced there, and `seen.widest_row` the longest last dimension of any such tensor of two or more dimensions
    (0 if none; forward and backward passes alike): wrapped around a run's first energy and gradient
    evaluation, it sizes the run's steps at no extra evaluation."""

    def __init__(self) -> None:
        super().__init__()
        self.elements = 0
        self.widest_row = 0

    def note(self, tensor: Tensor) -> None:
        """Count `tensor` too (an input, such as the chains' positions, that no operation produced)."""
        self.elements = max(self.elements, tensor.numel())
        if tensor.dim() > 1:
            self.widest_row = max(self.widest_row, tensor.shape[-1])

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, Tensor):
                self.note(leaf)
        return out


def is_small(largest: int, device: torch.device) -> bool:
    """Whether steps whose largest tensor has `largest` elements (`TensorSizes` over one energy and gradient
    evaluation of all chains) are CPU work too small for a second thread: on a CPU, below `PARALLEL_GRAIN`. A
    network energy's hidden layers decide, not only the state: wide ones run slower on one thread."""
    return device.type == "cpu" and largest < PARALLEL_GRAIN
