"""Whether it worked: convergence figures through ArviZ 1.x and sample-quality measures.

Works on plain arrays `(chain, draw, *event)`, ArviZ DataTrees and ebm-samplers Traces alike
(a Trace is recognised by its `to_arviz()` method; `diagnostics` never imports `ebm_samplers`).

    diagnose(source)            convergence report with plain-language verdicts (report.ok, report.problems)
    summary(source)             the per-coordinate table alone
    ksd(samples, score_or_energy), mmd(a, b), mode_coverage(samples, mixture)   sample quality
    convergence_plots, plot_energy_landscape, plot_replay_buffer                 pictures (diagnostics.plots)
"""

from diagnostics.convergence import convergence_figures
from diagnostics.coverage import ModeCoverage, mode_coverage
from diagnostics.ksd import KSDResult, ksd
from diagnostics.mmd import TwoSampleResult, mmd
from diagnostics.report import Problem, Report, diagnose
from diagnostics.summary import ESS_MIN, RHAT_MAX, summary

_PLOTS = ("convergence_plots", "plot_energy_landscape", "plot_replay_buffer")


def __getattr__(name: str):
    # plots import matplotlib; load them only when asked for
    if name in _PLOTS:
        from diagnostics import plots

        return getattr(plots, name)
    raise AttributeError(f"module 'diagnostics' has no attribute {name!r}")


__all__ = [
    "ESS_MIN",
    "RHAT_MAX",
    "KSDResult",
    "ModeCoverage",
    "Problem",
    "Report",
    "TwoSampleResult",
    "convergence_figures",
    "convergence_plots",
    "diagnose",
    "ksd",
    "mmd",
    "mode_coverage",
    "plot_energy_landscape",
    "plot_replay_buffer",
    "summary",
]
