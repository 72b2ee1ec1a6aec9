//! Reference SDEs, noise schedules and time grids (MATH.md §2, §3, §6).
//!
//! Two clocks appear in MATH.md: reference ("noising") time `s` and generative
//! time `t = T - s`. Schedules are defined in reference time (`beta(s)`,
//! `A(s)`); the integrators only ask for generative-time quantities
//! (`beta_bar(t)`, `sigma_bar(t)` and integrals of `beta_bar`). Everything here
//! is computed in `f64` with `libm`, once per step, so it costs nothing next to
//! the network and gives the same bits on every target.

use serde::{Deserialize, Serialize};

/// Noise schedule `beta(s)` of the variance-preserving SDE, in reference time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// `beta(s) = beta_min + (beta_max - beta_min) s / T` (reference: 0.1, 10).
    Linear { beta_min: f32, beta_max: f32 },
    /// Cosine schedule: `exp(-2 A(s)) = cos^2(phi(s)) / cos^2(phi(0))` with
    /// `phi(s) = pi/2 (end * s/T + offset) / (1 + offset)`. `end < 1` keeps
    /// `beta` finite at `s = T` (`end = 1` is the usual unbounded form).
    Cosine { offset: f32, end: f32 },
}

impl Schedule {
    /// The reference linear schedule (`beta_min = 0.1`, `beta_max = 10`).
    pub const REFERENCE: Schedule = Schedule::Linear {
        beta_min: 0.1,
        beta_max: 10.0,
    };

    fn phi(offset: f64, end: f64, s_over_t: f64) -> f64 {
        core::f64::consts::FRAC_PI_2 * (end * s_over_t + offset) / (1.0 + offset)
    }
}

/// A reference process together with its generative counterpart.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sde {
    /// Variance preserving SDE `dY = -1/2 beta Y ds + sqrt(beta) dW` on `[0, T]`
    /// (MATH.md §2); generative process `dX = [1/2 beta_bar X + sigma_bar u] dt + sigma_bar dW`.
    Vp { schedule: Schedule, t_end: f32 },
    /// The Path Integral Sampler's Brownian reference (MATH.md §6):
    /// `X_0 = 0`, `dX = sigma u dt + sigma dW` on `[0, T]`.
    Pis { sigma: f32, t_end: f32 },
}

impl Default for Sde {
    fn default() -> Self {
        Sde::Vp {
            schedule: Schedule::REFERENCE,
            t_end: 1.0,
        }
    }
}

impl Sde {
    /// The PIS reference of the paper: `sigma = sqrt(0.2)`, `T = 5`.
    pub fn pis_reference() -> Self {
        Sde::Pis {
            sigma: 0.447_213_6,
            t_end: 5.0,
        }
    }

    /// Terminal time `T`.
    pub fn t_end(&self) -> f32 {
        match *self {
            Sde::Vp { t_end, .. } | Sde::Pis { t_end, .. } => t_end,
        }
    }

