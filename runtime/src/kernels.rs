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
//!
//! **Weights wherever they live.** The network's parameters are [`Weights`]:
//! `f32` values in memory, or the little-endian bytes of a weights file in
//! `f32`, `f16` or `bf16` (in flash through `include_bytes!`, a memory-mapped
//! file, any `&[u8]`). Every format converts to `f32` exactly, and the dot
//! product adds the products in the same order whatever the storage, so a
//! network evaluated from the file's bytes gives the bits of one evaluated
//! from a buffer of `f32` (`runtime/tests/zero_copy.rs`).

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
    reduce(acc)
}

/// The fixed reduction tree of the lanes: (0+4, 1+5, 2+6, 3+7), then pairs,
/// then the last pair.
#[inline]
fn reduce(acc: [f32; LANES]) -> f32 {
    let quad = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    (quad[0] + quad[2]) + (quad[1] + quad[3])
}

/// [`dot`] with `a` stored as little-endian bytes, `S` bytes per element,
/// converted by `load`: the same products added in the same order. Each
/// chunk of [`LANES`] elements is converted into an array first, so the
/// conversion and the products vectorise separately.
#[inline]
fn dot_le<const S: usize>(a: &[u8], b: &[f32], load: impl Fn([u8; S]) -> f32) -> f32 {
    debug_assert_eq!(a.len(), S * b.len());
    let element = |bytes: &[u8], i: usize| {
        let mut e = [0u8; S];
        e.copy_from_slice(&bytes[S * i..S * (i + 1)]);
        load(e)
    };
    let mut acc = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(S * LANES), b.chunks_exact(LANES));
    let (a_rest, b_rest) = (a_chunks.remainder(), b_chunks.remainder());
    for (ca, cb) in a_chunks.zip(b_chunks) {
        let mut w = [0.0f32; LANES];
        for (wi, e) in w.iter_mut().zip(ca.chunks_exact(S)) {
            let mut bytes = [0u8; S];
            bytes.copy_from_slice(e);
            *wi = load(bytes);
        }
        for lane in 0..LANES {
            acc[lane] += w[lane] * cb[lane];
        }
    }
    for (lane, y) in b_rest.iter().enumerate().take(a_rest.len() / S) {
        acc[lane] += element(a_rest, lane) * y;
    }
    reduce(acc)
}

