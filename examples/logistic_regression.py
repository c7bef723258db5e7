"""Bayesian logistic regression on a real data set with NUTS, summarised with ArviZ.

scikit-learn's bundled breast-cancer data (569 tumours, 30 standardised features), a N(0, 1) prior on the
intercept and the 30 coefficients. The energy is the negative log posterior, written as a plain torch function.
NUTS with its defaults (warm-up adapts step size and metric), 4 chains; ArviZ's summary gives mean, sd, HDI,
MCSE, ESS and R-hat per coefficient.

    python examples/logistic_regression.py [OUT_DIR]
"""

import os
import sys
from pathlib import Path

import arviz as az
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from sklearn.datasets import load_breast_cancer

import diagnostics
import ebm_samplers

# CI runs every example with EBM_SAMPLERS_SMOKE_TEST=1: the same code on a smaller budget (figures not to read)
SMOKE = os.environ.get("EBM_SAMPLERS_SMOKE_TEST") == "1"

out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/gallery/img")
out.mkdir(parents=True, exist_ok=True)
data = load_breast_cancer()
features = torch.tensor(data.data, dtype=torch.float64)
features = (features - features.mean(0)) / features.std(0)
design = torch.cat([torch.ones(len(features), 1, dtype=torch.float64), features], 1)  # intercept first
labels = torch.tensor(data.target, dtype=torch.float64)


def negative_log_posterior(beta: torch.Tensor) -> torch.Tensor:  # beta: (n_chains, 31)
    logits = beta @ design.T
    log_likelihood = (labels * logits - torch.nn.functional.softplus(logits)).sum(-1)
    return 0.5 * (beta**2).sum(-1) - log_likelihood


init = 0.1 * torch.randn(4, design.shape[1], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
trace = ebm_samplers.sample(
    negative_log_posterior, "nuts", init=init, n_steps=100 if SMOKE else 500, warmup=100 if SMOKE else 500, seed=0
)
print(diagnostics.diagnose(trace))
tree = trace.to_arviz()
print(az.summary(tree, var_names=["x"], coords={"x_dim_0": list(range(6))}).round(3))

names = ["intercept", *data.feature_names]
draws = trace.draws.reshape(-1, design.shape[1])
order = draws.mean(0).abs().argsort(descending=True)[:12]
figure, axis = plt.subplots(figsize=(7, 4.2), layout="constrained")
axis.boxplot(draws[:, order].numpy(), orientation="horizontal", showfliers=False)
axis.set_yticks(range(1, 13), [names[i] for i in order])
axis.axvline(0, color="0.5", lw=0.8)
axis.set(xlabel="coefficient (standardised feature)", title="NUTS posterior: the 12 largest coefficients")
axis.invert_yaxis()
figure.savefig(out / "logistic_regression_nuts.png", dpi=110)
