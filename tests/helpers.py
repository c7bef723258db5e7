"""Statistical helpers for sampler tests.

Monte Carlo standard errors come from independent chains: each chain (after warm-up) yields one
estimate, and the standard error of their average is sd / sqrt(n_chains). This needs no autocorrelation
model and is valid for any statistic, as long as each chain's estimate is close to normal (long chains).
"""

from __future__ import annotations

import math

import torch

#: Two-sided 0.999 normal quantile: |estimate - truth| / MCSE must stay below it (with many chains).
Z_999 = 3.2905


def critical_value(n_chains: int) -> float:
    """Two-sided 0.999 quantile of Student's t with n_chains - 1 degrees of freedom: the MCSE is itself estimated
    from the chains' spread, so with few chains the normal quantile would fail correct samplers far too often."""
    from scipy.stats import t

    return float(t.ppf(0.9995, n_chains - 1)) if n_chains < 100 else Z_999


def chain_estimates_z(per_chain: torch.Tensor, truth: float) -> tuple[float, float, float]:
    """(pooled estimate, its MCSE, |estimate - truth| / MCSE) from per-chain estimates of shape (chains,)."""
    per_chain = per_chain.double()
    estimate = float(per_chain.mean())
    mcse = float(per_chain.std(unbiased=True)) / math.sqrt(per_chain.shape[0])
    return estimate, mcse, abs(estimate - truth) / mcse


def assert_matches(per_chain: torch.Tensor, truth: float, what: str) -> None:
    estimate, mcse, z = chain_estimates_z(per_chain, truth)
    limit = critical_value(per_chain.shape[0])
    assert z < limit, f"{what}: estimate {estimate:.5f} vs truth {truth:.5f}, MCSE {mcse:.5f}, z = {z:.2f}"


def assert_function_matches(per_chain_moments: torch.Tensor, statistic, truth: float, what: str) -> None:
    """Check a smooth function of pooled moments, e.g. a correlation, against `truth`.

    `per_chain_moments` is (chains, k) per-chain averages; `statistic` maps a (k,) vector of pooled
    moments to a number. Its MCSE is the jackknife over chains (leave one chain out), which stays valid
    for nonlinear statistics whose per-chain versions would be biased.
    """
    moments = per_chain_moments.double()
    chains = moments.shape[0]
    estimate = float(statistic(moments.mean(0)))
    total = moments.sum(0)
    leave_one_out = torch.tensor([float(statistic((total - moments[i]) / (chains - 1))) for i in range(chains)])
    mcse = math.sqrt((chains - 1) / chains * float(((leave_one_out - leave_one_out.mean()) ** 2).sum()))
    z = abs(estimate - truth) / mcse
    assert z < Z_999, f"{what}: estimate {estimate:.5f} vs truth {truth:.5f}, MCSE {mcse:.5f}, z = {z:.2f}"


def assert_bivariate_gaussian_moments(draws: torch.Tensor, mean: torch.Tensor, covariance: torch.Tensor) -> None:
    """Means, variances (each within MCSE) and the correlation (jackknife MCSE) of 2-D draws (chain, draw, 2).

    Moments are taken about the known mean, so each chain's estimate is a linear average and unbiased
    whatever the autocorrelation; the correlation is a smooth function of pooled moments.
    """
    draws, mean, covariance = draws.double(), mean.double(), covariance.double()
    centred = draws - mean
    chain_means = draws.mean(dim=1)
    chain_second = torch.einsum("cni,cnj->cij", centred, centred) / draws.shape[1]
    for i in range(2):
        assert_matches(chain_means[:, i], float(mean[i]), f"mean[{i}]")
        assert_matches(chain_second[:, i, i], float(covariance[i, i]), f"variance[{i}]")
    moments = torch.stack([chain_second[:, 0, 0], chain_second[:, 1, 1], chain_second[:, 0, 1]], dim=1)
    truth = float(covariance[0, 1] / torch.sqrt(covariance[0, 0] * covariance[1, 1]))
    assert_function_matches(moments, lambda m: m[2] / torch.sqrt(m[0] * m[1]), truth, "correlation")


def run_torchrun(args: list[str], cwd, timeout: float = 300, status: int = 0):
    """Launch `torchrun --standalone --nproc_per_node=2 ARGS` (gloo on CPU) on this checkout; fail with its output
    unless it exits with `status` (torchrun exits 1 when a rank does, e.g. `sample` finding problems).

    Skips the test when no torchrun sits next to this Python (or on PATH)."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import pytest

    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not installed next to this Python")
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    command = [torchrun, "--standalone", "--nproc_per_node=2", *args]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == status, result.stdout + result.stderr
    return result
