//! Targets `pi = rho / Z`: the [`Target`] trait, what is known exactly
//! about a target ([`GroundTruth`]), and the built-in targets of MATH.md §8.
//!
//! A target gives `log rho(x)` and its gradient, the score `grad log rho(x)`,
//! in `f32`. Built-ins borrow their parameters (`&[f32]`, or the bytes of a
//! weights file), so they need no allocator. The trainer uses these same types.
//!
//! | file | target |
//! |---|---|
//! | [`gaussian`] | Gaussians and the prior of `X_0` |
//! | [`mixture`] | Gaussian mixtures: the `gmm` and `gmm25` presets and stored mixtures |
//! | [`funnel`] | Neal's funnel |
//! | [`multiwell`] | double wells |
//! | [`manywell`] | Many Well: asymmetric 2-d double wells (`manywell32`) |
//! | [`logistic`] | Bayesian logistic regression |
//! | [`spec`] | [`TargetSpec`]: what a weights file records, and the registry of presets |
//!
//! Each target's file holds everything about it: density, score, `log Z`,
//! and its [`GroundTruth`]. Adding a target is a new file and a line in [`spec`].

use core::fmt;

use crate::normal::PathRng;

pub mod funnel;
pub mod gaussian;
pub mod logistic;
pub mod manywell;
pub mod mixture;
pub mod multiwell;
pub mod spec;

pub use funnel::Funnel;
pub use gaussian::{DiagGaussian, IsotropicGaussian, Prior};
pub use logistic::LogisticRegression;
pub use manywell::ManyWell;
pub use mixture::{GaussianMixture, StoredMixture};
pub use multiwell::MultiWell;
pub use spec::{gmm, gmm25, Builtin, TargetSpec, MAX_TARGET_DIM};

const HALF_LOG_TAU: f32 = 0.918_938_5; // 1/2 log(2 pi)

/// The density of `N(mu, s^2)` at `x`.
fn normal_density(x: f64, mu: f64, s: f64) -> f64 {
    let z = (x - mu) / s;
    libm::exp(-0.5 * z * z) / (s * libm::sqrt(core::f64::consts::TAU))
}

/// An unnormalised density on `R^d`.
pub trait Target {
    /// Dimension `d`.
    fn dim(&self) -> usize;
    /// `log rho(x)` for `x` of length `d`. May be `-inf` outside a support.
    fn log_density(&self, x: &[f32]) -> f32;
    /// `grad log rho(x)` written into `out` (length `d`).
    fn score(&self, x: &[f32], out: &mut [f32]);
    /// `log Z`, when it is known in closed form or by quadrature.
    fn log_z(&self) -> Option<f64> {
        None
    }
    /// `log rho` of every row of `xs` (`n x d`) into `out` (`n`). Row by row
    /// unless a target evaluates faster in bulk (a matrix product, a call
    /// into Python); either way each row's value must be what
    /// [`Target::log_density`] gives, so results do not depend on grouping.
    fn log_density_batch(&self, xs: &[f32], out: &mut [f32]) {
        let d = self.dim();
        for (x, o) in xs.chunks_exact(d).zip(out.iter_mut()) {
            *o = self.log_density(x);
        }
    }
    /// The score of every row of `xs` (`n x d`) into `out` (`n x d`); as
    /// [`Target::log_density_batch`].
    fn score_batch(&self, xs: &[f32], out: &mut [f32]) {
        let d = self.dim();
        for (x, o) in xs.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            self.score(x, o);
        }
    }
}

impl<T: Target + ?Sized> Target for &T {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn log_density(&self, x: &[f32]) -> f32 {
        (**self).log_density(x)
    }
    fn score(&self, x: &[f32], out: &mut [f32]) {
        (**self).score(x, out)
    }
    fn log_z(&self) -> Option<f64> {
        (**self).log_z()
    }
    fn log_density_batch(&self, xs: &[f32], out: &mut [f32]) {
        (**self).log_density_batch(xs, out)
    }
    fn score_batch(&self, xs: &[f32], out: &mut [f32]) {
        (**self).score_batch(xs, out)
    }
}

