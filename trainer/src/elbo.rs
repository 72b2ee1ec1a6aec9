//! The likelihood bound of a generative model (MATH.md §7, the seeds'
//! "ELBO" slide): for a data point `y` and `Y` the VP noising process from `y`,
//!
//! ```text
//! log p_model(y) >= E[ log N(Y_T; 0, nu^2 I)
//!                      - int_0^T ( 1/2 |u(Y_s, T-s)|^2 + sigma(s) div_x u(Y_s, T-s) + d/2 beta(s) ) ds ]
//! ```
//!
//! where `p_model` is the law of `X_T` of the generative SDE of MATH.md §3
//! started at `X_0 ~ N(0, nu^2 I)` with control `u`, and `sigma = sqrt(beta)`.
//! (The seeds' `div(sigma u - f)` with `f = -1/2 beta y` gives the last two terms.)
//!
//! **Estimator**, per point, all in `f64` outside the control:
//! * the prior term in closed form: `Y_T | y ~ N(a y, (1 - a^2) I)`,
//!   `a = e^{-A(T)}`, so `E log N(Y_T; 0, nu^2) = -d/2 log(2 pi nu^2) - (a^2 |y|^2 + d (1 - a^2)) / (2 nu^2)`;
//! * `int d/2 beta = d A(T)` in closed form;
//! * the rest by stratified quadrature: `K` strata of `[0, T]`, one uniform
//!   time `s_k` in each and a fresh `Y_{s_k} ~ N(e^{-A} y, (1 - e^{-2A}) I)`.
//!   The integrand at time `s` depends on the path only through `Y_s`, so
//!   by Fubini `E int f(Y_s) ds = int E f(Y_s) ds` and sampling each time's
//!   marginal independently is unbiased (no path simulation needed). Each
//!   point gets its own times and noise, so the per-point estimates are
//!   independent and their spread gives an honest standard error.
//! * a control variate (on by default): the same integrand for the
//!   stationary control `u_ref = -sigma x` (optimal for data `N(0, I)`),
//!   `g = beta/2 (|Y_s|^2 - d)`, has the closed-form mean
//!   `E[g | y] = beta/2 e^{-2A(s)} (|y|^2 - d)` with time integral
//!   `1/2 (1 - e^{-2A(T)}) (|y|^2 - d)`. The quadrature then only estimates
//!   `int E[f - g]`, which is small where `u` is close to `-sigma x`: near
//!   `s = T`, where `beta` is largest and the plain integrand's variance sits.
//!   (For data `N(0, I)` with `u = u_ref` the estimate is exact, zero variance.)
//!
//! **The control** is any runtime [`Control`]: the shipped network
//! (`NetworkControl` over the decoded weights, so the bound is that of the
//! exact bits a device samples with) or an analytic control (the tests).
//!
//! **`div_x u`** by central differences of the control in each coordinate
//! (`2 d` extra evaluations; `d` is small for data sets here): step
//! `h = 1e-2 max(1, |x_j|)`, divided by the step actually represented in
//! `f32`, `(x_j + h) - (x_j - h)`. For the network (smooth, GELU) the
//! truncation error is `h^2/6 |d^3 u|`, the rounding error about
//! `ulp(|u|) / h`: both around `1e-4` relative; the test
//! `finite_difference_divergence_matches_the_tape` checks it against the
//! exact Jacobian diagonal from `d` reverse passes of the trainer's tape.

use diffctl_runtime::control::Control;
use diffctl_runtime::network::NetworkRef;
use diffctl_runtime::normal::{fill_normals, open_uniform_f64, stream};
use diffctl_runtime::prelude::*;
use diffctl_runtime::target::Builtin;
use serde::{Deserialize, Serialize};

use crate::data::Dataset;

/// How the bound is estimated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElboConfig {
    /// Strata `K` of the time integral per point.
    pub times: usize,
    /// Relative finite-difference step of the divergence.
    pub fd_step: f32,
    /// Subtract the stationary control's integrand and add its exact mean.
    pub control_variate: bool,
    pub seed: u64,
    pub threads: usize,
}

impl Default for ElboConfig {
    fn default() -> Self {
        Self {
            times: 64,
            fd_step: 1e-2,
            control_variate: true,
            seed: 0,
            threads: crate::parallel::default_threads(),
        }
    }
}

