"""The argument checks every public entry point shares: one clear line saying what was wrong and what was expected.

Nothing here converts or clamps: a value is returned unchanged when it is valid, and refused otherwise.
"""

from __future__ import annotations

import math


def check_count(value: object, what: str, minimum: int = 0) -> int:
    """`value` if it is an integer (not a bool) >= `minimum`; else ValueError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}; got {value!r}")
    return value


def check_flag(value: object, what: str) -> bool:
    """`value` if it is True or False; else TypeError naming `what`."""
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be True or False; got {value!r}")
    return value


def check_positive(value: object, what: str) -> float:
    """`value` if it is a finite real number > 0 (not a bool); else ValueError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a finite number > 0; got {value!r}")
    return value
