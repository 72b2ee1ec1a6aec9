//! Sliced Wasserstein-2 distance between two equally weighted sample sets.
//!
//! For sample sets `a` (`n x d`) and `b` (`m x d`), each point of weight
//! `1/n` (resp. `1/m`),
//!
//! ```text
//! SW2(a, b) = sqrt( E_theta W2^2(theta#a, theta#b) ),   theta ~ U(S^{d-1}),
//! ```
//!
//! where `theta#a` is the 1-d empirical measure of the projections
//! `<theta, a_i>`. The expectation over directions is a Monte-Carlo average
//! over `L` unit directions (standard normal vectors from the runtime's
//! `normal::stream(seed, k)` for direction `k`, normalised), so the value is
//! deterministic for a given seed; direction `k` does not depend on `L`.
//!
//! Each 1-d `W2^2` is exact: with the empirical quantile functions
//! `F_a^{-1}(u) = a_(i)` for `u in (i/n, (i+1)/n]` (sorted projections),
//!
//! ```text
//! W2^2 = int_0^1 |F_a^{-1}(u) - F_b^{-1}(u)|^2 du,
//! ```
//!
//! computed by merging the two step functions' breakpoints `i/n` and `j/m`
//! (in integer units of `1/(n m)`, so no breakpoint is lost to rounding).
//! For `n = m` this is the mean squared difference of the sorted values.
//! Cost: `O(L (n + m) (d + log(n + m)))`; directions run in parallel and are
//! summed in a fixed order, so the result does not depend on the thread count.

use diffctl_runtime::normal::{fill_normals, stream};

/// Default number of projection directions `L`.
pub const DEFAULT_PROJECTIONS: usize = 256;

/// `L` unit directions in `R^d` (`L x d`, row-major): direction `k` is the
/// normalised standard normal vector drawn from `stream(seed, k)`.
pub fn directions(d: usize, l: usize, seed: u64) -> Vec<f64> {
    let mut out = vec![0.0f64; l * d];
    let mut z = vec![0.0f32; d];
    for (k, theta) in out.chunks_exact_mut(d.max(1)).enumerate().take(l) {
        let mut rng = stream(seed, k as u64);
        // A zero vector has probability 0 (Box-Muller radii are positive);
        // redraw from the same stream if it ever happens.
        loop {
            fill_normals(&mut rng, &mut z);
            let norm = z.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
            if norm > 0.0 {
                for (t, &v) in theta.iter_mut().zip(&z) {
                    *t = v as f64 / norm;
                }
                break;
            }
        }
    }
    out
}

/// Exact `W2^2` between the 1-d empirical measures of `a` and `b`, both
/// sorted ascending and non-empty (quantile coupling, see the module docs).
pub fn w2_sq_sorted(a: &[f64], b: &[f64]) -> f64 {
    let (n, m) = (a.len() as u128, b.len() as u128);
    assert!(n > 0 && m > 0, "W2 of an empty sample set");
    if n == m {
        let s: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
        return s / a.len() as f64;
    }
    // a_i covers [i m, (i+1) m) and b_j covers [j n, (j+1) n), in units of 1/(n m).
    let (mut i, mut j, mut pos) = (0usize, 0usize, 0u128);
    let mut s = 0.0f64;
    while i < a.len() && j < b.len() {
        let (end_a, end_b) = ((i as u128 + 1) * m, (j as u128 + 1) * n);
        let next = end_a.min(end_b);
        let diff = a[i] - b[j];
        s += (next - pos) as f64 * diff * diff;
        pos = next;
        if next == end_a {
            i += 1;
        }
        if next == end_b {
            j += 1;
        }
    }
    s / (n * m) as f64
}

/// Exact `W2^2` between the 1-d empirical measures of `a` and `b` (any order).
pub fn w2_sq_1d(a: &[f64], b: &[f64]) -> f64 {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_unstable_by(f64::total_cmp);
    b.sort_unstable_by(f64::total_cmp);
    w2_sq_sorted(&a, &b)
}

