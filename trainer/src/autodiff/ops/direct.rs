//! A GEMM for the network's shapes that reads its operands in place.
//!
//! `matrixmultiply` copies ("packs") both operands into panels at every
//! call. For the control network's products (`[n, 64] x [64, 64]` and their
//! backward forms) the copying cost about as much as the arithmetic
//! (`benches/README.md`, "Measurements behind design choices"). Here the output's columns are the vector lanes: a tile of
//! `R` rows by `16 NV` columns of `C` lives in registers while `k` runs,
//! each step broadcasting one element of `A` per row and loading one row of
//! `B`, which stays in L1 (`B` is at most a 64 x 64 weight matrix or a
//! shard's activations). Nothing is copied unless `B` is transposed.
//!
//! Bits: on a CPU with FMA, `matrixmultiply` computes every element as one
//! fused multiply-add chain over `k` in order, starting from zero,
//! restarting every `KC` terms, and adds each chain's sum to `C` (`alpha`
//! and `beta` being 1 here; a fresh `C` is the chain, plus zero in the AVX2
//! kernel). This kernel performs exactly those operations,
//! so its results are the same bits and swapping it in changes no trained
//! model (the fixtures regenerate byte-identical). Without FMA, or for a
//! shape it does not cover, `gemm` declines and the caller uses
//! `matrixmultiply`.

use super::matmul::{View, ViewMut};

/// `matrixmultiply`'s block length along `k` for f32 (`S_KC`).
const KC: usize = 256;
/// Output columns per vector group (16 f32 lanes of AVX-512, or two AVX2 registers).
const LANES: usize = 16;

/// `C = A B + beta C` for `beta` 0 or 1, when the shapes and the CPU allow
/// it (see the module docs); returns whether it did.
pub(crate) fn gemm(a: View, b: View, beta: f32, c: &mut ViewMut) -> bool {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let covered = (beta == 0.0 || beta == 1.0)
        && c.cs == 1
        && n % LANES == 0
        && n > 0
        && m > 0
        && k > 0
        && (b.cs == 1 || b.rs == 1);
    if !covered {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let isa = if std::is_x86_feature_detected!("avx512f") {
            Isa::Avx512
        } else if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            Isa::Avx2
        } else {
            return false;
        };
        gemm_on(isa, a, b, beta, c);
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// [`gemm`] with the kernel chosen by the caller (the CPU must have it).
#[cfg(target_arch = "x86_64")]
fn gemm_on(isa: Isa, a: View, b: View, beta: f32, c: &mut ViewMut) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.cs == 1 {
        run(isa, a, b.data, b.rs, beta, c, m, k, n);
    } else {
        // B is a transposed view (a weight `W^T`): copy it row-major once.
        TRANSPOSED.with(|buf| {
            let mut buf = buf.borrow_mut();
            buf.clear();
            for kk in 0..k {
                buf.extend((0..n).map(|j| b.data[kk + j * b.cs]));
            }
            run(isa, a, &buf, n, beta, c, m, k, n);
        });
    }
}

#[cfg(target_arch = "x86_64")]
std::thread_local! {
    static TRANSPOSED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug)]
enum Isa {
    Avx512,
    Avx2,
}

/// Bounds-checked entry to the kernels: every index they form lies inside
/// the slices (checked here once).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
fn run(
    isa: Isa,
    a: View,
    b: &[f32],
    brs: usize,
    beta: f32,
    c: &mut ViewMut,
    m: usize,
    k: usize,
    n: usize,
) {
    assert!((m - 1) * a.rs + (k - 1) * a.cs < a.data.len());
    assert!((k - 1) * brs + n <= b.len());
    assert!((m - 1) * c.rs + n <= c.data.len());
    let p = Ptrs {
        a: a.data.as_ptr(),
        ars: a.rs,
        acs: a.cs,
        b: b.as_ptr(),
        brs,
        c: c.data.as_mut_ptr(),
        crs: c.rs,
    };
    for k0 in (0..k).step_by(KC) {
        let k1 = (k0 + KC).min(k);
        let add = beta != 0.0 || k0 > 0;
        // SAFETY: the CPU has the kernel's features (checked by the caller)
        // and every access is in bounds (asserted above: rows < m, columns
        // < n, k0 <= kk < k).
        unsafe {
            match isa {
                Isa::Avx512 => avx512::product(&p, m, n, k0, k1, add),
                Isa::Avx2 => avx2::product(&p, m, n, k0, k1, add),
            }
        }
    }
}

/// Raw operands: `A[i, kk] = a[i ars + kk acs]`, `B[kk, j] = b[kk brs + j]`,
/// `C[i, j] = c[i crs + j]`.
#[cfg(target_arch = "x86_64")]
struct Ptrs {
    a: *const f32,
    ars: usize,
    acs: usize,
    b: *const f32,
    brs: usize,
    c: *mut f32,
    crs: usize,
}

