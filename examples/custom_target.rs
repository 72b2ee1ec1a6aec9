//! Your own target with a trained sampler: implement
//! `diffctl_runtime::Target` for a struct, sample a weights file with it, and
//! estimate its `log Z` from the importance weights `exp(-R_disc)`.
//!
//! ```text
//! cargo run --release -- demo                                   # writes out/demo/gmm.dcw
//! cargo run --release --example custom_target -- out/demo/gmm.dcw
//! ```
//!
//! `E[exp(-R_disc)] = Z` holds for any control (MATH.md §4), so a network
//! trained on one target is an unbiased (if not efficient) importance
//! sampler for another of the same dimension; the closer the two, the higher
//! the ESS. Only the runtime is used here: this is what runs on a device.

use std::process::ExitCode;

use diffctl_runtime::prelude::*;

/// `rho(x) = 3 * (N(x; (-5, 0), 0.3 I) + N(x; (5, 0), 0.3 I)) / 2` in 2-d:
/// two of the `gmm` modes, scaled so that `log Z = log 3`.
#[derive(Clone, Copy, Debug)]
struct TwoModes;

const CENTRES: [[f32; 2]; 2] = [[-5.0, 0.0], [5.0, 0.0]];
const VAR: f32 = 0.3;

impl TwoModes {
    /// `log N(x; c, VAR I)` of each mode.
    fn log_modes(x: &[f32]) -> [f32; 2] {
        CENTRES.map(|c| {
            let sq = (x[0] - c[0]).powi(2) + (x[1] - c[1]).powi(2);
            -0.5 * sq / VAR - (2.0 * std::f32::consts::PI * VAR).ln()
        })
    }
}

impl Target for TwoModes {
    fn dim(&self) -> usize {
        2
    }

    fn log_density(&self, x: &[f32]) -> f32 {
        let [a, b] = Self::log_modes(x);
        let m = a.max(b);
        3.0f32.ln() + m + (0.5 * ((a - m).exp() + (b - m).exp())).ln()
    }

    fn score(&self, x: &[f32], out: &mut [f32]) {
        // Responsibility-weighted Gaussian scores.
        let [a, b] = Self::log_modes(x);
        let r0 = 1.0 / (1.0 + (b - a).exp());
        for (j, o) in out.iter_mut().enumerate() {
            let s0 = -(x[j] - CENTRES[0][j]) / VAR;
            let s1 = -(x[j] - CENTRES[1][j]) / VAR;
            *o = r0 * s0 + (1.0 - r0) * s1;
        }
    }

    fn log_z(&self) -> Option<f64> {
        Some(3f64.ln())
    }
}

fn run() -> Result<(), String> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "out/demo/gmm.dcw".into());
    let bytes = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    let model = Model::parse(&bytes).map_err(|e| format!("{path}: {e}"))?;
    let header = model.header;
    if header.shape.d != 2 {
        return Err(format!(
            "{path}: a 2-d model is needed, this one has d = {}",
            header.shape.d
        ));
    }
    let mut params = vec![0.0f32; header.param_count()];
    model.params_into(&mut params).map_err(|e| e.to_string())?;
    let net = NetworkRef::from_flat(header.shape, &params).map_err(|e| e.to_string())?;

    // The file's SDE, grid, steps and integrator, with our target: it enters
    // the network's score term and the path costs.
    let sampler = header.sampler_for(net, Some(TwoModes), None, None)?;
    let n = 10_000;
    let mut xs = vec![0.0f32; n * 2];
    let mut paths = vec![PathState::default(); n];
    let mut work = vec![0.0f32; sampler.work_len(n)];
    sampler
        .sample(1, 0, &mut xs, &mut paths, &mut work)
        .map_err(|e| e.to_string())?;

    // log Z_is = log mean exp(-R_disc) (log-sum-exp), ESS = (sum w)^2 / (n sum w^2).
    let log_w: Vec<f64> = paths.iter().map(|p| -p.cost.r_disc).collect();
    let max = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (s1, s2) = log_w.iter().fold((0.0, 0.0), |(s1, s2), &l| {
        let w = (l - max).exp();
        (s1 + w, s2 + w * w)
    });
    let log_z = max + (s1 / n as f64).ln();
    let ess = s1 * s1 / (n as f64 * s2);
    let truth = TwoModes.log_z().unwrap_or(f64::NAN);
    println!("target     TwoModes (log Z = log 3 = {truth:.4})");
    println!(
        "log Z_is   {log_z:.4} (error {:+.4}) from {n} paths of {path}",
        log_z - truth
    );
    println!("ESS        {ess:.4}");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
