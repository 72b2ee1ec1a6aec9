//! Integrators of the generative SDE and the path cost of every sample
//! (MATH.md §3, §4, §6).
//!
//! A [`Sampler`] draws sample `i` under seed `s` from [`stream(s, i)`]:
//! first `X_0` from the prior (VP) or `X_0 = 0` (PIS), then one vector of
//! standard normals per step. Paths of a batch advance in lockstep so the
//! control's time-only work ([`Control::prepare`]) is done once per step; the
//! arithmetic of each path is the same whatever the batch, so results do not
//! depend on how samples are grouped.
//!
//! When a target is given each path carries both forms of its path cost:
//! * `r`: the Euler discretisation of the continuous `R` (with the Itô term);
//! * `r_disc`: the discrete-time cost from the chain's Gaussian transition
//!   densities `p_k` and the reference's backward kernels `q_k`, for which
//!   `E[exp(-r_disc)] = Z` exactly at every step count. Prefer it for estimates.
//!
//! States are `f32`; path costs are accumulated in `f64`, because they are
//! differences of large, nearly equal log-densities.
//!
//! [`stream(s, i)`]: crate::normal::stream

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::control::Control;
use crate::normal::{fill_normals, stream, PathRng};
use crate::sde::{Sde, TimeGrid};
use crate::target::{IsotropicGaussian, Prior, Target};

/// How one step of the generative SDE is taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Integrator {
    /// `X += [1/2 beta_bar X + sigma_bar u] h + sigma_bar sqrt(h) xi`.
    #[default]
    EulerMaruyama,
    /// VP: with `u = -sigma_bar x + v`, the linear drift and the noise are
    /// integrated exactly and `v` is frozen over the step (MATH.md §4). For
    /// PIS, whose drift has no linear part, this is Euler–Maruyama.
    Exponential,
    /// Euler steps of the probability-flow ODE `dX/dt = 1/2 beta_bar X + 1/2 sigma_bar u`
    /// (VP only; deterministic after `X_0`, so no path cost).
    ProbabilityFlow,
}

/// The two path costs of one sample (see the module docs); `exp(-r_disc)` is
/// its importance weight.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PathCost {
    /// Discretised continuous-time cost `R` (biased at finite step counts).
    pub r: f64,
    /// Discrete-time cost `R_disc` (unbiased at every step count).
    pub r_disc: f64,
}

/// Which path cost enters the estimates (and the log-variance loss).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CostForm {
    /// `R_disc` from transition densities: unbiased at every step count.
    #[default]
    Discrete,
    /// The Euler discretisation of the continuous `R`: biased at finite K.
    Continuous,
}

impl CostForm {
    pub fn of(self, c: &PathCost) -> f64 {
        match self {
            CostForm::Discrete => c.r_disc,
            CostForm::Continuous => c.r,
        }
    }
}

/// Per-path state that persists across steps.
#[derive(Clone, Debug)]
pub struct PathState {
    pub rng: PathRng,
    pub cost: PathCost,
}

impl Default for PathState {
    fn default() -> Self {
        Self {
            rng: stream(0, 0),
            cost: PathCost::default(),
        }
    }
}

/// Why a [`Sampler`] refused to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleError {
    /// `what` has dimension `got`; the control's is `expected`.
    Dimension {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// A buffer is shorter than needed.
    Buffer {
        what: &'static str,
        needed: usize,
        got: usize,
    },
    ZeroSteps,
    Unsupported(&'static str),
}

impl fmt::Display for SampleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SampleError::Dimension {
                what,
                expected,
                got,
            } => write!(f, "{what} has dimension {got}, the control has {expected}"),
            SampleError::Buffer { what, needed, got } => {
                write!(f, "{what} buffer holds {got}, needs {needed}")
            }
            SampleError::ZeroSteps => f.write_str("the number of steps must be at least 1"),
            SampleError::Unsupported(why) => f.write_str(why),
        }
    }
}

/// The (SDE, integrator) combinations, resolved once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    VpEuler,
    VpExponential,
    VpFlow,
    PisEuler,
}

