//! Your own density, in Rust: implement `diffctl_runtime::Target` (its
//! log-density and score), train a sampler on it with the trainer's public
//! API, export the weights file, read it back and sample it with the
//! runtime, as a device would, with `log Z` from the importance weights.
//!
//! ```text
//! cargo run --release --example own_target            # both targets, about a minute on 2 cores
//! cargo run --release --example own_target -- banana   # one of them
//! ```
//!
//! Both targets have a closed-form `log Z` and mean, printed beside the
//! estimates. `tests/own_target.rs` trains them on a small budget and checks
//! the estimates against those.

use std::process::ExitCode;

use diffctl_runtime::prelude::*;
use diffctl_trainer::eval::{estimates, Estimates};
use diffctl_trainer::optimise::RunOptions;
use diffctl_trainer::train::{train, TrainConfig};

/// A banana: `y ~ N(0, diag(s1^2, s2^2))` pushed through
/// `(y1, y2) -> (y1, y2 + b (y1^2 - a))`, a map of unit Jacobian, and left
/// unnormalised: `rho(x) = exp(-x1^2 / (2 s1^2) - u^2 / (2 s2^2))` with
/// `u = x2 - b (x1^2 - a)`, so `Z = 2 pi s1 s2`.
#[derive(Clone, Copy, Debug)]
pub struct Banana {
    pub a: f32,
    pub b: f32,
    pub s1: f32,
    pub s2: f32,
}

impl Banana {
    pub const DEFAULT: Banana = Banana {
        a: 0.5,
        b: 0.5,
        s1: 1.0,
        s2: 0.5,
    };

    /// `log Z = log(2 pi s1 s2)`.
    pub fn exact_log_z(&self) -> f64 {
        (std::f64::consts::TAU * self.s1 as f64 * self.s2 as f64).ln()
    }

    /// `E x = (0, b (s1^2 - a))`.
    pub fn exact_mean(&self) -> Vec<f64> {
        let s1 = self.s1 as f64;
        vec![0.0, self.b as f64 * (s1 * s1 - self.a as f64)]
    }
}

impl Target for Banana {
    fn dim(&self) -> usize {
        2
    }
    fn log_density(&self, x: &[f32]) -> f32 {
        let u = x[1] - self.b * (x[0] * x[0] - self.a);
        -0.5 * (x[0] * x[0]) / (self.s1 * self.s1) - 0.5 * (u * u) / (self.s2 * self.s2)
    }
    fn score(&self, x: &[f32], out: &mut [f32]) {
        let u = x[1] - self.b * (x[0] * x[0] - self.a);
        let du = u / (self.s2 * self.s2);
        out[0] = -x[0] / (self.s1 * self.s1) + du * 2.0 * self.b * x[0];
        out[1] = -du;
    }
    fn log_z(&self) -> Option<f64> {
        Some(self.exact_log_z())
    }
}

/// `rho(x) = exp(-1/2 (x - m)^T C^-1 (x - m))` in `D = 8` dimensions with
/// `C = S R S`: standard deviations `s_i = 0.5 + 0.25 i` and the AR(1)
/// correlation `R_ij = r^|i-j|` (neighbours correlated by `r = 0.8`). `R^-1`
/// is tridiagonal, `det R = (1 - r^2)^(D-1)`, so
/// `log Z = D/2 log(2 pi) + sum_i log s_i + (D-1)/2 log(1 - r^2)`.
#[derive(Clone, Copy, Debug)]
pub struct CorrelatedGaussian;

impl CorrelatedGaussian {
    pub const D: usize = 8;
    const R: f64 = 0.8;

    fn std(i: usize) -> f64 {
        0.5 + 0.25 * i as f64
    }

    /// `m = (0.5, -0.5, 1, -1, 1.5, -1.5, 2, -2)`.
    pub fn exact_mean(&self) -> Vec<f64> {
        (0..Self::D)
            .map(|i| (i / 2 + 1) as f64 * 0.5 * if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect()
    }

    pub fn exact_log_z(&self) -> f64 {
        let d = Self::D as f64;
        0.5 * d * std::f64::consts::TAU.ln()
            + (0..Self::D).map(|i| Self::std(i).ln()).sum::<f64>()
            + 0.5 * (d - 1.0) * (1.0 - Self::R * Self::R).ln()
    }

    /// `g = C^-1 (x - m) = S^-1 R^-1 S^-1 (x - m)`, with the tridiagonal
    /// `R^-1 = (1 - r^2)^-1 [diag(1, 1 + r^2, ..., 1 + r^2, 1), -r off the diagonal]`.
    fn precision_times(&self, x: &[f32]) -> [f64; 8] {
        let (d, r) = (Self::D, Self::R);
        let m = self.exact_mean();
        let z: Vec<f64> = (0..d)
            .map(|i| (x[i] as f64 - m[i]) / Self::std(i))
            .collect();
        let mut g = [0.0f64; 8];
        for i in 0..d {
            let diag = if i == 0 || i == d - 1 {
                1.0
            } else {
                1.0 + r * r
            };
            let mut v = diag * z[i];
            if i > 0 {
                v -= r * z[i - 1];
            }
            if i + 1 < d {
                v -= r * z[i + 1];
            }
            g[i] = v / (1.0 - r * r) / Self::std(i);
        }
        g
    }
}

impl Target for CorrelatedGaussian {
    fn dim(&self) -> usize {
        Self::D
    }
    fn log_density(&self, x: &[f32]) -> f32 {
        let m = self.exact_mean();
        let g = self.precision_times(x);
        let quad: f64 = (0..Self::D).map(|i| (x[i] as f64 - m[i]) * g[i]).sum();
        (-0.5 * quad) as f32
    }
    fn score(&self, x: &[f32], out: &mut [f32]) {
        for (o, g) in out.iter_mut().zip(self.precision_times(x)) {
            *o = -g as f32;
        }
    }
    fn log_z(&self) -> Option<f64> {
        Some(self.exact_log_z())
    }
}

/// What [`run`] measured on one target.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub estimates: Estimates,
    /// Self-normalised importance-weighted mean of every coordinate.
    pub mean: Vec<f64>,
    /// Standard error of each weighted mean: `std / sqrt(n ESS)`.
    pub mean_se: Vec<f64>,
    pub seconds: f64,
    pub weights_bytes: usize,
}

