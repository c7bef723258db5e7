"""BlackJAX NUTS with Stan's window adaptation on one panel posterior: the peer row of benchmarks/posteriors.py.

    /work/scratch/bjax/bin/python benchmarks/posteriors_blackjax.py --input IN.npz --output OUT.npz \
        --target NAME [--warmup 1000] [--draws 1500] [--seed 0] [--target-acceptance 0.8]

Runs in a scratch environment with jax + blackjax (never a dependency of this project; it needs neither torch nor
this project). The caller (benchmarks/posteriors.py or benchmarks/posteriors_reference.py) writes IN.npz:
`init` (chains, d) and the target's data as `data_<key>` arrays (`Posterior.arrays()`), and optionally
`check_points` (m, d). Each log density below is written again in JAX from the model's definition (the same
unconstrained parameters and Jacobians as `energies/posteriors`); the caller checks at `check_points` that
log p + E differs from a constant by rounding only.

Each chain runs `blackjax.window_adaptation(blackjax.nuts, ...)` (diagonal metric, target acceptance 0.8, Stan's
windows) for `--warmup` steps, then `--draws` NUTS transitions, float64, `jax.vmap` over chains, all in one
jit-compiled function compiled ahead of time (compile seconds reported apart from run seconds). OUT.npz holds
`draws` (chain, draw, d), `diverging`, `hamiltonian`, `n_leapfrog` (chain, draw), `warmup_n_leapfrog`
(chain,: the warm-up's integration steps), `warmup_divergences`, `step_size`, `check_logdensity`,
`run_seconds`, `compile_seconds`.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import blackjax  # noqa: E402


def _log_half_cauchy_of_log(u, width):
    return -jnp.log1p((jnp.exp(u) / width) ** 2) + u


def _normal(x, loc, scale):
    return -0.5 * ((x - loc) / scale) ** 2 - jnp.log(scale)


def _logistic(data):
    features, labels, prior_sd = data["features"], data["labels"], float(data["prior_sd"])

    def logdensity(w):
        logits = features @ w
        return jnp.sum(labels * logits - jnp.logaddexp(0.0, logits)) - 0.5 * jnp.sum(w**2) / prior_sd**2

    return logdensity


def _eight_schools(centered: bool):
    def make(data):
        y, sigma = data["y"], data["sigma"]

        def logdensity(u):
            mu, log_tau, rest = u[0], u[1], u[2:]
            tau = jnp.exp(log_tau)
            log_p = _normal(mu, 0.0, 5.0) + _log_half_cauchy_of_log(log_tau, 5.0)
            if centered:
                theta = rest
                log_p += jnp.sum(_normal(theta, mu, tau))
            else:
                theta = mu + tau * rest
                log_p += jnp.sum(_normal(rest, 0.0, 1.0))
            return log_p + jnp.sum(_normal(y, theta, sigma))

        return logdensity

    return make


def _hierarchical(data):
    group, x, y = data["group"].astype(np.int64), data["x"], data["y"]

    def logdensity(u):
        mu_a, b, log_tau, log_sigma, eta = u[0], u[1], u[2], u[3], u[4:]
        intercepts = mu_a + jnp.exp(log_tau) * eta
        log_lik = jnp.sum(_normal(y, intercepts[group] + b * x, jnp.exp(log_sigma)))
        log_prior = _normal(mu_a, 0.0, 5.0) + _normal(b, 0.0, 5.0) + jnp.sum(_normal(eta, 0.0, 1.0))
        log_prior += -0.5 * jnp.exp(2 * log_tau) + log_tau - 0.5 * jnp.exp(2 * log_sigma) + log_sigma
        return log_lik + log_prior

    return logdensity


def _stochastic_volatility(data):
    returns = data["returns"]

    def logdensity(u):
        u_phi, mu, log_sigma, z = u[0], u[1], u[2], u[3:]
        phi = 2 * jax.nn.sigmoid(u_phi) - 1
        sigma = jnp.exp(log_sigma)
        first = sigma * z[0] / jnp.sqrt(1 - phi**2)

        def step(previous, shock):
            current = phi * previous + sigma * shock
            return current, current

        _, rest = jax.lax.scan(step, first, z[1:])
        h = mu + jnp.concatenate([first[None], rest])
        log_lik = jnp.sum(-0.5 * returns**2 * jnp.exp(-h) - 0.5 * h)
        # Beta(20, 1.5) on (phi + 1) / 2 = sigmoid(u) plus log |dphi/du| = log 2 + log sigmoid(u) + log sigmoid(-u)
        log_prior = 19 * jax.nn.log_sigmoid(u_phi) + 0.5 * jax.nn.log_sigmoid(-u_phi)
        log_prior += jax.nn.log_sigmoid(u_phi) + jax.nn.log_sigmoid(-u_phi)
        log_prior += -jnp.log1p((mu / 5) ** 2) + _log_half_cauchy_of_log(log_sigma, 2.0) + jnp.sum(-0.5 * z**2)
        return log_lik + log_prior

    return logdensity


def _stochastic_volatility_centered(data):
    """The same model with the log volatilities h as parameters (u_phi, mu, log sigma, h[T]): used only for the
    reference run, whose draws are mapped to the non-centered z (an exact bijection)."""
    returns = data["returns"]

    def logdensity(u):
        u_phi, mu, log_sigma, h = u[0], u[1], u[2], u[3:]
        phi = 2 * jax.nn.sigmoid(u_phi) - 1
        sigma = jnp.exp(log_sigma)
        log_p = _normal(h[0], mu, sigma / jnp.sqrt(1 - phi**2)) + jnp.sum(
            _normal(h[1:], mu + phi * (h[:-1] - mu), sigma)
        )
        log_p += jnp.sum(-0.5 * returns**2 * jnp.exp(-h) - 0.5 * h)
        log_p += 20 * jax.nn.log_sigmoid(u_phi) + 1.5 * jax.nn.log_sigmoid(-u_phi)
        return log_p - jnp.log1p((mu / 5) ** 2) + _log_half_cauchy_of_log(log_sigma, 2.0)

    return logdensity


def _ar(data):
    lags, target = data["lags"], data["target"]

    def logdensity(u):
        alpha, beta, log_sigma = u[0], u[1:-1], u[-1]
        log_lik = jnp.sum(_normal(target, alpha + lags @ beta, jnp.exp(log_sigma)))
        log_prior = _normal(alpha, 0.0, 10.0) + jnp.sum(_normal(beta, 0.0, 10.0))
        return log_lik + log_prior + _log_half_cauchy_of_log(log_sigma, 2.5)

    return logdensity


def _gaussian(data):
    precision = data["precision"]
    return lambda x: -0.5 * x @ precision @ x


def _regression(data):
    x, y = data["x"], data["y"]
    return lambda u: -0.5 * jnp.sum((y - u[0] - u[1] * x) ** 2) - 0.5 * jnp.sum(u**2) / 100.0


def _mixture(data):
    m = data["offset"]
    return lambda x: jnp.logaddexp(-0.5 * jnp.sum((x - m) ** 2), -0.5 * jnp.sum((x + m) ** 2))


def _banana(data):
    b = float(data["b"])
    return lambda x: -(x[0] ** 2) / 200.0 - 0.5 * (x[1] + b * x[0] ** 2 - 100.0 * b) ** 2


def _funnel(data):
    def logdensity(x):
        v, rest = x[0], x[1:]
        return -(v**2) / 18.0 - 0.5 * jnp.sum(rest**2) * jnp.exp(-v) - 0.5 * rest.size * v

    return logdensity


LOG_DENSITIES = {
    "banana": _banana,
    "regression_correlated": _regression,
    "ar5": _ar,
    "eight_schools_centered": _eight_schools(centered=True),
    "eight_schools_noncentered": _eight_schools(centered=False),
    "funnel_10": _funnel,
    "mixture_10": _mixture,
    "german_credit": _logistic,
    "logistic_breast_cancer": _logistic,
    "hierarchical_regression": _hierarchical,
    "gauss_rotated_100": _gaussian,
    "stochastic_volatility": _stochastic_volatility,
    "stochastic_volatility_centered": _stochastic_volatility_centered,
}


def run(logdensity, init, warmup: int, draws: int, seed: int, target_acceptance: float):
    """Window adaptation then NUTS, per chain, vmapped; returns numpy arrays and the two timings."""

    def one_chain(key, position):
        warmup_key, sample_key = jax.random.split(key)
        adaptation = blackjax.window_adaptation(blackjax.nuts, logdensity, target_acceptance_rate=target_acceptance)
        (state, parameters), adaptation_info = adaptation.run(warmup_key, position, num_steps=warmup)
        kernel = blackjax.nuts(logdensity, **parameters)

        def step(state, key):
            state, info = kernel.step(key, state)
            return state, (state.position, info.is_divergent, info.energy, info.num_integration_steps)

        _, (positions, diverging, hamiltonian, n_leapfrog) = jax.lax.scan(
            step, state, jax.random.split(sample_key, draws)
        )
        warm = adaptation_info.info
        return (
            positions,
            diverging,
            hamiltonian,
            n_leapfrog,
            jnp.sum(warm.num_integration_steps),
            jnp.sum(warm.is_divergent),
            parameters["step_size"],
        )

    keys = jax.random.split(jax.random.key(seed), init.shape[0])
    function = jax.jit(jax.vmap(one_chain))
    start = time.perf_counter()
    compiled = function.lower(keys, init).compile()
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    outputs = jax.block_until_ready(compiled(keys, init))
    run_seconds = time.perf_counter() - start
    names = ("draws", "diverging", "hamiltonian", "n_leapfrog", "warmup_n_leapfrog", "warmup_divergences", "step_size")
    result = {name: np.asarray(value) for name, value in zip(names, outputs, strict=True)}
    result.update(run_seconds=np.array(run_seconds), compile_seconds=np.array(compile_seconds))
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--target", required=True, choices=sorted(LOG_DENSITIES))
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target-acceptance", type=float, default=0.8)
    args = parser.parse_args(argv)
    with np.load(args.input) as inputs:
        data = {key[len("data_") :]: inputs[key] for key in inputs.files if key.startswith("data_")}
        init = jnp.asarray(inputs["init"], dtype=jnp.float64)
        check_points = inputs["check_points"] if "check_points" in inputs.files else np.zeros((0, init.shape[1]))
    logdensity = LOG_DENSITIES[args.target](data)
    result = run(logdensity, init, args.warmup, args.draws, args.seed, args.target_acceptance)
    result["check_logdensity"] = np.asarray(jax.vmap(logdensity)(jnp.asarray(check_points, dtype=jnp.float64)))
    np.savez(args.output, **result)


if __name__ == "__main__":
    main()