impl Scheme {
    /// The scheme of an (SDE, integrator) pair; PIS with the exponential
    /// integrator is Euler–Maruyama (its drift has no linear part).
    pub fn new(sde: &Sde, integrator: Integrator) -> Result<Self, SampleError> {
        Ok(match (sde, integrator) {
            (Sde::Vp { .. }, Integrator::EulerMaruyama) => Scheme::VpEuler,
            (Sde::Vp { .. }, Integrator::Exponential) => Scheme::VpExponential,
            (Sde::Vp { .. }, Integrator::ProbabilityFlow) => Scheme::VpFlow,
            (Sde::Pis { .. }, Integrator::ProbabilityFlow) => {
                return Err(SampleError::Unsupported(
                    "the probability-flow ODE needs a VP SDE (PIS has no such form here)",
                ))
            }
            (Sde::Pis { .. }, _) => Scheme::PisEuler,
        })
    }

    /// Whether `X_0` is drawn from the prior (VP) rather than fixed at 0 (PIS).
    pub fn starts_from_prior(self) -> bool {
        self != Scheme::PisEuler
    }

    /// Whether the integrated control is `v = u + sigma_bar x` rather than `u`.
    pub fn uses_v(self) -> bool {
        self == Scheme::VpExponential
    }

    /// The Gaussian whose log-density is the terminal term of the
    /// continuous cost `R` at `X_K` (besides `-log rho`), if that term
    /// depends on `X_K`: `N(0, I)` for the exponential integrator (DDS's
    /// reference), `N(0, sigma^2 T I)` for PIS (MATH.md §6).
    pub fn terminal_gaussian(self, sde: &Sde, d: usize) -> Option<IsotropicGaussian> {
        match self {
            Scheme::VpExponential => Some(IsotropicGaussian { d, nu: 1.0 }),
            Scheme::PisEuler => {
                let nu = libm::sqrt(sde.beta(0.0) * sde.t_end() as f64) as f32;
                Some(IsotropicGaussian { d, nu })
            }
            Scheme::VpEuler | Scheme::VpFlow => None,
        }
    }
}

/// `-d/2 log(2 pi var)`: log-normaliser of `N(., var I)` in dimension `d`.
pub fn log_norm(d: usize, var: f64) -> f64 {
    -0.5 * d as f64 * libm::log(core::f64::consts::TAU * var)
}

/// One step as a Gaussian transition `N(., mean, std^2 I)` in coefficient form:
/// `x_next = decay * x + gain * w + std * xi`, where `w` is the control (or
/// `v`) and, for Euler–Maruyama, `decay = 1 + 1/2 beta_bar h`, `gain = sigma_bar h`.
/// The same `f32` coefficients drive the state and enter the densities; the
/// trainer's rollouts use them too.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    /// Start time `t_k` of the step (where the control is evaluated).
    pub t0: f32,
    pub h: f64,
    pub decay: f32,
    pub gain: f32,
    pub std: f32,
    /// `sigma_bar(t_k)`, used by the exponential integrator's `v = u + sigma_bar x`.
    pub sigma_bar: f32,
    /// Backward kernel `q_k(x_k | x_{k+1}) = N(q_decay x_{k+1}, q_var)`; `q_var = 0` means none.
    pub q_decay: f64,
    pub q_var: f64,
}

impl Step {
    /// Coefficients of the step from `t0` to `t1`.
    pub fn new(sde: &Sde, scheme: Scheme, t0: f32, t1: f32) -> Self {
        let (t0d, t1d) = (t0 as f64, t1 as f64);
        let h = t1d - t0d;
        let beta = sde.beta_bar(t0d);
        let sigma_bar = libm::sqrt(beta);
        let mut step = Step {
            t0,
            h,
            decay: (1.0 + 0.5 * beta * h) as f32,
            gain: (sigma_bar * h) as f32,
            std: (sigma_bar * libm::sqrt(h)) as f32,
            sigma_bar: sigma_bar as f32,
            q_decay: 0.0,
            q_var: 0.0,
        };
        match scheme {
            Scheme::VpEuler => {
                // Exact noising step over [t0, t1]: N(a x, 1 - a^2).
                let ib = sde.integral_beta_bar(t0d, t1d);
                step.q_decay = libm::exp(-0.5 * ib);
                step.q_var = -libm::expm1(-ib);
            }
            Scheme::VpExponential => {
                let ib = sde.integral_beta_bar(t0d, t1d);
                let a = libm::exp(-0.5 * ib) as f32;
                // beta frozen at its step mean: sigma_hat int e^{-beta_hat (h-r)/2} dr = 2 (1 - a) / sigma_hat.
                let sigma_hat = libm::sqrt(ib / h);
                step.decay = a;
                step.gain = (-2.0 * libm::expm1(-0.5 * ib) / sigma_hat) as f32;
                step.std = libm::sqrt(-libm::expm1(-ib)) as f32;
                // Backward kernel: the exact reversal under N(0, I) of the step
                // as rounded to f32, x ~ N(0, 1), y | x ~ N(a x, v) =>
                // x | y ~ N(a y / (a^2 + v), v / (a^2 + v)). It equals the
                // noising step N(a y, 1 - a^2) up to f32 rounding of a and v,
                // is a normalised kernel (so R_disc stays unbiased), and makes
                // R_disc = 0 for target N(0, I) and v = 0 up to f64 rounding.
                let (a, v) = (a as f64, step.std as f64 * step.std as f64);
                step.q_decay = a / (a * a + v);
                step.q_var = v / (a * a + v);
            }
            Scheme::VpFlow => {
                step.gain = (0.5 * sigma_bar * h) as f32;
                step.std = 0.0;
            }
            Scheme::PisEuler => {
                step.decay = 1.0;
                // Brownian bridge back from t1 to t0: N(x t0/t1, sigma^2 h t0/t1).
                if t0d > 0.0 {
                    step.q_decay = t0d / t1d;
                    step.q_var = beta * h * t0d / t1d;
                }
            }
        }
        step
    }
}