/// Read-only parameters: `f32` values, or the little-endian bytes of a
/// weights file (see the module docs). Lengths and indices count elements,
/// not bytes. A byte slice whose length is not a multiple of the element
/// size has its incomplete last element ignored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Weights<'a> {
    F32(&'a [f32]),
    /// `f32`, 4 bytes each.
    F32Le(&'a [u8]),
    /// IEEE half precision, 2 bytes each.
    F16Le(&'a [u8]),
    /// bfloat16, 2 bytes each.
    Bf16Le(&'a [u8]),
}

impl Default for Weights<'_> {
    fn default() -> Self {
        Weights::F32(&[])
    }
}

fn f32_le(b: [u8; 4]) -> f32 {
    f32::from_le_bytes(b)
}

/// `2^112`: the difference of the exponent biases of `f32` (127) and `f16` (15).
const TWO_112: f32 = 5.192_297e33;

/// Whether the target has the SIMD the blocked kernels are written for
/// (x86_64's SSE2, AArch64's NEON, WASM's simd128). Where it has not, their
/// scalar forms are faster; both forms give the same bits (tested).
const SIMD: bool = cfg!(any(
    target_feature = "sse2",
    target_feature = "neon",
    target_feature = "simd128"
));

/// An `f16` in little-endian bytes as `f32`, exactly, without `half`'s
/// branchy software conversion (slow on a Cortex-M4F). The exponent and
/// mantissa bits are moved into an `f32` and the value scaled by `2^112`, a
/// power of two, so the product is exact: normal `f16`s come out unchanged,
/// and subnormal ones (an `f32` subnormal times `2^112`) become the normal
/// `f32` of the same value. Infinities and NaNs are mapped to themselves.
/// With SIMD the choice is an integer mask, which vectorises; without, a
/// branch (the instruction counts behind both choices: `benches/README.md`,
/// "Measurements behind design choices"). Both equal `half`'s conversion on
/// all 65 536 bit patterns (tested).
#[inline]
fn f16_le(b: [u8; 2]) -> f32 {
    if SIMD {
        f16_masked(b)
    } else {
        f16_branched(b)
    }
}

#[inline]
fn f16_masked(b: [u8; 2]) -> f32 {
    let h = u16::from_le_bytes(b) as u32;
    let sign = (h & 0x8000) << 16;
    let magnitude = (h & 0x7FFF) << 13;
    let finite = (f32::from_bits(sign | magnitude) * TWO_112).to_bits();
    let special = sign | 0x7F80_0000 | magnitude;
    // All ones when the exponent is all ones (infinity, NaN).
    let mask = 0u32.wrapping_sub((h & 0x7C00 == 0x7C00) as u32);
    f32::from_bits((finite & !mask) | (special & mask))
}

#[inline]
fn f16_branched(b: [u8; 2]) -> f32 {
    let h = u16::from_le_bytes(b) as u32;
    let magnitude = (h & 0x7FFF) << 13;
    let scale = if h & 0x8000 != 0 { -TWO_112 } else { TWO_112 };
    if h & 0x7C00 == 0x7C00 {
        f32::from_bits(((h & 0x8000) << 16) | 0x7F80_0000 | magnitude)
    } else {
        f32::from_bits(magnitude) * scale
    }
}

/// A `bf16` in little-endian bytes as `f32`: its bits are the top half.
#[inline]
fn bf16_le(b: [u8; 2]) -> f32 {
    f32::from_bits((u16::from_le_bytes(b) as u32) << 16)
}

impl<'a> Weights<'a> {
    /// Bytes per element in memory or in the file.
    pub const fn element_size(&self) -> usize {
        match self {
            Weights::F32(_) | Weights::F32Le(_) => 4,
            Weights::F16Le(_) | Weights::Bf16Le(_) => 2,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Weights::F32(v) => v.len(),
            Weights::F32Le(b) | Weights::F16Le(b) | Weights::Bf16Le(b) => {
                b.len() / self.element_size()
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as `f32`; `None` past the end.
    pub fn get(&self, i: usize) -> Option<f32> {
        let bytes = |b: &'a [u8], s: usize| b.get(s * i..s * (i + 1));
        match *self {
            Weights::F32(v) => v.get(i).copied(),
            Weights::F32Le(b) => bytes(b, 4).map(|e| f32_le([e[0], e[1], e[2], e[3]])),
            Weights::F16Le(b) => bytes(b, 2).map(|e| f16_le([e[0], e[1]])),
            Weights::Bf16Le(b) => bytes(b, 2).map(|e| bf16_le([e[0], e[1]])),
        }
    }

    /// Element `i` as `f32`, 0 past the end (for indices known to be in range).
    #[inline]
    pub fn at(&self, i: usize) -> f32 {
        self.get(i).unwrap_or(0.0)
    }

    /// The first `n` elements and the rest (`None` if there are fewer than `n`).
    pub fn split_at(&self, n: usize) -> Option<(Self, Self)> {
        let split = |b: &'a [u8], s: usize| (s * n <= b.len()).then(|| b.split_at(s * n));
        Some(match *self {
            Weights::F32(v) => {
                let (a, b) = v.split_at_checked(n)?;
                (Weights::F32(a), Weights::F32(b))
            }
            Weights::F32Le(b) => {
                let (a, b) = split(b, 4)?;
                (Weights::F32Le(a), Weights::F32Le(b))
            }
            Weights::F16Le(b) => {
                let (a, b) = split(b, 2)?;
                (Weights::F16Le(a), Weights::F16Le(b))
            }
            Weights::Bf16Le(b) => {
                let (a, b) = split(b, 2)?;
                (Weights::Bf16Le(a), Weights::Bf16Le(b))
            }
        })
    }

    /// Elements `start .. start + len` (empty if they are not all there).
    pub fn slice(&self, start: usize, len: usize) -> Self {
        self.split_at(start)
            .and_then(|(_, rest)| rest.split_at(len))
            .map_or_else(Self::default, |(part, _)| part)
    }

    /// The `f32` slice, if the weights are held as `f32` values.
    pub fn as_f32(&self) -> Option<&'a [f32]> {
        match *self {
            Weights::F32(v) => Some(v),
            _ => None,
        }
    }

    /// Index of the first element that is NaN or infinite.
    pub fn first_non_finite(&self) -> Option<usize> {
        (0..self.len()).find(|&i| !self.at(i).is_finite())
    }

    /// `sum_i self[i] * x[i]` in [`dot`]'s order (the lengths must agree).
    #[inline]
    pub fn dot(&self, x: &[f32]) -> f32 {
        match *self {
            Weights::F32(v) => dot(v, x),
            Weights::F32Le(b) => dot_le(b, x, f32_le),
            Weights::F16Le(b) => dot_le(b, x, f16_le),
            Weights::Bf16Le(b) => dot_le(b, x, bf16_le),
        }
    }

    /// Dense layer `out = W x + b` with `W = self` row-major `[out.len(), x.len()]`:
    /// [`dense`]'s arithmetic.
    pub fn dense(&self, b: Weights<'_>, x: &[f32], out: &mut [f32]) {
        debug_assert_eq!(self.len(), out.len() * x.len());
        debug_assert_eq!(b.len(), out.len());
        match (*self, b) {
            (Weights::F32(w), Weights::F32(b)) => dense(w, b, x, out),
            _ => {
                let mut rest = *self;
                for (i, o) in out.iter_mut().enumerate() {
                    let Some((row, tail)) = rest.split_at(x.len()) else {
                        return;
                    };
                    rest = tail;
                    *o = row.dot(x) + b.at(i);
                }
            }
        }
    }
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

/// Applies [`gelu`] to every element: [`gelu_in_place_blocked`] where the
/// target has SIMD (x86_64's SSE2, AArch64's NEON, WASM's simd128), else
/// [`gelu_in_place_scalar`]. The two give the same bits (tested); on a core
/// without SIMD the blocked form only adds work (`benches/README.md`,
/// "Measurements behind design choices").
#[inline]
pub fn gelu_in_place(v: &mut [f32]) {
    if SIMD {
        gelu_in_place_blocked(v)
    } else {
        gelu_in_place_scalar(v)
    }
}

/// Applies [`gelu`] to every element, element by element.
pub fn gelu_in_place_scalar(v: &mut [f32]) {
    for x in v {
        *x = gelu(*x);
    }
}

// libm 0.2's `erff` for |x| < 0.84375 (FreeBSD s_erff.c), constants by their
// bit patterns as in the C source's comments.
const EFX8: f32 = f32::from_bits(0x3f83_75d4);
const PP: [f32; 5] = [
    f32::from_bits(0x3e03_75d4),
    f32::from_bits(0xbea6_6beb),
    f32::from_bits(0xbce9_528f),
    f32::from_bits(0xbbbd_1489),
    f32::from_bits(0xb7c7_56b1),
];
const QQ: [f32; 5] = [
    f32::from_bits(0x3ecb_bbce),
    f32::from_bits(0x3d85_2a63),
    f32::from_bits(0x3ba6_8116),
    f32::from_bits(0x390a_ee49),
    f32::from_bits(0xb684_e21a),
];

/// Applies [`gelu`] to every element, with [`gelu`]'s bits, faster: `erff`
/// is branchy scalar code, but for the arguments a trained network mostly
/// sees (`|x / sqrt 2| < 0.84375`) it is one rational function (below
/// `2^-28`, a linear term). That branch, copied from libm operation for
/// operation, is computed for every element of a block of 16 without
/// branches, which LLVM vectorises; the elements outside it are then redone
/// with `libm::erff`. Equal to [`gelu_in_place_scalar`] on a sweep of 4M bit
/// patterns over every exponent and sign, and on the special values (tested).
/// Measured in `examples/README.md`.
pub fn gelu_in_place_blocked(v: &mut [f32]) {
    const BLOCK: usize = 16;
    const SMALL: u32 = 0x3f58_0000; // 0.84375
    for block in v.chunks_mut(BLOCK) {
        let mut orig = [0.0f32; BLOCK];
        orig[..block.len()].copy_from_slice(block);
        let mut big = false;
        for x in block.iter_mut() {
            let a = *x * core::f32::consts::FRAC_1_SQRT_2;
            let ix = a.to_bits() & 0x7fff_ffff;
            let z = a * a;
            let r = PP[0] + z * (PP[1] + z * (PP[2] + z * (PP[3] + z * PP[4])));
            let s = 1.0 + z * (QQ[0] + z * (QQ[1] + z * (QQ[2] + z * (QQ[3] + z * QQ[4]))));
            let small = a + a * (r / s);
            let tiny = 0.125 * (8.0 * a + EFX8 * a);
            let e = if ix < 0x3180_0000 { tiny } else { small };
            big |= ix >= SMALL;
            *x = 0.5 * *x * (1.0 + e);
        }
        if big {
            for (x, &o) in block.iter_mut().zip(&orig) {
                let ix = (o * core::f32::consts::FRAC_1_SQRT_2).to_bits() & 0x7fff_ffff;
                if ix >= SMALL {
                    *x = gelu(o);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

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

    /// Every storage of the same values gives [`dot`]'s bits, at every
    /// length (full chunks and remainders), and `get`/`split_at` count elements.
    #[test]
    fn weights_in_every_storage_dot_like_f32() {
        let a: [f32; 37] =
            core::array::from_fn(|i| f16::from_f32((i as f32 * 0.37).sin()).to_f32());
        let x: [f32; 37] = core::array::from_fn(|i| (i as f32 * 0.11).cos());
        let mut f32_le = [0u8; 4 * 37];
        let mut f16_le = [0u8; 2 * 37];
        let mut bf16_le = [0u8; 2 * 37];
        let bf: [f32; 37] = core::array::from_fn(|i| bf16::from_f32(a[i]).to_f32());
        for i in 0..37 {
            f32_le[4 * i..4 * i + 4].copy_from_slice(&a[i].to_le_bytes());
            f16_le[2 * i..2 * i + 2].copy_from_slice(&f16::from_f32(a[i]).to_le_bytes());
            bf16_le[2 * i..2 * i + 2].copy_from_slice(&bf16::from_f32(a[i]).to_le_bytes());
        }
        for n in [0, 1, 7, 8, 9, 16, 37] {
            let want = dot(&a[..n], &x[..n]).to_bits();
            assert_eq!(Weights::F32(&a[..n]).dot(&x[..n]).to_bits(), want, "n={n}");
            assert_eq!(
                Weights::F32Le(&f32_le[..4 * n]).dot(&x[..n]).to_bits(),
                want
            );
            assert_eq!(
                Weights::F16Le(&f16_le[..2 * n]).dot(&x[..n]).to_bits(),
                want
            );
            let want_bf = dot(&bf[..n], &x[..n]).to_bits();
            assert_eq!(
                Weights::Bf16Le(&bf16_le[..2 * n]).dot(&x[..n]).to_bits(),
                want_bf
            );
        }
        let w = Weights::F16Le(&f16_le);
        assert_eq!(w.len(), 37);
        assert_eq!(w.get(36), Some(a[36]));
        assert_eq!(w.get(37), None);
        let (head, tail) = w.split_at(10).unwrap();
        assert_eq!((head.len(), tail.len()), (10, 27));
        assert_eq!(tail.get(0), Some(a[10]));
        assert!(w.split_at(38).is_none());
        // dense over byte rows: rows of dots plus the bias.
        let mut out = [0.0f32; 3];
        let bias = Weights::F32(&[1.0, 2.0, 3.0]);
        Weights::F32Le(&f32_le[..4 * 36]).dense(bias, &x[..12], &mut out);
        for (r, o) in out.iter().enumerate() {
            let want = dot(&a[12 * r..12 * r + 12], &x[..12]) + (r + 1) as f32;
            assert_eq!(o.to_bits(), want.to_bits());
        }
    }

    #[test]
    fn f16_and_bf16_conversions_agree_with_half_on_every_bit_pattern() {
        for h in 0..=u16::MAX {
            let b = h.to_le_bytes();
            let half = f16::from_bits(h).to_f32();
            for (got, want) in [
                (f16_masked(b), half),
                (f16_branched(b), half),
                (bf16_le(b), bf16::from_bits(h).to_f32()),
            ] {
                if want.is_nan() {
                    assert!(got.is_nan(), "{h:#06x}");
                } else {
                    assert_eq!(got.to_bits(), want.to_bits(), "{h:#06x}");
                }
            }
        }
    }

    /// The blocked GELU against the element-wise one: a sweep of 4M bit
    /// patterns (every exponent, both signs; lengths not a multiple of the
    /// block), the special values and the branch boundaries.
    #[test]
    fn blocked_gelu_has_the_bits_of_the_scalar_one() {
        let mut a = [0.0f32; 1000];
        let mut b = [0.0f32; 1000];
        let specials = [
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
            1.19,
            -1.2,
            0.84375 * core::f32::consts::SQRT_2,
            f32::from_bits(0x3180_0000) * core::f32::consts::SQRT_2,
        ];
        for chunk in 0..(1u32 << 22) / 997 + 1 {
            let n = 997;
            for (i, v) in a[..n].iter_mut().enumerate() {
                *v = f32::from_bits((chunk * 997 + i as u32).wrapping_mul(1031));
            }
            a[n..n + specials.len().min(3)].copy_from_slice(&specials[..3]);
            let m = n + 3;
            b[..m].copy_from_slice(&a[..m]);
            gelu_in_place_blocked(&mut a[..m]);
            gelu_in_place_scalar(&mut b[..m]);
            for (p, q) in a[..m].iter().zip(&b[..m]) {
                assert!(p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()));
            }
        }
        let mut a = specials;
        let mut b = specials;
        gelu_in_place_blocked(&mut a);
        gelu_in_place_scalar(&mut b);
        for (p, q) in a.iter().zip(&b) {
            assert!(p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()));
        }
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
