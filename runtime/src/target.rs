//! Targets `pi = rho / Z`: the [`Target`] trait and the built-in benchmark
//! targets of MATH.md §8.
//!
//! A target gives `log rho(x)` and its gradient, the score `grad log rho(x)`,
//! in `f32`. Built-ins borrow their parameters (`&[f32]`), so they need no
//! allocator; the presets use static tables. The trainer uses these same types.

use serde::{Deserialize, Serialize};

const HALF_LOG_TAU: f32 = 0.918_938_5; // 1/2 log(2 pi)

/// An unnormalised density on `R^d`.
pub trait Target {
    /// Dimension `d`.
    fn dim(&self) -> usize;
    /// `log rho(x)` for `x` of length `d`.
    fn log_density(&self, x: &[f32]) -> f32;
    /// `grad log rho(x)` written into `out` (length `d`).
    fn score(&self, x: &[f32], out: &mut [f32]);
    /// `log Z`, when it is known in closed form or by quadrature.
    fn log_z(&self) -> Option<f64> {
        None
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
}

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
        let mut acc = 0.0f32;
        for ((&xi, &m), &s) in x.iter().zip(self.mean).zip(self.std) {
            let z = (xi - m) / s;
            acc += -0.5 * z * z - libm::logf(s) - HALF_LOG_TAU;
        }
        acc
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

/// Mixture of diagonal Gaussians with weights `w_i` (normalised internally),
/// means `[n, d]` and stds `[n, d]`, row-major.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GaussianMixture<'a> {
    pub weights: &'a [f32],
    pub means: &'a [f32],
    pub stds: &'a [f32],
}

impl<'a> GaussianMixture<'a> {
    pub fn new(weights: &'a [f32], means: &'a [f32], stds: &'a [f32]) -> Self {
        assert!(!weights.is_empty(), "a mixture needs a component");
        assert_eq!(means.len() % weights.len(), 0, "means must be [n, d]");
        assert_eq!(
            means.len(),
            stds.len(),
            "means and stds must both be [n, d]"
        );
        Self {
            weights,
            means,
            stds,
        }
    }

    /// Number of components.
    pub fn components(&self) -> usize {
        self.weights.len()
    }

    /// `log w_i + log N(x; m_i, s_i^2)` of component `i`, with normalised weights.
    fn component_log_density(&self, i: usize, x: &[f32], log_total_weight: f32) -> f32 {
        let d = self.dim();
        let gauss = DiagGaussian {
            mean: &self.means[i * d..(i + 1) * d],
            std: &self.stds[i * d..(i + 1) * d],
        };
        libm::logf(self.weights[i]) - log_total_weight + gauss.log_density(x)
    }

    fn log_total_weight(&self) -> f32 {
        libm::logf(self.weights.iter().sum())
    }

    /// Index of the component with the largest responsibility at `x`.
    pub fn nearest_component(&self, x: &[f32]) -> usize {
        let lw = self.log_total_weight();
        let mut best = (0, f32::NEG_INFINITY);
        for i in 0..self.components() {
            let l = self.component_log_density(i, x, lw);
            if l > best.1 {
                best = (i, l);
            }
        }
        best.0
    }
}

impl Target for GaussianMixture<'_> {
    fn dim(&self) -> usize {
        self.means.len() / self.weights.len()
    }
    /// Log-sum-exp over components in one streaming pass (running maximum).
    fn log_density(&self, x: &[f32]) -> f32 {
        let lw = self.log_total_weight();
        let (mut max, mut sum) = (f32::NEG_INFINITY, 0.0f32);
        for i in 0..self.components() {
            let l = self.component_log_density(i, x, lw);
            if l > max {
                sum = sum * libm::expf(max - l) + 1.0;
                max = l;
            } else {
                sum += libm::expf(l - max);
            }
        }
        max + libm::logf(sum)
    }
    /// `sum_i r_i(x) (-(x - m_i) / s_i^2)` with responsibilities `r_i`,
    /// accumulated in one pass with the same running-maximum rescaling.
    fn score(&self, x: &[f32], out: &mut [f32]) {
        let d = self.dim();
        let lw = self.log_total_weight();
        let (mut max, mut sum) = (f32::NEG_INFINITY, 0.0f32);
        out.fill(0.0);
        for i in 0..self.components() {
            let l = self.component_log_density(i, x, lw);
            let weight = if l > max {
                let rescale = libm::expf(max - l);
                sum *= rescale;
                out.iter_mut().for_each(|o| *o *= rescale);
                max = l;
                1.0
            } else {
                libm::expf(l - max)
            };
            sum += weight;
            let (m, s) = (
                &self.means[i * d..(i + 1) * d],
                &self.stds[i * d..(i + 1) * d],
            );
            for j in 0..d {
                out[j] += weight * (-(x[j] - m[j]) / (s[j] * s[j]));
            }
        }
        out.iter_mut().for_each(|o| *o /= sum);
    }
    fn log_z(&self) -> Option<f64> {
        Some(0.0)
    }
}

