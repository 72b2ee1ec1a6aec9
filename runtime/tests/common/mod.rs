//! Helpers shared by the runtime's integration tests.
#![allow(dead_code)]

use diffctl_runtime::integrate::{PathCost, PathState, Sampler};
use diffctl_runtime::network::{NetworkShape, Param};
use diffctl_runtime::normal::{fill_normals, stream};
use diffctl_runtime::prelude::*;

/// Draws paths `0..n` under `seed` in batches of 256; returns samples (n x d) and costs.
pub fn run<C: Control, T: Target>(
    sampler: &Sampler<'_, C, T>,
    seed: u64,
    n: usize,
) -> (Vec<f32>, Vec<PathCost>) {
    let d = sampler.control.dim();
    let mut xs = vec![0.0f32; n * d];
    let mut costs = Vec::with_capacity(n);
    let block = 256;
    let mut work = vec![0.0f32; sampler.work_len(block)];
    let mut paths = vec![PathState::default(); block];
    for (b, chunk) in xs.chunks_mut(block * d).enumerate() {
        let m = chunk.len() / d;
        sampler
            .sample(seed, (b * block) as u64, chunk, &mut paths[..m], &mut work)
            .expect("sampling succeeds");
        costs.extend(paths[..m].iter().map(|p| p.cost));
    }
    (xs, costs)
}

/// `X_0` of path `index`: the first normals of its stream through the prior.
pub fn initial_state(prior: &Prior<'_>, seed: u64, index: u64, d: usize) -> Vec<f32> {
    let mut x = vec![0.0f32; d];
    fill_normals(&mut stream(seed, index), &mut x);
    prior.transform_normals(&mut x);
    x
}

pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// `log mean exp(-r)`, computed stably.
pub fn log_mean_exp_neg(r: &[f64]) -> f64 {
    let max = r.iter().map(|x| -x).fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = r.iter().map(|x| (-x - max).exp()).sum();
    max + (s / r.len() as f64).ln()
}

/// Deterministic pseudo-random parameters for `shape` (uniform in +-scale),
/// with the score network's output bias at 1 as after initialisation.
pub fn random_params(shape: NetworkShape, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = stream(seed, u64::MAX);
    let mut out = Vec::new();
    for spec in shape.params() {
        for _ in 0..spec.len() {
            let mut z = [0.0f32; 1];
            fill_normals(&mut rng, &mut z);
            out.push(if spec.param == Param::ScoreB2 {
                1.0
            } else {
                scale * z[0]
            });
        }
    }
    out
}

/// `log mean exp(-r)` and its standard error by the delta method:
/// `se = sd(w) / (mean(w) sqrt(n))` with `w = exp(-r)` (scaled stably).
pub fn log_mean_exp_neg_se(r: &[f64]) -> (f64, f64) {
    let max = r.iter().map(|x| -x).fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = r.iter().map(|x| (-x - max).exp()).collect();
    let (m, s) = mean_std(&w);
    (max + m.ln(), s / (m * (w.len() as f64).sqrt()))
}

/// Sample standard deviation and its standard error from the sample's own
/// fourth moment: `Var(s^2) ~ (m4 - s^4) / n`, `se(s) ~ sqrt(Var(s^2)) / (2 s)`.
pub fn std_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let (mean, s) = mean_std(v);
    let m4 = v.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n;
    let var_s2 = (m4 - s.powi(4)).max(0.0) / n;
    (s, var_s2.sqrt() / (2.0 * s))
}

/// The device-check fixtures in `examples/fixtures/` (must match
/// `.ci/device-check.sh` and `examples/fixtures/golden.sh`).
pub const FIXTURES: [&str; 6] = [
    "gmm_f32",
    "gmm_f16",
    "dw20_f32",
    "dw20_f16",
    "pis_gmm_f32",
    "dds_gmm_f32",
];

/// The bytes of fixture `name` (`examples/fixtures/NAME.dcw`).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/fixtures")
        .join(format!("{name}.dcw"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Draws samples `0..n` of every seed in lockstep batches of `batch` and
/// hands each to `each(seed, index, x, path)`.
pub fn for_each_sample<C: Control, T: Target>(
    sampler: &Sampler<'_, C, T>,
    seeds: &[u64],
    n: usize,
    batch: usize,
    mut each: impl FnMut(u64, u64, &[f32], &PathState),
) {
    let d = sampler.control.dim();
    let mut work = vec![0.0f32; sampler.work_len(batch)];
    for &seed in seeds {
        let mut first = 0;
        while first < n {
            let m = batch.min(n - first);
            let mut xs = vec![0.0f32; m * d];
            let mut paths = vec![PathState::default(); m];
            sampler
                .sample(seed, first as u64, &mut xs, &mut paths, &mut work)
                .expect("sampling succeeds");
            for (i, (x, p)) in xs.chunks_exact(d).zip(&paths).enumerate() {
                each(seed, (first + i) as u64, x, p);
            }
            first += m;
        }
    }
}

/// The bits of every coordinate and of both path costs of samples `0..n`
/// of every seed, drawn in batches of `batch`.
pub fn sample_bits<C: Control, T: Target>(
    sampler: &Sampler<'_, C, T>,
    seeds: &[u64],
    n: usize,
    batch: usize,
) -> Vec<u64> {
    let mut out = Vec::new();
    for_each_sample(sampler, seeds, n, batch, |_, _, x, p| {
        out.extend(x.iter().map(|v| v.to_bits() as u64));
        out.extend([p.cost.r.to_bits(), p.cost.r_disc.to_bits()]);
    });
    out
}
