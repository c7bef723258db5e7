"""What recording costs: whole `sample()` runs with draws stored, against the same transitions unrecorded.

    PYTHONPATH=. nice -n 10 python benchmarks/recording.py [--chains 1000] [--steps 500,1000,2000,4000]
        [--dtypes float32,float64] [--repeats 2] [--out benchmarks/results/recording.json]

Work: MALA (h = 0.006) on the 100-d Gaussian N(0, diag(v)), v log-spaced 0.01..1 (the speed benchmark's
`gaussian100`), `--chains` chains started from exact draws, no warm-up, the torch path, one thread. Per run
length and dtype, three ways of running the same transitions, interleaved and each the fastest of `--repeats`:

    draws       `sample(..., keep="draws")`: every state kept, the `Trace` returned
    moments     `sample(..., keep="moments")`: running means and variances only
    unrecorded  `sample(..., thin=n_steps)`: the same run keeping one draw per chain (guard and loop, no recording)
    bare        a hand-written loop of `kernel.step` calls (no guard, no recorder)
    memory      no sampling: one (chains, 100) copy per step into a freshly allocated (steps, chains, 100)
                tensor, the least any in-memory trace costs (the kernel maps and zeroes every new page)

Time is CPU time (`time.process_time`: robust to other jobs on a shared machine; it includes the kernel's time
zeroing freshly allocated pages), divided by the steps. `recording_share` = (draws - unrecorded) / draws: the part
of an end-to-end run spent recording; `memory_share` = memory / draws: the part that writing the draws to new
memory costs by itself; `overhead_share` = (draws - bare) / draws: all that is not transitions. A
flat `draws` time per step across run lengths means recording does not slow down as the trace grows. Prints
`name: value` lines and writes JSON.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import torch
from _report import write_json

import ebm_samplers
from ebm_samplers.kernels import MALA
from energies import Gaussian

STEP_SIZE = 0.006


def _target(dtype: torch.dtype) -> Gaussian:
    variances = torch.logspace(-2, 0, 100, dtype=dtype)
    return Gaussian(torch.zeros(100, dtype=dtype), variances)


def _cpu_seconds(function) -> float:
    gc.collect()
    start = time.process_time()
    result = function()
    seconds = time.process_time() - start
    del result
    gc.collect()
    return seconds


def measure(chains: int, steps: int, dtype: torch.dtype, repeats: int) -> dict[str, float]:
    energy = _target(dtype)
    init = energy.sample(chains, generator=torch.Generator().manual_seed(0)).to(dtype)

    def run(keep: str, thin: int = 1):
        return ebm_samplers.sample(
            energy, "mala", init=init, warmup=0, n_steps=steps, thin=thin, step_size=STEP_SIZE, seed=1, keep=keep,
            backend="torch", progress=False,
        )  # fmt: skip

    def bare():
        kernel = MALA(step_size=STEP_SIZE)
        generator = torch.Generator().manual_seed(1)
        state = kernel.init(init.clone(), energy)
        for _ in range(steps):
            state, _info = kernel.step(state, energy, generator)
        return state

    def memory():
        row = init.clone()
        trace = torch.empty((steps, *row.shape), dtype=row.dtype)
        for step in range(steps):
            trace[step].copy_(row)
        return trace

    ways = {"draws": lambda: run("draws"), "moments": lambda: run("moments")}
    ways |= {"unrecorded": lambda: run("draws", thin=steps), "bare": bare, "memory": memory}
    best = dict.fromkeys(ways, float("inf"))
    for _ in range(repeats):
        for name, way in ways.items():  # interleaved, so drift on a shared machine hits all three alike
            best[name] = min(best[name], _cpu_seconds(way))
    per_step = {f"{name}_ms_per_step": 1e3 * seconds / steps for name, seconds in best.items()}
    per_step["recording_share"] = (best["draws"] - best["unrecorded"]) / best["draws"]
    per_step["memory_share"] = best["memory"] / best["draws"]
    per_step["overhead_share"] = (best["draws"] - best["bare"]) / best["draws"]
    per_step["draws_over_moments"] = best["draws"] / best["moments"]
    return per_step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=1000)
    parser.add_argument("--steps", default="500,1000,2000,4000")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "recording.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = {}
    payload = {
        "command": "PYTHONPATH=. nice -n 10 python benchmarks/recording.py " + " ".join(argv or sys.argv[1:]),
        "chains": args.chains,
        "dimensions": 100,
        "torch": torch.__version__,
        "clock": "process_time, one thread",
        "results": results,
    }
    for dtype_name in args.dtypes.split(","):
        dtype = getattr(torch, dtype_name)
        for steps in (int(s) for s in args.steps.split(",")):
            key = f"{dtype_name}.steps{steps}"
            results[key] = measure(args.chains, steps, dtype, args.repeats)
            for name, value in results[key].items():
                print(f"{key}.{name}: {value:.4f}", flush=True)
            write_json(args.out, payload, indent=1)  # after every row: a long run stopped early keeps its rows
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
