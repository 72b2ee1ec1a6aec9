//! Many Well (MATH.md §8; Midgley et al. 2023, "Flow annealed importance
//! sampling bootstrap", and the gfn-diffusion benchmarks of Sendera et al.
//! 2024): independent copies of an asymmetric 2-d double well. Density,
//! score and ground truth; the well's quadratures and sampler are
//! [`super::multiwell`]'s.

use core::fmt;

use super::multiwell::{Well, MAX_TRACKED_WELLS};
use super::{normal_density, GroundTruth, Target};
use crate::normal::{normal_pair, PathRng};

/// `pairs` copies of `log rho(x1, x2) = 0.5 x1 + 6 x1^2 - x1^4 - 1/2 x2^2`,
/// copy `i` on coordinates `(2i, 2i + 1)` (the literature's layout);
/// `d = 2 pairs`. Preset `manywell32`: 16 pairs, `2^16` modes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ManyWell {
    pub pairs: usize,
}

/// The asymmetric well as a [`Well`]: `0.5 x + 6 x^2 - x^4 = -(x^2 - 3)^2
/// + x / 2 + 9`, so its integral is `exp(9)` times this one's.
const WELL: Well = Well {
    delta: 3.0,
    tilt: 0.5,
};
/// `log rho`'s constant that [`WELL`] leaves out.
const WELL_OFFSET: f64 = 9.0;

/// `P(x1 > 0)` in one pair (mpmath's adaptive quadrature at 30 digits;
/// the test `positive_share_is_the_quadrature` recomputes it with
/// [`ManyWell::positive_share`]). Stored so that the `2^16` mode weights cost
/// no quadrature each.
pub const POSITIVE_SHARE: f64 = 0.844_307_096_211_139;

impl ManyWell {
    /// `z = integral exp(0.5 x + 6 x^2 - x^4) dx`, by the trapezoidal rule
    /// (about 11784.509; FAB's code has 11784.50927).
    pub fn z() -> f64 {
        libm::exp(WELL_OFFSET) * WELL.z()
    }

    /// `P(x1 > 0)` in one pair by quadrature ([`POSITIVE_SHARE`] holds it).
    pub fn positive_share() -> f64 {
        WELL.positive_share()
    }
}

impl Target for ManyWell {
    fn dim(&self) -> usize {
        2 * self.pairs
    }
    fn log_density(&self, x: &[f32]) -> f32 {
        let mut acc = 0.0f32;
        for p in x.chunks_exact(2) {
            let (x1, x2) = (p[0], p[1]);
            let s = x1 * x1;
            acc += 0.5 * x1 + s * (6.0 - s) - 0.5 * x2 * x2;
        }
        acc
    }
    /// `(0.5 + 4 x1 (3 - x1^2), -x2)` per pair.
    fn score(&self, x: &[f32], out: &mut [f32]) {
        for (o, p) in out.chunks_exact_mut(2).zip(x.chunks_exact(2)) {
            let (x1, x2) = (p[0], p[1]);
            o[0] = 0.5 + 4.0 * x1 * (3.0 - x1 * x1);
            o[1] = -x2;
        }
    }
    /// `pairs (log z + 1/2 log 2 pi)`.
    fn log_z(&self) -> Option<f64> {
        let half_log_tau = 0.5 * libm::log(core::f64::consts::TAU);
        Some(self.pairs as f64 * (libm::log(Self::z()) + half_log_tau))
    }
}

impl GroundTruth for ManyWell {
    fn moments(&self) -> Option<(f64, f64)> {
        let half_normal = libm::sqrt(2.0 / core::f64::consts::PI);
        let (m2, m1) = WELL.moments();
        let p = self.pairs as f64;
        Some((p * (m2 + 1.0), p * (m1 + half_normal)))
    }

    fn mode_count(&self) -> usize {
        if self.pairs <= MAX_TRACKED_WELLS {
            1 << self.pairs
        } else {
            0
        }
    }

    /// Bit `i` of the mode is the sign of `x1` of pair `i`.
    fn mode_of(&self, x: &[f32]) -> usize {
        x.chunks_exact(2)
            .enumerate()
            .fold(0, |acc, (i, p)| acc | (usize::from(p[0] > 0.0) << i))
    }

    /// `q^k (1 - q)^(pairs - k)` for a mode with `k` positive wells,
    /// `q` = [`POSITIVE_SHARE`].
    fn mode_weight(&self, i: usize) -> f64 {
        let k = i.count_ones() as f64;
        libm::pow(POSITIVE_SHARE, k) * libm::pow(1.0 - POSITIVE_SHARE, self.pairs as f64 - k)
    }

    fn write_mode_label(&self, i: usize, out: &mut dyn fmt::Write) -> fmt::Result {
        for b in 0..self.pairs {
            out.write_char(if i >> b & 1 == 1 { '+' } else { '-' })?;
        }
        Ok(())
    }

    /// Per pair: `x1` by rejection from the uniform distribution on a window
    /// (see [`super::multiwell`]), `x2` standard normal.
    fn sample_exact(&self, rng: &mut PathRng, x: &mut [f32]) -> bool {
        for p in x.chunks_exact_mut(2) {
            p[0] = WELL.sample(rng);
            p[1] = normal_pair(rng).0;
        }
        true
    }

