#!/usr/bin/env python3
"""Reference posterior and marginal likelihood for Bayesian logistic regression
on data/breast_cancer.csv (the model is specified in data/README.md).

Model
-----
  z_ij   = (x_ij - mean_j) / sd_j,  mean and *population* sd (divide by n) of column j
  x_i    = [1, z_i1, ..., z_i30]                     (intercept first)
  beta   ~ N(0, I_31)                                (normalised Gaussian prior)
  log L  = sum_i y_i log sigmoid(x_i.beta) + (1 - y_i) log sigmoid(-x_i.beta)
  rho    = prior density * L,   Z = integral of rho  (the marginal likelihood)

What it does
------------
1. NUTS (NumPyro, float64) on the model: --chains chains run one after the other,
   --warmup adaptation steps then --draws kept draws each. Split R-hat
   (rank-normalised), bulk ESS and Monte Carlo standard errors of the posterior
   mean and sd by ArviZ.
2. log Z by importance sampling with a multivariate Student-t proposal fitted to
   the NUTS draws (mean, covariance * --is-scale^2, --is-df degrees of freedom),
   --is-draws draws, log-sum-exp; SE by the delta method, ESS of the weights.
   Cross-checks: IS with two other proposals, bridge sampling (Meng & Wong
   iterative scheme; proposal fitted to the first half of every chain, the
   second halves + as many t draws), and a Laplace approximation at the mode
   (not exact: a sanity check only).
3. log rho at beta = 0 and at the posterior mean, for the Rust implementation to
   compare against.

Writes data/breast_cancer_reference.json.

Usage (from the repository root, with the venv described in data/README.md):
    python data/scripts/reference_posterior.py
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

T_SCRIPT0 = time.perf_counter()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from numpyro.infer import MCMC, NUTS  # noqa: E402

import arviz as az  # noqa: E402
import scipy  # noqa: E402
import scipy.linalg  # noqa: E402
from scipy import optimize, special  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, ".."))
LOG_2PI = float(np.log(2.0 * np.pi))


# ---------------------------------------------------------------- data, model
def load_design(path):
    with open(path) as f:
        header = f.readline().strip().split(",")
    raw = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    assert header[-1] == "target" and raw.shape == (569, 31), raw.shape
    feats = header[:-1]
    Xraw, y = raw[:, :-1], raw[:, -1]
    mean = Xraw.mean(axis=0)
    sd = Xraw.std(axis=0, ddof=0)  # population sd: divide by n
    Z = (Xraw - mean) / sd
    X = np.hstack([np.ones((Z.shape[0], 1)), Z])
    return feats, X, y, mean, sd


def log_rho(beta, X, y):
    """log prior (normalised N(0, I)) + log likelihood; beta (..., d), float64."""
    beta = np.asarray(beta, dtype=np.float64)
    d = X.shape[1]
    lp = -0.5 * np.sum(beta * beta, axis=-1) - 0.5 * d * LOG_2PI
    eta = beta @ X.T  # (..., n)
    # y log s(eta) + (1-y) log s(-eta) = y*eta - log(1 + e^eta)
    ll = np.sum(y * eta - np.logaddexp(0.0, eta), axis=-1)
    return lp + ll


def log_rho_batched(B, X, y, batch=20000):
    out = np.empty(B.shape[0])
    for s in range(0, B.shape[0], batch):
        out[s:s + batch] = log_rho(B[s:s + batch], X, y)
    return out


def model(X, y=None):
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
    numpyro.sample("y", dist.Bernoulli(logits=X @ beta), obs=y)


# ---------------------------------------------------------------- helpers
def cpu_info():
    model_name, avx512f = None, False
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model_name = line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    avx512f = "avx512f" in line.split()
                    break
    except OSError:
        pass
    return {"lscpu_model_name": model_name, "avx512f": avx512f,
            "logical_cpus": os.cpu_count(),
            "load_average_at_start": list(os.getloadavg())}


def mvt_logpdf(x, mu, L, df):
    """Multivariate t log density; L = Cholesky factor of the scale matrix."""
    d = mu.shape[0]
    sol = scipy.linalg.solve_triangular(L, (x - mu).T, lower=True)
    maha = np.sum(sol * sol, axis=0)
    logdet = 2.0 * np.sum(np.log(np.diag(L)))
    return (special.gammaln((df + d) / 2) - special.gammaln(df / 2)
            - 0.5 * d * np.log(df * np.pi) - 0.5 * logdet
            - 0.5 * (df + d) * np.log1p(maha / df))


def mvt_sample(rng, n, mu, L, df):
    d = mu.shape[0]
    g = rng.standard_normal((n, d)) @ L.T
    w = rng.chisquare(df, size=n) / df
    return mu + g / np.sqrt(w)[:, None]


def importance_logz(rng, n, mu, cov, df, scale, X, y, batch=50000):
    L = np.linalg.cholesky(cov * scale ** 2)
    logw = np.empty(n)
    for s in range(0, n, batch):
        m = min(batch, n - s)
        th = mvt_sample(rng, m, mu, L, df)
        logw[s:s + m] = log_rho(th, X, y) - mvt_logpdf(th, mu, L, df)
    mx = logw.max()
    w = np.exp(logw - mx)
    mean_w = w.mean()
    logz = mx + np.log(mean_w)
    se = np.std(w, ddof=1) / np.sqrt(n) / mean_w  # delta method on log
    ess = w.sum() ** 2 / np.sum(w * w)
    return {"log_z": float(logz), "se": float(se), "weight_ess": float(ess),
            "n_draws": int(n), "proposal_df": float(df), "cov_scale": float(scale),
            "max_weight_fraction": float(w.max() / w.sum())}, (L, logw)


def bridge_logz(l1_chains, l2, iters=1000, tol=1e-12):
    """Meng & Wong (1996) optimal bridge, iterative, with q the proposal density.

    l1_chains: log(rho/q) at the posterior draws, shape (chains, draws);
    l2: log(rho/q) at iid proposal draws. Returns log Z and its approximate
    standard error (Fruehwirth-Schnatter 2004, relative MSE; the posterior
    part uses the bulk ESS of f2 instead of the number of draws).
    """
    l1 = l1_chains.reshape(-1)
    n1, n2 = l1.size, l2.size
    ls1, ls2 = np.log(n1 / (n1 + n2)), np.log(n2 / (n1 + n2))
    logz = np.median(l2)
    for _ in range(iters):
        num = special.logsumexp(l2 - np.logaddexp(ls1 + l2 - logz, ls2)) - np.log(n2)
        den = special.logsumexp(-np.logaddexp(ls1 + l1 - logz, ls2)) - np.log(n1)
        new = num - den
        done = abs(new - logz) < tol
        logz = new
        if done:
            break
    # f1 at proposal draws, f2 at posterior draws (post = rho / Z)
    f1 = np.exp(l2 - logz - np.logaddexp(ls1 + l2 - logz, ls2))
    f2 = np.exp(-np.logaddexp(ls1 + l1_chains - logz, ls2))
    ess2 = float(az.ess(az.convert_to_dataset(f2), method="bulk")["x"])
    re2 = f1.var() / (n2 * f1.mean() ** 2) + f2.var() / (ess2 * f2.mean() ** 2)
    return float(logz), float(np.sqrt(re2)), ess2


def laplace_logz(X, y):
    d = X.shape[1]

    def f(b):
        return -float(log_rho(b, X, y))

    def g(b):
        p = special.expit(X @ b)
        return -(X.T @ (y - p) - b)

    def h(b):
        p = special.expit(X @ b)
        return (X.T * (p * (1 - p))) @ X + np.eye(d)

    res = optimize.minimize(f, np.zeros(d), jac=g, hess=h, method="trust-exact",
                            options={"gtol": 1e-10})
    H = h(res.x)
    sign, logdet = np.linalg.slogdet(H)
    assert sign > 0
    return {"log_z": float(-res.fun + 0.5 * d * LOG_2PI - 0.5 * logdet),
            "log_rho_at_mode": float(-res.fun),
            "mode_grad_norm": float(np.linalg.norm(g(res.x))),
            "mode": [float(v) for v in res.x]}


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=2000)
    ap.add_argument("--draws", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=20250601)
    ap.add_argument("--is-draws", type=int, default=1_000_000)
    ap.add_argument("--is-df", type=float, default=7.0)
    ap.add_argument("--is-scale", type=float, default=1.2)
    ap.add_argument("--out", default=os.path.join(DATA, "breast_cancer_reference.json"))
    ap.add_argument("--csv", default=os.path.join(DATA, "breast_cancer.csv"))
    a = ap.parse_args()

    feats, Xn, yn, col_mean, col_sd = load_design(a.csv)
    names = ["intercept"] + feats
    n, d = Xn.shape
    print(f"data: n={n}, d={d} (intercept + {d - 1} standardised features)", flush=True)

    # ---- NUTS
    X, y = jnp.asarray(Xn), jnp.asarray(yn)
    key = jax.random.PRNGKey(a.seed)

    # Compilation time is measured from JAX's own monitoring events (tracing,
    # lowering to MLIR, XLA backend compilation) fired during the run; the
    # sampling time is the run's wall time minus that.
    compile_events = {}

    def on_event(name, secs, **kw):
        if name.startswith("/jax/core/compile/"):
            compile_events[name] = compile_events.get(name, 0.0) + secs

    jax.monitoring.register_event_duration_secs_listener(on_event)
    mcmc = MCMC(NUTS(model, target_accept_prob=0.8), num_warmup=a.warmup,
                num_samples=a.draws, num_chains=a.chains, chain_method="sequential",
                progress_bar=False)
    load_before = list(os.getloadavg())
    t0, c0 = time.perf_counter(), time.process_time()
    mcmc.run(key, X, y, extra_fields=("num_steps", "diverging"))
    draws = np.asarray(jax.block_until_ready(mcmc.get_samples(group_by_chain=True)["beta"]))
    t_full = time.perf_counter() - t0
    cpu_full = time.process_time() - c0
    load_after = list(os.getloadavg())
    t_compile = float(sum(compile_events.values()))
    t_sampling = t_full - t_compile
    print(f"NUTS: {t_full:.2f} s wall incl. compile, {t_compile:.2f} s compile, "
          f"{t_sampling:.2f} s sampling", flush=True)

    ex = mcmc.get_extra_fields(group_by_chain=True)
    num_steps = np.asarray(ex["num_steps"])
    divergences = int(np.asarray(ex["diverging"]).sum())

    idata = az.from_dict(posterior={"beta": draws}, coords={"coef": names},
                         dims={"beta": ["coef"]})
    rhat = az.rhat(idata, method="rank")["beta"].values
    ess_bulk = az.ess(idata, method="bulk")["beta"].values
    ess_tail = az.ess(idata, method="tail")["beta"].values
    mcse_mean = az.mcse(idata, method="mean")["beta"].values
    mcse_sd = az.mcse(idata, method="sd")["beta"].values
    flat = draws.reshape(-1, d)
    post_mean = flat.mean(axis=0)
    post_sd = flat.std(axis=0, ddof=1)
    post_cov = np.cov(flat, rowvar=False)
    print(f"R-hat max {rhat.max():.5f}, bulk ESS min {ess_bulk.min():.0f}, "
          f"divergences {divergences}", flush=True)

    # ---- log Z
    rng = np.random.default_rng(a.seed + 1)
    t0 = time.perf_counter()
    is_main, _ = importance_logz(rng, a.is_draws, post_mean, post_cov,
                                           a.is_df, a.is_scale, Xn, yn)
    t_is = time.perf_counter() - t0
    print(f"IS (t{a.is_df:g}, scale {a.is_scale}): log Z = {is_main['log_z']:.6f} "
          f"+- {is_main['se']:.6f}, weight ESS {is_main['weight_ess']:.0f} ({t_is:.1f} s)",
          flush=True)
    is_alt = []
    for df_, sc_ in [(5.0, 1.5), (10.0, 1.1)]:
        r, _ = importance_logz(rng, a.is_draws // 4, post_mean, post_cov, df_, sc_, Xn, yn)
        print(f"IS (t{df_:g}, scale {sc_}): log Z = {r['log_z']:.6f} +- {r['se']:.6f}, "
              f"weight ESS {r['weight_ess']:.0f}", flush=True)
        is_alt.append(r)

    # bridge sampling: a proposal fitted to the first half of every chain (a
    # proposal fitted to the same draws it is bridged with biases the estimate),
    # the second halves as posterior draws, as many fresh proposal draws.
    half = a.draws // 2
    fit = draws[:, :half].reshape(-1, d)
    use = draws[:, half:]
    mu_b, cov_b = fit.mean(axis=0), np.cov(fit, rowvar=False)
    L_b = np.linalg.cholesky(cov_b * a.is_scale ** 2)
    use_flat = use.reshape(-1, d)
    l1 = (log_rho_batched(use_flat, Xn, yn)
          - mvt_logpdf(use_flat, mu_b, L_b, a.is_df)).reshape(use.shape[:2])
    prop = mvt_sample(rng, use_flat.shape[0], mu_b, L_b, a.is_df)
    l2 = log_rho_batched(prop, Xn, yn) - mvt_logpdf(prop, mu_b, L_b, a.is_df)
    bridge, bridge_se, bridge_ess = bridge_logz(l1, l2)
    print(f"bridge sampling: log Z = {bridge:.6f} +- {bridge_se:.6f}", flush=True)

    lap = laplace_logz(Xn, yn)
    print(f"Laplace: log Z = {lap['log_z']:.6f}", flush=True)

    # ---- checks
    zero = np.zeros(d)
    lr0 = float(log_rho(zero, Xn, yn))
    lr0_closed = float(-0.5 * d * LOG_2PI + n * np.log(0.5))
    lr_mean = float(log_rho(post_mean, Xn, yn))
    print(f"log rho(0) = {lr0!r} (closed form {lr0_closed!r}); "
          f"log rho(post mean) = {lr_mean!r}", flush=True)

    cpu = cpu_info()
    ess_min = float(ess_bulk.min())
    out = {
        "description": "Reference posterior for Bayesian logistic regression on "
                       "data/breast_cancer.csv; model in data/README.md",
        "model": {
            "data": "data/breast_cancer.csv",
            "n": int(n), "dim": int(d),
            "standardisation": "z = (x - mean) / sd, mean and population sd (divide by n) per column",
            "design_row": "[1, z_1, ..., z_30], features in CSV column order",
            "prior": "beta_j ~ N(0, 1) for all 31 coefficients (normalised density)",
            "log_likelihood": "sum_i y_i log sigmoid(x_i.beta) + (1 - y_i) log sigmoid(-x_i.beta)",
            "log_rho": "log N(beta; 0, I_31) + log_likelihood",
        },
        "names": names,
        "posterior_mean": [float(v) for v in post_mean],
        "posterior_std": [float(v) for v in post_sd],
        "mcse_mean": [float(v) for v in mcse_mean],
        "mcse_std": [float(v) for v in mcse_sd],
        "rhat": [float(v) for v in rhat],
        "ess_bulk": [float(v) for v in ess_bulk],
        "ess_tail": [float(v) for v in ess_tail],
        "sampling": {
            "sampler": "NUTS (numpyro.infer.NUTS, float64, diagonal mass matrix adapted, "
                       "target_accept_prob 0.8, max_tree_depth 10)",
            "chains": a.chains, "chain_method": "sequential",
            "warmup_per_chain": a.warmup, "draws_per_chain": a.draws,
            "n_draws": int(flat.shape[0]),
            "seed": a.seed,
            "rhat_max": float(rhat.max()),
            "rhat_method": "rank-normalised split R-hat (ArviZ)",
            "ess_bulk_min": ess_min,
            "ess_tail_min": float(ess_tail.min()),
            "divergences": divergences,
            "mean_leapfrog_steps_per_draw": float(num_steps.mean()),
            "max_leapfrog_steps_per_draw": int(num_steps.max()),
            "wall_seconds_including_compile": t_full,
            "compile_seconds": t_compile,
            "compile_seconds_by_event": compile_events,
            "compile_method": "sum of JAX monitoring durations /jax/core/compile/* "
                              "(trace, MLIR lowering, XLA compile) during the run",
            "wall_seconds_sampling": t_sampling,
            "wall_seconds_note": "warmup + draws of all chains, run one after the other on "
                                 "one process; sampling = including_compile - compile_seconds",
            "process_cpu_seconds_including_compile": cpu_full,
            "load_average_before_after": [load_before, load_after],
            "timing_caveat": "2-core machine shared with other jobs (see the load averages): "
                             "wall times, compile time most, vary between runs; "
                             "data/README.md lists the spread seen",
            "ess_per_second": ess_min / t_sampling if t_sampling > 0 else None,
            "ess_per_second_including_compile": ess_min / t_full,
        },
        "log_z": {
            "value": is_main["log_z"],
            "se": is_main["se"],
            "method": f"importance sampling, multivariate Student-t proposal (df {a.is_df:g}) "
                      f"with the NUTS mean and covariance * {a.is_scale}^2, "
                      f"{a.is_draws} draws, log-sum-exp; SE by the delta method",
            "importance_sampling": is_main,
            "seconds": t_is,
            "cross_checks": {
                "importance_sampling_other_proposals": is_alt,
                "bridge_sampling": {
                    "log_z": bridge,
                    "se": bridge_se,
                    "method": "Meng & Wong optimal bridge (iterative); t proposal (same df "
                              "and scale as above) fitted to the first half of every chain, "
                              "the second halves as posterior draws, as many fresh proposal "
                              "draws; SE from Fruehwirth-Schnatter's relative MSE with the "
                              "bulk ESS of the posterior part",
                    "n_posterior_draws": int(use_flat.shape[0]),
                    "n_proposal_draws": int(prop.shape[0]),
                    "posterior_part_ess": bridge_ess,
                },
                "laplace": {
                    "log_z": lap["log_z"],
                    "note": "Gaussian approximation at the mode: a sanity check, not exact",
                    "log_rho_at_mode": lap["log_rho_at_mode"],
                    "mode_grad_norm": lap["mode_grad_norm"],
                },
            },
        },
        "checks": {
            "log_rho_at_zero": lr0,
            "log_rho_at_zero_closed_form": lr0_closed,
            "log_rho_at_zero_formula": "-31/2 log(2 pi) + 569 log(1/2)",
            "log_rho_at_posterior_mean": lr_mean,
            "posterior_mean_used": "the posterior_mean array above, as written",
            "column_mean": [float(v) for v in col_mean],
            "column_sd_population": [float(v) for v in col_sd],
            "map": lap["mode"],
            "log_rho_at_map": lap["log_rho_at_mode"],
        },
        "environment": {
            "python": platform.python_version(),
            "numpyro": numpyro.__version__, "jax": jax.__version__,
            "jaxlib": jax.lib.__version__ if hasattr(jax.lib, "__version__") else None,
            "numpy": np.__version__, "scipy": scipy.__version__, "arviz": az.__version__,
            "cpu": cpu,
            "platform": platform.platform(),
        },
        "script": "data/scripts/reference_posterior.py",
        "script_wall_seconds": None,
    }
    out["script_wall_seconds"] = time.perf_counter() - T_SCRIPT0
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {a.out} (script {out['script_wall_seconds']:.1f} s)")


if __name__ == "__main__":
    sys.exit(main())
