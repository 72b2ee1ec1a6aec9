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
//! | [`mixture`] | Gaussian mixtures: the `gmm` preset and stored mixtures |
//! | [`funnel`] | Neal's funnel |
//! | [`multiwell`] | double wells |
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
pub mod mixture;
pub mod multiwell;
pub mod spec;

pub use funnel::Funnel;
pub use gaussian::{DiagGaussian, IsotropicGaussian, Prior};
pub use logistic::LogisticRegression;
pub use mixture::{GaussianMixture, StoredMixture};
pub use multiwell::MultiWell;
pub use spec::{gmm, Builtin, TargetSpec, MAX_TARGET_DIM};

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

    #[test]
    fn mixture_density_integrates_to_one_on_a_grid() {
        let t = TargetSpec::Gmm.build_builtin();
        let (n, half) = (600, 12.0f64);
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
        assert!((acc * h * h - 1.0).abs() < 1e-4, "{}", acc * h * h);
    }
}
