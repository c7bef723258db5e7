"""`FitResult`: what `fit` returns — the trained energy, the per-iteration history, and run facts."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn


@dataclass
class FitResult:
    """The trained `energy` (an nn.Module callable on (n, *event)) and the training `history`.

    `history` maps "iteration", "loss" and each method's figures (e.g. "energy_data", "gap",
    "log_normaliser") to per-iteration lists of floats. `samples` holds the method's latest model
    samples (contrastive methods), `wall_time` the seconds spent training in this call; `extras` holds
    method-specific results (pcd: "replay_buffer", the stored chain states; dsm_multiscale: "sigmas"; nce:
    "log_normaliser").
    """

    energy: nn.Module
    history: dict[str, list[float]]
    method: str
    options: dict[str, object]
    seed: int
    n_iterations: int
    wall_time: float
    samples: Tensor | None = None
    extras: dict[str, object] = field(default_factory=dict)
