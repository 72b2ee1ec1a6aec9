//! Neal's funnel (MATH.md §8): density, score and ground truth.

use super::{normal_density, GroundTruth, Target, HALF_LOG_TAU};
use crate::normal::{normal_pair, PathRng};

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

impl GroundTruth for Funnel {
    /// `E e^{x_1} = e^{s^2/2}` and `E e^{x_1/2} = e^{s^2/8}` for `x_1 ~ N(0, s^2)`.
    fn moments(&self) -> Option<(f64, f64)> {
        let half_normal = libm::sqrt(2.0 / core::f64::consts::PI); // E|N(0, 1)|
        let (s2, rest) = (
            (self.sigma as f64) * (self.sigma as f64),
            (self.d - 1) as f64,
        );
        let sq = s2 + rest * libm::exp(s2 / 2.0);
        let abs = (libm::sqrt(s2) + rest * libm::exp(s2 / 8.0)) * half_normal;
        Some((sq, abs))
    }

    fn sample_exact(&self, rng: &mut PathRng, x: &mut [f32]) -> bool {
        let x1 = self.sigma as f64 * normal_pair(rng).0 as f64;
        x[0] = x1 as f32;
        let s = libm::exp(0.5 * x1);
        for xj in &mut x[1..self.d] {
            *xj = (s * normal_pair(rng).0 as f64) as f32;
        }
        true
    }

    /// `x_1`: `N(0, sigma^2)`; the others `integral N(x; 0, e^v) N(v; 0, s^2) dv`
    /// by the midpoint rule over `v in [-8 s, 8 s]`.
    fn marginal_density(&self, j: usize, x: f64) -> Option<f64> {
        let s = self.sigma as f64;
        if j == 0 {
            return Some(normal_density(x, 0.0, s));
        }
        let m = 800;
        let h = 16.0 * s / m as f64;
        Some(
            (0..m)
                .map(|i| {
                    let v = -8.0 * s + (i as f64 + 0.5) * h;
                    normal_density(x, 0.0, libm::exp(0.5 * v)) * normal_density(v, 0.0, s) * h
                })
                .sum(),
        )
    }

    fn marginal_range(&self, j: usize) -> Option<(f64, f64)> {
        let s = self.sigma as f64;
        // x_0 ~ N(0, s^2); the others have E x^2 = exp(s^2 / 2).
        let std = if j == 0 { s } else { libm::exp(s * s / 4.0) };
        Some((-3.0 * std, 3.0 * std))
    }
}
