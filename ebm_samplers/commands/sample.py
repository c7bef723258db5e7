"""`ebm-samplers sample`: sample an energy, print the convergence table, write the trace and a plot."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path


def add_parser(commands) -> None:
    run = commands.add_parser(
        "sample",
        help="sample an energy, print the summary and diagnosis, write trace and plots",
        description="Sample an energy, print the summary table and diagnose's verdicts, write OUT/trace.nc and the "
        "convergence plots (trace.png, rank.png, autocorr.png, energy.png for Hamiltonian samplers). Exit status: 0 "
        "when diagnose finds no problem, 1 when it lists problems (as `diagnose`), 2 on a user error.",
    )
    run.add_argument("--energy", default="mixture", help="built-in name or module:callable (default: mixture)")
    run.add_argument("--dim", type=int, default=None, help="event dimension, for a callable without event_shape")
    run.add_argument(
        "--event-shape",
        default=None,
        metavar="D1,D2,...",
        help="event shape for a callable without event_shape, e.g. 2 or 3,4 (multi-dimensional events)",
    )
    run.add_argument(
        "--names", default=None, help="names for the parts of the flattened event, e.g. 'mu, log_tau, theta[8]'"
    )
    run.add_argument("--sampler", default="mala", help="registered sampler name (default: mala)")
    run.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a sampler parameter, e.g. --option n_leapfrog=20 (repeatable; numbers and true/false are converted)",
    )
    run.add_argument("--chains", type=int, default=8, help="number of chains (default: 8)")
    run.add_argument(
        "--steps",
        type=int,
        default=2000,
        help="transitions per chain after warm-up; every THIN-th is kept (default: 2000)",
    )
    run.add_argument("--warmup", type=int, default=500, help="adapting warm-up transitions, discarded (default: 500)")
    run.add_argument("--thin", type=int, default=1, help="keep every THIN-th transition (default: 1)")
    run.add_argument(
        "--until-converged",
        action="store_true",
        help="stop after warm-up as soon as every coordinate has R-hat <= 1.01 and bulk and tail ESS >= 400; "
        "--steps is then the cap",
    )
    run.add_argument("--step-size", type=float, default=None, help="sampler step size (default: the sampler's)")
    run.add_argument("--dtype", choices=("float32", "float64"), default=None, help="floating type (default: float32)")
    run.add_argument("--device", default=None, help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu)")
    run.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    run.add_argument("--out", default="runs/sample", help="output folder (default: runs/sample)")
    run.add_argument("--no-plot", action="store_true", help="skip the plots")
    run.add_argument("--var-names", default=None, help="plot only these variables, comma-separated (e.g. mu,theta)")
    run.add_argument(
        "--coordinates", default=None, help="plot only these coordinates, comma-separated (e.g. 'x[0],x[3]')"
    )
    run.add_argument("--max-coordinates", type=int, default=8, help="plot at most this many coordinates (default: 8)")
    run.add_argument(
        "--on-nonfinite",
        choices=("raise", "reject", "reset"),
        default="raise",
        help="what a NaN/inf energy or gradient does: stop, reject the step, or restart the chain (default: raise)",
    )
    run.add_argument("--checkpoint", default=None, help="checkpoint file; an existing one is resumed (same options)")
    run.add_argument("--checkpoint-every", type=int, default=1000, help="transitions between checkpoints")
    run.set_defaults(handler=run_command)


def load_energy(spec: str, dim: int | None = None, event_shape: tuple[int, ...] | None = None):
    """A built-in energy by name, or `module:attribute` from user code (a callable, an Energy, or an Energy or
    nn.Module class, instantiated without arguments). Its event shape: `event_shape`, else `(dim,)`, else the
    callable's own `event_shape` attribute (an instance or class attribute of any callable)."""
    import torch

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
        if isinstance(energy, type) and issubclass(energy, Energy | torch.nn.Module):
            energy = energy()
    else:
        raise ValueError(
            f"unknown energy {spec!r}; use a built-in ({', '.join(sorted(BUILTIN_ENERGIES))}) or module:callable"
        )
    if event_shape is None and dim is not None:
        event_shape = (dim,)
    if event_shape is None and not isinstance(energy, Energy):
        own = getattr(energy, "event_shape", None)  # e.g. an nn.Module with a class attribute
        event_shape = None if own is None else tuple(own)
    return as_energy(energy, event_shape=event_shape)


