"""`ebm-samplers sample`: sample an energy, print the convergence table, write the trace and a plot."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path


def add_parser(commands) -> None:
    run = commands.add_parser("sample", help="sample an energy, print convergence figures, write trace and plot")
    run.add_argument("--energy", default="mixture", help="built-in name or module:callable (default: mixture)")
    run.add_argument("--dim", type=int, default=None, help="event dimension, for a callable without event_shape")
    run.add_argument("--sampler", default="mala", help="registered sampler name (default: mala)")
    run.add_argument("--chains", type=int, default=8, help="number of chains (default: 8)")
    run.add_argument(
        "--steps",
        type=int,
        default=2000,
        help="transitions per chain after warm-up; every THIN-th is kept (default: 2000)",
    )
    run.add_argument("--warmup", type=int, default=500, help="discarded warm-up transitions (default: 500)")
    run.add_argument("--thin", type=int, default=1, help="keep every THIN-th transition (default: 1)")
    run.add_argument("--step-size", type=float, default=None, help="sampler step size (default: the sampler's)")
    run.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    run.add_argument("--out", default="runs/sample", help="output folder (default: runs/sample)")
    run.add_argument("--no-plot", action="store_true", help="skip the trace plot")
    run.add_argument(
        "--on-nonfinite",
        choices=("raise", "reject", "reset"),
        default="raise",
        help="what a NaN/inf energy or gradient does: stop, reject the step, or restart the chain (default: raise)",
    )
    run.add_argument("--checkpoint", default=None, help="checkpoint file; an existing one is resumed (same options)")
    run.add_argument("--checkpoint-every", type=int, default=1000, help="transitions between checkpoints")
    run.set_defaults(handler=run_command)


def load_energy(spec: str, dim: int | None = None):
    """A built-in energy by name, or `module:attribute` from user code (a callable, Energy or Energy class)."""
    from energies import BUILTIN_ENERGIES, Energy, as_energy

    if spec in BUILTIN_ENERGIES:
        energy = BUILTIN_ENERGIES[spec]()
    elif ":" in spec:
        module_name, _, attribute = spec.partition(":")
        sys.path.insert(0, str(Path.cwd()))
        try:
            module = importlib.import_module(module_name)
        finally:
            sys.path.pop(0)
        if not hasattr(module, attribute):
            raise ValueError(f"module {module_name!r} has no attribute {attribute!r}")
        energy = getattr(module, attribute)
        if isinstance(energy, type) and issubclass(energy, Energy):
            energy = energy()
    else:
        raise ValueError(
            f"unknown energy {spec!r}; use a built-in ({', '.join(sorted(BUILTIN_ENERGIES))}) or module:callable"
        )
    return as_energy(energy, event_shape=None if dim is None else (dim,))


def run_command(args: argparse.Namespace) -> int:
    import ebm_samplers
    from diagnostics import diagnose, summary
    from ebm_samplers import distributed

    energy = load_energy(args.energy, args.dim)
    if energy.event_shape is None:  # the library's hint (init=, as_energy) means nothing on the command line
        raise ValueError(f"energy {energy.name} does not declare its event_shape; give --dim D, its dimension")
    if args.steps >= 1 and args.thin >= 1 and args.steps // args.thin < 4:  # fail before sampling, not after
        raise ValueError(
            f"--steps {args.steps} with --thin {args.thin} keeps {args.steps // args.thin} draws per chain; "
            "the convergence table needs at least 4"
        )
    params = {} if args.step_size is None else {"step_size": args.step_size}
    trace = ebm_samplers.sample(
        energy,
        args.sampler,
        n_chains=args.chains,
        n_steps=args.steps,
        warmup=args.warmup,
        thin=args.thin,
        seed=args.seed,
        on_nonfinite=args.on_nonfinite,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
        **params,
    )
    if distributed.rank() != 0:  # under torchrun, rank 0 holds every chain and reports for all
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = summary(trace)
    # a user kernel need not record an acceptance rate (any Info entries are allowed)
    acceptance = trace.stats.get("acceptance_rate")
    acceptance = "not recorded" if acceptance is None else f"{float(acceptance.mean()):.3f}"
    print(
        f"{trace.attrs['sampler']} on {trace.attrs['energy']}: {trace.n_chains} chains x {trace.n_draws} draws, "
        f"mean acceptance {acceptance}"
    )
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    flagged = table[table["flags"] != ""]
    if len(flagged):
        print(
            f"warning: {len(flagged)} of {len(table)} coordinates miss a convergence threshold "
            "(r_hat <= 1.01, ess_bulk >= 400); do not trust these estimates yet"
        )
    for problem in diagnose(trace).problems:  # what the figures mean, in words (diagnostics.diagnose)
        print(f"  - {problem}")
    trace_path = trace.save(out / "trace.nc")
    print(f"wrote {trace_path}")
    if not args.no_plot:
        plot_path = trace_plot(trace, out / "trace.png")
        print(f"wrote {plot_path}")
    return 0


def trace_plot(trace, path: Path) -> Path:
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    collection = az.plot_trace_dist(trace.to_arviz(), var_names=["x"])
    collection.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(collection.viz["figure"].item())
    return path
