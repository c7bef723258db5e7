"""`fit()`: train an energy on data with any registered training method.

One loop serves every method: draw a mini-batch (with replacement, from the run's one generator), ask
the method for its loss, take an Adam step. All randomness — weight initialisation, batches, noise,
and the samplers' moves — comes from one `torch.Generator` seeded by `seed`, so a run is reproducible,
and a run resumed from a checkpoint continues bit-identically (on CPU) to one never interrupted.
"""

from __future__ import annotations

import math
import os
import sys
import time

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ebm_samplers._validate import check_count
from ebm_samplers.kernels import Kernel
from ebm_samplers.training._method import build_method
from ebm_samplers.training.checkpoint import load_checkpoint, plain_options, save_checkpoint
from ebm_samplers.training.distributed import DataParallelRun, check_single_process_checkpoint, wants_data_parallel
from ebm_samplers.training.result import FitResult
from energies import check_energy


def fit(
    data: Tensor,
    method: str = "pcd",
    energy: nn.Module | None = None,
    n_iterations: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    sampler: str | Kernel | None = None,
    *,
    learning_rate: float | None = None,
    learning_rate_schedule: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 500,
    resume: str | os.PathLike | None = None,
    progress: bool | None = None,
    buffer_mixing_every: int | None = None,
    buffer_mixing_fraction: float = 0.1,
    **options,
) -> FitResult:
    """Train an energy E so that exp(-E) fits `data`.

    Args:
        data: training samples, a floating tensor (n, *event) without NaN/inf rows.
        method: one of `available_methods()`: short_run, cd, pcd, exact_sm, sm, ssm, dsm, dsm_multiscale, nce.
        energy: any nn.Module mapping (n, *event) -> (n,); default an `energies.MLPEnergy` (vectors),
            `energies.ConvEnergy` (8x8 images) or `energies.NoiseConditionalMLP` (dsm_multiscale),
            initialised from `seed`.
        n_iterations: total optimiser steps (a resumed run continues up to it); default per method (and, for
            pcd, per data dimension: see `training.pcd`).
        batch_size: data samples per step (drawn with replacement); default per method (256; pcd on samples
            of more than 16 numbers 128).
        seed: seeds the run's only random generator.
        sampler: for short_run, cd and pcd: a registered sampler name or a Kernel (default "ula").
        learning_rate: Adam's step size; default per method (1e-3; pcd 3e-3, on samples of more than 16
            numbers 1e-3).
        learning_rate_schedule: "constant" (Adam's step stays `learning_rate`), "cosine" (it falls from
            `learning_rate` to 0 along half a cosine over the `n_iterations`, so the last updates average out the
            noise of the gradient estimate instead of leaving the weights where one noisy step put them) or
            "cooldown" (constant, then that fall over the last third); default per method ("cooldown" for pcd
            on samples of at most 16 numbers, "constant" otherwise).
        checkpoint: a file to save the full training state to, every `checkpoint_every` steps and at the end.
        resume: a checkpoint file to continue from (same data, method and options).
        progress: show a progress bar; None shows it when stderr is a terminal.
        buffer_mixing_every, buffer_mixing_fraction: under torchrun (data-parallel PCD, see
            `ebm_samplers.training.distributed`), every `buffer_mixing_every` steps each rank hands a random
            `buffer_mixing_fraction` of its replay buffer to the next rank; None (default) never mixes.
        **options: the method's options (see each method's module), e.g. n_steps, step_size, alpha, sigma.
    """
    data = _check_data(data)
    n_iterations_given = n_iterations
    trainer = build_method(method, options)
    trainer.resolve_defaults(data)
    if sampler is not None:
        if not trainer.uses_sampler:
            raise ValueError(f"method {method!r} draws no model samples, so sampler= does not apply to it")
        trainer.sampler = sampler
    n_iterations = trainer.default_iterations if n_iterations_given is None else n_iterations
    learning_rate = trainer.default_learning_rate if learning_rate is None else learning_rate
    batch_size = trainer.default_batch_size if batch_size is None else batch_size
    if learning_rate_schedule is None:
        learning_rate_schedule = trainer.default_learning_rate_schedule
    if learning_rate_schedule not in _SCHEDULES:
        raise ValueError(
            f"learning_rate_schedule must be one of {', '.join(map(repr, _SCHEDULES))}; got {learning_rate_schedule!r}"
        )
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
        raise ValueError(f"learning_rate must be a number > 0; got {learning_rate!r}")
    check_count(n_iterations, "n_iterations", minimum=1)
    check_count(batch_size, "batch_size", minimum=1)
    check_count(seed, "seed", minimum=0)
    check_count(checkpoint_every, "checkpoint_every", minimum=1)

    parallel = None
    if wants_data_parallel():
        parallel = DataParallelRun.join(method, seed, data.device, buffer_mixing_every, buffer_mixing_fraction)
        batch_size = parallel.local_batch_size(batch_size)
    elif buffer_mixing_every is not None:
        raise ValueError("buffer_mixing_every applies to data-parallel training under torchrun only")
    generator = torch.Generator(device=data.device).manual_seed(seed if parallel is None else parallel.rank_seed())
    if energy is None:
        # weights are drawn on the CPU (from their own generator seeded by `seed`), so a run initialises
        # the same network on every device
        weights = torch.Generator().manual_seed(seed)
        energy = trainer.default_energy(data.shape[1:], weights).to(device=data.device, dtype=data.dtype)
    elif not isinstance(energy, nn.Module):
        raise TypeError(f"energy must be an nn.Module mapping (n, *event) -> (n,); got {type(energy).__name__}")
    _check_energy_fits(energy, data)
    trainer.setup(energy, data, generator)
    optimiser = torch.optim.Adam([*energy.parameters(), *trainer.parameters()], lr=learning_rate)
    model = energy if parallel is None else parallel.wrap(energy, data.device)

    history: dict[str, list[float]] = {"iteration": [], "loss": []}
    start = 0
    if resume is not None:
        if parallel is None:
            saved = load_checkpoint(resume)
            check_single_process_checkpoint(saved, resume)
        else:
            saved = parallel.load(resume)
        if saved["method"] != method:
            raise ValueError(f"checkpoint {resume} was written by method {saved['method']!r}, not {method!r}")
        energy.load_state_dict(saved["energy"])
        optimiser.load_state_dict(saved["optimiser"])
        trainer.load_state_dict(saved["method_state"])
        generator.set_state(saved["generator"])
        history = {name: list(values) for name, values in saved["history"].items()}
        start = saved["iteration"]

    def snapshot(iteration: int) -> dict:
        return {
            "method": method,
            "options": plain_options(trainer.options()),
            "seed": seed,
            "iteration": iteration,
            "energy": energy.state_dict(),
            "optimiser": optimiser.state_dict(),
            "method_state": trainer.state_dict(),
            "generator": generator.get_state(),
            "history": history,
        }

    def save(iteration: int) -> None:
        if parallel is None:
            save_checkpoint(checkpoint, snapshot(iteration))
        else:
            parallel.save(checkpoint, snapshot(iteration))

    show = progress if progress is not None else sys.stderr.isatty()
    show = show and (parallel is None or parallel.is_main)
    began = time.perf_counter()
    with tqdm(total=n_iterations, initial=start, disable=not show, desc=f"fit {method}", unit="it") as bar:
        for iteration in range(start, n_iterations):
            index = torch.randint(0, data.shape[0], (batch_size,), generator=generator, device=data.device)
            # a function of the iteration alone, so a resumed run continues the same schedule
            for group in optimiser.param_groups:
                group["lr"] = _scheduled(learning_rate, learning_rate_schedule, iteration, n_iterations)
            loss, figures = trainer.loss(model, data[index], generator)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"{method} loss became {loss.item()} at iteration {iteration}; lower learning_rate "
                    "or the sampler's step_size, or raise the energy penalty alpha"
                )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if parallel is not None:
                parallel.after_step(iteration, trainer, generator)
            _record(history, iteration, loss.item(), figures)
            if iteration % 25 == 0 or iteration + 1 == n_iterations:
                bar.set_postfix(loss=f"{loss.item():.4g}")
            bar.update(1)
            if checkpoint is not None and (iteration + 1) % checkpoint_every == 0:
                save(iteration + 1)
    wall_time = time.perf_counter() - began
    if checkpoint is not None:
        save(n_iterations)
    if parallel is not None:
        parallel.finish()

    extras = trainer.extras()
    if hasattr(energy, "sigmas"):
        extras["sigmas"] = list(energy.sigmas)
    if method == "nce":
        extras["log_normaliser"] = history["log_normaliser"][-1] if history.get("log_normaliser") else math.nan
    return FitResult(
        energy=energy,
        history=history,
        method=method,
        options=trainer.options(),
        seed=seed,
        n_iterations=n_iterations,
        wall_time=wall_time,
        samples=trainer.samples(),
        extras=extras,
    )