/// The bound over a data set.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ElboReport {
    pub n: usize,
    pub d: usize,
    /// Mean over the points of the bound on `log p_model(y)`, in nats.
    pub bound: f64,
    /// `-bound / d`: nats per dimension (an upper bound on the model's
    /// negative log-likelihood per dimension, up to Monte-Carlo error).
    pub nats_per_dim: f64,
    /// Standard error of `nats_per_dim` (spread of the per-point estimates,
    /// which includes the spread of `log p_model` over the data).
    pub std_error: f64,
    /// The per-point estimates of the bound, in data order.
    pub per_point: Vec<f64>,
}

impl std::fmt::Display for ElboReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ELBO {:.4} nats per point; {:.4} +- {:.4} nats per dimension ({} points, d = {})",
            self.bound, self.nats_per_dim, self.std_error, self.n, self.d
        )
    }
}

/// The bound for a control `u` of the generative SDE of `sde` with prior
/// `N(0, nu^2 I)`, at every point of `data`.
pub fn elbo<C: Control + Sync>(
    control: &C,
    sde: &Sde,
    prior_nu: f32,
    data: &Dataset,
    cfg: &ElboConfig,
) -> Result<ElboReport, String> {
    if !sde.is_vp() {
        return Err("the likelihood bound needs a VP SDE".into());
    }
    let d = data.d;
    if control.dim() != d {
        return Err(format!(
            "data has d = {d}, the model has d = {}",
            control.dim()
        ));
    }
    if cfg.times == 0 || cfg.threads == 0 {
        return Err("times and threads must be at least 1".into());
    }
    if !(cfg.fd_step.is_finite() && cfg.fd_step > 0.0) {
        return Err(format!("fd_step must be positive, got {}", cfg.fd_step));
    }
    if !(prior_nu.is_finite() && prior_nu > 0.0) {
        return Err(format!("prior nu must be positive, got {prior_nu}"));
    }
    let n = data.len();
    let mut per_point = vec![0.0f64; n];
    let chunk = n.div_ceil(cfg.threads.min(n));
    std::thread::scope(|scope| {
        for (c, out) in per_point.chunks_mut(chunk).enumerate() {
            scope.spawn(move || {
                let mut work = Work::new(control);
                for (r, b) in out.iter_mut().enumerate() {
                    let i = c * chunk + r;
                    *b = point_bound(control, sde, prior_nu, data.row(i), i, cfg, &mut work);
                }
            });
        }
    });
    let mean = per_point.iter().sum::<f64>() / n as f64;
    let var = if n > 1 {
        per_point.iter().map(|b| (b - mean).powi(2)).sum::<f64>() / (n - 1) as f64
    } else {
        f64::NAN
    };
    Ok(ElboReport {
        n,
        d,
        bound: mean,
        nats_per_dim: -mean / d as f64,
        std_error: (var / n as f64).sqrt() / d as f64,
        per_point,
    })
}

/// The bound of a model given by its header and flat parameters, evaluated
/// through the runtime network (the header's SDE, prior and, when the
/// network has a score term, its built-in target).
pub fn elbo_params(
    header: &Header,
    params: &[f32],
    data: &Dataset,
    cfg: &ElboConfig,
) -> Result<ElboReport, String> {
    data.expect_dim(header.shape.d as usize)?;
    let net = NetworkRef::from_flat(header.shape, params).map_err(|e| e.to_string())?;
    let target: Option<Builtin> = header.target.and_then(|t| t.build(&[]).ok());
    let sampler = header.sampler_for(net, target, None, None)?;
    elbo(&sampler.control, &header.sde, header.prior_nu, data, cfg)
}

/// The bound of a weights file (`diffctl eval --data`).
pub fn elbo_file(bytes: &[u8], data: &Dataset, cfg: &ElboConfig) -> Result<ElboReport, String> {
    let model = Model::parse(bytes).map_err(|e| e.to_string())?;
    let header = model.header;
    let mut params = vec![0.0f32; header.param_count()];
    model.params_into(&mut params).map_err(|e| e.to_string())?;
    elbo_params(&header, &params, data, cfg)
}

/// Per-thread buffers.
struct Work {
    cache: Vec<f32>,
    scratch: Vec<f32>,
    xi: Vec<f32>,
    y: Vec<f32>,
    u: Vec<f32>,
    div: Vec<f32>,
}

impl Work {
    fn new<C: Control>(c: &C) -> Self {
        let d = c.dim();
        Self {
            cache: vec![0.0; c.time_cache_len()],
            scratch: vec![0.0; c.scratch_len()],
            xi: vec![0.0; d],
            y: vec![0.0; d],
            u: vec![0.0; d],
            div: vec![0.0; divergence_work_len(c)],
        }
    }
}

