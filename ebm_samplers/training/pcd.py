"""Persistent contrastive divergence (Tieleman 2008) through the "persistent" replay-buffer sampler.

Each iteration the "persistent" kernel draws a batch of chain states from its replay buffer (a fresh
start with probability `reinit_probability`, Du & Mordatch 2019: uniform on the data's box, or a training
point with probability `restart_from_data`), runs `n_steps` steps of
the inner `sampler` (any registered kernel) on the CURRENT energy, then (`data_jumps`) one jump between modes,
and pushes the results back:

    loss = mean E(x+) - mean E(x-) + alpha (E(x+)^2 + E(x-)^2)

Defaults for samples of at most `HIGH_DIMENSION` numbers (the 2-D toy sets; `LOW_DIMENSION_SETTINGS`) start
from Du & Mordatch (2019) and Grathwohl et al. (2019): a 10,000-sample buffer, 5 % re-initialisation uniform
over the data's bounding box (widened by 10 % per side), an L2 penalty on energies, 20 Langevin steps of 0.01
per iteration, Adam 3e-3, 3,000 iterations. Four choices differ from those papers, each for a mechanism measured
on the thin rings and the checkerboard (issue 18; docs/training/pcd_defaults.md has the measurements):

* `data_jumps`: after the inner steps each chain proposes one independence Metropolis-Hastings jump from a
  Gaussian kernel density of `JUMP_POINTS` training points (`kernels.data_jump.ModeJump`; bandwidth by the
  held-out likelihood of as many other training points). Local chains do not cross the gaps between
  well-separated modes, so without jumps the buffer's share per mode is where fresh starts land (by basin area
  under uniform starts, by the data's shares under `restart_from_data`), never the model's own weights, and the
  gradient has nothing that corrects a wrong mode weight. The jump is exact for exp(-E), so chains reach each
  mode in proportion to the model's weight there and the PCD gradient sees the error.
* MALA rather than ULA: ULA on a curvature k is stable only for h k < 2 and its stationary sd never falls below
  sqrt(2h) = 0.14 at h = 0.01, so it cannot hold a ring of sd 0.08 and the model sharpens to compensate; MALA
  keeps exp(-E) invariant at any step.
* alpha = 0.03 rather than 0.1: the penalty alpha (E+^2 + E-^2) moves the fixed point (along the energy's own
  scale the likelihood gradient is Var(E) theta and the penalty's 4 alpha Var(E) (1 + theta), so the fitted
  energy is about E / (1 + 4 alpha): exp(-E / 1.4) at alpha = 0.1, a blurred model); a smaller alpha let the
  mode weights run away while nothing restored them, which the jumps now do.
* Adam's step cools down to 0 along half a cosine over the last third of the run (`fit`'s
  `learning_rate_schedule="cooldown"`) rather than staying at 3e-3: at a constant step every late update moves
  the weights by about the step in a direction set by one batch's noise (the negatives of a finite buffer), and
  the model kept is wherever the last updates left it (on the rings: the mode weights); a decaying step averages
  that noise out. Decaying over the whole run instead ("cosine") halves the summed step and can leave a slowly
  learnt feature (a thin inner ring's width) unfinished. Without the jumps any decay only froze the wrong mode
  weights in place.

With these, 3,000 iterations rather than 2,000: the sharper model takes longer to draw the checkerboard's edges.

Defaults follow the data: the settings above serve samples of at most `HIGH_DIMENSION` numbers (the 2-D
toy sets); larger samples (8x8 digits in [-1, 1], 64-D) get `HIGH_DIMENSION_SETTINGS`, measured on the digits
(README). With step 0.01 the ULA noise sqrt(2h) = 0.14 per pixel per step swamps the drift of a flat initial
energy and 20 steps never leave the uniform noise. A small step (1e-4, noise 0.014) forces the model to learn
a sharp energy (data vs sample energies of order +-30), i.e. to learn its own low temperature, which the EBM
literature instead gets by shrinking the Langevin noise; a weak L2 penalty (alpha = 0.001) lets energies reach
that scale; a 2,000-sample buffer gets each chain revisited ~60 times in 1,000 iterations (a 10,000 buffer
leaves most chains a few visits from noise; 1,000 gave worse samples: buffer MMD^2 to held-out digits 0.016
against 0.0055, nearest-neighbour class coverage TV 0.23 against 0.17, at 500 iterations; README). 1,000
iterations rather than 500: class coverage TV 0.11 against 0.17 and visibly more recognisable digits for ~4 CPU
minutes on a quiet 2-core machine (README). No data jumps there: a Gaussian kernel density of 1,000 images
proposes images no trained model accepts, at the cost of an energy evaluation per chain. Every option given
explicitly wins
over both sets; between 2-D and 64-D the switch at 16 numbers is a choice, not a measurement.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor, nn

import ebm_samplers
from ebm_samplers._validate import check_flag
from ebm_samplers.kernels import Kernel
from ebm_samplers.kernels.data_jump import ModeJump, held_out_bandwidth
from ebm_samplers.training._chains import check_chain_steps
from ebm_samplers.training._contrastive import contrastive_loss
from ebm_samplers.training._method import TrainingMethod, register_method
from ebm_samplers.training.distributed import local_module

#: Samples with more numbers than this (e.g. 8x8 images: 64) get `HIGH_DIMENSION_SETTINGS`.
HIGH_DIMENSION = 16
#: Training points in the kernel density that proposes `data_jumps` (and as many held out to choose its bandwidth).
JUMP_POINTS = 1000
#: Defaults for samples of at most `HIGH_DIMENSION` numbers (the 2-D toy sets).
LOW_DIMENSION_SETTINGS: dict[str, float | int | str] = {
    "sampler": "mala",
    "data_jumps": True,
    "restart_from_data": 0.0,
    "n_steps": 20,
    "step_size": 0.01,
    "alpha": 0.03,
    "buffer_size": 10_000,
    "n_iterations": 3000,
    "learning_rate": 3e-3,
    "learning_rate_schedule": "cooldown",
    "batch_size": 256,
}
#: Defaults for larger samples, measured on 8x8 digits (see the module docstring and the README).
HIGH_DIMENSION_SETTINGS: dict[str, float | int | str] = {
    "sampler": "ula",
    "data_jumps": False,
    "restart_from_data": 0.0,
    "n_steps": 40,
    "step_size": 1e-4,
    "alpha": 0.001,
    "buffer_size": 2000,
    "n_iterations": 1000,
    "learning_rate": 1e-3,
    "learning_rate_schedule": "constant",
    "batch_size": 128,
}


@register_method("pcd")
@dataclass
class PersistentContrastiveDivergence(TrainingMethod):
    sampler: str | Kernel | None = None  # None: from the data (LOW_ or HIGH_DIMENSION_SETTINGS)
    n_steps: int | None = None  # None: from the data (LOW_ or HIGH_DIMENSION_SETTINGS)
    step_size: float | None = None
    alpha: float | None = None
    buffer_size: int | None = None
    reinit_probability: float = 0.05
    restart_from_data: float | None = None  # share of fresh starts that are training points (rest: uniform box)
    data_jumps: bool | None = None  # one ModeJump per call from a kernel density of JUMP_POINTS training points
    uses_sampler = True
    default_learning_rate = 3e-3

    def resolve_defaults(self, data: Tensor) -> None:
        settings = HIGH_DIMENSION_SETTINGS if data[0].numel() > HIGH_DIMENSION else LOW_DIMENSION_SETTINGS
        for name in ("sampler", "data_jumps", "restart_from_data", "n_steps", "step_size", "alpha", "buffer_size"):
            if getattr(self, name) is None:
                setattr(self, name, settings[name])
        self.default_iterations = settings["n_iterations"]
        self.default_learning_rate = settings["learning_rate"]
        self.default_learning_rate_schedule = settings["learning_rate_schedule"]
        self.default_batch_size = settings["batch_size"]

    def setup(self, energy: nn.Module, data: Tensor, generator: torch.Generator) -> None:
        check_chain_steps(self.n_steps, "pcd")
        shape, dtype, device = data.shape[1:], data.dtype, data.device
        low, high = data.amin(0), data.amax(0)
        low, high = low - 0.1 * (high - low), high + 0.1 * (high - low)

        share = self.restart_from_data
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
            raise ValueError(f"pcd restart_from_data must be a number in [0, 1]; got {share!r}")

        def uniform_start(n: int, generator: torch.Generator) -> Tensor:
            uniform = low + (high - low) * torch.rand((n, *shape), generator=generator, dtype=dtype, device=device)
            if share == 0.0:
                return uniform
            # the same draws whatever the share (a coin and a data index per row), so runs stay comparable
            coin = torch.rand(n, generator=generator, device=device) < share
            points = data[torch.randint(0, data.shape[0], (n,), generator=generator, device=device)]
            return torch.where(coin.reshape(n, *([1] * len(shape))), points, uniform)

        self._start = uniform_start
        self.buffer = ebm_samplers.ReplayBuffer(
            self.buffer_size,
            shape,
            reinit_probability=self.reinit_probability,
            init_distribution=uniform_start,
            device=device,
            dtype=dtype,
        )
        inner_params = {"step_size": self.step_size} if isinstance(self.sampler, str) else {}
        check_flag(self.data_jumps, "pcd data_jumps")
        jump = self._mode_jump(data, generator) if self.data_jumps else None
        self._kernel = ebm_samplers.get_sampler(
            "persistent", inner=self.sampler, n_inner_steps=self.n_steps, buffer=self.buffer, jump=jump, **inner_params
        )
        self._state = None
        self._pending: dict | None = None

    @staticmethod
    def _mode_jump(data: Tensor, generator: torch.Generator) -> ModeJump:
        """The jump of `data_jumps`: a kernel density of JUMP_POINTS random training points, its bandwidth chosen by
        the held-out likelihood of as many others (`held_out_bandwidth`)."""
        order = torch.randperm(data.shape[0], generator=generator, device=generator.device).to(data.device)
        reference = data[order[:JUMP_POINTS]]
        held_out = data[order[JUMP_POINTS : 2 * JUMP_POINTS]]
        if held_out.shape[0] == 0:
            held_out = reference  # too few points to hold any out: the reference's own likelihood
        return ModeJump(reference, held_out_bandwidth(reference, held_out))

    def loss(self, energy: nn.Module, batch: Tensor, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        if self._state is None:
            self._state = self._initial_state(local_module(energy), batch.shape[0], generator)
        self._state, info = self._kernel.step(self._state, local_module(energy), generator)
        loss, figures = contrastive_loss(energy, batch, self._state.position, self.alpha)
        # lineage: the negatives' mean number of transitions since their chains' fresh starts; jump_acceptance_rate:
        # the share of chains whose jump between modes was accepted (with data_jumps)
        figures = {**figures, "buffer_size": float(len(self.buffer)), "lineage": info["lineage"].mean().item()}
        if "jump_accepted" in info:
            figures["jump_acceptance_rate"] = info["jump_accepted"].double().mean().item()
        return loss, figures

    def _initial_state(self, energy: nn.Module, n: int, generator: torch.Generator):
        if self._pending is None:
            return self._kernel.init(self._start(n, generator), energy)
        saved, self._pending = self._pending, None
        state = self._kernel.init(saved["position"], energy)
        return dataclasses.replace(state, **saved)

    def samples(self) -> Tensor | None:
        return None if self._state is None else self._state.position

    def extras(self) -> dict[str, object]:
        """ "replay_buffer": the stored chain states (n, *event), the last `buffer_size` pushed model samples."""
        stored = self.buffer.state_dict()
        return {"replay_buffer": stored["samples"][: stored["size"]]}

    def state_dict(self) -> dict:
        state = None
        if self._state is not None:
            state = {f.name: getattr(self._state, f.name) for f in dataclasses.fields(self._state)}
        elif self._pending is not None:
            state = self._pending
        return {"buffer": self.buffer.state_dict(), "chain_state": state}

    def load_state_dict(self, state: dict) -> None:
        self.buffer.load_state_dict(state["buffer"])
        self._state = None
        self._pending = state["chain_state"]
