"""Toy 2-D data sets with the usual recipes, their exact log-densities where one exists, and 8x8 digits.

Recipes follow the FFJORD toy-data code (Grathwohl et al. 2019), the de-facto standard for 2-D EBM and
flow experiments, with one change: points on a circle use uniformly random angles (FFJORD/scikit-learn
space them evenly), so the sets are i.i.d. draws from a continuous law whose density we can write down.

    8gaussians   c_k = 4 (cos k pi/4, sin k pi/4), x = (c_k + 0.5 z) / 1.414, k uniform on 0..7
                 -> exact: mixture of N(c_k / 1.414, (0.5 / 1.414)^2 I)
    checkerboard a ~ U[-2, 2), b = u - 2 B + (floor(a) mod 2), u ~ U[0, 1), B ~ Bernoulli(1/2); x = 2 (a, b)
                 -> exact: uniform on 8 squares of side 2 in [-4, 4]^2, density 1/32
    rings        radius r ~ U{3, 2.25, 1.5, 0.75}, angle ~ U[0, 2 pi), x = r (cos, sin) + 0.08 z
                 -> exact: mixture of "ring Gaussians" (below)
    circles      radius r ~ U{3, 1.5}, x = r (cos, sin) + 0.24 z   (make_circles(factor=0.5, noise=0.08) * 3)
                 -> exact: mixture of ring Gaussians
    moons        make_moons(noise=0.1) * 2 + (-1, -0.2)             (no closed-form density)
    swissroll    t = 1.5 pi (1 + 2u), (t cos t, t sin t) / 5 + 0.2 z  (make_swiss_roll(noise=1)[:, [0, 2]] / 5)
    2spirals     FFJORD's two interleaved spirals, /3, + 0.1 z        (no closed-form density)
    pinwheel     5 arms, radial sd 0.3, tangential sd 0.1, rate 0.25, x 2   (no closed-form density)

Ring Gaussian: with x = r u(theta) + s z, theta uniform, the density is
    p(x) = exp(-(|x| - r)^2 / (2 s^2)) i0e(|x| r / s^2) / (2 pi s^2)
where i0e is the exponentially scaled modified Bessel function (I0(t) = i0e(t) e^t).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from energies import Energy, GaussianMixture

#: Square quadrature/plot window used for every 2-D toy set; each set's mass outside it is below 1e-5.
TOY_BOUNDS = (-4.5, 4.5)


@dataclass(frozen=True)
class ToyDataset:
    """A named 2-D toy distribution: `sample(n, generator)`, and `energy()` = -log p exactly where known."""

    name: str
    draw: Callable[[int, torch.Generator], Tensor]
    exact_energy: Callable[[], Energy] | None
    bounds: tuple[float, float] = TOY_BOUNDS

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"number of samples must be a positive integer; got {n!r}")
        return self.draw(n, generator)

    @property
    def has_density(self) -> bool:
        return self.exact_energy is not None

    def energy(self) -> Energy:
        """The normalised energy -log p(x) of the data law (raises when no closed form exists)."""
        if self.exact_energy is None:
            raise NotImplementedError(f"toy data set {self.name!r} has no closed-form density")
        return self.exact_energy()


def _uniform(n: int, generator: torch.Generator) -> Tensor:
    return torch.rand(n, generator=generator)


def _eight_gaussians_mixture() -> GaussianMixture:
    angles = torch.arange(8, dtype=torch.float64) * math.pi / 4
    means = 4.0 * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1) / 1.414
    return GaussianMixture(means=means.float(), covariances=(0.5 / 1.414) ** 2)


def _eight_gaussians(n: int, generator: torch.Generator) -> Tensor:
    return _eight_gaussians_mixture().sample(n, generator)


def _checkerboard(n: int, generator: torch.Generator) -> Tensor:
    a = _uniform(n, generator) * 4 - 2
    b = _uniform(n, generator) - torch.randint(0, 2, (n,), generator=generator) * 2 + torch.floor(a) % 2
    return 2 * torch.stack([a, b], dim=1)


class Checkerboard(Energy):
    """-log p for the checkerboard: log 32 on the 8 squares, +inf elsewhere."""

    event_shape = torch.Size([2])

    def forward(self, x: Tensor) -> Tensor:
        a, b = x[:, 0] / 2, x[:, 1] / 2
        v = b - torch.floor(a) % 2
        inside = (a >= -2) & (a < 2) & (((v >= 0) & (v < 1)) | ((v >= -2) & (v < -1)))
        return torch.where(inside, math.log(32.0), math.inf).to(x.dtype)

    def log_prob(self, x: Tensor) -> Tensor:
        return -self(x)


class RingMixture(Energy):
    """Equal-weight mixture of ring Gaussians with radii `radii` and isotropic noise sd `noise` (exact -log p)."""

    def __init__(self, radii: list[float], noise: float):
        super().__init__()
        self.register_buffer("radii", torch.tensor(radii))
        self.noise = float(noise)
        self.event_shape = torch.Size([2])

    def log_prob(self, x: Tensor) -> Tensor:
        s2 = self.noise**2
        rho = torch.linalg.vector_norm(x, dim=1, keepdim=True)
        r = self.radii.to(x)
        log_bessel = torch.log(torch.special.i0e(rho * r / s2))
        log_terms = -((rho - r) ** 2) / (2 * s2) + log_bessel - math.log(2 * math.pi * s2)
        return torch.logsumexp(log_terms, dim=1) - math.log(r.shape[0])

    def forward(self, x: Tensor) -> Tensor:
        return -self.log_prob(x)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        which = torch.randint(0, self.radii.shape[0], (n,), generator=generator)
        angle = torch.rand(n, generator=generator) * 2 * math.pi
        ring = self.radii[which, None] * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
        return ring + self.noise * torch.randn(n, 2, generator=generator)


def _rings_law() -> RingMixture:
    return RingMixture([3.0, 2.25, 1.5, 0.75], noise=0.08)


def _circles_law() -> RingMixture:
    return RingMixture([3.0, 1.5], noise=0.24)


def _moons(n: int, generator: torch.Generator) -> Tensor:
    t = _uniform(n, generator) * math.pi
    inner = torch.rand(n, generator=generator) < 0.5
    x = torch.where(inner, 1 - torch.cos(t), torch.cos(t))
    y = torch.where(inner, 0.5 - torch.sin(t), torch.sin(t))
    points = torch.stack([x, y], dim=1) + 0.1 * torch.randn(n, 2, generator=generator)
    return points * 2 + torch.tensor([-1.0, -0.2])


def _swissroll(n: int, generator: torch.Generator) -> Tensor:
    t = 1.5 * math.pi * (1 + 2 * _uniform(n, generator))
    points = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1) + torch.randn(n, 2, generator=generator)
    return points / 5


def _two_spirals(n: int, generator: torch.Generator) -> Tensor:
    t = torch.sqrt(_uniform(n, generator)) * 540 * (2 * math.pi) / 360
    arm = torch.stack([-torch.cos(t) * t, torch.sin(t) * t], dim=1) + torch.rand(n, 2, generator=generator) * 0.5
    sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)[:, None]
    return sign * arm / 3 + 0.1 * torch.randn(n, 2, generator=generator)


def _pinwheel(n: int, generator: torch.Generator) -> Tensor:
    n_arms, radial_sd, tangential_sd, rate = 5, 0.3, 0.1, 0.25
    features = torch.randn(n, 2, generator=generator) * torch.tensor([radial_sd, tangential_sd])
    features[:, 0] += 1
    arm = torch.randint(0, n_arms, (n,), generator=generator)
    angle = arm * (2 * math.pi / n_arms) + rate * torch.exp(features[:, 0])
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotated = torch.stack([cos * features[:, 0] - sin * features[:, 1], sin * features[:, 0] + cos * features[:, 1]], 1)
    return 2 * rotated


_TOYS = {
    "8gaussians": ToyDataset("8gaussians", _eight_gaussians, _eight_gaussians_mixture),
    "checkerboard": ToyDataset("checkerboard", _checkerboard, Checkerboard),
    "rings": ToyDataset("rings", lambda n, g: _rings_law().sample(n, g), _rings_law),
    "circles": ToyDataset("circles", lambda n, g: _circles_law().sample(n, g), _circles_law),
    "moons": ToyDataset("moons", _moons, None),
    "swissroll": ToyDataset("swissroll", _swissroll, None),
    "2spirals": ToyDataset("2spirals", _two_spirals, None),
    "pinwheel": ToyDataset("pinwheel", _pinwheel, None),
}


def available_datasets() -> list[str]:
    """Names of the 2-D toy sets (plus "digits" for the 8x8 image set)."""
    return [*_TOYS, "digits"]


def toy_dataset(name: str) -> ToyDataset:
    if name not in _TOYS:
        raise KeyError(f"unknown toy data set {name!r}; available: {', '.join(_TOYS)}")
    return _TOYS[name]


def load_digits(
    test_fraction: float = 0.2, *, generator: torch.Generator | None = None, with_labels: bool = False
) -> tuple[Tensor, ...]:
    """scikit-learn's bundled 8x8 digits (1,797 images, no download) as (train, test), shape (n, 1, 8, 8).

    Pixels 0..16 are mapped to [-1, 1] (17 levels 1/8 apart). The split is a random permutation from
    `generator`. `with_labels=True` returns (train, test, train_labels, test_labels), labels 0..9 (int64).
    """
    from sklearn.datasets import load_digits as _sklearn_digits

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1); got {test_fraction!r}")
    bunch = _sklearn_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32)[:, None] / 8 - 1
    order = torch.randperm(images.shape[0], generator=generator)
    n_test = round(test_fraction * images.shape[0])
    train, test = images[order[n_test:]], images[order[:n_test]]
    if not with_labels:
        return train, test
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    return train, test, labels[order[n_test:]], labels[order[:n_test]]
