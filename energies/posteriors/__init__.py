"""Standard Bayesian posteriors with ground truth: the panel that `benchmarks/posteriors.py` runs every sampler on.

Each target is an `energies.Energy` over a flat vector of unconstrained parameters (`param_names`), batched
`E(u: (n, d)) -> (n,)`, float64-capable, with `truth()` (mean, sd and the standard error of the reference mean
per coordinate, and where they come from), `arrays()` (its data, for re-implementations in other frameworks)
and `initial_point(n_chains)` (fixed N(0, I) draws).

    from energies.posteriors import PANEL
    target = PANEL["eight_schools_noncentered"]()
    truth = target.truth()
"""

from energies.posteriors._base import Posterior, Truth
from energies.posteriors.analytic import (
    BananaPosterior,
    CorrelatedRegression,
    FunnelPosterior,
    RotatedGaussian,
    TwoGaussians,
)
from energies.posteriors.models import (
    AutoRegressive,
    BreastCancerLogistic,
    EightSchoolsCentered,
    EightSchoolsNoncentered,
    GermanCreditLogistic,
    HierarchicalRegression,
    StochasticVolatility,
)

#: The panel, by name, each constructible with no arguments (smallest first).
PANEL = {
    target.panel_name: target
    for target in (
        BananaPosterior,
        CorrelatedRegression,
        AutoRegressive,
        EightSchoolsCentered,
        EightSchoolsNoncentered,
        FunnelPosterior,
        TwoGaussians,
        GermanCreditLogistic,
        BreastCancerLogistic,
        HierarchicalRegression,
        RotatedGaussian,
        StochasticVolatility,
    )
}

__all__ = [
    "PANEL",
    "AutoRegressive",
    "BananaPosterior",
    "BreastCancerLogistic",
    "CorrelatedRegression",
    "EightSchoolsCentered",
    "EightSchoolsNoncentered",
    "FunnelPosterior",
    "GermanCreditLogistic",
    "HierarchicalRegression",
    "Posterior",
    "RotatedGaussian",
    "StochasticVolatility",
    "Truth",
    "TwoGaussians",
]