/// Neal's funnel in dimension `d`: `x_1 ~ N(0, sigma^2)`, `x_i ~ N(0, exp(x_1))`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Funnel {
    pub d: usize,
    pub sigma: f32,
}

impl Target for Funnel {
    fn dim(&self) -> usize {
        self.d
    }
    fn log_density(&self, x: &[f32]) -> f32 {
        let x1 = x[0];
        let z = x1 / self.sigma;
        let mut acc = -0.5 * z * z - libm::logf(self.sigma) - HALF_LOG_TAU;
        let inv_var = libm::expf(-x1);
        for &xi in &x[1..] {
            acc += -0.5 * xi * xi * inv_var - 0.5 * x1 - HALF_LOG_TAU;
        }
        acc
    }
    fn score(&self, x: &[f32], out: &mut [f32]) {
        let x1 = x[0];
        let inv_var = libm::expf(-x1);
        let mut d1 = -x1 / (self.sigma * self.sigma);
        for (o, &xi) in out[1..].iter_mut().zip(&x[1..]) {
            *o = -xi * inv_var;
            d1 += 0.5 * xi * xi * inv_var - 0.5;
        }
        out[0] = d1;
    }
    fn log_z(&self) -> Option<f64> {
        Some(0.0)
    }
}

/// Double wells: `log rho(x) = -sum_{i<w} (x_i^2 - delta)^2 - 1/2 sum_{i>=w} x_i^2`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MultiWell {
    pub d: usize,
    pub w: usize,
    pub delta: f32,
}

impl MultiWell {
    /// `z1(delta) = integral exp(-(x^2 - delta)^2) dx` by the trapezoidal rule
    /// on `[-L, L]` (exponentially accurate for this smooth, fast-decaying integrand).
    pub fn z1(delta: f64) -> f64 {
        let half_width = libm::sqrt(delta.max(0.0) + 6.0);
        let n = 20_000;
        let h = 2.0 * half_width / n as f64;
        let mut acc = 0.0;
        for i in 0..=n {
            let x = -half_width + i as f64 * h;
            let e = x * x - delta;
            acc += libm::exp(-e * e) * if i == 0 || i == n { 0.5 } else { 1.0 };
        }
        acc * h
    }
}

