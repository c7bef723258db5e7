"""Whether it worked: convergence figures through ArviZ 1.x and sample-quality measures.

Works on plain arrays `(chain, draw, *event)`, ArviZ DataTrees and ebm-samplers Traces alike
(a Trace is recognised by its `to_arviz()` method; `diagnostics` never imports `ebm_samplers`).
"""

from diagnostics.convergence import convergence_figures
from diagnostics.report import Problem, Report, diagnose
from diagnostics.summary import ESS_MIN, RHAT_MAX, summary

__all__ = ["ESS_MIN", "RHAT_MAX", "Problem", "Report", "convergence_figures", "diagnose", "summary"]
