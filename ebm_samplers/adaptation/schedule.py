"""Stan's windowed warm-up schedule for metric (mass matrix) adaptation.

Warm-up of W iterations splits into an initial fast window (step size only, the chains travel to the
typical set), a series of slow windows whose draws estimate the variance (each twice as long as the
previous; the last one stretches to the terminal window), and a terminal fast window where the step
size settles for the final metric. Defaults as Stan: initial 75, first slow window 25, terminal 50; when
W < 150 the buffers become 15% and 10% of W and one slow window takes the rest.
"""

from __future__ import annotations

INITIAL_BUFFER = 75
TERMINAL_BUFFER = 50
BASE_WINDOW = 25


def window_at(windows: list[tuple[int, int]], iteration: int) -> tuple[int, int] | None:
    """The window [start, end) of `windows` that holds warm-up iteration `iteration`, or None (a fast window)."""
    return next((window for window in windows if window[0] <= iteration < window[1]), None)


def slow_windows(warmup: int) -> list[tuple[int, int]]:
    """Half-open iteration ranges [start, end) of the variance windows for a warm-up of `warmup` steps.

    The metric is updated (and step-size adaptation restarted) at the end of each window. A warm-up
    too short for even one window of 2 draws has none: the metric then stays the identity.
    """
    initial, terminal, base = INITIAL_BUFFER, TERMINAL_BUFFER, BASE_WINDOW
    if warmup < initial + terminal + base:
        initial = int(0.15 * warmup)
        terminal = int(0.1 * warmup)
        base = warmup - initial - terminal
    if base < 2:
        return []
    end_of_slow = warmup - terminal
    windows = []
    start, size = initial, base
    while start < end_of_slow:
        end = start + size
        # a window that would leave less than twice its size before the terminal buffer absorbs the rest
        if end + 2 * size > end_of_slow:
            end = end_of_slow
        windows.append((start, end))
        start, size = end, 2 * size
    return windows
