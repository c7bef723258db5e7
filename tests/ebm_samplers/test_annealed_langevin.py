"""Annealed Langevin: exact Gaussian recursions for every annealing route, and mixture mode weights.

Each chain run for one kernel step (`n_steps=1`) is one independent annealed sample, so per-chain values
are i.i.d. and their MCSE is the plain (binomial, for indicators) standard error.
"""

import pytest
import torch

import ebm_samplers
from energies import Gaussian, GaussianMixture, NoiseConditionalEnergy
from tests.helpers import Z_999, assert_matches, chain_estimates_z

MEAN = torch.tensor([1.0, -1.0], dtype=torch.float64)
COVARIANCE = torch.tensor([[2.0, 1.2], [1.2, 1.0]], dtype=torch.float64)
SCHEDULE = dict(sigma_max=3.0, sigma_min=0.3, n_levels=5, steps_per_level=4, step_scale=0.05)


class NoisyGaussian(NoiseConditionalEnergy):
    """E(x, sigma) of N(mean, covariance + sigma^2 I), written as a noise-conditional model."""

    def __init__(self, mean, covariance):
        super().__init__()
        self.centre, self.scatter = mean, covariance
        self.event_shape = torch.Size(mean.shape)
        self.default_sigma = 0.3

    def forward(self, x, sigma):
        precision = torch.linalg.inv(self.scatter + sigma**2 * torch.eye(2, dtype=self.scatter.dtype))
        centred = x - self.centre
        return 0.5 * (centred @ precision * centred).sum(-1)


class NoisyMixture(NoiseConditionalEnergy):
    def __init__(self, mixture):
        super().__init__()
        self.mixture = mixture
        self.event_shape = mixture.event_shape
        self.default_sigma = 1.0  # sample() checks the energy with one argument
        self._levels = {}

    def forward(self, x, sigma):
        if sigma not in self._levels:
            self._levels[sigma] = self.mixture.perturbed(sigma)
        return self._levels[sigma](x)


