"""What the benchmark scripts share: timing a call, and writing their JSON results atomically.

Imported as `_report` by the scripts in this folder (run as `python benchmarks/<name>.py`, whose folder is then
first on the path). `peers.py` keeps its own copies: it must run where this project may not be importable.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ebm_samplers._atomic import atomic_write


def median_seconds(function: Callable[[], object], repeats: int, clock: Callable[[], float] = time.perf_counter):
    """Median seconds of `function()` over `repeats` calls after one warm-up call, timed by `clock` (wall time by
    default; `time.process_time` for CPU time, robust to other jobs on a shared machine)."""
    function()
    times = []
    for _ in range(repeats):
        start = clock()
        function()
        times.append(clock() - start)
    return float(np.median(times))


def mean_seconds(function: Callable[[], object], warmup: int, calls: int) -> float:
    """Mean wall seconds of `function()` over `calls` back-to-back calls, after `warmup` calls."""
    for _ in range(warmup):
        function()
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls


def write_json(path: str | os.PathLike, payload, **dumps_options) -> Path:
    """`payload` as JSON (`json.dumps(payload, **dumps_options)`), written atomically; returns the path."""
    text = json.dumps(payload, **dumps_options) + "\n"
    return atomic_write(path, lambda temporary: temporary.write_text(text))