    /// Checks that every parameter is finite and in range.
    pub fn validate(&self) -> Result<(), &'static str> {
        let finite_pos = |v: f32| v.is_finite() && v > 0.0;
        match *self {
            Sde::Vp { schedule, t_end } => {
                if !finite_pos(t_end) {
                    return Err("T must be finite and positive");
                }
                match schedule {
                    Schedule::Linear { beta_min, beta_max } => {
                        if !finite_pos(beta_min) || !beta_max.is_finite() || beta_max < beta_min {
                            return Err("linear schedule needs 0 < beta_min <= beta_max");
                        }
                    }
                    Schedule::Cosine { offset, end } => {
                        if !(finite_pos(offset) && end > 0.0 && end < 1.0) {
                            return Err("cosine schedule needs offset > 0 and 0 < end < 1");
                        }
                    }
                }
                Ok(())
            }
            Sde::Pis { sigma, t_end } => {
                if !finite_pos(sigma) || !finite_pos(t_end) {
                    return Err("PIS needs finite sigma > 0 and T > 0");
                }
                Ok(())
            }
        }
    }

    /// `beta(s)` in reference time (for PIS: the constant `sigma^2`).
    pub fn beta(&self, s: f64) -> f64 {
        match *self {
            Sde::Vp { schedule, t_end } => {
                let t_end = t_end as f64;
                match schedule {
                    Schedule::Linear { beta_min, beta_max } => {
                        let (lo, hi) = (beta_min as f64, beta_max as f64);
                        lo + (hi - lo) * s / t_end
                    }
                    Schedule::Cosine { offset, end } => {
                        let (c, e) = (offset as f64, end as f64);
                        // beta = 2 A'(s) = 2 tan(phi) phi'
                        let dphi = core::f64::consts::FRAC_PI_2 * e / ((1.0 + c) * t_end);
                        2.0 * libm::tan(Schedule::phi(c, e, s / t_end)) * dphi
                    }
                }
            }
            Sde::Pis { sigma, .. } => (sigma as f64) * (sigma as f64),
        }
    }

    /// `A(s) = 1/2 integral_0^s beta(r) dr` in closed form (VP only; for PIS
    /// it is `sigma^2 s / 2`, which no formula here uses).
    pub fn a(&self, s: f64) -> f64 {
        match *self {
            Sde::Vp { schedule, t_end } => {
                let t_end = t_end as f64;
                match schedule {
                    Schedule::Linear { beta_min, beta_max } => {
                        let (lo, hi) = (beta_min as f64, beta_max as f64);
                        0.5 * (lo * s + 0.5 * (hi - lo) * s * s / t_end)
                    }
                    Schedule::Cosine { offset, end } => {
                        let (c, e) = (offset as f64, end as f64);
                        libm::log(libm::cos(Schedule::phi(c, e, 0.0)))
                            - libm::log(libm::cos(Schedule::phi(c, e, s / t_end)))
                    }
                }
            }
            Sde::Pis { sigma, .. } => 0.5 * (sigma as f64) * (sigma as f64) * s,
        }
    }

    /// `beta_bar(t) = beta(T - t)` in generative time.
    pub fn beta_bar(&self, t: f64) -> f64 {
        self.beta(self.t_end() as f64 - t)
    }

    /// `sigma_bar(t) = sqrt(beta_bar(t))`, the diffusion coefficient.
    pub fn sigma_bar(&self, t: f64) -> f64 {
        libm::sqrt(self.beta_bar(t))
    }

    /// `integral_{t0}^{t1} beta_bar(t) dt` in closed form.
    pub fn integral_beta_bar(&self, t0: f64, t1: f64) -> f64 {
        let t_end = self.t_end() as f64;
        // s = T - t reverses the interval: 2 (A(T - t0) - A(T - t1)).
        2.0 * (self.a(t_end - t0) - self.a(t_end - t1))
    }

    /// True for the variance preserving family (linear drift `1/2 beta_bar x`).
    pub fn is_vp(&self) -> bool {
        matches!(self, Sde::Vp { .. })
    }
}

/// How the `K + 1` points `0 = t_0 < ... < t_K = T` are spread. The non-uniform
/// grids refine toward `t = T`, the end where the samples take their final shape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeGrid {
    /// `t_k = T k / K`.
    #[default]
    Uniform,
    /// `t_k = T (1 - (1 - k/K)^2)`.
    Quadratic,
    /// `t_k = T sin(pi/2 k/K)`.
    Cosine,
}