/// What is known exactly about a target, beyond `log Z`: used by the
/// evaluation's errors, mode counts and distances, and by plots. Every
/// method has a default meaning "unknown".
pub trait GroundTruth: Target {
    /// `E|x|^2` and `E|x|_1` under `pi`.
    fn moments(&self) -> Option<(f64, f64)> {
        None
    }
    /// Number of modes [`GroundTruth::mode_of`] tells apart (0: none tracked).
    fn mode_count(&self) -> usize {
        0
    }
    /// The mode `x` belongs to, in `0..mode_count()`.
    fn mode_of(&self, _x: &[f32]) -> usize {
        0
    }
    /// Probability of mode `i` under `pi`.
    fn mode_weight(&self, _i: usize) -> f64 {
        0.0
    }
    /// A short label of mode `i` (its centre, its signs).
    fn write_mode_label(&self, _i: usize, _out: &mut dyn fmt::Write) -> fmt::Result {
        Ok(())
    }
    /// Writes an exact sample of `pi` into `x` from `rng`; `false` if the
    /// target has no exact sampler.
    fn sample_exact(&self, _rng: &mut PathRng, _x: &mut [f32]) -> bool {
        false
    }
    /// The marginal density of coordinate `j` at `x`.
    fn marginal_density(&self, _j: usize, _x: f64) -> Option<f64> {
        None
    }
    /// An interval holding the bulk of coordinate `j`'s marginal (plot axes).
    fn marginal_range(&self, _j: usize) -> Option<(f64, f64)> {
        None
    }
}

/// `rho = exp(log_scale) * inner`: the same distribution with `log Z` shifted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scaled<T> {
    pub inner: T,
    pub log_scale: f32,
}

impl<T: Target> Target for Scaled<T> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn log_density(&self, x: &[f32]) -> f32 {
        self.inner.log_density(x) + self.log_scale
    }
    fn score(&self, x: &[f32], out: &mut [f32]) {
        self.inner.score(x, out)
    }
    fn log_z(&self) -> Option<f64> {
        self.inner.log_z().map(|z| z + self.log_scale as f64)
    }
}

/// For the targets' tests: `n` exact draws of `t` (into `x`, from stream
/// `(seed, 0)`) match `E|x|^2` and `E|x|_1` of [`GroundTruth::moments`]
/// within 4.5 standard errors; `visit` sees every draw (for per-target
/// counts such as mode shares).
#[cfg(test)]
pub(crate) fn assert_exact_moments(
    t: &dyn GroundTruth,
    x: &mut [f32],
    n: usize,
    seed: u64,
    mut visit: impl FnMut(&[f32]),
) {
    let mut rng = crate::normal::stream(seed, 0);
    let (mut sq, mut sq2, mut ab, mut ab2) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for _ in 0..n {
        assert!(t.sample_exact(&mut rng, x));
        let s: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
        let a: f64 = x.iter().map(|&v| (v as f64).abs()).sum();
        (sq, sq2, ab, ab2) = (sq + s, sq2 + s * s, ab + a, ab2 + a * a);
        visit(x);
    }
    let nf = n as f64;
    let (m2, m1) = t.moments().expect("the target's moments are known");
    for (name, sum, sum2, truth) in [("E|x|^2", sq, sq2, m2), ("E|x|_1", ab, ab2, m1)] {
        let mean = sum / nf;
        let se = libm::sqrt((sum2 / nf - mean * mean) / nf);
        assert!(
            (mean - truth).abs() < 4.5 * se,
            "{name}: {mean} vs {truth} (SE {se})"
        );
    }
}