/// Length of the `work` buffer [`divergence_fd`] needs.
pub fn divergence_work_len<C: Control>(control: &C) -> usize {
    2 * control.dim() + control.scratch_len()
}

/// `div_x u(x, t)` by central differences, with `cache = prepare(t)`;
/// `x` is restored on return. `work` holds [`divergence_work_len`] floats.
pub fn divergence_fd<C: Control>(
    control: &C,
    t: f32,
    cache: &[f32],
    x: &mut [f32],
    rel_step: f32,
    work: &mut [f32],
) -> f64 {
    let d = x.len();
    let (up, rest) = work.split_at_mut(d);
    let (um, scratch) = rest.split_at_mut(d);
    let mut div = 0.0f64;
    for j in 0..d {
        let x0 = x[j];
        let h = rel_step * x0.abs().max(1.0);
        let (xp, xm) = (x0 + h, x0 - h);
        x[j] = xp;
        control.u(t, cache, x, up, scratch);
        x[j] = xm;
        control.u(t, cache, x, um, scratch);
        x[j] = x0;
        // The step actually taken in f32 (exact: a difference of nearby floats).
        div += (up[j] as f64 - um[j] as f64) / (xp as f64 - xm as f64);
    }
    div
}

/// The bound at one point `y` (index `i` selects its random stream).
fn point_bound<C: Control>(
    control: &C,
    sde: &Sde,
    prior_nu: f32,
    y: &[f32],
    i: usize,
    cfg: &ElboConfig,
    w: &mut Work,
) -> f64 {
    use std::f64::consts::TAU;
    let d = y.len() as f64;
    let t_end = sde.t_end() as f64;
    let nu2 = (prior_nu as f64).powi(2);
    // Prior term in closed form.
    let a_t = (-sde.a(t_end)).exp();
    let y2: f64 = y.iter().map(|&v| (v as f64).powi(2)).sum();
    let prior =
        -0.5 * d * (TAU * nu2).ln() - (a_t * a_t * y2 + d * (1.0 - a_t * a_t)) / (2.0 * nu2);
    // int_0^T d/2 beta ds = d A(T).
    let beta_term = d * sde.a(t_end);
    // Stratified time quadrature of 1/2 |u|^2 + sigma div u.
    let mut rng = stream(cfg.seed, i as u64);
    let k_total = cfg.times;
    let width = t_end / k_total as f64;
    // The control variate's exact integral, without its d/2 beta (which
    // `beta_term` holds): int_0^T E[g | y] ds - d A(T), where
    // int_0^T E[g | y] ds = int_0^T beta/2 e^{-2A} (|y|^2 - d) ds = 1/2 (1 - e^{-2A(T)}) (|y|^2 - d).
    let cv_exact = 0.5 * (1.0 - a_t * a_t) * (y2 - d) - beta_term;
    let mut integral = if cfg.control_variate { cv_exact } else { 0.0 };
    for k in 0..k_total {
        let v = open_uniform_f64(&mut rng);
        let s = (k as f64 + v) * width;
        let decay = (-sde.a(s)).exp();
        let std = (-(-2.0 * sde.a(s)).exp_m1()).sqrt();
        fill_normals(&mut rng, &mut w.xi);
        for ((yj, &y0), &xi) in w.y.iter_mut().zip(y).zip(&w.xi) {
            *yj = (decay * y0 as f64 + std * xi as f64) as f32;
        }
        let t = (t_end - s) as f32;
        control.prepare(t, &mut w.cache, &mut w.scratch);
        control.u(t, &w.cache, &w.y, &mut w.u, &mut w.scratch);
        let u2: f64 = w.u.iter().map(|&v| (v as f64).powi(2)).sum();
        let div = divergence_fd(control, t, &w.cache, &mut w.y, cfg.fd_step, &mut w.div);
        let beta = sde.beta(s);
        // f without its constant d/2 beta (integrated exactly below).
        let mut f = 0.5 * u2 + beta.sqrt() * div;
        if cfg.control_variate {
            // g - d/2 beta = beta/2 |Y|^2 - beta d
            let yy: f64 = w.y.iter().map(|&v| (v as f64).powi(2)).sum();
            f -= 0.5 * beta * yy - beta * d;
        }
        integral += f * width;
    }
    prior - integral - beta_term
}
