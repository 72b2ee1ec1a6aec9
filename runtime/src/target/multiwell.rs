//! Double wells (MATH.md §8): density, score and ground truth.

use core::fmt;

use super::{normal_density, GroundTruth, Target};
use crate::normal::{normal_pair, uniform_f64, PathRng};

/// Double wells: `log rho(x) = -sum_{i<w} (x_i^2 - delta)^2 - 1/2 sum_{i>=w} x_i^2`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MultiWell {
    pub d: usize,
    pub w: usize,
    pub delta: f32,
}

/// Half-width `L` of the window `[-L, L]` outside which one well's density
/// `exp(-(x^2 - delta)^2)` is below `e^-36`: its quadratures and exact
/// sampler work on that window.
fn window(delta: f64) -> f64 {
    libm::sqrt(delta.max(0.0) + 6.0)
}

/// `exp(-(x^2 - delta)^2)`, one well's unnormalised density.
fn well(x: f64, delta: f64) -> f64 {
    let e = x * x - delta;
    libm::exp(-e * e)
}

/// The trapezoidal rule for `integral f(x) exp(-(x^2 - delta)^2) dx` over
/// the window with `n` intervals (exponentially accurate for this smooth,
/// fast-decaying integrand).
fn well_integral(delta: f64, n: usize, f: impl Fn(f64) -> f64) -> f64 {
    let half = window(delta);
    let h = 2.0 * half / n as f64;
    let mut acc = 0.0;
    for i in 0..=n {
        let x = -half + i as f64 * h;
        acc += f(x) * well(x, delta) * if i == 0 || i == n { 0.5 } else { 1.0 };
    }
    acc * h
}

impl MultiWell {
    /// `z1(delta) = integral exp(-(x^2 - delta)^2) dx`.
    pub fn z1(delta: f64) -> f64 {
        well_integral(delta, 20_000, |_| 1.0)
    }

    /// `E x^2` and `E|x|` under one normalised well.
    fn well_moments(delta: f64) -> (f64, f64) {
        let n = 40_000;
        let z = well_integral(delta, n, |_| 1.0);
        let m2 = well_integral(delta, n, |x| x * x);
        let m1 = well_integral(delta, n, libm::fabs);
        (m2 / z, m1 / z)
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

/// Modes: the `2^w` sign patterns of the well coordinates (tracked for `w <= 16`).
const MAX_TRACKED_WELLS: usize = 16;

impl GroundTruth for MultiWell {
    fn moments(&self) -> Option<(f64, f64)> {
        let half_normal = libm::sqrt(2.0 / core::f64::consts::PI);
        let (m2, m1) = Self::well_moments(self.delta as f64);
        let gauss = (self.d - self.w) as f64;
        Some((
            self.w as f64 * m2 + gauss,
            self.w as f64 * m1 + gauss * half_normal,
        ))
    }

    fn mode_count(&self) -> usize {
        if self.w <= MAX_TRACKED_WELLS {
            1 << self.w
        } else {
            0
        }
    }

    /// Bit `i` of the mode is the sign of well coordinate `i`.
    fn mode_of(&self, x: &[f32]) -> usize {
        x[..self.w]
            .iter()
            .enumerate()
            .fold(0, |acc, (i, &v)| acc | (usize::from(v > 0.0) << i))
    }

    /// Each well is symmetric: all sign patterns are equally likely.
    fn mode_weight(&self, _i: usize) -> f64 {
        1.0 / self.mode_count() as f64
    }

    fn write_mode_label(&self, i: usize, out: &mut dyn fmt::Write) -> fmt::Result {
        for b in 0..self.w {
            out.write_char(if i >> b & 1 == 1 { '+' } else { '-' })?;
        }
        Ok(())
    }

    /// Well coordinates by rejection from the uniform distribution on the
    /// window (acceptance probability `exp(-(x^2 - delta)^2) / max`), the
    /// others `N(0, 1)`.
    fn sample_exact(&self, rng: &mut PathRng, x: &mut [f32]) -> bool {
        let delta = self.delta as f64;
        let half = window(delta);
        let peak = if delta >= 0.0 { 1.0 } else { well(0.0, delta) };
        for xj in &mut x[..self.w] {
            *xj = loop {
                let v = half * (2.0 * uniform_f64(rng) - 1.0);
                if uniform_f64(rng) * peak < well(v, delta) {
                    break v as f32;
                }
            };
        }
        for xj in &mut x[self.w..self.d] {
            *xj = normal_pair(rng).0;
        }
        true
    }

    fn marginal_density(&self, j: usize, x: f64) -> Option<f64> {
        Some(if j < self.w {
            well(x, self.delta as f64) / Self::z1(self.delta as f64)
        } else {
            normal_density(x, 0.0, 1.0)
        })
    }

    fn marginal_range(&self, j: usize) -> Option<(f64, f64)> {
        let half = if j < self.w {
            libm::sqrt(self.delta.max(0.0) as f64 + 2.5)
        } else {
            3.0
        };
        Some((-half, half))
    }
}
