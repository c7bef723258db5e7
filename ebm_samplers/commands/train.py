"""`ebm-samplers train`: train an EBM on a toy data set (or 8x8 digits), evaluate it, write results.

    ebm-samplers train --dataset 8gaussians --method pcd --out DIR

writes DIR/checkpoint.pt (resumable with --resume), DIR/metrics.json (exact test NLL by grid quadrature
with its discretisation check, the data entropy where known, MMD of model samples to held-out data, KSD of
held-out data and of sampler draws under the model's score, wall time; for digits MMD, KSD, nearest-neighbour
class coverage and, with --ais-chains, an AIS test NLL: see `training.image_quality`) and PNGs: density.png
(learned density next to the data), samples.png (model samples over energy contours; digits: a grid of
buffer samples), loss.png, and for score-based methods score.png (learned score field over the data).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

_SCORE_METHODS = ("exact_sm", "sm", "ssm", "dsm", "dsm_multiscale")


def add_parser(commands) -> None:
    from ebm_samplers.training import available_datasets, available_methods

    train = commands.add_parser("train", help="train an energy-based model on a toy data set and evaluate it")
    train.add_argument(
        "--dataset", default="8gaussians", help=f"one of {', '.join(available_datasets())} (default: 8gaussians)"
    )
    train.add_argument("--method", default="pcd", help=f"one of {', '.join(available_methods())} (default: pcd)")
    train.add_argument("--out", default="runs/train", help="output folder (default: runs/train)")
    train.add_argument("--iterations", type=int, default=None, help="optimiser steps (default: the method's)")
    train.add_argument(
        "--batch-size", type=int, default=None, help="data samples per step (default: the method's, mostly 256)"
    )
    train.add_argument("--learning-rate", type=float, default=None, help="Adam step size (default: the method's)")
    train.add_argument("--sampler", default=None, help="registered sampler for short_run/cd/pcd (default: ula)")
    train.add_argument("--train-size", type=int, default=20_000, help="training samples drawn (default: 20000)")
    train.add_argument("--test-size", type=int, default=5_000, help="held-out samples drawn (default: 5000)")
    train.add_argument("--seed", type=int, default=0, help="seeds data, initialisation and training (default: 0)")
    train.add_argument(
        "--sample-steps", type=int, default=300, help="ULA steps per model sample for the pictures (default: 300)"
    )
    train.add_argument(
        "--grid-resolution", type=int, default=400, help="quadrature cells per axis for the NLL (default: 400)"
    )
    train.add_argument(
        "--ais-chains", type=int, default=0, help="digits: AIS chains for the test NLL (default 0: no AIS)"
    )
    train.add_argument("--ais-temperatures", type=int, default=1000, help="digits: AIS temperatures (default 1000)")
    train.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    train.add_argument(
        "--option", action="append", default=[], metavar="NAME=VALUE", help="a method option, e.g. n_steps=40"
    )
    train.add_argument("--no-plot", action="store_true", help="skip the PNGs")
    train.set_defaults(handler=run_command)


def _parse_option(text: str) -> tuple[str, object]:
    name, separator, value = text.partition("=")
    if not separator or not name.isidentifier():
        raise ValueError(f"--option needs NAME=VALUE (e.g. n_steps=40); got {text!r}")
    for convert in (int, float):
        try:
            return name, convert(value)
        except ValueError:
            pass
    return name, {"true": True, "false": False}.get(value.lower(), value)


def run_command(args: argparse.Namespace) -> int:
    import torch

    from ebm_samplers.training import available_datasets, fit, load_digits, toy_dataset

    if args.dataset not in available_datasets():  # toy_dataset's own error would not mention digits
        raise ValueError(f"unknown data set {args.dataset!r}; --dataset is one of {', '.join(available_datasets())}")
    options = dict(_parse_option(text) for text in args.option)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data_generator = torch.Generator().manual_seed(args.seed)
    test_labels = None
    if args.dataset == "digits":  # fit's defaults follow the data's dimension: no digits-only settings here
        dataset = None
        train, test, _, test_labels = load_digits(generator=data_generator, with_labels=True)
    else:
        dataset = toy_dataset(args.dataset)
        train = dataset.sample(args.train_size, data_generator)
        test = dataset.sample(args.test_size, data_generator)
        if args.method == "exact_sm" and "target" not in options:
            options["target"] = dataset.energy()
    checkpoint = out / "checkpoint.pt"
    if args.resume and not checkpoint.is_file():
        raise ValueError(f"--resume: no checkpoint at {checkpoint}")
    result = fit(
        train,
        method=args.method,
        n_iterations=args.iterations,
        batch_size=args.batch_size,
        seed=args.seed,
        sampler=args.sampler,
        learning_rate=args.learning_rate,
        checkpoint=checkpoint,
        resume=checkpoint if args.resume else None,
        progress=None,  # a bar on a terminal only: in a redirected log every redraw would be a line
        **options,
    )
    from ebm_samplers import distributed

    if distributed.rank() != 0:  # under torchrun every rank trains; rank 0 evaluates, prints and writes
        return 0
    metrics = {
        "dataset": args.dataset,
        "method": args.method,
        "iterations": result.n_iterations,
        "seed": args.seed,
        "wall_time_s": round(result.wall_time, 2),
        "final_loss": result.history["loss"][-1],
    }
    with distributed.local_only():  # rank 0 alone draws the evaluation samples
        if dataset is None:
            metrics.update(_evaluate_images(result, train, test, test_labels, out, args))
        else:
            metrics.update(_evaluate_toy(result, dataset, test, out, args))
    _write_json(out / "metrics.json", metrics)
    for name, value in metrics.items():
        print(f"{name:28s} {value}")
    print(f"wrote {out}/checkpoint.pt, metrics.json{'' if args.no_plot else ' and PNGs'}")
    return 0


def _evaluate_toy(result, dataset, test, out: Path, args) -> dict:
    import torch

    from ebm_samplers.training import data_ksd, grid_nll, mmd, sample_ksd
    from ebm_samplers.training.evaluation import grid_samples, ksd_summary
    from ebm_samplers.training.plots import density_figure, loss_figure, samples_figure, score_figure

    energy = result.energy.eval()
    nll = grid_nll(energy, test, resolution=args.grid_resolution)
    generator = torch.Generator().manual_seed(args.seed + 1)
    exact_samples = grid_samples(energy, 1000, generator, resolution=args.grid_resolution)
    metrics = {
        "test_nll": round(nll.nll, 4),
        "data_entropy": round(float(dataset.energy()(test).mean()), 4) if dataset.has_density else None,
        "quadrature": {
            "bounds": list(nll.bounds),
            "resolution": nll.resolution,
            "discretisation_error": nll.discretisation_error,
        },
        "mmd2_model_vs_test": round(mmd(exact_samples, test[:1000]), 5),
    }
    sampler_samples, how = _sampler_samples(result, args.sample_steps, generator)
    metrics["mmd2_sampler_vs_test"] = round(mmd(sampler_samples, test[:1000]), 5)
    metrics["sampler_samples"] = how
    # goodness of fit (held-out data under the model's score) and sampler check (its samples under the same score)
    fit_ksd = data_ksd(energy, test[:1000], n_bootstrap=200, generator=generator)
    own_ksd = sample_ksd(energy, sampler_samples, n_bootstrap=200, generator=generator)
    metrics["ksd_test_data"] = ksd_summary(fit_ksd, 5)
    metrics["ksd_sampler_samples"] = ksd_summary(own_ksd, 5)
    if not args.no_plot:
        title = f"{args.method} on {args.dataset}"
        density_figure(energy, test, out / "density.png", f"{args.method}, NLL {nll.nll:.3f}")
        samples_figure(energy, sampler_samples, out / "samples.png", f"{title}\n{how}")
        loss_figure(result.history, out / "loss.png", title)
        if args.method in _SCORE_METHODS:
            score_figure(energy, test, out / "score.png", f"learned score -grad E ({title})")
    return metrics


def _sampler_samples(result, n_steps: int, generator):
    """Samples of the trained model from a sampler: annealed Langevin for noise-conditional energies,
    else `n_steps` ULA steps (step 0.02) from uniform starts over the window; one chain per sample."""
    import torch

    import ebm_samplers
    from ebm_samplers.training.datasets import TOY_BOUNDS
    from energies import NoiseConditionalEnergy

    n = 1000
    low, high = TOY_BOUNDS
    start = low + (high - low) * torch.rand(n, 2, generator=generator)
    seed = int(torch.randint(0, 2**31, (1,), generator=generator))
    if isinstance(result.energy, NoiseConditionalEnergy):
        sigmas = result.extras["sigmas"]
        params = {"sigma_max": sigmas[0], "sigma_min": sigmas[-1], "n_levels": len(sigmas)}
        trace = ebm_samplers.sample(
            result.energy,
            "annealed_langevin",
            init=start,
            n_steps=1,
            seed=seed,
            step_scale=0.2 * sigmas[-1] ** 2,
            steps_per_level=max(1, n_steps // 10),
            denoise=True,
            **params,
        )
        levels = len(sigmas)
        return trace.draws[:, -1], f"annealed Langevin ({levels} levels x {max(1, n_steps // 10)} steps, denoised)"
    trace = ebm_samplers.sample(
        result.energy, "ula", init=start, n_steps=n_steps, thin=n_steps, seed=seed, step_size=0.02
    )
    return trace.draws[:, -1], f"ULA, {n_steps} steps of 0.02 from uniform starts"


def _evaluate_images(result, train, test, test_labels, out: Path, args) -> dict:
    import torch

    from ebm_samplers.training.image_quality import image_quality
    from ebm_samplers.training.plots import image_grid_figure, loss_figure

    samples = result.extras.get("replay_buffer", result.samples)
    if samples is None:
        raise ValueError(f"method {args.method!r} gives no model samples for the digits picture; use pcd")
    generator = torch.Generator().manual_seed(args.seed + 1)
    shown = samples[torch.randperm(len(samples), generator=generator)[:100]]
    energy = result.energy.eval()
    ais = {"n_chains": args.ais_chains, "n_temperatures": args.ais_temperatures} if args.ais_chains else None
    metrics = {"samples": f"{len(samples)} model samples: the replay buffer's stored chain states"}
    metrics.update(image_quality(energy, samples, train, test, test_labels, generator, ais=ais))
    if not args.no_plot:
        image_grid_figure(shown, out / "samples.png", f"{args.method} samples (8x8 digits, 100 from the buffer)")
        loss_figure(result.history, out / "loss.png", f"{args.method} on digits")
    return metrics


def _write_json(path: Path, payload: dict) -> None:
    from ebm_samplers._atomic import atomic_write

    text = json.dumps(payload, indent=2)  # before any file exists: a payload that cannot be written leaves none
    atomic_write(path, lambda temporary: temporary.write_text(text))
