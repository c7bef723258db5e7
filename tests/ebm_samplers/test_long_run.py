"""Long-run stability of MALA on the default mixture: no drift in acceptance or moments, float32 = float64.

Plain MALA rarely crosses between the mixture's modes, so the checks use statistics whose expectation is
the same in either mode: E[x_i^2] = 2^2 + 0.5 = 4.5 and E[(x_1 - x_2)^2] = 0.5 + 0.5 = 1. Each chain gives
one estimate, and tolerances come from the spread over independent chains (tests/helpers.py).
Drift: per chain, (second half - first half) of each statistic must average to 0 within its MCSE.
float32 vs float64: two independent runs (different seeds) must agree within their combined MCSE.
"""

import math

import pytest
import torch

import ebm_samplers
from energies import GaussianMixture
from tests.helpers import Z_999, assert_matches, chain_estimates_z

TRUTH = {"x1^2": 4.5, "x2^2": 4.5, "(x1-x2)^2": 1.0}


def _statistics(draws: torch.Tensor) -> dict[str, torch.Tensor]:
    x = draws.double()
    return {"x1^2": x[..., 0] ** 2, "x2^2": x[..., 1] ** 2, "(x1-x2)^2": (x[..., 0] - x[..., 1]) ** 2}


def _check_long_run(n_steps: int, thin: int, n_chains: int) -> None:
    estimates = {}
    for seed, dtype in ((0, torch.float32), (1, torch.float64)):
        trace = ebm_samplers.sample(
            GaussianMixture(), "mala", n_chains=n_chains, n_steps=n_steps, warmup=1000, thin=thin, seed=seed,
            step_size=0.4, dtype=dtype,
        )  # fmt: skip
        assert trace.draws.dtype == dtype and torch.isfinite(trace.draws).all()
        assert trace.attrs["nonfinite_total"] == 0
        per_step = {"acceptance": trace.stats["acceptance_rate"].double(), **_statistics(trace.draws)}
        half = trace.n_draws // 2
        for name, values in per_step.items():
            first, second = values[:, :half].mean(1), values[:, half:].mean(1)
            assert_matches(second - first, 0.0, f"{dtype} drift of {name} between halves")
            estimates[name, dtype] = values.mean(1)
        for name, truth in TRUTH.items():
            assert_matches(estimates[name, dtype], truth, f"{dtype} {name}")
    for name in ("acceptance", *TRUTH):
        m32, se32, _ = chain_estimates_z(estimates[name, torch.float32], 0.0)
        m64, se64, _ = chain_estimates_z(estimates[name, torch.float64], 0.0)
        z = abs(m32 - m64) / math.hypot(se32, se64)
        assert z < Z_999, f"{name}: float32 {m32:.5f} vs float64 {m64:.5f}, combined MCSE {math.hypot(se32, se64):.5f}"
    acceptance = float(estimates["acceptance", torch.float64].mean())
    assert 0.5 < acceptance < 0.95, acceptance


def test_mala_is_stable_over_eight_thousand_steps():
    """The representative fast version of the long run below."""
    _check_long_run(n_steps=8_000, thin=5, n_chains=16)


@pytest.mark.slow
def test_mala_is_stable_over_a_million_steps():
    _check_long_run(n_steps=1_000_000, thin=100, n_chains=32)
