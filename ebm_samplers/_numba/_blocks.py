"""Blocks of chains: what every numba loop does around its kernel's transition, written once.

A loop hands each thread blocks of a few neighbouring chains and advances a block step by step, one phase of the
step at a time for every chain of the block (ULA and MALA: the proposals, then the gradients, then the accept
steps; HMC: the momenta, then each leapfrog step, then the accept steps). One chain's transition is a chain of
dependent operations (a gradient waits for the position, which waits for the previous gradient), so a CPU running
one chain at a time mostly waits on latencies (exp, division, storing and reloading the position); the chains of
a block are independent, so it overlaps their work. Each chain keeps its own random stream and does the same
arithmetic in the same order as alone, so its draws depend neither on its block nor on the thread count.

The block size was chosen by measurement (`docs/performance.md`, "numba path").

The helpers here: the block's bounds, rows of a block's arrays, its chains' set-up (random stream, start,
gradient there), which kept draw a step writes, and the writing of the stats every kernel records.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

from ebm_samplers._numba._random import seeded_state

#: chains per block (see above: 2 to 8 are about as fast; more chains' work no longer fits the CPU's window of
#: operations in flight)
CHAINS_PER_BLOCK = 4
#: blocks are made smaller (down to one chain) rather than fewer than this, so up to this many threads stay busy;
#: a fixed number, not the thread count, which compiled code could only read through a pointer that keeps the loops
#: from being cached
MIN_BLOCKS = 64


@numba.njit(inline="always", cache=True)
def block_size(n):
    """Chains per block for `n` chains: CHAINS_PER_BLOCK, fewer below CHAINS_PER_BLOCK * MIN_BLOCKS chains."""
    return max(1, min(CHAINS_PER_BLOCK, n // MIN_BLOCKS))


@numba.njit(inline="always", cache=True)
def block_count(n, size):
    return (n + size - 1) // size


@numba.njit(inline="always", cache=True)
def block_chains(block, size, n):
    """(first chain, number of chains) of block `block` (the last block may be short)."""
    first = block * size
    return first, min(size, n - first)


@intrinsic
def _void_pointer(typingctx, address):
    """The integer `address` as a pointer, for `numba.carray`."""

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(types.voidptr))

    return types.voidptr(types.uintp), codegen


@numba.njit(inline="always", cache=True)
def row(block, c):
    """block[c] of a 2-D C-contiguous array, as a 1-D array that holds no reference to `block`'s memory.

    numba counts the references to every view `block[c]` it makes, and the atomic increment and decrement cost
    more than a 2-D target's gradient (they also keep the CPU from overlapping the memory accesses around them).
    A row is used only while `block` is alive, in the loop that allocated it.
    """
    width = block.shape[1]
    return numba.carray(_void_pointer(block.ctypes.data + c * width * block.itemsize), width, block.dtype)


@numba.njit(inline="always", cache=True)
def start_block(grad_fn, init, seeds, failure, block, size):
    """Block `block` of `size` chains set up: (first chain, number of chains, then `start_chains`'s arrays)."""
    first, count = block_chains(block, size, init.shape[0])
    rng, x, grad, value = start_chains(grad_fn, init, seeds, failure, first, count)
    return first, count, rng, x, grad, value


@numba.njit(inline="always", cache=True)
def start_chains(grad_fn, init, seeds, failure, first, count):
    """Set up chains first .. first + count - 1: (random streams (count, 4), positions (count, d), gradients
    (count, d), energies (count,)), each chain's failure step reset to -1."""
    d = init.shape[1]
    streams = np.empty((count, 4), dtype=np.uint64)
    x = np.empty((count, d))
    grad = np.empty((count, d))
    value = np.empty(count)
    for c in range(count):
        streams[c] = seeded_state(seeds[first + c])
        x[c] = init[first + c]
        value[c] = grad_fn(row(x, c), row(grad, c))
        failure[first + c] = -1
    return streams, x, grad, value


@numba.njit(inline="always", cache=True)
def kept_index(step, warmup, thin):
    """The index of the kept draw that step `step` writes (every `thin`-th step after warm-up), or -1."""
    after = step - warmup + 1
    if after <= 0 or after % thin != 0:
        return -1
    return after // thin - 1


@numba.njit(inline="always", cache=True)
def record(draws, energy, acceptance, accepted, flagged, chain, index, x, value, probability, accept, flag):
    """Write the stats every kernel keeps for one kept draw; draws[chain, index] = x, rounded to the draws'
    dtype (float32 or float64)."""
    for i in range(x.shape[0]):
        draws[chain, index, i] = x[i]
    energy[chain, index] = value
    acceptance[chain, index] = probability
    accepted[chain, index] = accept
    flagged[chain, index] = flag