/// Trains DIS on `target` with `cfg`, exports the weights, reads them back
/// and draws `n` samples with the runtime under a seed training never used.
pub fn run<T: Target + Sync>(target: &T, cfg: &TrainConfig, n: usize) -> Result<Outcome, String> {
    let trained =
        train(cfg, target, &RunOptions::default(), &mut |_| {}).map_err(|e| e.to_string())?;
    // The one file that ships: here it stays in memory; `std::fs::write` it
    // to take it to a device.
    let bytes = trained.weights;

    // On the device: decode, load the parameters, build the sampler with
    // the same target (it enters the network's score term and the costs).
    let model = Model::parse(&bytes).map_err(|e| e.to_string())?;
    let header = model.header;
    let mut params = vec![0.0f32; header.param_count()];
    model.params_into(&mut params).map_err(|e| e.to_string())?;
    let net = NetworkRef::from_flat(header.shape, &params).map_err(|e| e.to_string())?;
    let sampler = header.sampler_for(net, Some(target), None, None)?;
    let d = target.dim();
    let mut xs = vec![0.0f32; n * d];
    let mut paths = vec![PathState::default(); n];
    let mut work = vec![0.0f32; sampler.work_len(n)];
    sampler
        .sample(12_345, 0, &mut xs, &mut paths, &mut work)
        .map_err(|e| e.to_string())?;

    // Importance weights exp(-R_disc): E[exp(-R_disc)] = Z for any control.
    let r: Vec<f64> = paths.iter().map(|p| p.cost.r_disc).collect();
    let est = estimates(&r);
    let max = r.iter().map(|v| -v).fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = r.iter().map(|v| (-v - max).exp()).collect();
    let total: f64 = w.iter().sum();
    let (mut mean, mut mean_se) = (Vec::new(), Vec::new());
    for j in 0..d {
        let col = || xs.chunks_exact(d).map(move |x| x[j] as f64);
        let m = col().zip(&w).map(|(v, w)| w * v).sum::<f64>() / total;
        let var = col()
            .zip(&w)
            .map(|(v, w)| w * (v - m) * (v - m))
            .sum::<f64>()
            / total;
        mean.push(m);
        mean_se.push((var / (n as f64 * est.ess)).sqrt());
    }
    Ok(Outcome {
        estimates: est,
        mean,
        mean_se,
        seconds: trained.seconds,
        weights_bytes: bytes.len(),
    })
}

/// The settings of this example: the reference network, the exponential
/// integrator, K = 50, a small budget.
pub fn config(iterations: usize) -> TrainConfig {
    TrainConfig {
        iterations,
        batch: 256,
        steps: 50,
        integrator: Integrator::Exponential,
        eval_every: 0,
        eval_samples: 1024,
        checkpoint_every: 0,
        seed: 0,
        ..TrainConfig::default()
    }
}

fn report(name: &str, out: &Outcome, log_z: f64, mean: &[f64]) {
    let e = &out.estimates;
    println!(
        "{name}: trained in {:.1} s, weights file {} bytes",
        out.seconds, out.weights_bytes
    );
    println!(
        "  log Z_is {:.4} +- {:.4} (exact {log_z:.4}, error {:+.4}); ESS {:.3}; Pareto k-hat {:.2}",
        e.log_z_is,
        e.log_z_is_se,
        e.log_z_is - log_z,
        e.ess,
        e.pareto_k
    );
    for (j, (m, t)) in out.mean.iter().zip(mean).enumerate() {
        println!("  E x{j}: {m:+.4} +- {:.4} (exact {t:+.4})", out.mean_se[j]);
    }
}

fn main() -> ExitCode {
    let which = std::env::args().nth(1);
    let iterations: usize = std::env::args()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let want = |name: &str| which.as_deref().is_none_or(|w| w == name);
    let result = (|| -> Result<(), String> {
        if want("banana") {
            let t = Banana::DEFAULT;
            let out = run(&t, &config(iterations), 20_000)?;
            report("banana", &out, t.exact_log_z(), &t.exact_mean());
        }
        if want("gaussian8") {
            let t = CorrelatedGaussian;
            let out = run(&t, &config(iterations), 20_000)?;
            report("gaussian8", &out, t.exact_log_z(), &t.exact_mean());
        }
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