/// Everything about a path except its control: the start `X_0`, the steps'
/// coefficients and noise, the path costs, the terminal terms. [`Sampler`]
/// drives it with a [`Control`] path by path; the trainer drives it with
/// its batched network evaluation. One simulator, so a training path and a
/// device path are the same arithmetic.
#[derive(Clone, Copy, Debug)]
pub struct PathSimulator<'a> {
    pub scheme: Scheme,
    pub sde: Sde,
    pub grid: TimeGrid,
    pub steps: usize,
    /// Distribution of `X_0` for VP SDEs (PIS starts at 0).
    pub prior: Prior<'a>,
}

impl<'a> PathSimulator<'a> {
    pub fn new(
        sde: Sde,
        grid: TimeGrid,
        steps: usize,
        integrator: Integrator,
        prior: Prior<'a>,
    ) -> Result<Self, SampleError> {
        if steps == 0 {
            return Err(SampleError::ZeroSteps);
        }
        Ok(Self {
            scheme: Scheme::new(&sde, integrator)?,
            sde,
            grid,
            steps,
            prior,
        })
    }

    /// Starts path `index` under `seed`: its random stream, `X_0` in `x` (the
    /// prior, or 0 for PIS) and, `with_cost`, the costs' initial terms
    /// `log p(X_0)` (`R_disc`) and the continuous cost's boundary term at `X_0`.
    pub fn start(
        &self,
        seed: u64,
        index: u64,
        x: &mut [f32],
        path: &mut PathState,
        with_cost: bool,
    ) {
        path.rng = stream(seed, index);
        path.cost = PathCost::default();
        if !self.scheme.starts_from_prior() {
            x.fill(0.0);
            return;
        }
        fill_normals(&mut path.rng, x);
        self.prior.transform_normals(x);
        if with_cost {
            let log_p = self.prior.log_density_f64(x);
            path.cost.r_disc = log_p;
            path.cost.r = match self.scheme {
                Scheme::VpEuler | Scheme::VpFlow => log_p,
                // Relative to the reference's N(0, I) start (MATH.md §6).
                Scheme::VpExponential => log_p - Prior::standard(x.len()).log_density_f64(x),
                Scheme::PisEuler => 0.0,
            };
        }
    }

    /// Step `k` (from `t_k` to `t_{k+1}` on the grid).
    pub fn step(&self, k: usize) -> Step {
        let t_end = self.sde.t_end();
        let t0 = self.grid.time(k, self.steps, t_end) as f32;
        let t1 = self.grid.time(k + 1, self.steps, t_end) as f32;
        Step::new(&self.sde, self.scheme, t0, t1)
    }

    /// The integrated control is `w = u + offset x`: `offset = sigma_bar(t_k)`
    /// for the exponential integrator (`v`, MATH.md §4), else 0.
    pub fn w_offset(&self, step: &Step) -> f32 {
        if self.scheme.uses_v() {
            step.sigma_bar
        } else {
            0.0
        }
    }