impl Target for MultiWell {
    fn dim(&self) -> usize {
        self.d
    }
    fn log_density(&self, x: &[f32]) -> f32 {
        let (wells, rest) = x.split_at(self.w);
        let mut acc = 0.0f32;
        for &xi in wells {
            let e = xi * xi - self.delta;
            acc -= e * e;
        }
        for &xi in rest {
            acc -= 0.5 * xi * xi;
        }
        acc
    }
    fn score(&self, x: &[f32], out: &mut [f32]) {
        for (i, (o, &xi)) in out.iter_mut().zip(x).enumerate() {
            *o = if i < self.w {
                -4.0 * xi * (xi * xi - self.delta)
            } else {
                -xi
            };
        }
    }
    fn log_z(&self) -> Option<f64> {
        let gauss = (self.d - self.w) as f64 * 0.5 * libm::log(core::f64::consts::TAU);
        Some(self.w as f64 * libm::log(Self::z1(self.delta as f64)) + gauss)
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

/// `gmm`: 9 equal modes at `{-5, 0, 5}^2` with std `sqrt(0.3)`.
pub mod gmm {
    /// Component weights.
    pub const WEIGHTS: [f32; 9] = [1.0; 9];
    /// Means `[9, 2]`, row-major.
    pub const MEANS: [f32; 18] = [
        -5.0, -5.0, -5.0, 0.0, -5.0, 5.0, 0.0, -5.0, 0.0, 0.0, 0.0, 5.0, 5.0, -5.0, 5.0, 0.0, 5.0,
        5.0,
    ];
    /// Stds `[9, 2]`: all `sqrt(0.3)`.
    pub const STDS: [f32; 18] = [0.547_722_6; 18];
}

/// A built-in target by name and parameters: what a weights file records.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetSpec {
    /// The `gmm` preset (2-d, 9 modes).
    Gmm,
    /// [`Funnel`]; preset `funnel` is `d = 10`, `sigma = 3`.
    Funnel { d: u32, sigma: f32 },
    /// [`MultiWell`]; presets `mw5`, `dw20`, `mw50`.
    MultiWell { d: u32, w: u32, delta: f32 },
}

/// Largest dimension a [`TargetSpec`] may declare.
pub const MAX_TARGET_DIM: u32 = 1 << 16;

impl TargetSpec {
    /// Names accepted by [`TargetSpec::preset`].
    pub const PRESETS: [&'static str; 5] = ["gmm", "funnel", "mw5", "dw20", "mw50"];

    /// The built-in presets of MATH.md §8.
    pub fn preset(name: &str) -> Option<Self> {
        Some(match name {
            "gmm" => TargetSpec::Gmm,
            "funnel" => TargetSpec::Funnel { d: 10, sigma: 3.0 },
            "mw5" => TargetSpec::MultiWell {
                d: 5,
                w: 5,
                delta: 4.0,
            },
            "dw20" => TargetSpec::MultiWell {
                d: 20,
                w: 5,
                delta: 3.0,
            },
            "mw50" => TargetSpec::MultiWell {
                d: 50,
                w: 5,
                delta: 2.0,
            },
            _ => return None,
        })
    }

    /// Checks dimensions and parameters (finite, in range).
    pub fn validate(&self) -> Result<(), &'static str> {
        match *self {
            TargetSpec::Gmm => Ok(()),
            TargetSpec::Funnel { d, sigma } => {
                if !(2..=MAX_TARGET_DIM).contains(&d) {
                    Err("funnel dimension must be in 2..=65536")
                } else if !(sigma.is_finite() && sigma > 0.0) {
                    Err("funnel sigma must be finite and positive")
                } else {
                    Ok(())
                }
            }
            TargetSpec::MultiWell { d, w, delta } => {
                if d == 0 || d > MAX_TARGET_DIM || w > d {
                    Err("multiwell needs 1 <= d <= 65536 and w <= d")
                } else if !delta.is_finite() {
                    Err("multiwell delta must be finite")
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Dimension of the target.
    pub fn dim(&self) -> usize {
        match *self {
            TargetSpec::Gmm => 2,
            TargetSpec::Funnel { d, .. } | TargetSpec::MultiWell { d, .. } => d as usize,
        }
    }

    /// The target itself. Call [`TargetSpec::validate`] first on untrusted specs.
    pub fn build(&self) -> Builtin {
        match *self {
            TargetSpec::Gmm => {
                Builtin::Mixture(GaussianMixture::new(&gmm::WEIGHTS, &gmm::MEANS, &gmm::STDS))
            }
            TargetSpec::Funnel { d, sigma } => Builtin::Funnel(Funnel {
                d: d as usize,
                sigma,
            }),
            TargetSpec::MultiWell { d, w, delta } => Builtin::MultiWell(MultiWell {
                d: d as usize,
                w: w as usize,
                delta,
            }),
        }
    }
}

/// A built-in target, as built from a [`TargetSpec`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Builtin {
    Mixture(GaussianMixture<'static>),
    Funnel(Funnel),
    MultiWell(MultiWell),
}

impl Builtin {
    fn inner(&self) -> &dyn Target {
        match self {
            Builtin::Mixture(t) => t,
            Builtin::Funnel(t) => t,
            Builtin::MultiWell(t) => t,
        }
    }
}

impl Target for Builtin {
    fn dim(&self) -> usize {
        self.inner().dim()
    }
    fn log_density(&self, x: &[f32]) -> f32 {
        self.inner().log_density(x)
    }
    fn score(&self, x: &[f32], out: &mut [f32]) {
        self.inner().score(x, out)
    }
    fn log_z(&self) -> Option<f64> {
        self.inner().log_z()
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
            let t = TargetSpec::preset(name).unwrap().build();
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
            let got = TargetSpec::preset(name).unwrap().build().log_z().unwrap();
            assert!((got - want).abs() < 1e-5, "{name}: {got} vs {want}");
        }
    }

    #[test]
    fn mixture_density_integrates_to_one_on_a_grid() {
        let t = TargetSpec::Gmm.build();
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

// ---- Display: the names users type (self-contained block) ----

/// The name a user types, with the parameters: `gmm`,
/// `funnel (d = 10, sigma = 3)`, `mw5 (d = 5, wells = 5, delta = 4)`. A
/// preset with changed parameters shows its family instead of a preset name
/// (`multi-well (d = 3, wells = 3, delta = 4)`).
impl core::fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let preset = TargetSpec::PRESETS
            .iter()
            .find(|n| TargetSpec::preset(n).as_ref() == Some(self));
        match *self {
            TargetSpec::Gmm => f.write_str("gmm"),
            TargetSpec::Funnel { d, sigma } => {
                let name = preset.copied().unwrap_or("funnel");
                write!(f, "{name} (d = {d}, sigma = {sigma})")
            }
            TargetSpec::MultiWell { d, w, delta } => {
                let name = preset.copied().unwrap_or("multi-well");
                write!(f, "{name} (d = {d}, wells = {w}, delta = {delta})")
            }
        }
    }
}

#[cfg(test)]
mod display_tests {
    extern crate alloc;
    use super::TargetSpec;
    use alloc::string::ToString;

    #[test]
    fn names_are_the_ones_users_type() {
        let name = |s: &str| TargetSpec::preset(s).unwrap().to_string();
        assert_eq!(name("gmm"), "gmm");
        assert_eq!(name("mw5"), "mw5 (d = 5, wells = 5, delta = 4)");
        assert_eq!(name("funnel"), "funnel (d = 10, sigma = 3)");
        let changed = TargetSpec::MultiWell {
            d: 3,
            w: 3,
            delta: 4.0,
        };
        assert_eq!(
            changed.to_string(),
            "multi-well (d = 3, wells = 3, delta = 4)"
        );
    }
}
