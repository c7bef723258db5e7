"""Digits benchmark: PCD with `fit`'s defaults on scikit-learn's bundled 8x8 digits, judged without a classifier.

    PYTHONPATH=. python benchmarks/digits.py                      # training + evaluation, a few minutes on 2 cores
    PYTHONPATH=. python benchmarks/digits.py --ais-chains 0       # skip the AIS test NLL

Data: `load_digits(generator=seed 0)` (1,438 training and 359 held-out images, with labels). Training:
`fit(train, "pcd", seed=0)` with no options, so the defaults chosen from the data's dimension
(`training.pcd.HIGH_DIMENSION_SETTINGS`) are what is measured. Evaluation (`training.image_quality`) on the
replay buffer's stored chain states (the last `buffer_size` model samples): MMD^2 to held-out digits beside
uniform noise and training digits, KSD of held-out digits and of the samples under the learned score,
nearest-neighbour class coverage (with the same figures for as many training digits), and the AIS bound on
the test code length in bits/dim beside an independent-pixel model. Timing: wall and CPU seconds of
training, and the wall time divided by one energy+gradient evaluation of the initial ConvEnergy on a batch of
the training batch size, measured in the same process (a ratio that survives a loaded machine).
Writes benchmarks/results/pcd_digits_metrics.json and pcd_digits_samples.png (100 random buffer samples).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _report import mean_seconds, write_json

from ebm_samplers.training import fit, load_digits
from ebm_samplers.training.image_quality import image_quality
from ebm_samplers.training.pcd import HIGH_DIMENSION_SETTINGS
from ebm_samplers.training.plots import image_grid_figure
from energies import ConvEnergy, energy_and_grad


def baseline_seconds(batch_size: int) -> float:
    energy = ConvEnergy(generator=torch.Generator().manual_seed(0))
    x = torch.rand(batch_size, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return mean_seconds(lambda: energy_and_grad(energy, x), warmup=10, calls=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=None, help="default: fit's (the high-dimension setting)")
    parser.add_argument("--ais-chains", type=int, default=100, help="AIS chains for the test NLL (0: skip)")
    parser.add_argument("--ais-temperatures", type=int, default=500)
    parser.add_argument("--ais-sampler", default="hmc", help="AIS transition kernel (HMC reached higher log Z)")
    parser.add_argument("--ais-steps", type=int, default=1, help="transitions per AIS temperature")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    train, test, _, test_labels = load_digits(generator=torch.Generator().manual_seed(0), with_labels=True)
    base = baseline_seconds(HIGH_DIMENSION_SETTINGS["batch_size"])
    cpu, wall = time.process_time(), time.perf_counter()
    result = fit(train, "pcd", n_iterations=args.iterations, seed=0, progress=False)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    samples = result.extras["replay_buffer"]
    energy = result.energy.eval()
    ais = None
    if args.ais_chains:
        ais = {"n_chains": args.ais_chains, "n_temperatures": args.ais_temperatures, "n_steps": args.ais_steps}
        ais |= {"sampler": args.ais_sampler, "step_size": 0.01}
    evaluation_began = time.perf_counter()
    metrics = {
        "dataset": "digits",
        "method": "pcd",
        "options": {k: v for k, v in result.options.items() if isinstance(v, (int, float, str))},
        "energy": f"{type(energy).__name__}, {sum(p.numel() for p in energy.parameters())} parameters",
        "iterations": result.n_iterations,
        "seed": 0,
        "torch_threads": torch.get_num_threads(),
        "train_wall_s": round(wall, 1),
        "train_cpu_s": round(cpu, 1),
        "baseline_energy_grad_s": base,
        "train_wall_in_baseline_evaluations": round(wall / base),
        "final_loss": result.history["loss"][-1],
        "samples": f"{len(samples)} model samples: the replay buffer's stored chain states",
    }
    metrics.update(image_quality(energy, samples, train, test, test_labels, torch.Generator().manual_seed(1), ais=ais))
    metrics["evaluation_wall_s"] = round(time.perf_counter() - evaluation_began, 1)
    shown = samples[torch.randperm(len(samples), generator=torch.Generator().manual_seed(2))[:100]]
    image_grid_figure(shown, out / "pcd_digits_samples.png", "pcd with fit's defaults: 100 replay-buffer samples")
    write_json(out / "pcd_digits_metrics.json", metrics, indent=1)
    print(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
