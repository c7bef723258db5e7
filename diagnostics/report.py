"""`diagnose()`: one call that says whether chains mixed and converged, and in plain words why not.

Figures per coordinate come from `diagnostics.convergence` (ArviZ 1.x values, each computed once);
per-chain figures from the sample stats that are present. Thresholds (Vehtari et al. 2021):
rank-normalised split R-hat <= 1.01, bulk and tail ESS >= 400, at least 4 chains. Further checks:

* stuck chain: a chain whose draws never change, or whose recorded acceptance is exactly 0;
* low acceptance: a chain that accepts fewer than 5% of its proposals;
* between-chain separation: when R-hat fails, chains are grouped by their medians (two chains are in
  the same region when their medians differ by at most `SEPARATION` typical within-chain sds on every
  coordinate); more than one group means the chains sit in different modes;
* divergences (a "diverging" stat; Hamiltonian samplers record it);
* E-BFMI < 0.3 per chain (Betancourt 2016), when there is a Hamiltonian per draw: sample_stats "energy"
  (ArviZ's name) or "hamiltonian" (a trace's); see `Chains.hamiltonian_energy`. The advice depends on
  whether warm-up already adapted a mass matrix (attribute `adapted_mass_matrix`);
* non-finite energies or gradients that the run's `on_nonfinite` policy handled (attribute `nonfinite_total`).

Efficiency notes (`Report.notes`) cost time without biasing the draws, so they do not make a report not ok:
* NUTS transitions that hit the maximum tree depth (Stan's tree-depth warning), from a `tree_depth` stat and the
  run's `max_tree_depth` (or a `reached_max_treedepth` stat, PyMC's name); with per-chain step sizes it names a
  chain whose adapted step is below a tenth of the chains' median (a step that collapsed during warm-up).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from diagnostics._inputs import Chains, read_chains
from diagnostics.convergence import MIN_DRAWS, convergence_figures
from diagnostics.summary import ESS_MIN, RHAT_MAX, SummaryTable, format_rhat, threshold_flags

MIN_CHAINS = 4
MIN_ACCEPTANCE = 0.05
BFMI_MIN = 0.3
#: Chain means further apart than this many pooled within-chain sds put chains in different regions.
SEPARATION = 3.0
#: Rows printed from the coordinate table (the worst first when there are more).
_PRINTED_ROWS = 20


@dataclass(frozen=True)
class Problem:
    """One thing that is wrong: `kind` (a short key), a plain-language `message`, and what it concerns."""

    kind: str
    message: str
    chains: tuple[int, ...] = ()
    coordinates: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@dataclass
class Report:
    """The result of `diagnose`: `ok`, the `problems`, a per-coordinate `table` and a per-chain `chains` table."""

    table: pd.DataFrame
    chains: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)
    n_chains: int = 0
    n_draws: int = 0
    #: what costs time without biasing the draws (not a problem: `ok` ignores them)
    notes: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def kinds(self) -> set[str]:
        return {problem.kind for problem in self.problems}

    def __str__(self) -> str:
        lines = [f"{self.n_chains} chains x {self.n_draws} draws, {len(self.table)} coordinates"]
        table = self.table
        if len(table) > _PRINTED_ROWS:
            worst = table.assign(_order=-table["r_hat"].fillna(np.inf)).sort_values("_order").drop(columns="_order")
            table = worst.head(_PRINTED_ROWS)
            lines.append(f"(the {_PRINTED_ROWS} coordinates with the largest R-hat of {len(self.table)})")
        lines.append(SummaryTable(table).to_text())
        if len(self.chains.columns):
            lines += ["", "per chain:", self.chains.to_string(float_format=_format)]
        lines.append("")
        lines += self.note_lines()
        if self.ok:
            lines.append(f"ok: {self.ok_sentence()}")
        else:
            lines.append(f"{len(self.problems)} problem(s):")
            lines += [f"  - {problem}" for problem in self.problems]
        return "\n".join(lines)

    @staticmethod
    def ok_sentence() -> str:
        """What the report says when it finds no problem: the checks that passed."""
        return (
            f"no problems found (R-hat <= {RHAT_MAX}, bulk and tail ESS >= {ESS_MIN:g}, >= {MIN_CHAINS} chains, "
            "no stuck chains)"
        )

    def note_lines(self) -> list[str]:
        """The efficiency notes as printed (none: an empty list)."""
        if not self.notes:
            return []
        header = f"{len(self.notes)} efficiency note(s) (the draws are not biased by these):"
        return [header, *(f"  - {note}" for note in self.notes)]


def _format(value: float) -> str:
    return f"{value:.4g}"


def diagnose(source, *, sample_stats: dict | None = None) -> Report:
    """Convergence report for a Trace, an ArviZ DataTree, or an array (chain, draw, *event).

    `sample_stats` adds per-step statistics (each (chain, draw)) to an array: `accepted`,
    `acceptance_rate`, `diverging`, `energy` (see the module docstring for what each enables).
    """
    chains = read_chains(source, sample_stats)
    labels, draws = chains.coordinates()
    if chains.n_draws < MIN_DRAWS:
        raise ValueError(
            f"{chains.n_draws} draws per chain; split R-hat and ESS need at least {MIN_DRAWS} (run longer)"
        )
    figures = convergence_figures(draws)
    table = pd.DataFrame(figures, index=labels)
    table["flags"] = [
        threshold_flags(r_hat, bulk, tail)
        for r_hat, bulk, tail in zip(table["r_hat"], table["ess_bulk"], table["ess_tail"], strict=True)
    ]
    per_chain, stuck = _per_chain(chains, draws)
    problems = _problems(chains, draws, table, per_chain, stuck)
    notes = [note for note in (_tree_depth_note(chains),) if note is not None]
    return Report(
        table=table,
        chains=per_chain,
        problems=problems,
        n_chains=chains.n_chains,
        n_draws=chains.n_draws,
        notes=notes,
    )


def _per_chain(chains: Chains, draws: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    stats = chains.sample_stats
    columns: dict[str, np.ndarray] = {}
    if "accepted" in stats:
        columns["acceptance"] = stats["accepted"].astype(float).mean(axis=1)
    elif "acceptance_rate" in stats:
        columns["acceptance"] = stats["acceptance_rate"].astype(float).mean(axis=1)
    if "diverging" in stats:
        columns["divergences"] = stats["diverging"].astype(bool).sum(axis=1)
    if chains.hamiltonian_energy:
        energy = stats["energy"].astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            columns["bfmi"] = np.square(np.diff(energy, axis=1)).mean(axis=1) / energy.var(axis=1, ddof=1)
    frozen = (draws.max(axis=1) == draws.min(axis=1)).all(axis=1)
    stuck = frozen | (columns["acceptance"] == 0 if "acceptance" in columns else False)
    columns["stuck"] = stuck
    table = pd.DataFrame(columns, index=pd.RangeIndex(chains.n_chains, name="chain"))
    return table, np.asarray(stuck)


def _problems(chains: Chains, draws, table: pd.DataFrame, per_chain: pd.DataFrame, stuck) -> list[Problem]:
    problems = []
    n_chains, n_draws = chains.n_chains, chains.n_draws
    if n_chains < MIN_CHAINS:
        problems.append(
            Problem(
                "few_chains",
                f"fewer than {MIN_CHAINS} chains ({n_chains}): chains that disagree cannot be detected "
                f"reliably; run at least {MIN_CHAINS} from dispersed starting points",
            )
        )
    for chain in np.flatnonzero(stuck):
        # with no acceptance stat, the evidence is the draws themselves: say that, not an acceptance never recorded
        why = f"acceptance {per_chain['acceptance'].iloc[chain]:.3g}" if "acceptance" in per_chain else "draws constant"
        problems.append(
            Problem(
                "stuck_chain",
                f"chain {chain} is stuck ({why}): it never left its starting point; "
                "reduce the step size (if the chains share one adapted step size, as ChEES-HMC's do, adapt one "
                "per chain: step_size_per_chain=True) or start it where the energy is moderate",
                chains=(int(chain),),
            )
        )
    if "acceptance" in per_chain:
        low = [c for c in range(n_chains) if not stuck[c] and per_chain["acceptance"].iloc[c] < MIN_ACCEPTANCE]
        if low:
            values = ", ".join(f"{c}: {per_chain['acceptance'].iloc[c]:.3g}" for c in low)
            problems.append(
                Problem(
                    "low_acceptance",
                    f"{_chains_phrase(low)} rarely move{'s' if len(low) == 1 else ''} (acceptance {values}): "
                    "the step size is too large there; reduce it or adapt it during warm-up",
                    chains=tuple(low),
                )
            )

    bad_rhat = table.index[~(table["r_hat"] <= RHAT_MAX)]
    if len(bad_rhat) and n_chains > 1:
        problems.append(_rhat_problem(draws, table, bad_rhat, stuck))

    low_bulk = table.index[~(table["ess_bulk"] >= ESS_MIN)]
    if len(low_bulk):
        worst = table.loc[low_bulk, "ess_bulk"].idxmin()
        value = table.loc[worst, "ess_bulk"]
        problems.append(
            Problem(
                "low_ess_bulk",
                f"bulk ESS below {ESS_MIN:g} on {len(low_bulk)} of {len(table)} coordinates (lowest {value:.0f} "
                f"at {worst}): means and sds are not yet reliable; run about {_longer(value)}x longer",
                coordinates=tuple(low_bulk),
            )
        )
    low_tail = table.index[~(table["ess_tail"] >= ESS_MIN)]
    if len(low_tail):
        worst = table.loc[low_tail, "ess_tail"].idxmin()
        value = table.loc[worst, "ess_tail"]
        problems.append(
            Problem(
                "low_ess_tail",
                f"too few draws for reliable tail ESS: below {ESS_MIN:g} on {len(low_tail)} of {len(table)} "
                f"coordinates (lowest {value:.0f} at {worst}); 5% and 95% quantiles and intervals are not yet "
                f"reliable; run about {_longer(value)}x longer",
                coordinates=tuple(low_tail),
            )
        )

    if "divergences" in per_chain and per_chain["divergences"].sum() > 0:
        counts = per_chain["divergences"]
        divergent, where = _nonzero_chains(counts.to_numpy())
        problems.append(
            Problem(
                "divergences",
                f"{int(counts.sum())} of {n_chains * n_draws} transitions diverged (per chain {where}): "
                "the integrator is unstable where the energy curves sharply, so draws near there are biased; "
                "reduce the step size (raise the target acceptance) or reparameterise",
                chains=tuple(divergent),
            )
        )
    if "bfmi" in per_chain:
        low = [int(c) for c in np.flatnonzero(per_chain["bfmi"].to_numpy() < BFMI_MIN)]
        if low:
            values = ", ".join(f"{c}: {per_chain['bfmi'].iloc[c]:.2f}" for c in low)
            if _truthy(chains.attrs.get("adapted_mass_matrix")):
                advice = (
                    "warm-up already adapted a mass matrix, so reparameterise (e.g. non-centred) or use a dense metric"
                )
            else:
                advice = "reparameterise, or adapt a mass matrix during warm-up (adapt_mass_matrix=True, warmup > 0)"
            problems.append(
                Problem(
                    "low_bfmi",
                    f"E-BFMI below {BFMI_MIN} in {_chains_phrase(low)} ({values}): momentum resampling explores "
                    f"the energy levels poorly (heavy tails); {advice}",
                    chains=tuple(low),
                )
            )
    nonfinite = _nonfinite_problem(chains.attrs)
    if nonfinite is not None:
        problems.append(nonfinite)
    capped = _not_converged_problem(chains.attrs)
    if capped is not None:
        problems.append(capped)
    return problems


def _attribute(value):
    """An ebm-samplers attribute as stored in netCDF ('json:...' text) or as given (a dict, a bool)."""
    if isinstance(value, str) and value.startswith("json:"):
        import json

        return json.loads(value[5:])
    return value


def _not_converged_problem(attrs: dict) -> Problem | None:
    """A run with until=Converged(...) that reached max_steps first (attributes `until`, `converged`, `shortfall`)."""
    until = _attribute(attrs.get("until"))
    if not isinstance(until, dict) or _truthy(attrs.get("converged")):
        return None
    shortfall = _attribute(attrs.get("shortfall")) or {}
    worst = shortfall.get("worst", {})
    parts = []
    for name, word in (("r_hat", "largest R-hat"), ("ess_bulk", "lowest bulk ESS"), ("ess_tail", "lowest tail ESS")):
        value = worst.get(name)
        if value is not None:
            parts.append(f"{word} {format_rhat(value) if name == 'r_hat' else f'{value:.0f}'}")
    figures = f" ({', '.join(parts)})" if parts else ""
    wanted = (
        f"R-hat <= {until.get('r_hat')}, bulk ESS >= {until.get('ess_bulk'):g}, tail ESS >= {until.get('ess_tail'):g}"
    )
    return Problem(
        "not_converged",
        f"the run reached max_steps before meeting until=Converged({wanted}){figures}; "
        "raise max_steps, or improve the sampler if the figures barely moved",
    )


def _truthy(value) -> bool:
    """An attribute read back from netCDF may be a bool, a 0/1 number, or text ('True'; ebm-samplers' 'json:true')."""
    if isinstance(value, str):
        return value.strip().lower().removeprefix("json:") in ("true", "1")
    return bool(value) if value is not None else False


def _nonzero_chains(counts: np.ndarray) -> tuple[list[int], str]:
    """The chains whose count (one per chain) is not 0, and the phrase "chain: count, ..." that lists them."""
    chains = [int(c) for c in np.flatnonzero(counts)]
    return chains, ", ".join(f"{c}: {int(counts[c])}" for c in chains)


def _tree_depth_note(chains: Chains) -> Problem | None:
    """NUTS transitions that stopped at the maximum tree depth rather than at a U-turn (Stan's tree-depth warning)."""
    stats = chains.sample_stats
    if "reached_max_treedepth" in stats:
        hits = stats["reached_max_treedepth"].astype(bool)
        limit = None
    else:
        params = _attribute(chains.attrs.get("sampler_params"))
        limit = params.get("max_tree_depth") if isinstance(params, dict) else None
        if "tree_depth" not in stats or isinstance(limit, bool) or not isinstance(limit, int):
            return None
        hits = stats["tree_depth"] >= limit
    counts = hits.sum(axis=1)
    if counts.sum() == 0:
        return None
    chains_hit, where = _nonzero_chains(counts)
    depth = f" {limit} ({2**limit - 1} leapfrog steps)" if limit is not None else ""
    message = (
        f"{int(counts.sum())} of {hits.size} transitions hit the maximum tree depth{depth} before the trajectory "
        f"turned back (per chain {where}): the step size is small for the target's scale, or the metric is poorly "
        "adapted; chains that run in lockstep all wait for the longest tree"
    )
    steps = _attribute(chains.attrs.get("final_step_size"))
    if isinstance(steps, list) and len(steps) == hits.shape[0] and all(isinstance(v, int | float) for v in steps):
        median = float(np.median(steps))
        small = [c for c in chains_hit if steps[c] < 0.1 * median]
        if small:
            listed = ", ".join(f"chain {c}: {steps[c]:.3g}" for c in small)
            message += (
                f"; the adapted step of {listed} is below a tenth of the chains' median {median:.3g} (it collapsed "
                "during warm-up, as near the wall of a bounded support: sample an unconstrained transform)"
            )
    return Problem("max_tree_depth", message, chains=tuple(chains_hit))


def _nonfinite_problem(attrs: dict) -> Problem | None:
    """Non-finite energies or gradients the run met and handled (ebm-samplers' `nonfinite_total` attribute)."""
    total = attrs.get("nonfinite_total")
    try:
        total = int(total)
    except (TypeError, ValueError):
        return None
    if total <= 0:
        return None
    policy = str(attrs.get("on_nonfinite", "?"))
    per_chain = attrs.get("nonfinite_per_chain")
    if isinstance(per_chain, str) and per_chain.startswith("json:"):
        import json

        per_chain = json.loads(per_chain[5:])
    chains: tuple[int, ...] = ()
    where = ""
    if isinstance(per_chain, list | tuple | np.ndarray) and len(per_chain):
        chains = tuple(int(c) for c in np.flatnonzero(np.asarray(per_chain) > 0))
        where = " (per chain " + ", ".join(f"{c}: {int(per_chain[c])}" for c in chains) + ")"
    handled = {"reject": "the chain kept its previous state", "reset": "the chain restarted"}.get(policy, "handled")
    return Problem(
        "nonfinite",
        f"{total} non-finite energies or gradients were met{where} and handled by on_nonfinite={policy!r} "
        f"({handled}): draws near those regions are less reliable; find where the energy overflows "
        "(trace.attrs, or on_nonfinite='raise' to stop at the first) or reduce the step size",
        chains=chains,
    )


def _rhat_extent(r_hat: pd.Series) -> str:
    """Where R-hat is worst among the flagged coordinates: the largest defined value and the first undefined one
    (NaN: no spread to compare, e.g. constant draws, or a single chain)."""
    defined = r_hat.dropna()
    parts = [f"up to {format_rhat(defined.max())} at {defined.idxmax()}"] if len(defined) else []
    if r_hat.isna().any():
        parts.append(f"undefined at {r_hat.isna().idxmax()}")
    return ", ".join(parts)


def _rhat_problem(draws: np.ndarray, table: pd.DataFrame, bad: pd.Index, stuck: np.ndarray) -> Problem:
    extent = _rhat_extent(table.loc[bad, "r_hat"])
    columns = [table.index.get_loc(label) for label in bad]
    groups, distance = _regions(draws[:, :, columns], stuck)
    if len(groups) > 1:
        main = max(groups, key=len)
        others = [chain for group in groups if group is not main for chain in group]
        if len(groups) == 2:
            verb = "sits" if len(others) == 1 else "sit"
            where = f"{_chains_phrase(others)} {verb} in a different region from the others"
        else:
            regions = "; ".join(_chains_phrase(group) for group in groups)
            where = f"the chains sit in {len(groups)} separate regions ({regions})"
        return Problem(
            "mode_split",
            f"{where} (between-chain separation: chain medians up to {distance:.1f} within-chain sds apart; "
            f"R-hat {extent}): the sampler is not crossing between "
            "modes; try parallel_tempering or much longer runs, and do not trust the pooled estimates",
            chains=tuple(others),
            coordinates=tuple(bad),
        )
    above = f"above {RHAT_MAX} or undefined" if table.loc[bad, "r_hat"].isna().any() else f"above {RHAT_MAX}"
    return Problem(
        "r_hat",
        f"R-hat {above} on {len(bad)} of {len(table)} coordinates ({extent}): the chains have not mixed yet; "
        "run longer or improve the sampler (step size, preconditioning)",
        coordinates=tuple(bad),
    )


def _regions(draws: np.ndarray, stuck: np.ndarray) -> tuple[list[list[int]], float]:
    """Group the moving chains whose medians are within `SEPARATION` within-chain sds on every coordinate.

    Medians and the median (over chains) within-chain sd are used because a chain that crossed between
    modes once has a mean between the modes and a huge sd; means and pooled sds would let it glue
    every chain into one group."""
    moving = [c for c in range(draws.shape[0]) if not stuck[c]]
    if len(moving) < 2:
        return [moving], 0.0
    centres = np.median(draws[moving], axis=1)
    within = np.median(draws[moving].std(axis=1, ddof=1), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        gaps = np.abs(centres[:, None, :] - centres[None, :, :]) / np.where(within > 0, within, np.nan)
    gaps = np.nan_to_num(gaps, nan=0.0).max(axis=2)
    label = list(range(len(moving)))  # connected components of "gap <= SEPARATION"
    for i in range(len(moving)):
        for j in range(i + 1, len(moving)):
            if gaps[i, j] <= SEPARATION:
                old, new = label[j], label[i]
                label = [new if value == old else value for value in label]
    groups: dict[int, list[int]] = {}
    for position, value in enumerate(label):
        groups.setdefault(value, []).append(moving[position])
    return list(groups.values()), float(gaps.max())


def _chains_phrase(chains: list[int]) -> str:
    if len(chains) == 1:
        return f"chain {chains[0]}"
    return "chains " + ", ".join(map(str, chains[:-1])) + f" and {chains[-1]}"


def _longer(ess: float) -> str:
    if not np.isfinite(ess) or ess <= 0:
        return "many"
    return f"{max(ESS_MIN / ess, 1.0):.1f}"