impl TimeGrid {
    /// Grid point `t_k` of a `steps`-step grid on `[0, t_end]`; exact at both ends.
    pub fn time(&self, k: usize, steps: usize, t_end: f32) -> f64 {
        let r = k as f64 / steps as f64;
        let shape = match self {
            TimeGrid::Uniform => r,
            TimeGrid::Quadratic => 1.0 - (1.0 - r) * (1.0 - r),
            TimeGrid::Cosine => libm::sin(core::f64::consts::FRAC_PI_2 * r),
        };
        t_end as f64 * shape
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine() -> Sde {
        Sde::Vp {
            schedule: Schedule::Cosine {
                offset: 0.008,
                end: 0.95,
            },
            t_end: 1.0,
        }
    }

    /// `A` must be half the integral of `beta`: compare with Simpson's rule.
    #[test]
    fn closed_form_a_matches_quadrature() {
        for sde in [Sde::default(), cosine()] {
            for &s in &[0.1, 0.5, 1.0] {
                let n = 2000;
                let h = s / n as f64;
                let mut acc = sde.beta(0.0) + sde.beta(s);
                for i in 1..n {
                    acc += sde.beta(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
                }
                let quad = 0.5 * acc * h / 3.0;
                assert!((sde.a(s) - quad).abs() < 1e-9, "{sde:?} s={s}");
            }
        }
    }

    #[test]
    fn integral_of_beta_bar_is_additive_and_matches_a() {
        let sde = Sde::default();
        let whole = sde.integral_beta_bar(0.0, 1.0);
        assert!((whole - 2.0 * sde.a(1.0)).abs() < 1e-12);
        let split = sde.integral_beta_bar(0.0, 0.3) + sde.integral_beta_bar(0.3, 1.0);
        assert!((whole - split).abs() < 1e-12);
        // Linear reference: integral of beta over [0,1] = (0.1 + 10) / 2 (up to f32 parameters).
        assert!((whole - 5.05).abs() < 1e-6); // beta_min, beta_max are f32
    }

    /// `beta` and `A` against their defining formulas at a horizon `T != 1`
    /// (so a formula that ignores `T` fails), and `A` against Simpson's rule
    /// on that `beta`: the two agree only if both follow MATH.md §2.
    #[test]
    fn schedules_match_their_formulas_at_t_not_one() {
        let t = 2.5f64;
        let (lo, hi) = (0.1f32 as f64, 10.0f32 as f64);
        let lin = Sde::Vp {
            schedule: Schedule::REFERENCE,
            t_end: 2.5,
        };
        let (c, e) = (0.008f32 as f64, 0.95f32 as f64);
        let cos = Sde::Vp {
            schedule: Schedule::Cosine {
                offset: 0.008,
                end: 0.95,
            },
            t_end: 2.5,
        };
        let pis = Sde::Pis {
            sigma: 0.5,
            t_end: 2.5,
        };
        let phi = |s: f64| core::f64::consts::FRAC_PI_2 * (e * s / t + c) / (1.0 + c);
        for &s in &[0.0, 0.3, 1.25, 2.5] {
            // Linear: beta(s) = lo + (hi - lo) s / T, A = (lo s + (hi - lo) s^2 / (2T)) / 2.
            assert!((lin.beta(s) - (lo + (hi - lo) * s / t)).abs() < 1e-12);
            let a_lin = 0.5 * (lo * s + (hi - lo) * s * s / (2.0 * t));
            assert!((lin.a(s) - a_lin).abs() < 1e-12, "s={s}");
            // Cosine: exp(-2A(s)) = cos^2(phi(s)) / cos^2(phi(0)).
            let ratio = (phi(s).cos() / phi(0.0).cos()).powi(2);
            assert!(((-2.0 * cos.a(s)).exp() - ratio).abs() < 1e-12, "s={s}");
            // PIS: beta = sigma^2, A = sigma^2 s / 2.
            assert_eq!(pis.beta(s), 0.25);
            assert!((pis.a(s) - 0.125 * s).abs() < 1e-15);
            // Generative time: beta_bar(t) = beta(T - t).
            assert!((lin.beta_bar(t - s) - lin.beta(s)).abs() < 1e-12);
        }
        assert!((lin.beta(t) - hi).abs() < 1e-12 && (lin.beta(0.0) - lo).abs() < 1e-12);
        // A against Simpson's rule on beta, and the integral of beta_bar
        // over [t0, t1] against the same rule in generative time.
        let simpson = |f: &dyn Fn(f64) -> f64, a: f64, b: f64| {
            let n = 2000;
            let h = (b - a) / n as f64;
            let mut acc = f(a) + f(b);
            for i in 1..n {
                acc += f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
            }
            acc * h / 3.0
        };
        for sde in [lin, cos] {
            for &s in &[0.4, 1.7, 2.5] {
                let quad = 0.5 * simpson(&|r| sde.beta(r), 0.0, s);
                assert!((sde.a(s) - quad).abs() < 1e-9, "{sde:?} s={s}");
            }
            let quad = simpson(&|r| sde.beta_bar(r), 0.3, 2.2);
            assert!(
                (sde.integral_beta_bar(0.3, 2.2) - quad).abs() < 1e-9,
                "{sde:?}"
            );
        }
    }

    /// Grid points against their formulas, and the refinement at the right
    /// end: the non-uniform grids' steps shrink toward `t = T`.
    #[test]
    fn grids_follow_their_formulas_and_refine_toward_t_end() {
        let (k_max, t) = (8usize, 2.0f64);
        for k in 0..=k_max {
            let r = k as f64 / k_max as f64;
            let want = [
                (TimeGrid::Uniform, t * r),
                (TimeGrid::Quadratic, t * (1.0 - (1.0 - r) * (1.0 - r))),
                (
                    TimeGrid::Cosine,
                    t * (core::f64::consts::FRAC_PI_2 * r).sin(),
                ),
            ];
            for (grid, value) in want {
                assert!(
                    (grid.time(k, k_max, 2.0) - value).abs() < 1e-12,
                    "{grid:?} k={k}"
                );
            }
        }
        // Quadratic, K = 4, T = 2: 0, 0.875, 1.5, 1.875, 2 (steps 7/8, 5/8, 3/8, 1/8).
        let q: [f64; 5] = core::array::from_fn(|k| TimeGrid::Quadratic.time(k, 4, 2.0));
        assert_eq!(q, [0.0, 0.875, 1.5, 1.875, 2.0]);
        for grid in [TimeGrid::Quadratic, TimeGrid::Cosine] {
            let steps: [f64; 8] =
                core::array::from_fn(|k| grid.time(k + 1, 8, 2.0) - grid.time(k, 8, 2.0));
            assert!(steps.windows(2).all(|w| w[1] < w[0]), "{grid:?}: {steps:?}");
        }
    }

    #[test]
    fn grids_are_monotone_and_exact_at_the_ends() {
        for g in [TimeGrid::Uniform, TimeGrid::Quadratic, TimeGrid::Cosine] {
            assert_eq!(g.time(0, 7, 2.0), 0.0);
            assert_eq!(g.time(7, 7, 2.0), 2.0);
            for k in 0..7 {
                assert!(g.time(k + 1, 7, 2.0) > g.time(k, 7, 2.0));
            }
        }
    }
}