    fn marginal_density(&self, j: usize, x: f64) -> Option<f64> {
        Some(if j.is_multiple_of(2) {
            WELL.density(x) / WELL.z()
        } else {
            normal_density(x, 0.0, 1.0)
        })
    }

    /// `x1`: the wells' bottoms are near -1.70 and 1.73.
    fn marginal_range(&self, j: usize) -> Option<(f64, f64)> {
        Some(if j.is_multiple_of(2) {
            (-2.6, 2.6)
        } else {
            (-3.0, 3.0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `log rho` of one pair in f64, as the literature writes it.
    fn pair_log_density(x1: f64, x2: f64) -> f64 {
        0.5 * x1 + 6.0 * x1 * x1 - x1 * x1 * x1 * x1 - 0.5 * x2 * x2
    }

    /// Simpson's rule for `integral exp(0.5 x + 6 x^2 - x^4) dx` over
    /// `[-4, 4]` (the integrand is below `e^-150` at the ends), written
    /// from the literature's form: independent of [`Well`]'s rewriting.
    fn z_by_simpson(n: usize) -> f64 {
        let (lo, hi) = (-4.0f64, 4.0f64);
        let h = (hi - lo) / n as f64;
        let f = |x: f64| libm::exp(pair_log_density(x, 0.0));
        let mut acc = f(lo) + f(hi);
        for i in 1..n {
            acc += f(lo + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
        }
        acc * h / 3.0
    }

    /// MATH.md §8: `z = 11784.509265`, `log Z = 164.695675` for 16 pairs;
    /// FAB's code has `z = 11784.50927`.
    #[test]
    fn log_z_matches_simpson_and_the_literature() {
        let z = ManyWell::z();
        let simpson = z_by_simpson(100_000);
        assert!((z - simpson).abs() < 1e-9 * z, "{z} vs Simpson {simpson}");
        assert!((z - 11_784.509_265).abs() < 1e-6, "{z}");
        assert!((z - 11_784.509_27).abs() < 1e-5, "{z} vs FAB");
        let log_z = ManyWell { pairs: 16 }.log_z().unwrap();
        let want = 16.0 * (libm::log(simpson) + 0.5 * libm::log(core::f64::consts::TAU));
        assert!((log_z - want).abs() < 1e-8, "{log_z} vs {want}");
        assert!((log_z - 164.695_675).abs() < 1e-6, "{log_z}");
    }

    #[test]
    fn positive_share_is_the_quadrature() {
        let q = ManyWell::positive_share();
        assert!((q - POSITIVE_SHARE).abs() < 1e-10, "{q}");
        // The 0.8443.
        assert!((POSITIVE_SHARE - 0.8443).abs() < 5e-5);
        let t = ManyWell { pairs: 16 };
        let total: f64 = (0..t.mode_count()).map(|i| t.mode_weight(i)).sum();
        assert!((total - 1.0).abs() < 1e-12, "{total}");
    }

    /// `log rho` in f32 against the f64 formula, and the score against
    /// central differences of the f64 formula.
    #[test]
    fn density_and_score_match_f64() {
        let t = ManyWell { pairs: 3 };
        let x: [f32; 6] = [-2.1, 0.7, 1.72, -1.3, 0.05, 2.4];
        let reference = |x: &[f64]| {
            x.chunks_exact(2)
                .map(|p| pair_log_density(p[0], p[1]))
                .sum::<f64>()
        };
        crate::target::assert_density_and_score(&t, &x, &reference, 1e-5, 1e-5);
    }

    /// 200,000 exact draws of manywell32: `E|x|^2`, `E|x|_1` and the share of
    /// `x1 > 0` in every well within 4.5 standard errors of the truth.
    #[test]
    fn exact_sampler_matches_moments_and_shares() {
        let t = ManyWell { pairs: 16 };
        let n = 200_000;
        let mut positive = [0usize; 16];
        crate::target::assert_exact_moments(&t, &mut [0.0f32; 32], n, 15, |x| {
            for (c, p) in positive.iter_mut().zip(x.chunks_exact(2)) {
                *c += usize::from(p[0] > 0.0);
            }
        });
        let nf = n as f64;
        let se = libm::sqrt(POSITIVE_SHARE * (1.0 - POSITIVE_SHARE) / nf);
        for (i, &c) in positive.iter().enumerate() {
            let share = c as f64 / nf;
            assert!(
                (share - POSITIVE_SHARE).abs() < 4.5 * se,
                "well {i}: {share} (SE {se})"
            );
        }
    }

    /// The marginals integrate to one and the plot range holds their bulk.
    #[test]
    fn marginals_integrate_to_one() {
        let t = ManyWell { pairs: 2 };
        for j in 0..2 {
            let (lo, hi) = t.marginal_range(j).unwrap();
            let n = 4000;
            let h = (hi - lo) / n as f64;
            let mass: f64 = (0..n)
                .map(|i| t.marginal_density(j, lo + (i as f64 + 0.5) * h).unwrap() * h)
                .sum();
            assert!(mass > 0.99 && mass < 1.0 + 1e-9, "coordinate {j}: {mass}");
        }
    }
}
