"""Whether it worked: convergence figures through ArviZ 1.x and sample-quality measures.

Works on plain arrays `(chain, draw, *event)`, ArviZ DataTrees and ebm-samplers Traces alike.
"""

from diagnostics.summary import ESS_MIN, RHAT_MAX, summary

__all__ = ["ESS_MIN", "RHAT_MAX", "summary"]
