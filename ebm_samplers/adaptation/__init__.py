"""Warm-up adaptation shared by every kernel with a step size (and a metric, where the state has one).

`WarmupAdaptation` is what the run loop calls; `DualAveraging`, `WelfordVariance` and `slow_windows`
are its parts, usable on their own.
"""

from ebm_samplers.adaptation.dual_averaging import DualAveraging
from ebm_samplers.adaptation.schedule import slow_windows
from ebm_samplers.adaptation.warmup import WarmupAdaptation
from ebm_samplers.adaptation.welford import WelfordVariance

__all__ = ["DualAveraging", "WarmupAdaptation", "WelfordVariance", "slow_windows"]