def _exact_moments(annealing: str, denoise: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance after one pass from N(0, I): every move is linear-Gaussian,
    x' = A x + (I - A) m + sqrt(2h) z with A = I - h P_i, P_i the level's precision."""
    kernel = ebm_samplers.get_sampler("annealed_langevin", **SCHEDULE)
    eye = torch.eye(2, dtype=torch.float64)
    mean, covariance = torch.zeros(2, dtype=torch.float64), eye.clone()

    def precision(sigma):
        if annealing == "temperature":
            return torch.linalg.inv(COVARIANCE) * (SCHEDULE["sigma_min"] / sigma) ** 2
        return torch.linalg.inv(COVARIANCE + sigma**2 * eye)

    for sigma in kernel.noise_levels():
        h = SCHEDULE["step_scale"] * sigma**2 / SCHEDULE["sigma_min"] ** 2 / 2.0
        move = eye - h * precision(sigma)
        for _ in range(SCHEDULE["steps_per_level"]):
            mean = MEAN + move @ (mean - MEAN)
            covariance = move @ covariance @ move.T + 2.0 * h * eye
    if denoise:
        move = eye - SCHEDULE["sigma_min"] ** 2 * precision(SCHEDULE["sigma_min"])
        mean, covariance = MEAN + move @ (mean - MEAN), move @ covariance @ move.T
    return mean, covariance


@pytest.mark.parametrize(
    ("route", "denoise"),
    [("perturbed", False), ("perturbed", True), ("noise", True), ("temperature", False)],
)
def test_one_pass_on_a_gaussian_matches_its_exact_linear_recursion(route, denoise):
    energy = NoisyGaussian(MEAN, COVARIANCE) if route == "noise" else Gaussian(MEAN, COVARIANCE)
    annealing = "auto" if route != "temperature" else "temperature"
    init = torch.randn(4000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    trace = ebm_samplers.sample(
        energy, "annealed_langevin", init=init, n_steps=1, seed=1, denoise=denoise, annealing=annealing, **SCHEDULE
    )
    assert trace.draws.shape == (4000, 1, 2)
    x = trace.draws[:, 0]
    mean, covariance = _exact_moments(route, denoise)
    centred = x - mean
    for i in range(2):
        assert_matches(x[:, i], float(mean[i]), f"{route} mean[{i}]")
        for j in range(i, 2):
            assert_matches(centred[:, i] * centred[:, j], float(covariance[i, j]), f"{route} covariance[{i}, {j}]")
    # the short schedule leaves the variance far from the last level's, so what matched is the recursion
    last_level = COVARIANCE[0, 0] + (0.0 if route == "temperature" else SCHEDULE["sigma_min"] ** 2)
    _, _, z_target = chain_estimates_z((x[:, 0] - MEAN[0]) ** 2, float(last_level))
    assert z_target > 2 * Z_999


def _mode_indicator(energy, init, sampler, seed, **params) -> torch.Tensor:
    """Per chain: 1 if its last draw lies on the (5, 5) side of the mixture, else 0."""
    trace = ebm_samplers.sample(energy, sampler, init=init, seed=seed, **params)
    return (trace.draws[:, -1].sum(-1) > 0).double()


@pytest.mark.parametrize("n_chains", [1000, pytest.param(6000, marks=pytest.mark.slow)])
def test_recovers_unequal_mode_weights_where_plain_langevin_does_not(n_chains):
    # Song & Ermon's example: p = 0.2 N((-5, -5), I) + 0.8 N((5, 5), I), chains from Uniform[-8, 8]^2
    mixture = GaussianMixture([0.2, 0.8], [[-5.0, -5.0], [5.0, 5.0]], 1.0)
    init = torch.rand(n_chains, 2, generator=torch.Generator().manual_seed(2)) * 16 - 8
    schedule = dict(sigma_max=20.0, sigma_min=1.0, n_levels=20, steps_per_level=100, step_scale=0.1)
    # the "perturbed" route, and in the long run also the "noise" route (slower: autograd through the model)
    energies = (mixture,) if n_chains <= 1000 else (mixture, NoisyMixture(mixture))
    for energy in energies:
        annealed = _mode_indicator(energy, init, "annealed_langevin", seed=3, n_steps=1, **schedule)
        assert_matches(annealed, 0.8, f"weight of the heavy mode, annealed ({type(energy).__name__})")
    # plain Langevin stays in the basin it starts in (weights near 1/2), however long it runs
    plain = _mode_indicator(mixture, init, "ula", seed=3, n_steps=500, step_size=0.05)
    _, _, z = chain_estimates_z(plain, 0.8)
    assert z > Z_999, f"plain Langevin unexpectedly recovered the weights (z = {z:.2f})"


def test_recovers_the_default_mixtures_equal_weights_with_denoising():
    mixture = GaussianMixture()  # modes at (-2, -2) and (2, 2), covariance 0.5 I
    init = torch.rand(1000, 2, generator=torch.Generator().manual_seed(4)) * 8 - 4
    schedule = dict(sigma_max=8.0, sigma_min=0.5, n_levels=10, steps_per_level=100, step_scale=0.05)
    indicator = _mode_indicator(mixture, init, "annealed_langevin", seed=5, n_steps=1, denoise=True, **schedule)
    assert_matches(indicator, 0.5, "weight of the (2, 2) mode")


def test_a_noise_conditional_energy_called_with_one_argument_uses_its_default_sigma():
    energy = NoisyGaussian(MEAN, COVARIANCE)
    x = torch.randn(5, 2, dtype=torch.float64)
    assert torch.equal(energy(x), energy(x, 0.3))
    assert torch.equal(energy.at(1.5)(x), energy(x, 1.5))
    value, grad = energy.at(1.5).energy_and_grad(x)
    expected = Gaussian(MEAN, COVARIANCE + 1.5**2 * torch.eye(2, dtype=torch.float64)).energy_and_grad(x)
    assert torch.allclose(value, expected[0]) and torch.allclose(grad, expected[1])
    energy.default_sigma = None
    with pytest.raises(TypeError, match="needs a noise level"):
        energy(x)
    with pytest.raises(ValueError, match="sigma"):
        energy.at(-1.0)


def test_bad_schedules_and_routes_are_rejected():
    with pytest.raises(ValueError, match="sigma_max"):
        ebm_samplers.get_sampler("annealed_langevin", sigma_max=0.1, sigma_min=1.0)
    with pytest.raises(ValueError, match="n_levels"):
        ebm_samplers.get_sampler("annealed_langevin", n_levels=0)
    with pytest.raises(ValueError, match="annealing"):
        ebm_samplers.get_sampler("annealed_langevin", annealing="cooling")
    with pytest.raises(ValueError, match="denoise"):
        ebm_samplers.sample(
            lambda x: (x**2).sum(-1), "annealed_langevin", init=torch.zeros(3, 2), warmup=0, n_steps=1, denoise=True
        )
    with pytest.raises(TypeError, match="perturbed"):
        ebm_samplers.sample(
            lambda x: (x**2).sum(-1),
            "annealed_langevin",
            init=torch.zeros(3, 2),
            warmup=0,
            n_steps=1,
            annealing="perturbed",
        )