/// One `R x (width NV)` tile of `C` at `(i0, j0)`: the accumulators stay in
/// registers while `kk` runs over `k0..k1` (one fused chain per element,
/// as `matrixmultiply`), then are stored, or added to `C` when `add`. One
/// body for both instruction sets, given their vector type and operations.
/// `plus_zero`: a fresh store is `chain + 0` rather than `chain`, as
/// `matrixmultiply`'s AVX2 kernel computes it (`fma(1, chain, +0)`), which
/// differs only for a chain that underflowed to `-0` (its AVX-512 kernel
/// stores `1 * chain`).
#[cfg(target_arch = "x86_64")]
macro_rules! tile {
    ($vec:ty, $width:expr, $zero:ident, $load:ident, $splat:ident, $fma:ident, $add:ident, $store:ident, $plus_zero:expr) => {
        #[inline(always)]
        unsafe fn tile<const R: usize, const NV: usize>(
            p: &Ptrs,
            i0: usize,
            j0: usize,
            k0: usize,
            k1: usize,
            add: bool,
        ) {
            let mut acc: [[$vec; NV]; R] = [[$zero(); NV]; R];
            for kk in k0..k1 {
                let brow = p.b.add(kk * p.brs + j0);
                let mut bv: [$vec; NV] = [$zero(); NV];
                for (v, x) in bv.iter_mut().enumerate() {
                    *x = $load(brow.add($width * v));
                }
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let av = $splat(*p.a.add((i0 + r) * p.ars + kk * p.acs));
                    for (x, b) in acc_r.iter_mut().zip(&bv) {
                        *x = $fma(av, *b, *x);
                    }
                }
            }
            for (r, acc_r) in acc.iter().enumerate() {
                let crow = p.c.add((i0 + r) * p.crs + j0);
                for (v, x) in acc_r.iter().enumerate() {
                    let out = if add {
                        $add(*x, $load(crow.add($width * v)))
                    } else if $plus_zero {
                        $add(*x, $zero())
                    } else {
                        *x
                    };
                    $store(crow.add($width * v), out);
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Ptrs;
    use std::arch::x86_64::*;

    /// `C[:, :] (+)= sum over kk in k0..k1 of A[:, kk] B[kk, :]`, tile by tile.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn product(p: &Ptrs, m: usize, n: usize, k0: usize, k1: usize, add: bool) {
        let mut j0 = 0;
        while j0 < n {
            let left = n - j0;
            let mut i0 = 0;
            while i0 < m {
                let rows = if m - i0 >= 4 { 4 } else { 1 };
                match (rows, left) {
                    (4, 64..) => tile::<4, 4>(p, i0, j0, k0, k1, add),
                    (4, 32..) => tile::<4, 2>(p, i0, j0, k0, k1, add),
                    (4, _) => tile::<4, 1>(p, i0, j0, k0, k1, add),
                    (_, 64..) => tile::<1, 4>(p, i0, j0, k0, k1, add),
                    (_, 32..) => tile::<1, 2>(p, i0, j0, k0, k1, add),
                    _ => tile::<1, 1>(p, i0, j0, k0, k1, add),
                }
                i0 += rows;
            }
            j0 += if left >= 64 {
                64
            } else if left >= 32 {
                32
            } else {
                16
            };
        }
    }

    tile!(
        __m512,
        16,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        _mm512_add_ps,
        _mm512_storeu_ps,
        false
    );
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Ptrs;
    use std::arch::x86_64::*;

    /// As the AVX-512 `product`, with tiles of up to 6 rows by 16 columns
    /// (12 accumulators and 2 rows of `B` in the 16 registers).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn product(p: &Ptrs, m: usize, n: usize, k0: usize, k1: usize, add: bool) {
        for j0 in (0..n).step_by(16) {
            let mut i0 = 0;
            while i0 < m {
                if m - i0 >= 6 {
                    tile::<6, 2>(p, i0, j0, k0, k1, add);
                    i0 += 6;
                } else {
                    tile::<1, 2>(p, i0, j0, k0, k1, add);
                    i0 += 1;
                }
            }
        }
    }

    tile!(
        __m256,
        8,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps,
        _mm256_add_ps,
        _mm256_storeu_ps,
        true
    );
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::autodiff::check::{rand_tensor, test_rng};

    /// Both kernels (where the CPU has them) give `matrixmultiply`'s bits,
    /// on the network's shapes and their edges: rows not a multiple of the
    /// tile, 16 to 128 columns, `k` past one 256-term block, `beta` 0 and 1,
    /// `A` and `B` transposed.
    #[test]
    fn kernels_give_matrixmultiplys_bits() {
        let mut isas = Vec::new();
        if std::is_x86_feature_detected!("avx512f") {
            isas.push(Isa::Avx512);
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            isas.push(Isa::Avx2);
        }
        assert!(!isas.is_empty(), "this test needs an x86-64 CPU with FMA");
        let mut rng = test_rng(3);
        for (m, k, n) in [
            (256, 64, 64),
            (7, 64, 32),
            (2, 300, 64),
            (13, 2, 48),
            (64, 513, 128),
            (1, 128, 16),
        ] {
            for (ta, tb, beta) in [
                (false, false, 0.0),
                (false, true, 1.0),
                (true, false, 1.0),
                (true, true, 0.0),
            ] {
                let at = if ta {
                    rand_tensor(&mut rng, k, m)
                } else {
                    rand_tensor(&mut rng, m, k)
                };
                let bt = if tb {
                    rand_tensor(&mut rng, n, k)
                } else {
                    rand_tensor(&mut rng, k, n)
                };
                let c0 = rand_tensor(&mut rng, m, n);
                let a = View::of(&at, ta);
                let b = View::of(&bt, tb);
                let mut want = c0.data.clone();
                super::super::matmul::packed(
                    1.0,
                    a,
                    b,
                    beta,
                    ViewMut::of_slice(&mut want, m, n, false),
                );
                for &isa in &isas {
                    let mut got = c0.data.clone();
                    gemm_on(
                        isa,
                        a,
                        b,
                        beta,
                        &mut ViewMut::of_slice(&mut got, m, n, false),
                    );
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{isa:?} {m}x{k}x{n} ta {ta} tb {tb} beta {beta}"
                    );
                }
            }
        }
    }
}