_SCHEDULES = ("constant", "cosine", "cooldown")
#: The share of the run over which the "cooldown" schedule brings Adam's step down to 0.
COOLDOWN_SHARE = 1.0 / 3.0


def _scheduled(learning_rate: float, schedule: str, iteration: int, n_iterations: int) -> float:
    """Adam's step at `iteration` (0-based) of `n_iterations`: constant; half a cosine from the full step to 0 over
    the run ("cosine"); or constant, then that half cosine over the last `COOLDOWN_SHARE` of the run ("cooldown":
    a constant step with a cool-down, Hägele et al. 2024, which keeps 5/6 of a constant run's summed step where
    "cosine" keeps 1/2)."""
    if schedule == "constant":
        return learning_rate
    if schedule == "cosine":
        return 0.5 * learning_rate * (1.0 + math.cos(math.pi * iteration / n_iterations))
    start = n_iterations * (1.0 - COOLDOWN_SHARE)
    if iteration < start:
        return learning_rate
    return 0.5 * learning_rate * (1.0 + math.cos(math.pi * (iteration - start) / (n_iterations - start)))


def _record(history: dict[str, list[float]], iteration: int, loss: float, figures: dict[str, float]) -> None:
    history["iteration"].append(float(iteration))
    history["loss"].append(loss)
    for name, value in figures.items():
        history.setdefault(name, []).append(value)