def parse_event_shape(text: str | None) -> tuple[int, ...] | None:
    """'3,4' -> (3, 4); a one-line error for anything but positive integers."""
    if text is None:
        return None
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if not shape or any(size < 1 for size in shape):
        raise ValueError(f"--event-shape needs positive integers separated by commas, e.g. 2 or 3,4; got {text!r}")
    return shape


def run_command(args: argparse.Namespace) -> int:
    import torch

    import ebm_samplers
    from diagnostics import diagnose, summary
    from ebm_samplers import distributed
    from ebm_samplers.commands.train import _parse_option

    if args.dim is not None and args.event_shape is not None:
        raise ValueError("give --dim or --event-shape, not both")
    energy = load_energy(args.energy, args.dim, parse_event_shape(args.event_shape))
    if energy.event_shape is None:  # the library's hint (init=, as_energy) means nothing on the command line
        raise ValueError(
            f"energy {energy.name} does not declare its event_shape; give --event-shape (e.g. 2 or 3,4) or --dim D"
        )
    if args.steps >= 1 and args.thin >= 1 and args.steps // args.thin < 4:  # fail before sampling, not after
        raise ValueError(
            f"--steps {args.steps} with --thin {args.thin} keeps {args.steps // args.thin} draws per chain; "
            "the convergence table needs at least 4"
        )
    params = dict(_parse_option(text) for text in args.option)
    if args.step_size is not None:
        if "step_size" in params:
            raise ValueError("give the step size once: --step-size or --option step_size=..., not both")
        params["step_size"] = args.step_size
    dtype = None if args.dtype is None else getattr(torch, args.dtype)
    if isinstance(energy, torch.nn.Module) and (dtype is not None or args.device is not None):
        energy = energy.to(device=args.device, dtype=dtype)  # its parameters follow the chains
    steps = {"until": ebm_samplers.Converged(), "max_steps": args.steps} if args.until_converged else {}
    trace = ebm_samplers.sample(
        energy,
        args.sampler,
        n_chains=args.chains,
        n_steps=None if args.until_converged else args.steps,
        **steps,
        warmup=args.warmup,
        thin=args.thin,
        seed=args.seed,
        device=args.device,
        dtype=dtype,
        on_nonfinite=args.on_nonfinite,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
        names=args.names,
        **params,
    )
    if distributed.rank() != 0:  # under torchrun, rank 0 holds every chain and reports for all
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # a user kernel need not record an acceptance rate (any Info entries are allowed)
    acceptance = trace.stats.get("acceptance_rate")
    acceptance = "not recorded" if acceptance is None else f"{float(acceptance.mean()):.3f}"
    print(
        f"{trace.attrs['sampler']} on {trace.attrs['energy']}: {trace.n_chains} chains x {trace.n_draws} draws, "
        f"mean acceptance {acceptance}"
    )
    if args.until_converged:
        when = trace.attrs.get("converged_at_draw")
        print(
            f"converged after {when} draws per chain ({trace.attrs['convergence_checks']} checks, "
            f"{100 * trace.attrs['check_share']:.1f}% of the run)"
            if when is not None
            else f"not converged within --steps {args.steps} (see the problems below)"
        )
    print(summary(trace).to_text())
    report = diagnose(trace)  # what the figures mean, in words
    for line in report.note_lines():
        print(line)
    if report.ok:
        print(f"ok: {report.ok_sentence()}")
    else:
        print(f"{len(report.problems)} problem(s); do not trust these estimates yet:")
        for problem in report.problems:
            print(f"  - {problem}")
    trace_path = trace.save(out / "trace.nc")
    print(f"wrote {trace_path}")
    if not args.no_plot:
        from diagnostics.plots import convergence_plots

        chosen = {"var_names": split_list(args.var_names), "coordinates": split_list(args.coordinates, brackets=True)}
        for written in convergence_plots(trace, out, **chosen, max_coordinates=args.max_coordinates):
            print(f"wrote {written}")
    return 0 if report.ok else 1


def split_list(text: str | None, brackets: bool = False) -> list[str] | None:
    """'a, b' -> ['a', 'b']; with `brackets`, commas inside [...] stay ('x[0, 1],y' -> ['x[0, 1]', 'y'])."""
    if text is None:
        return None
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char == "[") - (char == "]") if brackets else 0
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return [*parts, current.strip()]
