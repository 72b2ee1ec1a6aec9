//! The numerical kernels every code path uses: dot product, dense layer, GELU.
//!
//! **Fixed summation order.** A dot product accumulates into [`LANES`]
//! independent partial sums (element `i` goes to lane `i % LANES`) and adds the
//! lanes in a fixed tree at the end. LLVM turns the lane loop into SIMD of
//! whatever width the target has (SSE, AVX, wasm simd128, or scalar on
//! Cortex-M), but every lane performs the same additions in the same order, so
//! the result is bit-identical on every target and for every SIMD width.
//! No fused multiply-add is used anywhere (a target without FMA would round
//! differently).

/// Number of independent accumulators in [`dot`].
pub const LANES: usize = 8;

/// `sum_i a[i] * b[i]` in the fixed order described in the module docs.
///
/// `a` and `b` must have the same length (checked in debug builds; the
/// shorter length is used otherwise).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (a_rest, b_rest) = (a_chunks.remainder(), b_chunks.remainder());
    for (ca, cb) in a_chunks.zip(b_chunks) {
        for lane in 0..LANES {
            acc[lane] += ca[lane] * cb[lane];
        }
    }
    for (lane, (x, y)) in a_rest.iter().zip(b_rest).enumerate() {
        acc[lane] += x * y;
    }
    // Fixed reduction tree: (0+4, 1+5, 2+6, 3+7), then pairs, then the last pair.
    let quad = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    (quad[0] + quad[2]) + (quad[1] + quad[3])
}

/// Dense layer `out = W x + b` with `W` stored row-major as `[out.len(), x.len()]`.
#[inline]
pub fn dense(w: &[f32], b: &[f32], x: &[f32], out: &mut [f32]) {
    debug_assert_eq!(w.len(), out.len() * x.len());
    debug_assert_eq!(b.len(), out.len());
    for ((o, row), bias) in out.iter_mut().zip(w.chunks_exact(x.len())).zip(b) {
        *o = dot(row, x) + bias;
    }
}

/// GELU in its exact (erf) form: `x Phi(x) = 1/2 x (1 + erf(x / sqrt 2))`.
#[inline]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * core::f32::consts::FRAC_1_SQRT_2))
}

/// Applies [`gelu`] to every element.
#[inline]
pub fn gelu_in_place(v: &mut [f32]) {
    for x in v {
        *x = gelu(*x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_f64_reference() {
        for n in [0, 1, 7, 8, 9, 64, 131] {
            let a: [f32; 131] = core::array::from_fn(|i| (i as f32 * 0.37).sin());
            let b: [f32; 131] = core::array::from_fn(|i| (i as f32 * 0.11).cos());
            let exact: f64 = (0..n).map(|i| a[i] as f64 * b[i] as f64).sum();
            let got = dot(&a[..n], &b[..n]) as f64;
            assert!((got - exact).abs() < 1e-5 * (1.0 + exact.abs()), "n={n}");
        }
    }

    #[test]
    fn dense_is_rows_of_dots() {
        let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut out = [0.0; 2];
        dense(&w, &[0.5, -1.0], &[1.0, 1.0, 2.0], &mut out);
        assert_eq!(out, [1.0 + 2.0 + 6.0 + 0.5, 4.0 + 5.0 + 12.0 - 1.0]);
    }

    #[test]
    fn gelu_known_values() {
        assert_eq!(gelu(0.0), 0.0);
        // Phi(1) = 0.8413447460685429
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu(-1.0) + 0.158_655_25).abs() < 1e-6);
        assert!((gelu(10.0) - 10.0).abs() < 1e-5);
    }
}
