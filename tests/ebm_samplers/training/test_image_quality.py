"""Digits evaluation: exact cases for the coverage figure, the independent-pixel reference and the AIS bits/dim."""

import math

import torch

from ebm_samplers.training.image_quality import (
    BIN_WIDTH,
    N_LEVELS,
    class_coverage,
    dequantised_ais_bits_per_dim,
    independent_pixel_bits_per_dim,
)
from tests.helpers import Z_999


def grey_images(n: int, generator: torch.Generator, pixels: int = 4) -> torch.Tensor:
    """Random images whose pixels take the 17 grey levels of the digits, in [-1, 1]."""
    levels = torch.randint(0, N_LEVELS, (n, 1, 1, pixels), generator=generator)
    return levels.float() * BIN_WIDTH - 1


def test_class_coverage_labels_each_sample_by_its_nearest_reference():
    reference = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    labels = torch.tensor([0, 1, 1, 2])
    samples = torch.tensor([[1.0, 0.0], [9.0, 1.0], [8.0, 9.0], [0.5, 0.5]])
    coverage = class_coverage(samples, reference, labels, n_classes=3)
    assert coverage["nearest_label_fractions"] == [0.5, 0.25, 0.25]
    assert coverage["reference_class_fractions"] == [0.25, 0.5, 0.25]
    assert coverage["total_variation"] == 0.25 and coverage["n_samples"] == 4


def test_independent_pixels_of_uniform_levels_cost_about_log2_17_bits():
    generator = torch.Generator().manual_seed(0)
    train, test = grey_images(20_000, generator), grey_images(2000, generator)
    # add-one smoothed frequencies of 20,000 uniform draws: within a few thousandths of a bit of log2(17)
    assert abs(independent_pixel_bits_per_dim(train, test) - math.log2(N_LEVELS)) < 0.02


def test_ais_bound_of_the_flat_model_is_exactly_log2_of_the_number_of_levels():
    """exp(-0) on the box of the 17 bins (width 17/8 per pixel): the dequantised NLL is d log(17/8), so the bound
    is log2(17/8) + 3 = log2(17) bits/dim exactly; AIS must find it within its standard error."""
    generator = torch.Generator().manual_seed(1)
    train, test = grey_images(500, generator), grey_images(200, generator)
    result = dequantised_ais_bits_per_dim(
        lambda x: 0.0 * x.sum((1, 2, 3)), train, test, generator, n_chains=500, n_temperatures=50
    )
    assert 0 < result["bits_per_dim_standard_error"] < 0.01
    error = abs(result["bits_per_dim_bound"] - math.log2(N_LEVELS))
    assert error < Z_999 * result["bits_per_dim_standard_error"] + 1e-4, result  # 1e-4: the JSON's rounding
