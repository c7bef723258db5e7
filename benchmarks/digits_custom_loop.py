"""Digits in a custom training loop (IGEBM-style) with `ebm_samplers.PersistentChains`, judged like `digits.py`.

    PYTHONPATH=. python benchmarks/digits_custom_loop.py                  # ~2 CPU minutes of training
    PYTHONPATH=. python benchmarks/digits_custom_loop.py --iterations 200 --out /tmp/quick

Data: `load_digits(generator=seed 0)` (1,438 training and 359 held-out 8x8 images in [-1, 1], with labels). The
loop is the one of docs/training/persistent.md with the IGEBM/JEM recipe: the default `ConvEnergy`, Adam
(betas 0, 0.999), the energy penalty alpha (E+^2 + E-^2), and persistent chains run by the training Langevin
`sgld` (a large step with a small noise, clamped to the pixel box, gradients clipped), with fresh starts uniform
on [-1, 1]. Those chains are not a sampler of exp(-E) (see the docs): the samples are what the procedure
produces, and they are what is judged. Evaluation (`training.image_quality`, without AIS, whose exp(-E) the
training does not define): MMD^2 of 300 buffer samples to 300 held-out digits beside uniform noise and training
digits, the nearest-held-out-digit class histogram of 2,000 random buffer states (TV to the held-out class
frequencies), and the KSDs. Writes benchmarks/results/digits_custom_loop.json and digits_custom_loop_samples.png
(100 random buffer samples); `before` in the JSON is benchmarks/results/pcd_digits_metrics.json (fit's PCD defaults).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _report import write_json

from ebm_samplers import PersistentChains, ReplayBuffer
from ebm_samplers.training import load_digits
from ebm_samplers.training.image_quality import image_quality
from ebm_samplers.training.plots import image_grid_figure
from energies import ConvEnergy

RECIPE = {
    "capacity": 4000,
    "reinit_probability": 0.05,
    "n_steps": 20,
    "step_size": 1.0,
    "noise_scale": 0.01,
    "gradient_clip": 0.03,
    "clamp": (-1.0, 1.0),
    "alpha": 1.0,
    "learning_rate": 1e-3,
    "batch_size": 128,
}


def train(data: torch.Tensor, iterations: int, recipe: dict, seed: int = 0):
    model = ConvEnergy(generator=torch.Generator().manual_seed(seed))
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe["learning_rate"], betas=(0.0, 0.999))
    buffer = ReplayBuffer(
        recipe["capacity"], data.shape[1:], init_range=(-1.0, 1.0), reinit_probability=recipe["reinit_probability"]
    )
    chains = PersistentChains(
        buffer,
        "sgld",
        recipe["n_steps"],
        seed=seed,
        step_size=recipe["step_size"],
        noise_scale=recipe["noise_scale"],
        gradient_clip=recipe["gradient_clip"],
        clamp=recipe["clamp"],
    )
    batches = torch.Generator().manual_seed(seed + 1)
    evaluations, alpha = 0, recipe["alpha"]
    for iteration in range(iterations):
        x = data[torch.randint(len(data), (recipe["batch_size"],), generator=batches)]
        negatives = chains.sample(model, x)
        evaluations += negatives.gradient_evaluations
        positive, negative = model(x), model(negatives.samples)
        loss = positive.mean() - negative.mean() + alpha * (positive.square().mean() + negative.square().mean())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if iteration % 100 == 0:
            print(f"{iteration}: loss {loss.item():+.4f} lineage {negatives.lineage.float().mean():.0f}", flush=True)
    return model, chains, evaluations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--recipe", default="{}", help="JSON overriding entries of RECIPE")
    parser.add_argument("--seed", type=int, default=0, help="model, chains and batches seed (default 0)")
    parser.add_argument("--out", default="benchmarks/results")
    # one thread by default: the loop's tensors are small (128 images of 8x8), and with two threads torch's
    # OpenMP workers spent most of their CPU time waiting for each other, for the same figures (in
    # docs/training/persistent.md)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    recipe = RECIPE | json.loads(args.recipe)
    train_images, test, _, test_labels = load_digits(generator=torch.Generator().manual_seed(0), with_labels=True)
    cpu, wall = time.process_time(), time.perf_counter()
    model, chains, evaluations = train(train_images, args.iterations, recipe, seed=args.seed)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    samples = chains.buffer.samples
    # 2,000 random buffer states are judged (as many as the fit benchmark's buffer held; KSD is quadratic in n)
    samples = samples[torch.randperm(len(samples), generator=torch.Generator().manual_seed(3))[:2000]]
    metrics = {
        "recipe": recipe,
        "iterations": args.iterations,
        "seed": args.seed,
        "torch_threads": torch.get_num_threads(),
        "train_cpu_s": round(cpu, 1),
        "train_wall_s": round(wall, 1),
        "sample_gradient_evaluations": evaluations,
        "buffer": chains.buffer.statistics(),
    }
    metrics |= image_quality(model.eval(), samples, train_images, test, test_labels, torch.Generator().manual_seed(1))
    fractions = metrics["class_coverage_nearest_test_digit"]["nearest_label_fractions"]
    metrics["class_fraction_range"] = [min(fractions), max(fractions)]
    before = Path("benchmarks/results/pcd_digits_metrics.json")
    if before.exists():
        old = json.loads(before.read_text())
        old_fractions = old["class_coverage_nearest_test_digit"]["nearest_label_fractions"]
        metrics["before"] = {
            "source": str(before),
            "mmd2_samples_vs_test": old["mmd2_samples_vs_test"],
            "class_fraction_range": [min(old_fractions), max(old_fractions)],
            "train_cpu_s": old["train_cpu_s"],
        }
    image_grid_figure(
        samples[:100], out / "digits_custom_loop_samples.png", "custom PCD loop (sgld): 100 buffer samples"
    )
    write_json(out / "digits_custom_loop.json", metrics, indent=1)
    print(json.dumps({k: metrics[k] for k in ("mmd2_samples_vs_test", "class_fraction_range", "train_cpu_s")}))


if __name__ == "__main__":
    main()