/// `SW2^2`: the mean over `l` directions (seed `seed`) of the exact 1-d
/// `W2^2` between the projections of `a` (`n x d`) and `b` (`m x d`),
/// row-major. Empty sets, `d = 0` or `l = 0` give NaN; non-finite samples
/// give a non-finite result (never hidden).
pub fn sliced_w2_sq(a: &[f32], b: &[f32], d: usize, l: usize, seed: u64) -> f64 {
    if d == 0 || l == 0 || a.is_empty() || b.is_empty() {
        return f64::NAN;
    }
    assert!(
        a.len().is_multiple_of(d) && b.len().is_multiple_of(d),
        "sample sets must have rows of d = {d}"
    );
    let thetas = directions(d, l, seed);
    let threads = crate::parallel::default_threads().min(l);
    let per = l.div_ceil(threads);
    let mut values = vec![0.0f64; l];
    std::thread::scope(|s| {
        for (chunk, out) in thetas.chunks(per * d).zip(values.chunks_mut(per)) {
            s.spawn(move || {
                let (mut pa, mut pb) = (Vec::new(), Vec::new());
                for (theta, v) in chunk.chunks_exact(d).zip(out.iter_mut()) {
                    project_sorted(a, theta, &mut pa);
                    project_sorted(b, theta, &mut pb);
                    *v = w2_sq_sorted(&pa, &pb);
                }
            });
        }
    });
    values.iter().sum::<f64>() / l as f64
}

/// `SW2 = sqrt(SW2^2)`, see [`sliced_w2_sq`].
pub fn sliced_w2(a: &[f32], b: &[f32], d: usize, l: usize, seed: u64) -> f64 {
    sliced_w2_sq(a, b, d, l, seed).sqrt()
}

