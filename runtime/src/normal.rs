//! Randomness: one independent stream per sample, and standard normals.
//!
//! Sample `i` under seed `s` draws every random number it needs from
//! [`stream(s, i)`](stream), a `Xoshiro256PlusPlus` whose 256-bit state is
//! derived from `(s, i)` alone. A sample is therefore the same whatever the
//! batch size, the order of evaluation, the thread count or the machine.
//!
//! The index space is shared: samples count up from 0; the trainer's own
//! purposes (initialisation, each iteration's paths, evaluation, fitting,
//! resampling) take named indices near `2^63` and counting down from
//! `u64::MAX`, listed in one table in `diffctl_trainer::streams`; the
//! trainer's other draws (data rows, exact target samples) are samples of
//! their own seeds.
//!
//! Normals come in pairs from Box–Muller with exactly two `u64` draws per pair
//! (so the stream position never depends on the values drawn). The radius is
//! computed in `f64` from a 53-bit uniform in the open interval `(0, 1)`
//! (largest normal about 8.6), the angle in `f32`; all through `libm`.

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// The random number generator of every sample path.
pub type PathRng = Xoshiro256PlusPlus;

/// SplitMix64's output function: a bijective mixer of 64-bit words.
const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The stream of sample `index` under `seed`.
///
/// The four state words are SplitMix64 outputs of a counter started at
/// `mix64(seed) ^ index * golden`; distinct `(seed, index)` pairs give
/// unrelated states (the construction `SeedableRng::seed_from_u64` uses, with
/// the index folded in).
pub fn stream(seed: u64, index: u64) -> PathRng {
    const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut counter = mix64(seed ^ 0x6469_6666_6374_6c21) ^ index.wrapping_mul(GOLDEN);
    let mut state = [0u8; 32];
    for chunk in state.chunks_exact_mut(8) {
        counter = counter.wrapping_add(GOLDEN);
        chunk.copy_from_slice(&mix64(counter).to_le_bytes());
    }
    // An all-zero state is the one fixed point of xoshiro; mix64 of four
    // consecutive counters cannot be all zero (it is a bijection).
    PathRng::from_seed(state)
}

/// `2^-53`: the spacing of 53-bit uniforms.
const UNIT_53: f64 = 1.0 / 9_007_199_254_740_992.0;

/// A uniform in `[0, 1)` with 53 bits: `k 2^-53` (one `u64` draw).
#[inline]
pub fn uniform_f64<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 * UNIT_53
}

/// A uniform in the open interval `(0, 1)` with 53 bits: `(k + 1/2) 2^-53`
/// (one `u64` draw; never 0, so its logarithm is finite).
#[inline]
pub fn open_uniform_f64<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 0.5) * UNIT_53
}

/// A uniform in `[0, 1)` with 24 bits, exact in `f32`: `k 2^-24` from the
/// top 24 bits of one `u64` draw.
#[inline]
pub fn uniform_f32<R: Rng + ?Sized>(rng: &mut R) -> f32 {
    (rng.next_u64() >> 40) as f32 * (1.0 / 16_777_216.0)
}

/// One Box–Muller pair of independent standard normals (two `u64` draws).
#[inline]
pub fn normal_pair(rng: &mut PathRng) -> (f32, f32) {
    let radius = libm::sqrt(-2.0 * libm::log(open_uniform_f64(rng))) as f32;
    // The angle as a fraction of a turn.
    let turn = uniform_f32(rng);
    let (s, c) = libm::sincosf(core::f32::consts::TAU * turn);
    (radius * c, radius * s)
}

/// Fills `out` with standard normals, pair by pair (an odd length discards
/// the last pair's second value, so `ceil(len / 2)` pairs are always drawn).
pub fn fill_normals(rng: &mut PathRng, out: &mut [f32]) {
    let mut pairs = out.chunks_exact_mut(2);
    for pair in &mut pairs {
        let (a, b) = normal_pair(rng);
        pair[0] = a;
        pair[1] = b;
    }
    if let [last] = pairs.into_remainder() {
        *last = normal_pair(rng).0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_deterministic_and_distinct() {
        let a = stream(7, 3).next_u64();
        assert_eq!(a, stream(7, 3).next_u64());
        assert_ne!(a, stream(7, 4).next_u64());
        assert_ne!(a, stream(8, 3).next_u64());
    }

    /// Moments of 400k normals: mean, variance, 4th moment (3) and the
    /// correlation of the two halves of a pair, each within 5 standard errors.
    #[test]
    fn normals_have_standard_moments() {
        let mut rng = stream(1, 0);
        let n = 200_000;
        let (mut m1, mut m2, mut m4, mut cross) = (0f64, 0f64, 0f64, 0f64);
        for _ in 0..n {
            let (a, b) = normal_pair(&mut rng);
            for v in [a as f64, b as f64] {
                m1 += v;
                m2 += v * v;
                m4 += v * v * v * v;
            }
            cross += a as f64 * b as f64;
        }
        let count = 2.0 * n as f64;
        let se = 1.0 / count.sqrt();
        assert!((m1 / count).abs() < 5.0 * se);
        assert!((m2 / count - 1.0).abs() < 5.0 * se * 2f64.sqrt());
        assert!((m4 / count - 3.0).abs() < 5.0 * se * 96f64.sqrt());
        assert!((cross / n as f64).abs() < 5.0 / (n as f64).sqrt());
    }
}
