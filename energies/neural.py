"""Neural energies for training: an MLP for vectors, a small conv net for 8x8 images, a noise-conditional MLP.

All use smooth activations (SiLU), so grad_x E is continuous, which Langevin samplers and the
score-matching losses (which differentiate grad_x E again) need. Weights are initialised from the
`torch.Generator` passed in (PyTorch's default init draws from the global RNG, which a reproducible
training run must not touch): uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), as nn.Linear does by default.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from energies.base import Energy
from energies.noise_conditional import NoiseConditionalEnergy


def _initialise(module: nn.Module, generator: torch.Generator | None) -> None:
    """Re-draw every Linear/Conv weight and bias (and spectral-norm power-iteration vectors) from `generator`."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                weight = layer.parametrizations.weight.original if _has_spectral_norm(layer) else layer.weight
                bound = 1.0 / math.sqrt(weight[0].numel())
                weight.copy_(torch.rand(weight.shape, generator=generator, dtype=weight.dtype) * 2 * bound - bound)
                if layer.bias is not None:
                    layer.bias.copy_(
                        torch.rand(layer.bias.shape, generator=generator, dtype=layer.bias.dtype) * 2 * bound - bound
                    )
                if _has_spectral_norm(layer):
                    norm = layer.parametrizations.weight[0]
                    for name in ("_u", "_v"):
                        vector = getattr(norm, name)
                        fresh = torch.randn(vector.shape, generator=generator, dtype=vector.dtype)
                        vector.copy_(fresh / fresh.norm().clamp_min(1e-12))


def _has_spectral_norm(layer: nn.Module) -> bool:
    return hasattr(layer, "parametrizations") and "weight" in layer.parametrizations


def _linear(n_in: int, n_out: int, spectral_norm: bool) -> nn.Module:
    layer = nn.Linear(n_in, n_out)
    return nn.utils.parametrizations.spectral_norm(layer) if spectral_norm else layer


def _mlp(n_in: int, hidden: Sequence[int], spectral_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_in
    for size in hidden:
        layers += [_linear(width, size, spectral_norm), nn.SiLU()]
        width = size
    layers.append(_linear(width, 1, spectral_norm))
    return nn.Sequential(*layers)


def _check_width(hidden: Sequence[int]) -> tuple[int, ...]:
    hidden = tuple(hidden)
    if not hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
        raise ValueError(f"hidden must be a non-empty sequence of positive layer widths; got {hidden!r}")
    return hidden


class MLPEnergy(Energy):
    """E(x) = MLP(x) for x of shape (n, dim): SiLU hidden layers, a scalar output, optional spectral norm."""

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (128, 128, 128),
        *,
        spectral_norm: bool = False,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"MLPEnergy dim must be a positive integer; got {dim!r}")
        self.network = _mlp(dim, _check_width(hidden), spectral_norm)
        self.event_shape = torch.Size([dim])
        _initialise(self, generator)

    def forward(self, x: Tensor) -> Tensor:
        return self.network(x).squeeze(-1)


class ConvEnergy(Energy):
    """A small conv energy for (n, 1, 8, 8) images: two stride-2 SiLU conv blocks and a linear read-out."""

    def __init__(self, channels: int = 32, *, spectral_norm: bool = False, generator: torch.Generator | None = None):
        super().__init__()
        wrap = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda layer: layer)
        self.network = nn.Sequential(
            wrap(nn.Conv2d(1, channels, 3, padding=1)),
            nn.SiLU(),
            wrap(nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1)),  # 8x8 -> 4x4
            nn.SiLU(),
            wrap(nn.Conv2d(2 * channels, 2 * channels, 3, stride=2, padding=1)),  # 4x4 -> 2x2
            nn.SiLU(),
            nn.Flatten(),
            wrap(nn.Linear(8 * channels, 1)),
        )
        self.event_shape = torch.Size([1, 8, 8])
        _initialise(self, generator)

    def forward(self, x: Tensor) -> Tensor:
        return self.network(x).squeeze(-1)


class NoiseConditionalMLP(NoiseConditionalEnergy):
    """E(x, sigma) = MLP([x, log sigma]) / sigma, for multi-scale denoising score matching.

    Dividing by sigma makes the score scale like 1/sigma, as the true score of data smoothed by
    N(0, sigma^2 I) does (Song & Ermon 2019, 2020), so one network serves every noise level.
    `forward(x)` with no sigma uses `default_sigma` (set by training to the smallest level).
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (128, 128, 128),
        *,
        default_sigma: float = 0.05,
        spectral_norm: bool = False,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"NoiseConditionalMLP dim must be a positive integer; got {dim!r}")
        self.network = _mlp(dim + 1, _check_width(hidden), spectral_norm)
        self.event_shape = torch.Size([dim])
        self.default_sigma = float(default_sigma)
        _initialise(self, generator)

    def forward(self, x: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        sigma = self.default_sigma if sigma is None else sigma
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(x.shape[0])
        features = torch.cat([x, torch.log(sigma)[:, None]], dim=1)
        return self.network(features).squeeze(-1) / sigma