    /// Draws the step's standard normals from the path's stream into `xi`,
    /// scaled by `kappa` (the trainer's exploration; 1 on a device), or zeros
    /// for the probability-flow ODE; then advances `x` with control `w` and,
    /// `with_cost`, accumulates the path costs ([`advance`]).
    #[allow(clippy::too_many_arguments)]
    pub fn advance(
        &self,
        step: &Step,
        x: &mut [f32],
        w: &[f32],
        xi: &mut [f32],
        path: &mut PathState,
        with_cost: bool,
        kappa: f32,
    ) {
        if self.scheme == Scheme::VpFlow {
            xi.fill(0.0);
        } else {
            fill_normals(&mut path.rng, xi);
            if kappa != 1.0 {
                xi.iter_mut().for_each(|v| *v *= kappa);
            }
        }
        advance(step, x, w, xi, with_cost.then_some(&mut path.cost));
    }

    /// The continuous cost's terminal term at `X_K` besides `-log rho`:
    /// `-d/2 integral beta_bar` (Euler–Maruyama), `log N(X_K; 0, I)`
    /// (exponential), `log N(X_K; 0, sigma^2 T I)` (PIS), 0 (flow).
    pub fn terminal_term(&self, x: &[f32]) -> f64 {
        let d = x.len();
        match self.scheme {
            Scheme::VpEuler => {
                -0.5 * d as f64 * self.sde.integral_beta_bar(0.0, self.sde.t_end() as f64)
            }
            Scheme::VpFlow => 0.0,
            Scheme::VpExponential | Scheme::PisEuler => {
                let g = self.scheme.terminal_gaussian(&self.sde, d);
                Prior::Isotropic(g.expect("a terminal Gaussian")).log_density_f64(x)
            }
        }
    }

    /// Ends a path: `-log rho(X_K)` into both costs, and the terminal term
    /// into the continuous one.
    pub fn finish(&self, x: &[f32], log_rho: f64, cost: &mut PathCost) {
        cost.r_disc -= log_rho;
        cost.r += self.terminal_term(x) - log_rho;
    }
}

/// Samples the generative SDE with a control, from a prior, on a time grid.
#[derive(Clone, Copy, Debug)]
pub struct Sampler<'a, C, T> {
    pub sde: Sde,
    pub grid: TimeGrid,
    pub steps: usize,
    pub integrator: Integrator,
    /// Distribution of `X_0` for VP SDEs (ignored by PIS, which starts at 0).
    pub prior: Prior<'a>,
    pub control: C,
    /// When given, every path's cost is computed.
    pub target: Option<T>,
}

impl<'a, C: Control, T: Target> Sampler<'a, C, T> {
    /// Floats of work buffer that [`Sampler::sample`] needs for a block of
    /// `paths` paths: the control's cache and scratch, two `d` vectors and,
    /// with a target, one `d` row per path for the block's scores.
    pub fn work_len(&self, paths: usize) -> usize {
        let d = self.control.dim();
        let block = if self.target.is_some() { paths * d } else { 0 };
        self.control.time_cache_len() + self.control.scratch_len() + 2 * d + block
    }