def _check_data(data) -> Tensor:
    if not isinstance(data, Tensor):
        raise TypeError(f"data must be a torch.Tensor of shape (n, *event); got {type(data).__name__}")
    if not data.is_floating_point():
        raise TypeError(f"data must be a floating tensor (float32 or float64); got {data.dtype}")
    if data.ndim < 2:
        raise ValueError(
            f"data must have shape (n_samples, *event) with at least 2 axes, e.g. (n, 2) for 2-D points; "
            f"got shape {tuple(data.shape)}"
        )
    if data.shape[0] == 0 or data[0].numel() == 0:
        raise ValueError(f"data is empty (shape {tuple(data.shape)}); expected at least one sample of size >= 1")
    bad = ~torch.isfinite(data.reshape(data.shape[0], -1)).all(1)
    if bool(bad.any()):
        first = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"data has {int(bad.sum())} row(s) containing NaN or infinity (first: row {first}); "
            "remove or fix them before training"
        )
    return data.detach()


def _check_energy_fits(energy: nn.Module, data: Tensor) -> None:
    """A clear error when the energy does not accept the data (wrong dimension) or breaks the contract."""
    probe = data[: min(4, data.shape[0])]
    event_shape = getattr(energy, "event_shape", None)
    if event_shape is not None and tuple(event_shape) != tuple(data.shape[1:]):
        raise ValueError(
            f"the energy expects samples of shape {tuple(event_shape)} but data has samples of shape "
            f"{tuple(data.shape[1:])} (data shape {tuple(data.shape)})"
        )
    try:
        check_energy(energy, probe)
    except RuntimeError as error:  # e.g. a matmul shape mismatch inside the user's network
        raise ValueError(
            f"the energy cannot evaluate data of shape (n, {', '.join(map(str, data.shape[1:]))}): {error}"
        ) from error
