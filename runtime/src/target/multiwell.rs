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

/// One coordinate's well, `w(x) = exp(-(x^2 - delta)^2 + tilt x)` in f64:
/// the quadratures and the exact sampler the double-well targets share.
/// [`MultiWell`] uses it untilted; [`super::ManyWell`]'s asymmetric well is
/// `exp(9) w(x)` with `delta = 3`, `tilt = 1/2`. A tilted well needs
/// `delta > 0` (its sampler finds the peak from `sqrt(delta)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Well {
    pub delta: f64,
    pub tilt: f64,
}

impl Well {
    /// Intervals of the trapezoidal rule behind `z1` and `log Z`.
    pub const Z_INTERVALS: usize = 20_000;
    /// Intervals of the trapezoidal rule behind the moments.
    pub const MOMENT_INTERVALS: usize = 40_000;

    /// Half-width `L` of the window `[-L, L]` outside which `w` is below
    /// `e^-36` times its peak (and falls): `L = sqrt(max(delta, 0) + 6 + |tilt|)`
    /// gives `(L^2 - delta)^2 >= (6 + |tilt|)^2`, which outweighs the tilt's
    /// `|tilt| (L - sqrt(delta))` gain. Quadratures and the sampler work on it.
    pub fn window(&self) -> f64 {
        libm::sqrt(self.delta.max(0.0) + 6.0 + libm::fabs(self.tilt))
    }

    /// `w(x)`.
    pub fn density(&self, x: f64) -> f64 {
        let e = x * x - self.delta;
        libm::exp(-e * e + self.tilt * x)
    }

    /// The trapezoidal rule for `integral_lo^hi f(x) w(x) dx` with `n`
    /// intervals (exponentially accurate for this smooth, fast-decaying
    /// integrand over the whole window).
    pub fn integral(&self, lo: f64, hi: f64, n: usize, f: impl Fn(f64) -> f64) -> f64 {
        let h = (hi - lo) / n as f64;
        let mut acc = 0.0;
        for i in 0..=n {
            let x = lo + i as f64 * h;
            acc += f(x) * self.density(x) * if i == 0 || i == n { 0.5 } else { 1.0 };
        }
        acc * h
    }

    /// `integral f(x) w(x) dx` over the window.
    pub fn window_integral(&self, n: usize, f: impl Fn(f64) -> f64) -> f64 {
        let half = self.window();
        self.integral(-half, half, n, f)
    }

    /// `integral w(x) dx`.
    pub fn z(&self) -> f64 {
        self.window_integral(Self::Z_INTERVALS, |_| 1.0)
    }

    /// `E x^2` and `E|x|` under the normalised well.
    pub fn moments(&self) -> (f64, f64) {
        let n = Self::MOMENT_INTERVALS;
        let z = self.window_integral(n, |_| 1.0);
        let m2 = self.window_integral(n, |x| x * x);
        let m1 = self.window_integral(n, libm::fabs);
        (m2 / z, m1 / z)
    }

    /// `P(x > 0)` under the normalised well: the integral over `[0, L]`
    /// over the whole one. The cut at 0 leaves the trapezoidal rule an
    /// `h^2 w'(0) / 12` error term, tiny when the wells are deep (for
    /// manywell's, `w'(0) = e^-9 / 2`: about `1e-13` against mpmath).
    pub fn positive_share(&self) -> f64 {
        let n = Self::MOMENT_INTERVALS;
        let half = self.window();
        self.integral(0.0, half, n / 2, |_| 1.0) / self.window_integral(n, |_| 1.0)
    }

    /// `max w`: 1 untilted (`delta >= 0`), `w(0)` for `delta < 0`; tilted,
    /// Newton's method on `w'` from `sign(tilt) sqrt(delta)` (the higher
    /// well's bottom, where `log w` is concave), raised by `1e-9` so it
    /// stays a bound.
    fn peak(&self) -> f64 {
        if self.tilt == 0.0 {
            return if self.delta >= 0.0 {
                1.0
            } else {
                self.density(0.0)
            };
        }
        debug_assert!(self.delta > 0.0, "a tilted well needs delta > 0");
        let mut x = libm::copysign(libm::sqrt(self.delta), self.tilt);
        for _ in 0..50 {
            let grad = -4.0 * x * (x * x - self.delta) + self.tilt;
            let curv = -12.0 * x * x + 4.0 * self.delta;
            x -= grad / curv;
        }
        self.density(x) * (1.0 + 1e-9)
    }

    /// An exact draw: rejection from the uniform distribution on the window
    /// (acceptance probability `w(v) / max w`).
    pub fn sample(&self, rng: &mut PathRng) -> f32 {
        let half = self.window();
        let peak = self.peak();
        loop {
            let v = half * (2.0 * uniform_f64(rng) - 1.0);
            if uniform_f64(rng) * peak < self.density(v) {
                return v as f32;
            }
        }
    }
}

impl MultiWell {
    fn well(&self) -> Well {
        Well {
            delta: self.delta as f64,
            tilt: 0.0,
        }
    }

    /// `z1(delta) = integral exp(-(x^2 - delta)^2) dx`.
    pub fn z1(delta: f64) -> f64 {
        Well { delta, tilt: 0.0 }.z()
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
pub(super) const MAX_TRACKED_WELLS: usize = 16;

impl GroundTruth for MultiWell {
    fn moments(&self) -> Option<(f64, f64)> {
        let half_normal = libm::sqrt(2.0 / core::f64::consts::PI);
        let (m2, m1) = self.well().moments();
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
        let well = self.well();
        for xj in &mut x[..self.w] {
            *xj = well.sample(rng);
        }
        for xj in &mut x[self.w..self.d] {
            *xj = normal_pair(rng).0;
        }
        true
    }

    fn marginal_density(&self, j: usize, x: f64) -> Option<f64> {
        Some(if j < self.w {
            let well = self.well();
            well.density(x) / well.z()
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