    /// The path simulator of this sampler's SDE, grid, steps and integrator.
    pub fn simulator(&self) -> Result<PathSimulator<'a>, SampleError> {
        PathSimulator::new(self.sde, self.grid, self.steps, self.integrator, self.prior)
    }

    /// Whether paths carry a cost with this configuration.
    pub fn has_cost(&self) -> bool {
        self.target.is_some() && self.integrator != Integrator::ProbabilityFlow
    }

    /// Draws samples `first_index .. first_index + paths.len()` under `seed`
    /// into `xs` (`paths.len()` rows of `d`), with their costs in
    /// `paths[i].cost` when [`Sampler::has_cost`]. `work` needs
    /// [`Sampler::work_len`]`(paths.len())` floats.
    ///
    /// The target is evaluated for the whole block at once: its scores once
    /// per step when the control uses them, its log-density at the end.
    pub fn sample(
        &self,
        seed: u64,
        first_index: u64,
        xs: &mut [f32],
        paths: &mut [PathState],
        work: &mut [f32],
    ) -> Result<(), SampleError> {
        let d = self.control.dim();
        let sim = self.simulator()?;
        self.check(d, xs.len(), paths.len(), work.len())?;
        let with_cost = self.has_cost();
        let (cache, rest) = work.split_at_mut(self.control.time_cache_len());
        let (scratch, rest) = rest.split_at_mut(self.control.scratch_len());
        let (u, rest) = rest.split_at_mut(d);
        let (xi, rest) = rest.split_at_mut(d);
        let block = &mut rest[..if self.target.is_some() {
            paths.len() * d
        } else {
            0
        }];
        let scored = match &self.target {
            Some(target) if self.control.uses_target_score() => Some(target),
            _ => None,
        };

        for (i, (x, path)) in xs.chunks_exact_mut(d).zip(paths.iter_mut()).enumerate() {
            sim.start(seed, first_index.wrapping_add(i as u64), x, path, with_cost);
        }
        for k in 0..self.steps {
            let step = sim.step(k);
            let offset = sim.w_offset(&step);
            self.control.prepare(step.t0, cache, scratch);
            if let Some(target) = scored {
                target.score_batch(xs, block);
            }
            for (i, (x, path)) in xs.chunks_exact_mut(d).zip(paths.iter_mut()).enumerate() {
                match scored {
                    Some(_) => {
                        let score = &block[i * d..(i + 1) * d];
                        self.control.u_scored(step.t0, cache, x, score, u, scratch);
                    }
                    None => self.control.u(step.t0, cache, x, u, scratch),
                }
                if offset != 0.0 {
                    for (uj, &xj) in u.iter_mut().zip(x.iter()) {
                        *uj += offset * xj;
                    }
                }
                sim.advance(&step, x, u, xi, path, with_cost, 1.0);
            }
        }
        if with_cost {
            let target = self.target.as_ref().expect("has_cost implies a target");
            let log_rho = &mut block[..paths.len()];
            target.log_density_batch(xs, log_rho);
            for ((x, path), &l) in xs.chunks_exact(d).zip(paths.iter_mut()).zip(log_rho.iter()) {
                sim.finish(x, l as f64, &mut path.cost);
            }
        }
        Ok(())
    }

    fn check(&self, d: usize, xs: usize, paths: usize, work: usize) -> Result<(), SampleError> {
        if self.prior.dim() != d {
            return Err(SampleError::Dimension {
                what: "prior",
                expected: d,
                got: self.prior.dim(),
            });
        }
        if let Some(t) = &self.target {
            if t.dim() != d {
                return Err(SampleError::Dimension {
                    what: "target",
                    expected: d,
                    got: t.dim(),
                });
            }
        }
        if xs != paths * d {
            return Err(SampleError::Buffer {
                what: "sample",
                needed: paths * d,
                got: xs,
            });
        }
        if work < self.work_len(paths) {
            return Err(SampleError::Buffer {
                what: "work",
                needed: self.work_len(paths),
                got: work,
            });
        }
        Ok(())
    }
}

/// One step `x <- decay x + gain w + std xi` and its contribution to the costs:
/// `r += 1/2 |w|^2 h + sqrt(h) w . xi` and `r_disc += log p_k(x'|x) - log q_k(x|x')`.
pub fn advance(step: &Step, x: &mut [f32], w: &[f32], xi: &[f32], cost: Option<&mut PathCost>) {
    let Some(cost) = cost else {
        for ((xj, &wj), &xij) in x.iter_mut().zip(w).zip(xi) {
            *xj = step.decay * *xj + step.gain * wj + step.std * xij;
        }
        return;
    };
    let (std, q_std) = (step.std as f64, libm::sqrt(step.q_var));
    let (mut running, mut ito, mut p_sq, mut q_sq) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for ((xj, &wj), &xij) in x.iter_mut().zip(w).zip(xi) {
        let x_old = *xj;
        *xj = step.decay * x_old + step.gain * wj + step.std * xij;
        let mean = step.decay as f64 * x_old as f64 + step.gain as f64 * wj as f64;
        let p_res = (*xj as f64 - mean) / std;
        p_sq += p_res * p_res;
        if step.q_var > 0.0 {
            let q_res = (x_old as f64 - step.q_decay * *xj as f64) / q_std;
            q_sq += q_res * q_res;
        }
        running += wj as f64 * wj as f64;
        ito += wj as f64 * xij as f64;
    }
    let d = x.len();
    cost.r += 0.5 * running * step.h + libm::sqrt(step.h) * ito;
    let log_p = log_norm(d, std * std) - 0.5 * p_sq;
    let log_q = if step.q_var > 0.0 {
        log_norm(d, step.q_var) - 0.5 * q_sq
    } else {
        0.0 // the first PIS step: X_0 = 0 under both processes
    };
    cost.r_disc += log_p - log_q;
}
