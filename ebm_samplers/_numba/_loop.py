"""A kernel's numba loop, one machine-code version per dtype of the draws it writes, made on first use.

Every loop takes the same leading arguments (`loop_arguments`) and then its kernel's own. The draws are written
in the trace's dtype (float64 for float64 chains, else float32), so a float32 run neither holds its draws in
float64 nor converts them afterwards: that halves the memory of the kept draws and saves the conversion
(measured: `docs/performance.md`, "numba path"). Other arithmetic is float64.

Each version is compiled for numba's first-class function type of `grad_fn` (one version serves every energy)
with `cache=True`, so it is compiled once and then loaded from `__pycache__`. numba keys that cache on the
loop's own source file, not on the helpers compiled into it (`_blocks.py`, `_moves.py`, `_random.py`), so the
helpers' source digest is part of each loop's cache name: a changed helper compiles the loops afresh instead of
loading old ones.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numba
import numpy as np
from numba import types

from energies.numba_energy import function_types

#: the dtypes a loop can write its draws in
DRAW_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: the modules whose functions numba compiles into every loop
HELPER_FILES = ("_blocks.py", "_moves.py", "_random.py")


def helpers_digest() -> str:
    """A short digest of the helpers' source, which names each loop's cache entries."""
    digest = hashlib.sha256()
    for name in HELPER_FILES:
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()[:16]


def loop_arguments(draws_dtype) -> tuple:
    """The leading arguments of every numba loop:

    (grad_fn, init (n, d), step_size (n,), seeds (n,) of the chains' random streams, warmup, n_steps, thin,
     draws (n, keep, d) in `draws_dtype`, energy, acceptance_rate (n, keep), accepted, nonfinite (n, keep),
     first_failure (n,))
    """
    return (
        function_types()[1],
        types.float64[:, ::1],
        types.float64[::1],
        types.int64[::1],
        types.int64,
        types.int64,
        types.int64,
        numba.from_dtype(np.dtype(draws_dtype))[:, :, ::1],
        types.float64[:, ::1],
        types.float64[:, ::1],
        types.boolean[:, ::1],
        types.boolean[:, ::1],
        types.int64[::1],
    )


class NumbaLoop:
    """`loop[dtype]` is `function` compiled (parallel, cached) for draws of that dtype, on first use."""

    def __init__(self, function, kernel_arguments: tuple = ()):
        # numba names the cache files after the qualified name: with the helpers' digest in it, a loop compiled
        # with other helpers is never loaded
        function.__qualname__ = f"{function.__name__}_{helpers_digest()}"
        self.function = function
        self.kernel_arguments = kernel_arguments
        self._versions: dict[np.dtype, object] = {}

    def __getitem__(self, draws_dtype):
        dtype = np.dtype(draws_dtype)
        if dtype not in DRAW_DTYPES:
            raise TypeError(f"numba loops write float32 or float64 draws; got {dtype}")
        if dtype not in self._versions:
            signature = numba.void(*loop_arguments(dtype), *self.kernel_arguments)
            self._versions[dtype] = numba.njit(signature, parallel=True, cache=True)(self.function)
        return self._versions[dtype]