/// For the targets' tests: `log rho` at `x` (at most 64 coordinates) within
/// `rel` of the f64 reference `f64_log_density`, and the score within
/// `rel_grad` of the reference's central finite differences (step 1e-5).
#[cfg(test)]
pub(crate) fn assert_density_and_score(
    t: &dyn Target,
    x: &[f32],
    f64_log_density: &dyn Fn(&[f64]) -> f64,
    rel: f64,
    rel_grad: f64,
) {
    let d = x.len();
    let mut xd = [0.0f64; 64];
    for (a, &b) in xd.iter_mut().zip(x) {
        *a = b as f64;
    }
    let want = f64_log_density(&xd[..d]);
    let got = t.log_density(x) as f64;
    assert!(
        (got - want).abs() < rel * (1.0 + want.abs()),
        "{x:?}: {got} vs {want}"
    );
    let mut g = [0.0f32; 64];
    t.score(x, &mut g[..d]);
    let h = 1e-5;
    for j in 0..d {
        let (mut up, mut down) = (xd, xd);
        up[j] += h;
        down[j] -= h;
        let fd = (f64_log_density(&up[..d]) - f64_log_density(&down[..d])) / (2.0 * h);
        assert!(
            (fd - g[j] as f64).abs() < rel_grad * (1.0 + fd.abs()),
            "{x:?} coordinate {j}: fd {fd} vs {}",
            g[j]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central differences (in f32, step 1e-3) of `log_density` against `score`.
    fn check_score(t: &dyn Target, x: &[f32]) {
        let d = t.dim();
        let mut g = [0.0f32; 64];
        t.score(x, &mut g[..d]);
        let mut xp = [0.0f32; 64];
        xp[..d].copy_from_slice(x);
        for j in 0..d {
            let h = 1e-2f32;
            xp[j] = x[j] + h;
            let up = t.log_density(&xp[..d]) as f64;
            xp[j] = x[j] - h;
            let down = t.log_density(&xp[..d]) as f64;
            xp[j] = x[j];
            let fd = (up - down) / (2.0 * h as f64);
            let tol = 2e-3 * (1.0 + g[j].abs() as f64) + 1e-4 * (up.abs() + down.abs());
            assert!(
                (fd - g[j] as f64).abs() < tol,
                "coord {j}: fd {fd} vs {}",
                g[j]
            );
        }
    }

    #[test]
    fn scores_match_finite_differences() {
        for name in TargetSpec::PRESETS {
            let t = TargetSpec::preset(name).unwrap().build_builtin();
            let x: [f32; 64] = core::array::from_fn(|i| 0.7 * libm::sinf(1.3 * i as f32 + 0.4));
            check_score(&t, &x[..t.dim()]);
        }
        let m = [0.3, -1.0];
        let s = [0.5, 2.0];
        check_score(&DiagGaussian::new(&m, &s), &[0.1, 0.2]);
    }

    /// Batched evaluation gives each row the bits of the per-point one: for
    /// every preset (the mixtures cache their logarithms per batch), and for
    /// a mixture too large for that cache (60 components in 4 dimensions).
    #[test]
    fn batches_give_the_per_point_bits() {
        fn check(name: &str, t: &dyn Target) {
            const N: usize = 7;
            let d = t.dim();
            let xs: [f32; N * 64] =
                core::array::from_fn(|i| 3.0 * libm::sinf(0.7 * i as f32 + 0.2));
            let xs = &xs[..N * d];
            let (mut lp, mut sc, mut g) = ([0.0f32; N], [0.0f32; N * 64], [0.0f32; 64]);
            t.log_density_batch(xs, &mut lp);
            t.score_batch(xs, &mut sc[..N * d]);
            for (i, x) in xs.chunks_exact(d).enumerate() {
                assert_eq!(
                    lp[i].to_bits(),
                    t.log_density(x).to_bits(),
                    "{name} row {i}"
                );
                t.score(x, &mut g[..d]);
                for j in 0..d {
                    assert_eq!(sc[i * d + j].to_bits(), g[j].to_bits(), "{name} row {i}");
                }
            }
        }
        for name in TargetSpec::PRESETS {
            check(name, &TargetSpec::preset(name).unwrap().build_builtin());
        }
        let w: [f32; 60] = core::array::from_fn(|i| 1.0 + (i % 3) as f32);
        let m: [f32; 240] = core::array::from_fn(|i| libm::sinf(i as f32));
        let s: [f32; 240] = core::array::from_fn(|i| 0.5 + 0.01 * i as f32);
        check("60 components", &GaussianMixture::new(&w, &m, &s));
    }

    /// MATH.md §8's log Z column, from the quadrature of `z1`.
    #[test]
    fn multiwell_log_z_matches_table() {
        for (name, want) in [("mw5", -0.541056), ("dw20", 14.019677), ("mw50", 42.817243)] {
            let got = TargetSpec::preset(name)
                .unwrap()
                .build_builtin()
                .log_z()
                .unwrap();
            assert!((got - want).abs() < 1e-5, "{name}: {got} vs {want}");
        }
    }

    /// `log Z = 0` of `gmm` and `gmm25`: the midpoint rule on a grid
    /// holding every mode (14 stds past the outermost means).
    #[test]
    fn mixture_density_integrates_to_one_on_a_grid() {
        for (spec, half) in [(TargetSpec::Gmm, 12.0f64), (TargetSpec::Gmm25, 17.0)] {
            let t = spec.build_builtin();
            let n = (50.0 * half) as usize;
            let h = 2.0 * half / n as f64;
            let mut acc = 0.0f64;
            for i in 0..n {
                for j in 0..n {
                    let x = [
                        (-half + (i as f64 + 0.5) * h) as f32,
                        (-half + (j as f64 + 0.5) * h) as f32,
                    ];
                    acc += libm::exp(t.log_density(&x) as f64);
                }
            }
            assert!((acc * h * h - 1.0).abs() < 1e-4, "{spec}: {}", acc * h * h);
            assert_eq!(t.log_z(), Some(0.0));
        }
    }

    /// `gmm25`'s density in f64: `1/25 sum_i N(x; m_i, 0.3 I)`.
    fn gmm25_log_density_f64(x: [f64; 2]) -> f64 {
        let grid = [-10.0, -5.0, 0.0, 5.0, 10.0];
        let mut acc = 0.0;
        for a in grid {
            for b in grid {
                let q = ((x[0] - a) * (x[0] - a) + (x[1] - b) * (x[1] - b)) / 0.3;
                acc += libm::exp(-0.5 * q) / (core::f64::consts::TAU * 0.3) / 25.0;
            }
        }
        libm::log(acc)
    }

    /// `gmm25`'s density and score against the f64 formula and its central
    /// differences, at points between and on modes.
    #[test]
    fn gmm25_density_and_score_match_f64() {
        let t = TargetSpec::Gmm25.build_builtin();
        let reference = |x: &[f64]| gmm25_log_density_f64([x[0], x[1]]);
        for x in [
            [0.3f32, -0.2],
            [-9.6, 4.1],
            [7.4, -2.6],
            [2.5, 2.5],
            [11.0, -11.5],
        ] {
            assert_density_and_score(&t, &x, &reference, 1e-5, 1e-4);
        }
    }

    /// `gmm25`: `E|x|^2 = 2 (50 + 0.3)` in closed form, `E|x|_1` as in
    /// MATH.md §8; 200,000 exact draws match both within 4.5 standard
    /// errors, and fill every mode to its share 1/25 within 4.5 SE.
    #[test]
    fn gmm25_exact_sampler_matches_moments_and_modes() {
        let t = TargetSpec::Gmm25.build_builtin();
        let (m2, m1) = t.moments().unwrap();
        assert!((m2 - 100.6).abs() < 1e-5, "{m2}");
        assert!((m1 - 12.174808).abs() < 1e-6, "{m1}");
        assert_eq!(t.mode_count(), 25);
        let n = 200_000;
        let mut counts = [0usize; 25];
        assert_exact_moments(&t, &mut [0.0f32; 2], n, 25, |x| counts[t.mode_of(x)] += 1);
        let nf = n as f64;
        let se = libm::sqrt(0.04 * 0.96 / nf);
        for (i, &c) in counts.iter().enumerate() {
            assert!((t.mode_weight(i) - 0.04).abs() < 1e-7);
            let share = c as f64 / nf;
            assert!((share - 0.04).abs() < 4.5 * se, "mode {i}: {share}");
        }
    }
}
