"""`ebm-samplers diagnose PATH --out DIR`: convergence report and plots for any ArviZ netCDF file.

Works on this toolkit's traces and on any netCDF file with a posterior group (written by another
library, e.g. `DataTree.to_netcdf`). With `--energy` (a built-in name or module:callable) it adds the
kernel Stein discrepancy of the draws and, for 2-D targets, the energy landscape with the draws on top.
Exit status: 0 when no problem was found, 1 when the report lists problems, 2 on a user error.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "diagnose",
        help="convergence report and plots for an ArviZ netCDF file",
        description="Convergence report and plots for any ArviZ netCDF file with a posterior group. Exit status: "
        "0 when no problem is found, 1 when the report lists problems, 2 on a user error.",
    )
    parser.add_argument("path", help="netCDF file with a posterior group (e.g. a trace.nc from `sample`)")
    parser.add_argument("--out", default=None, help="folder for the plots (default: next to PATH, <stem>_diagnostics)")
    parser.add_argument("--energy", default=None, help="target energy (built-in or module:callable) for KSD/landscape")
    parser.add_argument("--no-plots", action="store_true", help="print the report only")
    parser.add_argument("--var-names", default=None, help="plot only these variables, comma-separated (e.g. mu,theta)")
    parser.add_argument(
        "--coordinates", default=None, help="plot only these coordinates, comma-separated (e.g. 'x[0],x[3]')"
    )
    parser.add_argument("--max-coordinates", type=int, default=8, help="plot at most this many (default: 8)")
    parser.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    from diagnostics import diagnose
    from ebm_samplers.commands.sample import load_energy, split_list

    tree = _load(Path(args.path))
    draws = energy = None
    if args.energy is not None:  # loaded before the report, so a typo in --energy fails first
        draws = _pooled_draws(tree, args)
        energy = load_energy(args.energy, draws.shape[1] if draws is not None and draws.ndim == 2 else None)
    report = diagnose(tree)
    print(f"{args.path}: {report}")
    if draws is not None:
        _sample_quality(draws, energy, float(report.table["ess_bulk"].min()))
    if not args.no_plots:
        import matplotlib

        matplotlib.use("Agg")
        from diagnostics.plots import convergence_plots

        out = Path(args.out) if args.out else Path(args.path).with_name(f"{Path(args.path).stem}_diagnostics")
        chosen = {
            "var_names": split_list(args.var_names),
            "coordinates": split_list(args.coordinates, brackets=True),
            "max_coordinates": args.max_coordinates,
        }
        for written in convergence_plots(tree, out, **chosen):
            print(f"wrote {written}")
        if draws is not None:
            written = _landscape(draws, energy, out)
            if written is not None:
                print(f"wrote {written}")
    return 0 if report.ok else 1


def _load(path: Path):
    import arviz as az

    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    try:
        tree = az.from_netcdf(path).load()
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable netCDF file ({_reason(error)})") from None
    if "posterior" not in tree.children:
        groups = ", ".join(tree.children) or "none"
        raise ValueError(f"{path} has no posterior group (groups: {groups}); expected an ArviZ netCDF file")
    return tree


def _reason(error: Exception) -> str:
    """Why xarray could not open a file, whole (its messages span lines: a first line alone can stop at 'see:')."""
    text = " ".join(str(error).split())
    if "IO backends" in text:  # xarray found no engine that recognises the bytes: the file is not netCDF/HDF5
        return "its content is not netCDF/HDF5"
    return text or type(error).__name__


def _pooled_draws(tree, args):
    """The draws as (n, *event) when the posterior has one variable; else None with a note."""
    import torch

    variables = list(tree["posterior"].data_vars)
    if "names" in tree["posterior"].attrs:  # a named ebm-samplers trace: its flat event is what the energy takes
        from ebm_samplers import Trace

        draws = Trace.load(args.path).draws
        return draws.reshape(-1, *draws.shape[2:])
    if len(variables) != 1:
        print(f"note: --energy needs a posterior with one variable; {args.path} has {len(variables)}")
        return None
    values = tree["posterior"][variables[0]].transpose("chain", "draw", ...).values
    return torch.from_numpy(values.reshape(-1, *values.shape[2:]).copy())


#: KSD is computed on at most this many draws (O(n^2) with a bootstrap), at least this many, and with
#: this many bootstrap draws and exact-sample references.
_KSD_MAX_DRAWS, _KSD_MIN_DRAWS, _KSD_BOOTSTRAP, _KSD_REFERENCES = 2000, 100, 500, 5


def _sample_quality(draws, energy, ess_bulk: float) -> None:
    """KSD of roughly independent draws, its bootstrap p-value and the figures that say what it means."""
    import numpy as np
    import torch

    from diagnostics import ksd

    # the bootstrap assumes independent draws: keep about one per effective sample (bulk ESS, the lowest
    # over coordinates), between _KSD_MIN_DRAWS and _KSD_MAX_DRAWS
    n_keep = int(np.clip(ess_bulk if np.isfinite(ess_bulk) else len(draws), _KSD_MIN_DRAWS, _KSD_MAX_DRAWS))
    step = max(1, len(draws) // n_keep)
    subset = draws[::step][:n_keep]
    generator = torch.Generator().manual_seed(0)
    result = ksd(subset, energy, n_bootstrap=_KSD_BOOTSTRAP, generator=generator)
    print(
        f"kernel Stein discrepancy against {energy.name}: KSD {result.ksd:.4g} on {len(subset)} of {len(draws)} "
        f"draws (one in {step}, about one per effective sample)"
    )
    verdict = "the draws do not follow the target" if result.p_value < 0.05 else "consistent with the target"
    print(f"  bootstrap p = {result.p_value:.3g} ({verdict}; p < 0.05 rejects)")
    print(f"  reference: 95% of the bootstrap null lies below KSD {result.null_quantile:.4g}")
    exact = _exact_reference(energy, len(subset), subset)
    if exact is not None:
        low, middle, high = np.quantile(exact, [0.0, 0.5, 1.0])
        print(
            f"  reference: {len(exact)} sets of {len(subset)} exact draws from {energy.name} give KSD {middle:.4g} "
            f"(median; range {low:.4g} to {high:.4g})"
        )


def _exact_reference(energy, n: int, like) -> list[float] | None:
    """KSDs of exact draws of the same size, when the energy can draw them (`Energy.sample`)."""
    import torch

    from diagnostics import ksd

    if not hasattr(energy, "sample"):
        return None
    generator = torch.Generator().manual_seed(1)
    values = []
    for _ in range(_KSD_REFERENCES):
        try:
            exact = energy.sample(n, generator)
        except NotImplementedError:
            return None
        values.append(ksd(exact.to(like.dtype), energy).ksd)
    return values


def _landscape(draws, energy, out: Path):
    from diagnostics.plots import plot_energy_landscape

    if draws.ndim != 2 or draws.shape[1] != 2:
        return None
    return plot_energy_landscape(energy, draws, out / "landscape.png", title=f"{energy.name}: energy and draws")
