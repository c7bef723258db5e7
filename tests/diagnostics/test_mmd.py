"""MMD and energy distance: equal to their definitions, calibrated under H0, and powerful against a shift."""

import numpy as np
import pytest
import torch

from diagnostics import mmd
from diagnostics.mmd import median_heuristic


def _brute_force(a, b, h):
    distance = lambda x, y: ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1).sqrt()  # noqa: E731
    kernel = lambda x, y: torch.exp(-(distance(x, y) ** 2) / (2 * h * h))  # noqa: E731
    m, n = len(a), len(b)
    mmd2 = (kernel(a, a).sum() - m) / (m * (m - 1)) + (kernel(b, b).sum() - n) / (n * (n - 1))
    mmd2 -= 2 * kernel(a, b).mean()
    energy = 2 * distance(a, b).mean() - distance(a, a).sum() / (m * (m - 1))
    energy -= distance(b, b).sum() / (n * (n - 1))
    return float(mmd2), float(energy)


def test_blocked_estimators_equal_their_definitions():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(50, 3, generator=generator, dtype=torch.float64)
    b = torch.randn(70, 3, generator=generator, dtype=torch.float64) + 0.3
    result = mmd(a, b, block_size=16)  # several blocks
    pooled = torch.cat([a, b])
    distances = torch.cdist(pooled, pooled)
    upper = torch.triu_indices(120, 120, offset=1)
    assert result.bandwidth == pytest.approx(float(distances[upper[0], upper[1]].median()))
    expected_mmd2, expected_energy = _brute_force(a, b, result.bandwidth)
    assert result.mmd2 == pytest.approx(expected_mmd2, rel=1e-10)
    assert result.energy_distance == pytest.approx(expected_energy, rel=1e-10)


def test_numba_and_torch_block_paths_agree():
    """The CPU path (fused numba + torch for permutations) and the GPU path (torch blocks), run here on the CPU."""
    from diagnostics.mmd import _block_products, _block_products_torch

    generator = torch.Generator().manual_seed(4)
    pooled = torch.randn(90, 2, generator=generator, dtype=torch.float64)
    labels = (torch.rand(90, 4, generator=generator) < 0.5).double()
    fused = _block_products(pooled, labels, labels[:, 0], 0.8, 32)
    blocked = _block_products_torch(pooled, labels, labels[:, 0], 0.8, 32)
    for ours, theirs in zip(fused, blocked, strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10)


def test_median_heuristic_subsamples_large_pooled_samples_deterministically():
    points = torch.randn(5000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert median_heuristic(points) == median_heuristic(points)
    # the median distance between two N(0, I_2) points is sqrt(2 * 2 ln 2) = 1.665
    assert median_heuristic(points) == pytest.approx(np.sqrt(4 * np.log(2)), rel=0.03)


def _rejections(n_replicates, n, generator, shift=0.0):
    return sum(
        mmd(
            torch.randn(n, 2, generator=generator),
            torch.randn(n, 2, generator=generator) + shift,
            n_permutations=100,
            generator=generator,
        ).p_value
        < 0.05
        for _ in range(n_replicates)
    )


def test_permutation_test_is_calibrated_and_detects_a_shift():
    generator = torch.Generator().manual_seed(2)
    # under H0 the rejection count is Binomial(60, 0.05): its 0.999 quantile is 9
    assert _rejections(60, 40, generator) <= 9
    assert _rejections(10, 100, generator, shift=0.6) >= 9


@pytest.mark.slow
def test_permutation_p_values_are_uniform_under_h0():
    generator = torch.Generator().manual_seed(3)
    p_values = np.array(
        [
            mmd(
                torch.randn(60, 2, generator=generator),
                torch.randn(60, 2, generator=generator),
                n_permutations=200,
                generator=generator,
            ).p_value
            for _ in range(300)
        ]
    )
    # rejection rate at 0.05 within the binomial 0.999 band; the p-value mean near 1/2 (a permutation
    # p-value is discrete: its mean is 1/2 + 1/(2 (P + 1)), hence the 0.01)
    rate_sd = np.sqrt(0.05 * 0.95 / len(p_values))
    assert abs((p_values < 0.05).mean() - 0.05) < 3.29 * rate_sd
    assert abs(p_values.mean() - 0.5) < 3.29 * np.sqrt(1 / 12 / len(p_values)) + 0.01


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match="different event shapes"):
        mmd(torch.zeros(5, 2), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="at least 2 points"):
        mmd(torch.zeros(1, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="bandwidth must be > 0"):
        mmd(torch.zeros(5, 2), torch.zeros(5, 2))


def test_multi_bandwidth_mmd_rejects_a_wrong_mode_structure_that_the_median_heuristic_misses():
    import math

    from ebm_samplers.training.datasets import toy_dataset

    data = toy_dataset("8gaussians")
    generator = torch.Generator().manual_seed(0)
    a = data.sample(500, generator)
    # the wrong model: the same 8 modes rotated by half the angle between them, so that at the median
    # heuristic's scale (the ring's size) the two laws look alike
    angle = math.pi / 8
    rotation = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    wrong = data.sample(500, generator) @ rotation.T
    same = data.sample(500, generator)
    median = mmd(a, wrong, n_permutations=200, generator=torch.Generator().manual_seed(1))
    multi = mmd(a, wrong, bandwidth="multi", n_permutations=200, generator=torch.Generator().manual_seed(1))
    assert median.p_value > 0.05  # the weakness the docs describe
    assert multi.p_value < 0.01 and multi.bandwidth < median.bandwidth
    assert len(multi.bandwidths) == 5 and len(multi.mmd2_per_bandwidth) == 5
    null = mmd(a, same, bandwidth="multi", n_permutations=200, generator=torch.Generator().manual_seed(1))
    assert null.p_value > 0.05  # same law: no rejection at this seed (the test's level is 5%)
    assert "aggregated permutation p" in str(multi)


def test_bandwidth_choices_are_checked():
    a = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="bandwidth must be None, a number, 'multi' or a list"):
        mmd(a, a + 1, bandwidth="many")
    with pytest.raises(ValueError, match="empty list"):
        mmd(a, a + 1, bandwidth=[])
    with pytest.raises(ValueError, match="must be > 0"):
        mmd(a, a + 1, bandwidth=[1.0, -1.0])
    result = mmd(a, a + 1, bandwidth=[0.5, 1.0])
    assert result.bandwidths == (0.5, 1.0) and result.p_value is None
