"""mode_coverage: exact mixture samples pass; a missing mode is flagged, with chains or independent samples."""

import numpy as np
import pytest
import torch

import ebm_samplers
from diagnostics import mode_coverage
from energies import GaussianMixture


def test_exact_samples_cover_every_mode():
    mixture = GaussianMixture(weights=[0.3, 0.7])
    samples = mixture.sample(4000, torch.Generator().manual_seed(0))
    for assign in ("responsibility", "nearest"):
        coverage = mode_coverage(samples, mixture, assign=assign)
        assert coverage.ok, str(coverage)
        np.testing.assert_allclose(coverage.table["weight"], [0.3, 0.7], rtol=1e-6)
        assert (coverage.table["ess"] == 4000).all()


def test_a_missing_mode_is_flagged_for_independent_samples_and_for_chains():
    mixture = GaussianMixture()
    one_mode = mixture.sample(2000, torch.Generator().manual_seed(1))
    one_mode = one_mode[one_mode.sum(1) > 0]
    coverage = mode_coverage(one_mode, means=mixture.means, weights=mixture.weights, assign="nearest")
    assert coverage.missing == [0] and coverage.excess == [1]
    assert "under-covered components [0]" in str(coverage)

    # MALA chains that all start in the (2, 2) mode never cross the barrier
    trace = ebm_samplers.sample(
        mixture, "mala", init=torch.full((4, 2), 2.0), warmup=0, n_steps=500, seed=0, step_size=0.3
    )
    coverage = mode_coverage(trace, mixture)
    assert coverage.missing == [0]


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match="give a mixture"):
        mode_coverage(torch.zeros(10, 2))
    with pytest.raises(ValueError, match="needs a mixture with responsibilities"):
        mode_coverage(torch.zeros(10, 2), means=torch.zeros(2, 2), weights=torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="dimension 3"):
        mode_coverage(torch.zeros(10, 3), GaussianMixture())


def test_a_target_that_is_not_a_mixture_is_explained():
    from energies import Gaussian

    with pytest.raises(TypeError, match=r"the mixture must have means and weights.*got Gaussian"):
        mode_coverage(np.zeros((2, 10, 2)), Gaussian([0.0, 0.0]))
