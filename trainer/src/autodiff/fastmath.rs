//! Branch-free f32 `erf` and `exp` that the compiler vectorises.
//!
//! GELU is evaluated ~10^7 times per training iteration (3 layers x 64
//! channels x batch 512 x 100 steps, forward and backward). `libm::erff` is
//! a branchy scalar call that alone would cost more than the whole iteration
//! (`benches/README.md`, "Measurements behind design choices"), so GELU uses
//! these rational/polynomial forms instead.
//! Both are checked against libm below: |erf error| < 5e-7 absolute (< 8 ulp
//! near |erf| = 1) and < 4 ulp relative near 0,
//! exp relative error < 4 ulp. Plain multiplies and adds (no `mul_add`,
//! which is a software call on baseline x86_64, and Rust never contracts
//! `a * b + c`), so the AVX2 / AVX-512 builds of the slice kernels below give
//! the same bits as the baseline one. Build with the `libm-gelu` feature to use
//! `libm::erff` (the runtime's kernel) instead.

/// `erf(x)` as `x P(x^2) / Q(x^2)` on `[-4, 4]` (clamped outside, where
/// `|erf(x)| = 1` in f32). Coefficients: the minimax fit used by Eigen and
/// XLA for single precision.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_6e-3;
    p = x2 * p + -1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329e-3;
    q = x2 * q + -1.426_474e-2;
    x * p / q
}

/// `exp(x)` by `x = n ln 2 + r`, `|r| <= ln 2 / 2`, a degree-6 polynomial for
/// `exp(r)` (Cephes `expf` coefficients) and `2^n` built from the exponent bits.
/// Inputs are clamped to `[-87, 88]` (results stay normal and finite).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    // round to nearest by the 1.5 * 2^23 trick (|x log2 e| < 2^22 here):
    // f32 `round` is a libm call on baseline x86_64 and blocks vectorisation
    const SHIFTER: f32 = 12_582_912.0;
    let shifted = x * LOG2E + SHIFTER;
    let n = shifted - SHIFTER;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = r * 1.987_569_1e-4 + 1.398_199_9e-3;
    p = r * p + 8.333_452e-3;
    p = r * p + 4.166_579_6e-2;
    p = r * p + 1.666_666_5e-1;
    p = r * p + 0.5;
    let e = (r * r) * p + r + 1.0;
    // `n` as an integer, read from the mantissa of `shifted` (in
    // [2^23, 2^24), where the spacing is 1): the same value as `n as i32`,
    // whose saturating conversion the compiler would not vectorise.
    let n_int = shifted.to_bits() as i32 - SHIFTER.to_bits() as i32;
    let scale = f32::from_bits(((n_int + 127) as u32) << 23);
    e * scale
}

/// The erf used by GELU (see the module docs and the `libm-gelu` feature).
#[inline(always)]
pub fn gelu_erf(x: f32) -> f32 {
    if cfg!(feature = "libm-gelu") {
        libm::erff(x)
    } else {
        erf(x)
    }
}

/// The exp used by the GELU derivative.
#[inline(always)]
pub fn gelu_exp(x: f32) -> f32 {
    if cfg!(feature = "libm-gelu") {
        libm::expf(x)
    } else {
        exp(x)
    }
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// `1 / sqrt(2 pi)`
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// GELU, erf form: `x Phi(x)`, `Phi(x) = (1 + erf(x / sqrt 2)) / 2`.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + gelu_erf(x * FRAC_1_SQRT_2))
}

/// `d/dx [x Phi(x)] = Phi(x) + x phi(x)`, `phi(x) = exp(-x^2 / 2) / sqrt(2 pi)`.
#[inline(always)]
pub fn gelu_grad(x: f32) -> f32 {
    let cdf = 0.5 * (1.0 + gelu_erf(x * FRAC_1_SQRT_2));
    let pdf = FRAC_1_SQRT_2PI * gelu_exp(-0.5 * x * x);
    cdf + x * pdf
}

/// GELU and its derivative together, sharing the `erf`: the same bits as
/// [`gelu`] and [`gelu_grad`].
#[inline(always)]
pub fn gelu_and_grad(x: f32) -> (f32, f32) {
    let e = gelu_erf(x * FRAC_1_SQRT_2);
    let y = 0.5 * x * (1.0 + e);
    let cdf = 0.5 * (1.0 + e);
    let pdf = FRAC_1_SQRT_2PI * gelu_exp(-0.5 * x * x);
    (y, cdf + x * pdf)
}

#[inline(always)]
fn gelu_forward_saving_grad_generic(out: &mut [f32], grad: &mut [f32], x: &[f32]) {
    for ((o, g), &v) in out.iter_mut().zip(grad.iter_mut()).zip(x) {
        (*o, *g) = gelu_and_grad(v);
    }
}

#[inline(always)]
fn gelu_forward_generic(out: &mut [f32], x: &[f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = gelu(v);
    }
}

/// Compiles `$generic` also for AVX-512 and AVX2 and picks the widest the
/// CPU has at run time. The kernels use plain multiplies and adds (no
/// contraction into FMA), so every build gives the same bits.
macro_rules! dispatch {
    ($name:ident, $generic:ident, ($($arg:ident: $ty:ty),*)) => {
        pub fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512($($arg: $ty),*) {
                    $generic($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($arg: $ty),*) {
                    $generic($($arg),*)
                }
                if std::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F.
                    return unsafe { avx512($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $generic($($arg),*)
        }
    };
}

dispatch!(gelu_forward, gelu_forward_generic, (out: &mut [f32], x: &[f32]));
dispatch!(
    gelu_forward_saving_grad,
    gelu_forward_saving_grad_generic,
    (out: &mut [f32], grad: &mut [f32], x: &[f32])
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_libm() {
        let mut worst = 0f32;
        for i in -200_000..=200_000 {
            let x = i as f32 * 3e-5;
            worst = worst.max((erf(x) - libm::erff(x)).abs());
        }
        for x in [-1e30f32, -10.0, -4.5, 4.5, 10.0, 1e30] {
            worst = worst.max((erf(x) - libm::erff(x)).abs());
        }
        assert!(worst < 5e-7, "max |erf - libm::erff| = {worst}");
        // relative accuracy near 0, where erf(x) ~ 2x / sqrt(pi)
        let mut worst_rel = 0f32;
        for i in 1..=100_000 {
            let x = i as f32 * 1e-5;
            worst_rel = worst_rel.max(((erf(x) - libm::erff(x)) / libm::erff(x)).abs());
        }
        assert!(
            worst_rel < 4.0 * f32::EPSILON,
            "max relative error near 0: {worst_rel}"
        );
    }

    #[test]
    fn exp_matches_libm() {
        let mut worst = 0f32;
        for i in -870_000..=880_000 {
            let x = i as f32 * 1e-4;
            let want = libm::expf(x);
            worst = worst.max(((exp(x) - want) / want).abs());
        }
        assert!(worst < 4.0 * f32::EPSILON, "max rel error {worst}");
    }
}
