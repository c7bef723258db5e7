"""`sample()`: run any kernel on any energy, many chains at once, and collect a `Trace`.

The loop keeps everything on the device of the initial points: draws and stats go into preallocated
tensors, and numerical failures are detected on device and checked on the host only every
`_CHECK_EVERY` steps, so a step never waits for the host.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ebm_samplers import distributed
from ebm_samplers.kernels.base import Info, Kernel, State, nonfinite
from ebm_samplers.registry import get_sampler
from ebm_samplers.trace import Trace
from energies import Energy, as_energy, check_energy

_CHECK_EVERY = 256
_PROGRESS_MIN_STEPS = 2000


def sample(
    energy: Callable[[Tensor], Tensor],
    sampler: str | Kernel = "mala",
    *,
    init: Tensor | None = None,
    n_chains: int | None = None,
    n_steps: int,
    warmup: int = 0,
    thin: int = 1,
    seed: int | None = None,
    progress: bool | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    **sampler_params,
) -> Trace:
    """Draw `n_steps // thin` kept states from each of many chains targeting exp(-energy).

    Args:
        energy: any callable `f(x: Tensor[n, *event]) -> Tensor[n]`, or an `energies.Energy`.
        sampler: a registered sampler name (see `available_samplers()`) or a kernel object.
        init: initial points `(n_chains, *event_shape)`; their device and dtype are used throughout.
        n_chains: with no `init`, start this many chains from N(0, I) (needs `energy.event_shape`).
        n_steps: transitions after warm-up; every `thin`-th one is kept.
        warmup: transitions run first and discarded.
        seed: seeds the run's only random generator; None picks a fresh seed, stored in `trace.attrs`.
        progress: show a progress bar; None shows it on long runs when stderr is a terminal.
        device, dtype: for the N(0, I) initial points when `init` is None.
        **sampler_params: parameters for a sampler given by name (e.g. `step_size=0.1`).

    Under `torchrun` (or any initialised process group of several ranks) the chains are split across
    ranks; rank 0 returns all of them (see `ebm_samplers.distributed`).
    """
    if distributed.should_shard():
        arguments = {name: value for name, value in locals().items() if name != "sampler_params"}
        return distributed.sample_distributed(sample, {**arguments, **sampler_params})
    kernel = _resolve_kernel(sampler, sampler_params)
    n_steps = _check_count(n_steps, "n_steps", minimum=1)
    warmup = _check_count(warmup, "warmup", minimum=0)
    thin = _check_count(thin, "thin", minimum=1)
    if n_steps < thin:
        raise ValueError(f"n_steps ({n_steps}) must be at least thin ({thin}) so that one draw is kept")
    seed = secrets.randbits(63) if seed is None else _check_count(seed, "seed", minimum=0)

    energy = as_energy(energy)
    generator_device = init.device if isinstance(init, Tensor) else torch.device(device or "cpu")
    generator = torch.Generator(device=generator_device).manual_seed(seed)
    init = _initial_points(energy, init, n_chains, generator, device, dtype)
    check_energy(energy, init)

    state = kernel.init(init, energy)
    total = warmup + n_steps
    show = progress if progress is not None else (total >= _PROGRESS_MIN_STEPS and sys.stderr.isatty())
    recorder = _Recorder(n_chains=init.shape[0], n_keep=n_steps // thin, thin=thin, warmup=warmup)
    with tqdm(total=total, disable=not show, desc=f"{kernel.name or type(kernel).__name__}", unit="step") as bar:
        for step in range(total):
            state, info = kernel.step(state, energy, generator)
            recorder.watch(step, state, info)
            if step >= warmup:
                recorder.record(step - warmup, state, info)
            if (step + 1) % _CHECK_EVERY == 0 or step + 1 == total:
                recorder.raise_if_failed(energy)
                bar.update(step + 1 - bar.n)

    attrs = {
        "sampler": kernel.name or type(kernel).__name__,
        "sampler_params": kernel.params(),
        "energy": energy.name,
        "seed": seed,
        "warmup": warmup,
        "thin": thin,
        "n_steps": n_steps,
    }
    return Trace(draws=recorder.draws.cpu(), stats={k: v.cpu() for k, v in recorder.stats.items()}, attrs=attrs)


def _resolve_kernel(sampler: str | Kernel, params: dict) -> Kernel:
    if isinstance(sampler, str):
        return get_sampler(sampler, **params)
    if isinstance(sampler, Kernel):
        if params:
            raise TypeError(
                f"sampler parameters {sorted(params)} were given with a kernel object; set them on the kernel "
                "or pass the sampler by name"
            )
        return sampler
    raise TypeError(f"sampler must be a registered name or a Kernel object; got {type(sampler).__name__}")


def _check_count(value, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}; got {value!r}")
    return value


def _initial_points(
    energy: Energy,
    init: Tensor | None,
    n_chains: int | None,
    generator: torch.Generator,
    device,
    dtype,
) -> Tensor:
    if init is not None:
        if n_chains is not None and isinstance(init, Tensor) and init.ndim >= 1 and init.shape[0] != n_chains:
            raise ValueError(f"init has {init.shape[0]} chains but n_chains={n_chains}; give one or make them agree")
        if not isinstance(init, Tensor):
            raise TypeError(f"init must be a torch.Tensor of shape (n_chains, *event); got {type(init).__name__}")
        return init.detach().clone()
    if n_chains is None:
        raise ValueError("give init (a tensor of shape (n_chains, *event_shape)) or n_chains")
    n_chains = _check_count(n_chains, "n_chains", minimum=1)
    if energy.event_shape is None:
        raise ValueError(
            f"energy {energy.name} does not declare its event_shape, so n_chains alone cannot place the chains; "
            "pass init of shape (n_chains, *event_shape) or wrap it with as_energy(f, event_shape=...)"
        )
    dtype = dtype or torch.get_default_dtype()
    return torch.randn(
        (n_chains, *energy.event_shape), generator=generator, dtype=dtype, device=device or generator.device
    )


@dataclass
class _Recorder:
    """Preallocated storage for kept draws and stats, plus on-device failure tracking."""

    n_chains: int
    n_keep: int
    thin: int
    warmup: int

    def __post_init__(self) -> None:
        self.draws: Tensor | None = None
        self.stats: dict[str, Tensor] = {}
        self._first_failure: Tensor | None = None

    def watch(self, step: int, state: State, info: Info) -> None:
        """Remember, per chain, the first step whose proposal or state was not finite."""
        bad = nonfinite(state.energy, state.grad)
        if "nonfinite" in info:
            bad = bad | info["nonfinite"]
        if self._first_failure is None:
            self._first_failure = torch.full((self.n_chains,), -1, dtype=torch.long, device=bad.device)
        self._first_failure = torch.where(bad & (self._first_failure < 0), step, self._first_failure)

    def record(self, step: int, state: State, info: Info) -> None:
        if (step + 1) % self.thin:
            return
        index = (step + 1) // self.thin - 1
        values = {"energy": state.energy, "step_size": state.step_size, **info}
        if self.draws is None:
            position = state.position
            self.draws = position.new_empty((self.n_chains, self.n_keep, *position.shape[1:]))
            self.stats = {k: v.new_empty((self.n_chains, self.n_keep)) for k, v in values.items()}
        self.draws[:, index] = state.position
        for name, value in values.items():
            self.stats[name][:, index] = value

    def raise_if_failed(self, energy: Energy) -> None:
        failed = self._first_failure >= 0
        if not bool(failed.any()):
            return
        chain = int(failed.nonzero()[0, 0])
        step = int(self._first_failure[chain])
        phase = "warm-up step" if step < self.warmup else "step"
        at = step if step < self.warmup else step - self.warmup
        raise FloatingPointError(
            f"energy {energy.name} or its gradient became NaN or infinite in {int(failed.sum())} chain(s); "
            f"first: chain {chain} at {phase} {at}. Reduce the step size, or check the energy for overflow"
        )