/// Sorted projections `<theta, x_i>` of the rows of `xs` into `out`.
fn project_sorted(xs: &[f32], theta: &[f64], out: &mut Vec<f64>) {
    out.clear();
    out.extend(
        xs.chunks_exact(theta.len())
            .map(|x| x.iter().zip(theta).map(|(&v, t)| v as f64 * t).sum::<f64>()),
    );
    out.sort_unstable_by(f64::total_cmp);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Toy;

    fn gaussian(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut xs = vec![0.0f32; n * d];
        for (i, x) in xs.chunks_exact_mut(d).enumerate() {
            fill_normals(&mut stream(seed, i as u64), x);
        }
        xs
    }

    #[test]
    fn identical_sets_are_at_distance_zero() {
        let a = gaussian(500, 3, 1);
        assert_eq!(sliced_w2(&a, &a, 3, DEFAULT_PROJECTIONS, 7), 0.0);
        // The same multiset in another order too.
        let rev: Vec<f32> = a.chunks_exact(3).rev().flatten().copied().collect();
        assert_eq!(sliced_w2(&a, &rev, 3, DEFAULT_PROJECTIONS, 7), 0.0);
    }

    #[test]
    fn one_dimensional_values_by_hand() {
        // n = m: sorted pairs (0,1), (2,1), (5,1): (1 + 1 + 16) / 3 = 6.
        assert!((w2_sq_1d(&[5.0, 0.0, 2.0], &[1.0, 1.0, 1.0]) - 6.0).abs() < 1e-15);
        // n = 2, m = 3: F_a^{-1} = 0 on (0,1/2], 1 on (1/2,1]; F_b^{-1} = 0, 1, 2
        // on thirds. |diff|^2 = 1 on (1/3,1/2] and on (2/3,1]: 1/6 + 1/3 = 1/2.
        assert!((w2_sq_1d(&[1.0, 0.0], &[2.0, 0.0, 1.0]) - 0.5).abs() < 1e-15);
        assert!((w2_sq_1d(&[2.0, 0.0, 1.0], &[1.0, 0.0]) - 0.5).abs() < 1e-15);
        // Replicating every point k times leaves the measure unchanged.
        let a = [0.3, -1.2, 2.5, 0.0];
        let b = [1.0, 4.0, -2.0];
        let b3: Vec<f64> = b.iter().flat_map(|&v| [v; 3]).collect();
        let a3: Vec<f64> = a.iter().flat_map(|&v| [v; 3]).collect();
        let (x, y) = (w2_sq_1d(&a, &b), w2_sq_1d(&a3, &b3));
        assert!((x - y).abs() < 1e-12 && (x - w2_sq_1d(&a, &b3)).abs() < 1e-12);
        // In d = 1 the directions are +-1 and W2 is reflection invariant:
        // SW2 = W2 = sqrt(1/2).
        let sw = sliced_w2(&[1.0, 0.0], &[2.0, 0.0, 1.0], 1, 16, 3);
        assert!((sw - 0.5f64.sqrt()).abs() < 1e-15, "{sw}");
    }

    /// b = a + mu projects to a pure shift by c = <theta, mu>, whose exact
    /// W2^2 is c^2; so SW2^2 = mean_theta <theta, mu>^2 exactly, and for theta
    /// uniform on the sphere E <theta, mu>^2 = |mu|^2 / d. Monte-Carlo error:
    /// <theta, mu>^2 ~ |mu|^2 theta_1^2, theta_1^2 ~ Beta(1/2, (d-1)/2) with
    /// variance 2 (d-1) / (d^2 (d+2)), so the relative standard error of the
    /// L-direction mean is sqrt(2 (d-1) / ((d+2) L)).
    #[test]
    fn a_pure_shift_gives_its_norm_squared_over_d() {
        let (n, d) = (300, 5);
        let a = gaussian(n, d, 11);
        let mu = [1.0f32, -2.0, 0.5, 3.0, 0.0];
        let mu_sq: f64 = mu.iter().map(|&v| (v as f64).powi(2)).sum();
        let b: Vec<f32> = a
            .chunks_exact(d)
            .flat_map(|x| x.iter().zip(&mu).map(|(v, m)| v + m))
            .collect();
        for l in [DEFAULT_PROJECTIONS, 4096] {
            let sw2 = sliced_w2_sq(&a, &b, d, l, 5);
            // Exact part: the mean of <theta, mu>^2 over the same directions
            // (up to f32 rounding of a + mu).
            let thetas = directions(d, l, 5);
            let exact: f64 = thetas
                .chunks_exact(d)
                .map(|t| {
                    t.iter()
                        .zip(&mu)
                        .map(|(t, &m)| t * m as f64)
                        .sum::<f64>()
                        .powi(2)
                })
                .sum::<f64>()
                / l as f64;
            assert!(
                (sw2 - exact).abs() < 1e-5 * exact,
                "L = {l}: {sw2} vs {exact}"
            );
            // Monte-Carlo part: within 4 standard errors of |mu|^2 / d.
            let rel_se = (2.0 * (d - 1) as f64 / ((d + 2) as f64 * l as f64)).sqrt();
            let expected = mu_sq / d as f64;
            assert!(
                (sw2 - expected).abs() < 4.0 * rel_se * expected,
                "L = {l}: SW2^2 {sw2} vs |mu|^2/d = {expected} (rel. se {rel_se:.4})"
            );
        }
    }

    /// Two independent samples of one distribution: SW2 is small and
    /// shrinks with n (SW2^2 ~ 1/n for this light-tailed target). Measured
    /// on gmm (scale sqrt(E|x|^2) = 5.8): 0.377 at n = m = 1000, 0.135 at
    /// n = m = 16000, 0.311 at n = 1000, m = 16000.
    #[test]
    fn independent_samples_of_one_target_are_close() {
        let gmm = Toy::by_name("gmm").unwrap();
        let d = gmm.dim();
        let sw = |n: usize, m: usize| {
            let a = gmm.generate(n, 1).unwrap();
            let b = gmm.generate(m, 2).unwrap();
            sliced_w2(&a.xs, &b.xs, d, DEFAULT_PROJECTIONS, 9)
        };
        let (small, large, mixed) = (sw(1000, 1000), sw(16_000, 16_000), sw(1000, 16_000));
        // The target's own scale: sqrt(E|x|^2) = 5.8.
        assert!(small < 0.5, "n = 1000: {small}");
        assert!(
            large < 0.5 * small,
            "n = 16000: {large} vs n = 1000: {small}"
        );
        assert!(mixed < small, "1000 vs 16000: {mixed}");
    }

    #[test]
    fn degenerate_inputs_give_nan() {
        assert!(sliced_w2(&[], &[1.0], 1, 8, 0).is_nan());
        assert!(sliced_w2(&[1.0], &[1.0], 1, 0, 0).is_nan());
        let nan = sliced_w2(&[f32::NAN, 0.0], &[1.0, 0.0], 1, 8, 0);
        assert!(!nan.is_finite());
    }
}
