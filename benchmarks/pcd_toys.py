"""PCD with its default options on the four toy sets with a known density, five independent data draws each.

    PYTHONPATH=. nice -n 10 python benchmarks/pcd_toys.py                      # the 20 runs (issue 18 item 4)
    PYTHONPATH=. python benchmarks/pcd_toys.py --datasets rings --seeds 0 --options '{"step_size": 0.001}'

Each run: 20,000 training and 5,000 held-out points drawn with data seed s (s = 0..4), then
`fit(train, method="pcd", seed=s)` with every other option at its default (or `--options`), then the exact test
NLL by midpoint quadrature on [-4.5, 4.5]^2 (400^2 cells; the 800^2 check is recorded) against the data entropy
(the mean exact -log p of the same test points, so both figures share the test sample's noise). Single-threaded
(torch.set_num_threads(1)); `train_cpu_s` is the process CPU time of `fit`, `train_wall_s` its wall time on a
shared machine (noisy). Results go to benchmarks/results/pcd_toys.json (after every run; --skip-done resumes) and a
table to benchmarks/results/pcd_toys.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _report import write_json

import ebm_samplers
from diagnostics.convergence import convergence_figures
from ebm_samplers._atomic import atomic_write
from ebm_samplers.training import fit, grid_nll, sample_ksd, toy_dataset
from ebm_samplers.training.datasets import TOY_BOUNDS
from ebm_samplers.training.evaluation import _energies, _grid

DATASETS = ("8gaussians", "checkerboard", "rings", "circles")
TARGET = 0.10  # nats above the data entropy (issue 18 item 4)


def run_one(dataset_name: str, seed: int, options: dict, save: Path | None = None) -> dict:
    dataset = toy_dataset(dataset_name)
    generator = torch.Generator().manual_seed(seed)
    train, test = dataset.sample(20_000, generator), dataset.sample(5_000, generator)
    cpu, wall = time.process_time(), time.perf_counter()
    result = fit(train, method="pcd", seed=seed, progress=False, **options)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
        torch.save(
            {"energy": result.energy.state_dict(), "buffer": result.extras["replay_buffer"]},
            save / f"{dataset_name}_{seed}.pt",
        )
    nll = grid_nll(result.energy, test)
    entropy = float(dataset.energy()(test).double().mean())
    buffer = result.extras["replay_buffer"]
    diagnosis = {
        # does the sampler reach the model? KSD of 1,000 buffer states under the model's own score
        "buffer_ksd": sample_ksd(result.energy, buffer[torch.randperm(len(buffer), generator=generator)[:1000]]).ksd
    }
    law = dataset.energy()
    if hasattr(law, "radii"):  # ring sets: how the model, the data and the buffer share the mass among the rings
        diagnosis |= ring_shares(result.energy, law, test, buffer)
    return {
        "dataset": dataset_name,
        "seed": seed,
        "options": {k: v for k, v in options.items()},
        "iterations": result.n_iterations,
        "test_nll": nll.nll,
        "data_entropy": entropy,
        "gap": nll.nll - entropy,
        "discretisation_error": nll.discretisation_error,
        "train_cpu_s": cpu,
        "train_wall_s": wall,
        "diagnosis": diagnosis,
    }


def ring_shares(energy, law, test: torch.Tensor, buffer: torch.Tensor) -> dict:
    """Per ring (nearest radius): the model's mass (grid quadrature), the test data's and the buffer's share, and
    the model's radial sd around the ring, against the data's noise."""
    radii = law.radii.double()
    points, _ = _grid(*TOY_BOUNDS, 400, torch.zeros(1))
    mass = torch.softmax(-_energies(energy, points).double(), 0)
    rho = torch.linalg.vector_norm(points.double(), dim=1)
    nearest = (rho[:, None] - radii).abs().argmin(1)
    model, radial_sd = [], []
    for ring in range(len(radii)):
        inside = nearest == ring
        share = float(mass[inside].sum())
        model.append(share)
        offset = rho[inside] - radii[ring]
        radial_sd.append(float((mass[inside] * offset.square()).sum() / max(share, 1e-300)) ** 0.5)

    def shares(x: torch.Tensor) -> list[float]:
        ring = (torch.linalg.vector_norm(x.double(), dim=1)[:, None] - radii).abs().argmin(1)
        return [round(float((ring == k).double().mean()), 4) for k in range(len(radii))]

    # R-hat of the radius over 16 MALA chains on the trained model started at 16 buffer states (other rings)
    starts = buffer[torch.randperm(len(buffer), generator=torch.Generator().manual_seed(4))[:16]]
    trace = ebm_samplers.sample(energy, "mala", init=starts, n_steps=400, warmup=200, seed=5, progress=False)
    radius = torch.linalg.vector_norm(trace.draws.double(), dim=-1)[..., None].numpy()
    return {
        "radius_rhat_16_buffer_chains": round(float(convergence_figures(radius)["r_hat"][0]), 3),
        "radii": radii.tolist(),
        "model_ring_mass": [round(v, 4) for v in model],
        "test_ring_share": shares(test),
        "buffer_ring_share": shares(buffer),
        "model_radial_sd": [round(v, 4) for v in radial_sd],
        "data_radial_sd": law.noise,
    }


def table(runs: list[dict]) -> str:
    seeds = sorted({r["seed"] for r in runs})
    lines = [
        "| data set | " + " | ".join(f"seed {s}" for s in seeds) + " | worst | mean CPU s / run |",
        "|---" * (len(seeds) + 3) + "|",
    ]
    for name in DATASETS:
        row = {r["seed"]: r for r in runs if r["dataset"] == name}
        if not row:
            continue
        cells = [f"{row[s]['gap']:+.3f}" if s in row else "—" for s in seeds]
        worst = max(r["gap"] for r in row.values())
        cpu = sum(r["train_cpu_s"] for r in row.values()) / len(row)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {worst:+.3f} | {cpu:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--options", default="{}", help="JSON of fit options overriding the defaults")
    parser.add_argument("--out", default="benchmarks/results/pcd_toys.json")
    parser.add_argument("--save-models", default=None, help="a folder to save each trained energy's state_dict in")
    parser.add_argument("--combine", nargs="+", default=None, help="only merge these result JSONs into --out")
    parser.add_argument("--skip-done", action="store_true", help="keep runs already in the JSON file")
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.combine:  # runs done by separate (parallel) processes
        runs = [run for path in args.combine for run in json.loads(Path(path).read_text())["runs"]]
        runs.sort(key=lambda r: (DATASETS.index(r["dataset"]), r["seed"]))
        write_json(out, {"target_gap": TARGET, "runs": runs}, indent=1)
        return summarise(runs, out)
    torch.set_num_threads(1)
    options = json.loads(args.options)
    runs = json.loads(out.read_text())["runs"] if args.skip_done and out.exists() else []
    done = {(r["dataset"], r["seed"]) for r in runs}
    for name in args.datasets:
        for seed in args.seeds:
            if (name, seed) in done:
                continue
            record = run_one(name, seed, options, None if args.save_models is None else Path(args.save_models))
            runs.append(record)
            print(json.dumps(record["diagnosis"]), flush=True)
            print(
                f"{name:13s} seed {seed} NLL {record['test_nll']:.3f} entropy {record['data_entropy']:.3f} "
                f"gap {record['gap']:+.3f} cpu {record['train_cpu_s']:.0f}s wall {record['train_wall_s']:.0f}s",
                flush=True,
            )
            write_json(out, {"target_gap": TARGET, "runs": runs}, indent=1)
    summarise(runs, out)


def summarise(runs: list[dict], out: Path) -> None:
    markdown = "Test NLL minus data entropy (nats), fit(train, method='pcd', seed=s) with default options:\n\n"
    markdown += table(runs)
    worst = max(r["gap"] for r in runs)
    verdict = "every run meets" if worst <= TARGET else "NOT every run meets"
    markdown += f"\n\nWorst gap {worst:+.3f}: {verdict} the {TARGET} nats target ({len(runs)} runs).\n"
    atomic_write(out.with_suffix(".md"), lambda temporary: temporary.write_text(markdown))
    print(markdown)


if __name__ == "__main__":
    main()
