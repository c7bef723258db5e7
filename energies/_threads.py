"""Keeping torch's thread count through numba's parallel loops.

numba's OpenMP threading layer sets the process's OpenMP thread count to its own (NUMBA_NUM_THREADS, all cores)
the first time a `parallel=True` function runs, and torch's CPU operations read that same OpenMP setting: a
user's `torch.set_num_threads(1)` was silently replaced by 2 after the first KSD, MMD or numba-backend run in the
process, and every later torch operation ran on 2 threads (measured: a second PCD fit in the same process took
3 to 6 times the CPU seconds of the first while another process shared the cores). Every call into a numba
parallel loop goes through `torch_threads_kept`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads_kept() -> Iterator[None]:
    """Run the block, then give torch back the thread count it had before (if the block changed it)."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
