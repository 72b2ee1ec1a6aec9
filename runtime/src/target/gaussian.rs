//! Gaussians: the diagonal and isotropic densities and the prior of `X_0`.

use super::{Target, HALF_LOG_TAU};

/// Normalised Gaussian `N(mean, diag(std^2))` (so `log Z = 0`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiagGaussian<'a> {
    pub mean: &'a [f32],
    pub std: &'a [f32],
}

impl<'a> DiagGaussian<'a> {
    /// `mean` and `std` must have equal length; `std` must be positive.
    pub fn new(mean: &'a [f32], std: &'a [f32]) -> Self {
        assert_eq!(mean.len(), std.len(), "mean and std lengths differ");
        Self { mean, std }
    }
}

impl Target for DiagGaussian<'_> {
    fn dim(&self) -> usize {
        self.mean.len()
    }
    fn log_density(&self, x: &[f32]) -> f32 {
        diag_log_density(x, self.mean, self.std, |_, s| libm::logf(s))
    }
    fn score(&self, x: &[f32], out: &mut [f32]) {
        for (((o, &xi), &m), &s) in out.iter_mut().zip(x).zip(self.mean).zip(self.std) {
            *o = -(xi - m) / (s * s);
        }
    }
    fn log_z(&self) -> Option<f64> {
        Some(0.0)
    }
}

/// `log N(x; mean, diag(std^2))` with `log_std(j, std_j)` giving the
/// logarithms (a mixture evaluating many points computes them once).
#[inline]
pub(crate) fn diag_log_density(
    x: &[f32],
    mean: &[f32],
    std: &[f32],
    log_std: impl Fn(usize, f32) -> f32,
) -> f32 {
    let mut acc = 0.0f32;
    for (j, ((&xi, &m), &s)) in x.iter().zip(mean).zip(std).enumerate() {
        let z = (xi - m) / s;
        acc += -0.5 * z * z - log_std(j, s) - HALF_LOG_TAU;
    }
    acc
}

/// `N(0, nu^2 I)` in dimension `d`: the default prior (`nu = 1`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IsotropicGaussian {
    pub d: usize,
    pub nu: f32,
}

impl Target for IsotropicGaussian {
    fn dim(&self) -> usize {
        self.d
    }
    fn log_density(&self, x: &[f32]) -> f32 {
        let sq: f32 = x.iter().map(|v| v * v).sum();
        -0.5 * sq / (self.nu * self.nu) - self.d as f32 * (libm::logf(self.nu) + HALF_LOG_TAU)
    }
    fn score(&self, x: &[f32], out: &mut [f32]) {
        let inv = 1.0 / (self.nu * self.nu);
        for (o, &xi) in out.iter_mut().zip(x) {
            *o = -xi * inv;
        }
    }
    fn log_z(&self) -> Option<f64> {
        Some(0.0)
    }
}

/// The distribution of `X_0`: `N(0, nu^2 I)` (default `nu = 1`) or any diagonal Gaussian.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Prior<'a> {
    Isotropic(IsotropicGaussian),
    Diag(DiagGaussian<'a>),
}

impl<'a> Prior<'a> {
    /// `N(0, I)` in dimension `d`.
    pub fn standard(d: usize) -> Self {
        Prior::Isotropic(IsotropicGaussian { d, nu: 1.0 })
    }

    /// Mean and standard deviation of coordinate `j`.
    pub fn moments(&self, j: usize) -> (f32, f32) {
        match self {
            Prior::Isotropic(g) => (0.0, g.nu),
            Prior::Diag(g) => (g.mean[j], g.std[j]),
        }
    }

    /// `mean + std * xi` for standard normals `xi` given in `x`, in place.
    pub fn transform_normals(&self, x: &mut [f32]) {
        for (j, xj) in x.iter_mut().enumerate() {
            let (m, s) = self.moments(j);
            *xj = m + s * *xj;
        }
    }

    /// `log p(x)` in `f64` (enters the path cost, where cancellation matters).
    pub fn log_density_f64(&self, x: &[f32]) -> f64 {
        let half_log_tau = 0.5 * libm::log(core::f64::consts::TAU);
        let mut acc = 0.0f64;
        for (j, &xj) in x.iter().enumerate() {
            let (m, s) = self.moments(j);
            let z = (xj as f64 - m as f64) / s as f64;
            acc += -0.5 * z * z - libm::log(s as f64) - half_log_tau;
        }
        acc
    }
}

impl Target for Prior<'_> {
    fn dim(&self) -> usize {
        match self {
            Prior::Isotropic(g) => g.dim(),
            Prior::Diag(g) => g.dim(),
        }
    }
    fn log_density(&self, x: &[f32]) -> f32 {
        self.log_density_f64(x) as f32
    }
    fn score(&self, x: &[f32], out: &mut [f32]) {
        match self {
            Prior::Isotropic(g) => g.score(x, out),
            Prior::Diag(g) => g.score(x, out),
        }
    }
    fn log_z(&self) -> Option<f64> {
        Some(0.0)
    }
}
