//! Gaussian mixtures: the `gmm` and `gmm25` presets ([`GaussianMixture`], parameters in
//! static tables) and mixtures whose parameters a weights file stores
//! ([`StoredMixture`], any dimension, diagonal or full covariances, read from
//! the file's bytes without copying). Density, score and ground truth.

use core::fmt;

use super::gaussian::diag_log_density;
use super::{normal_density, GroundTruth, Target, HALF_LOG_TAU};
use crate::normal::{normal_pair, uniform_f64, PathRng};

/// Most logarithms (`K` weights and `K d` standard deviations) a batched
/// evaluation caches on the stack (512 bytes: gmm needs 27, gmm25 75); a
/// larger mixture takes them per point, with the same results.
const LOG_CACHE: usize = 128;

/// The logarithms in a component's log-density: `log w_i - log sum w` and
/// `log s_ij`, computed per point or cached for a batch.
enum Logs<'c> {
    Direct { log_total_weight: f32 },
    Cached { weight: &'c [f32], std: &'c [f32] },
}

/// Mixture of diagonal Gaussians with weights `w_i` (normalised internally),
/// means `[n, d]` and stds `[n, d]`, row-major.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GaussianMixture<'a> {
    pub weights: &'a [f32],
    pub means: &'a [f32],
    pub stds: &'a [f32],
}

impl<'a> GaussianMixture<'a> {
    pub fn new(weights: &'a [f32], means: &'a [f32], stds: &'a [f32]) -> Self {
        assert!(!weights.is_empty(), "a mixture needs a component");
        assert_eq!(means.len() % weights.len(), 0, "means must be [n, d]");
        assert_eq!(
            means.len(),
            stds.len(),
            "means and stds must both be [n, d]"
        );
        Self {
            weights,
            means,
            stds,
        }
    }

    /// Number of components.
    pub fn components(&self) -> usize {
        self.weights.len()
    }

    /// `log w_i + log N(x; m_i, s_i^2)` of component `i`, with normalised weights.
    fn component_log_density(&self, i: usize, x: &[f32], logs: &Logs) -> f32 {
        let d = self.dim();
        let (mean, std) = (
            &self.means[i * d..(i + 1) * d],
            &self.stds[i * d..(i + 1) * d],
        );
        match logs {
            Logs::Direct { log_total_weight } => {
                libm::logf(self.weights[i]) - log_total_weight
                    + diag_log_density(x, mean, std, |_, s| libm::logf(s))
            }
            Logs::Cached {
                weight,
                std: log_std,
            } => weight[i] + diag_log_density(x, mean, std, |j, _| log_std[i * d + j]),
        }
    }

    fn direct_logs(&self) -> Logs<'static> {
        Logs::Direct {
            log_total_weight: libm::logf(self.weights.iter().sum()),
        }
    }

    /// Runs `f` over `rows` points with the mixture's logarithms cached on
    /// the stack when that saves work (more than one point) and they fit,
    /// computed per call otherwise: the same values either way. A single
    /// point (a device sampling at batch 1) never pays the cache's stack.
    fn with_logs<R>(&self, rows: usize, f: impl FnOnce(&Logs) -> R) -> R {
        if rows <= 1 || self.components() + self.stds.len() > LOG_CACHE {
            f(&self.direct_logs())
        } else {
            self.with_cached_logs(f)
        }
    }

    #[inline(never)]
    fn with_cached_logs<R>(&self, f: impl FnOnce(&Logs) -> R) -> R {
        let Logs::Direct { log_total_weight } = self.direct_logs() else {
            unreachable!()
        };
        let mut cache = [0.0f32; LOG_CACHE];
        let (weight, std) = cache.split_at_mut(self.components());
        for (l, &w) in weight.iter_mut().zip(self.weights) {
            *l = libm::logf(w) - log_total_weight;
        }
        for (l, &s) in std.iter_mut().zip(self.stds) {
            *l = libm::logf(s);
        }
        f(&Logs::Cached {
            weight,
            std: &std[..self.stds.len()],
        })
    }

    fn score_with(&self, x: &[f32], out: &mut [f32], logs: &Logs) {
        let d = self.dim();
        responsibility_sum(
            self.components(),
            out,
            |i| self.component_log_density(i, x, logs),
            |i, weight, out| {
                let (m, s) = (
                    &self.means[i * d..(i + 1) * d],
                    &self.stds[i * d..(i + 1) * d],
                );
                for j in 0..d {
                    out[j] += weight * (-(x[j] - m[j]) / (s[j] * s[j]));
                }
            },
        );
    }

    fn log_density_with(&self, x: &[f32], logs: &Logs) -> f32 {
        log_sum_exp((0..self.components()).map(|i| self.component_log_density(i, x, logs)))
    }

    /// Index of the component with the largest responsibility at `x`.
    pub fn nearest_component(&self, x: &[f32]) -> usize {
        let logs = self.direct_logs();
        argmax((0..self.components()).map(|i| self.component_log_density(i, x, &logs)))
    }
}

/// Index of the largest value (the first on ties).
fn argmax(values: impl Iterator<Item = f32>) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, l) in values.enumerate() {
        if l > best.1 {
            best = (i, l);
        }
    }
    best.0
}

/// `log sum_i exp(l_i)` in one streaming pass (running maximum).
fn log_sum_exp(values: impl Iterator<Item = f32>) -> f32 {
    let (mut max, mut sum) = (f32::NEG_INFINITY, 0.0f32);
    for l in values {
        if l > max {
            sum = sum * libm::expf(max - l) + 1.0;
            max = l;
        } else {
            sum += libm::expf(l - max);
        }
    }
    max + libm::logf(sum)
}

/// `sum_i r_i(x) g_i(x)` with responsibilities `r_i = softmax(l_i)`, in one
/// pass with the running-maximum rescaling: `component(i, out, weight)`
/// returns `l_i` and adds `weight * g_i(x)` to `out` when called with a
/// weight (it is first called without, to get `l_i`).
fn responsibility_sum(
    count: usize,
    out: &mut [f32],
    mut log_density: impl FnMut(usize) -> f32,
    mut add_score: impl FnMut(usize, f32, &mut [f32]),
) {
    let (mut max, mut sum) = (f32::NEG_INFINITY, 0.0f32);
    out.fill(0.0);
    for i in 0..count {
        let l = log_density(i);
        let weight = if l > max {
            let rescale = libm::expf(max - l);
            sum *= rescale;
            out.iter_mut().for_each(|o| *o *= rescale);
            max = l;
            1.0
        } else {
            libm::expf(l - max)
        };
        sum += weight;
        add_score(i, weight, out);
    }
    out.iter_mut().for_each(|o| *o /= sum);
}

impl Target for GaussianMixture<'_> {
    fn dim(&self) -> usize {
        self.means.len() / self.weights.len()
    }
    fn log_density(&self, x: &[f32]) -> f32 {
        self.log_density_with(x, &self.direct_logs())
    }
    /// `sum_i r_i(x) (-(x - m_i) / s_i^2)` with responsibilities `r_i`.
    fn score(&self, x: &[f32], out: &mut [f32]) {
        self.score_with(x, out, &self.direct_logs())
    }
    fn log_density_batch(&self, xs: &[f32], out: &mut [f32]) {
        let d = self.dim();
        self.with_logs(xs.len() / d, |logs| {
            for (x, o) in xs.chunks_exact(d).zip(out.iter_mut()) {
                *o = self.log_density_with(x, logs);
            }
        })
    }
    fn score_batch(&self, xs: &[f32], out: &mut [f32]) {
        let d = self.dim();
        self.with_logs(xs.len() / d, |logs| {
            for (x, o) in xs.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
                self.score_with(x, o, logs);
            }
        })
    }
    fn log_z(&self) -> Option<f64> {
        Some(0.0)
    }
}

/// What the ground truth of a mixture needs of its parameters.
trait Components: Target {
    fn count(&self) -> usize;
    /// Weight of component `i` as stored (not normalised).
    fn raw_weight(&self, i: usize) -> f64;
    fn mean(&self, i: usize, j: usize) -> f32;
    /// Standard deviation of coordinate `j` under component `i`.
    fn marginal_std(&self, i: usize, j: usize) -> f64;
    /// `x = m_i + L_i z`, `z` standard normal (one `normal_pair` per coordinate).
    fn sample_component(&self, i: usize, rng: &mut PathRng, x: &mut [f32]);
    /// The component of largest responsibility at `x`.
    fn nearest(&self, x: &[f32]) -> usize;

    fn total_weight(&self) -> f64 {
        (0..self.count()).map(|i| self.raw_weight(i)).sum()
    }
}

/// `E|X|` for `X ~ N(mu, s^2)`.
fn folded_normal_mean(mu: f64, s: f64) -> f64 {
    let z = mu / s;
    s * libm::sqrt(2.0 / core::f64::consts::PI) * libm::exp(-0.5 * z * z)
        + mu * libm::erf(z / core::f64::consts::SQRT_2)
}

/// The ground truth every mixture shares (see [`Components`]).
macro_rules! mixture_ground_truth {
    ($ty:ty) => {
        impl GroundTruth for $ty {
            fn moments(&self) -> Option<(f64, f64)> {
                let (d, total) = (self.dim(), self.total_weight());
                let (mut sq, mut abs) = (0.0, 0.0);
                for i in 0..self.count() {
                    let w = self.raw_weight(i) / total;
                    for j in 0..d {
                        let (mu, s) = (self.mean(i, j) as f64, self.marginal_std(i, j));
                        sq += w * (mu * mu + s * s);
                        abs += w * folded_normal_mean(mu, s);
                    }
                }
                Some((sq, abs))
            }
            fn mode_count(&self) -> usize {
                self.count()
            }
            fn mode_of(&self, x: &[f32]) -> usize {
                self.nearest(x)
            }
            fn mode_weight(&self, i: usize) -> f64 {
                self.raw_weight(i) / self.total_weight()
            }
            /// The component's mean, `(m_1,...,m_d)`.
            fn write_mode_label(&self, i: usize, out: &mut dyn fmt::Write) -> fmt::Result {
                out.write_char('(')?;
                for j in 0..self.dim() {
                    if j > 0 {
                        out.write_char(',')?;
                    }
                    write!(out, "{}", self.mean(i, j))?;
                }
                out.write_char(')')
            }
            /// A component by weight, then its Gaussian.
            fn sample_exact(&self, rng: &mut PathRng, x: &mut [f32]) -> bool {
                let mut u = uniform_f64(rng) * self.total_weight();
                let mut k = self.count() - 1;
                for i in 0..self.count() {
                    let w = self.raw_weight(i);
                    if u < w {
                        k = i;
                        break;
                    }
                    u -= w;
                }
                self.sample_component(k, rng, x);
                true
            }
            fn marginal_density(&self, j: usize, x: f64) -> Option<f64> {
                let total = self.total_weight();
                Some(
                    (0..self.count())
                        .map(|i| {
                            let (mu, s) = (self.mean(i, j) as f64, self.marginal_std(i, j));
                            self.raw_weight(i) / total * normal_density(x, mu, s)
                        })
                        .sum(),
                )
            }
            fn marginal_range(&self, j: usize) -> Option<(f64, f64)> {
                Some(
                    (0..self.count()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), i| {
                        let (mu, s) = (self.mean(i, j) as f64, self.marginal_std(i, j));
                        (lo.min(mu - 3.0 * s), hi.max(mu + 3.0 * s))
                    }),
                )
            }
        }
    };
}

impl Components for GaussianMixture<'_> {
    fn count(&self) -> usize {
        self.components()
    }
    fn raw_weight(&self, i: usize) -> f64 {
        self.weights[i] as f64
    }
    fn mean(&self, i: usize, j: usize) -> f32 {
        self.means[i * self.dim() + j]
    }
    fn marginal_std(&self, i: usize, j: usize) -> f64 {
        self.stds[i * self.dim() + j] as f64
    }
    fn sample_component(&self, i: usize, rng: &mut PathRng, x: &mut [f32]) {
        let d = x.len();
        for (j, xj) in x.iter_mut().enumerate() {
            let (mu, s) = (self.means[i * d + j] as f64, self.stds[i * d + j] as f64);
            *xj = (mu + s * normal_pair(rng).0 as f64) as f32;
        }
    }
    fn nearest(&self, x: &[f32]) -> usize {
        self.nearest_component(x)
    }
}

mixture_ground_truth!(GaussianMixture<'_>);

/// A Gaussian mixture `rho(x) = sum_i w_i N(x; m_i, C_i)` stored as little
/// endian `f32`s (the block a weights file keeps after the network's
/// parameters), so `Z = sum_i w_i`. Per component:
///
/// * diagonal: `w, m[d], s[d]` with `C = diag(s^2)`;
/// * full: `w, log det C, m[d], L[d(d+1)/2], P[d(d+1)/2]` with `C = L L^T`
///   (`L` lower triangular, packed by rows) and `P = C^-1` (lower half,
///   packed by rows). `P` gives the density and score without scratch
///   memory, `L` the exact sampler.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StoredMixture<'a> {
    d: usize,
    count: usize,
    full: bool,
    bytes: &'a [u8],
}

/// Index of `(j, k)`, `k <= j`, in a lower triangle packed by rows.
const fn tri(j: usize, k: usize) -> usize {
    j * (j + 1) / 2 + k
}

impl<'a> StoredMixture<'a> {
    /// `f32`s per component (see the type's docs).
    pub const fn floats_per_component(d: usize, full: bool) -> usize {
        if full {
            2 + d + d * (d + 1)
        } else {
            1 + 2 * d
        }
    }

    /// Bytes of the parameters of `count` components, or `None` if that
    /// overflows `usize`.
    pub fn byte_len(d: usize, count: usize, full: bool) -> Option<usize> {
        let per = if full {
            d.checked_mul(d.checked_add(1)?)?.checked_add(2 + d)?
        } else {
            d.checked_mul(2)?.checked_add(1)?
        };
        per.checked_mul(count)?.checked_mul(4)
    }

    /// Reads the parameters from `bytes`, checking the length, that every
    /// value is finite, and that weights, standard deviations and the
    /// diagonal of every `L` are positive.
    pub fn new(d: usize, count: usize, full: bool, bytes: &'a [u8]) -> Result<Self, &'static str> {
        if d == 0 || count == 0 {
            return Err("a mixture needs a dimension and a component");
        }
        if Self::byte_len(d, count, full) != Some(bytes.len()) {
            return Err("mixture parameter block has the wrong length");
        }
        let m = Self {
            d,
            count,
            full,
            bytes,
        };
        for k in 0..bytes.len() / 4 {
            if !m.at(k).is_finite() {
                return Err("mixture parameters must be finite");
            }
        }
        for i in 0..count {
            if m.weight(i) <= 0.0 {
                return Err("mixture weights must be positive");
            }
            for j in 0..d {
                let s = if full { m.chol(i, j, j) } else { m.std(i, j) };
                if s <= 0.0 {
                    return Err("mixture standard deviations (Cholesky diagonal) must be positive");
                }
            }
        }
        Ok(m)
    }

    /// Number of components.
    pub fn components(&self) -> usize {
        self.count
    }

    /// Whether the covariances are full (else diagonal).
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// `f32` number `k` of the block.
    fn at(&self, k: usize) -> f32 {
        let b = &self.bytes[4 * k..4 * k + 4];
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    fn base(&self, i: usize) -> usize {
        i * Self::floats_per_component(self.d, self.full)
    }

    /// Weight `w_i` as stored.
    pub fn weight(&self, i: usize) -> f32 {
        self.at(self.base(i))
    }

    fn mean_at(&self, i: usize, j: usize) -> f32 {
        self.at(self.base(i) + if self.full { 2 } else { 1 } + j)
    }

    /// Diagonal kind: `s_ij`.
    fn std(&self, i: usize, j: usize) -> f32 {
        self.at(self.base(i) + 1 + self.d + j)
    }

    /// Full kind: `L_jk` (`k <= j`).
    fn chol(&self, i: usize, j: usize, k: usize) -> f32 {
        self.at(self.base(i) + 2 + self.d + tri(j, k))
    }

    /// Full kind: `P_jk` for any `j, k` (symmetric).
    fn precision(&self, i: usize, j: usize, k: usize) -> f32 {
        let (j, k) = if k <= j { (j, k) } else { (k, j) };
        let n = self.d * (self.d + 1) / 2;
        self.at(self.base(i) + 2 + self.d + n + tri(j, k))
    }

    /// Full kind: `(P (x - m_i))_j`.
    fn precision_times(&self, i: usize, x: &[f32], j: usize) -> f32 {
        let mut acc = 0.0f32;
        for (k, &xk) in x.iter().enumerate() {
            acc += self.precision(i, j, k) * (xk - self.mean_at(i, k));
        }
        acc
    }

    /// `log w_i + log N(x; m_i, C_i)`.
    fn component_log_density(&self, i: usize, x: &[f32]) -> f32 {
        let d = self.d;
        let mut acc = libm::logf(self.weight(i));
        if self.full {
            let mut quad = 0.0f32;
            for j in 0..d {
                quad += (x[j] - self.mean_at(i, j)) * self.precision_times(i, x, j);
            }
            let log_det = self.at(self.base(i) + 1);
            acc += -0.5 * quad - 0.5 * log_det - d as f32 * HALF_LOG_TAU;
        } else {
            for (j, &xj) in x.iter().enumerate() {
                let s = self.std(i, j);
                let z = (xj - self.mean_at(i, j)) / s;
                acc += -0.5 * z * z - libm::logf(s) - HALF_LOG_TAU;
            }
        }
        acc
    }
}

impl Target for StoredMixture<'_> {
    fn dim(&self) -> usize {
        self.d
    }
    fn log_density(&self, x: &[f32]) -> f32 {
        log_sum_exp((0..self.count).map(|i| self.component_log_density(i, x)))
    }
    /// `sum_i r_i(x) (-P_i (x - m_i))` with responsibilities `r_i`.
    fn score(&self, x: &[f32], out: &mut [f32]) {
        responsibility_sum(
            self.count,
            out,
            |i| self.component_log_density(i, x),
            |i, weight, out| {
                for (j, o) in out.iter_mut().enumerate() {
                    let g = if self.full {
                        -self.precision_times(i, x, j)
                    } else {
                        let s = self.std(i, j);
                        -(x[j] - self.mean_at(i, j)) / (s * s)
                    };
                    *o += weight * g;
                }
            },
        );
    }
    /// `log sum_i w_i`.
    fn log_z(&self) -> Option<f64> {
        Some(libm::log(self.total_weight()))
    }
}

impl Components for StoredMixture<'_> {
    fn count(&self) -> usize {
        self.count
    }
    fn raw_weight(&self, i: usize) -> f64 {
        self.weight(i) as f64
    }
    fn mean(&self, i: usize, j: usize) -> f32 {
        self.mean_at(i, j)
    }
    fn marginal_std(&self, i: usize, j: usize) -> f64 {
        if self.full {
            let var: f64 = (0..=j)
                .map(|k| {
                    let l = self.chol(i, j, k) as f64;
                    l * l
                })
                .sum();
            libm::sqrt(var)
        } else {
            self.std(i, j) as f64
        }
    }
    /// `z` into `x`, then `x = m + L z` in place from the last row up (row
    /// `j` reads `z_k` for `k <= j` only, which are not yet overwritten).
    fn sample_component(&self, i: usize, rng: &mut PathRng, x: &mut [f32]) {
        for xj in x.iter_mut() {
            *xj = normal_pair(rng).0;
        }
        for j in (0..self.d).rev() {
            let v = if self.full {
                (0..=j)
                    .map(|k| self.chol(i, j, k) as f64 * x[k] as f64)
                    .sum()
            } else {
                self.std(i, j) as f64 * x[j] as f64
            };
            x[j] = (self.mean_at(i, j) as f64 + v) as f32;
        }
    }
    fn nearest(&self, x: &[f32]) -> usize {
        argmax((0..self.count).map(|i| self.component_log_density(i, x)))
    }
}

mixture_ground_truth!(StoredMixture<'_>);

/// Encoding the parameter block of a [`StoredMixture`].
#[cfg(feature = "alloc")]
pub mod encode {
    use alloc::format;
    use alloc::string::String;
    use alloc::vec::Vec;

    /// The covariances of a mixture's components.
    #[derive(Clone, Debug, PartialEq)]
    pub enum Covariances {
        /// Standard deviations `[count][d]`.
        Diagonal(Vec<Vec<f64>>),
        /// Full symmetric positive definite matrices `[count][d][d]`.
        Full(Vec<Vec<Vec<f64>>>),
    }

    /// Cholesky factor `L` (lower, `C = L L^T`) of a symmetric matrix, in
    /// f64; `None` if it is not positive definite.
    pub fn cholesky(c: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
        let d = c.len();
        let mut l = alloc::vec![alloc::vec![0.0f64; d]; d];
        for j in 0..d {
            for k in 0..=j {
                let dot: f64 = l[j][..k].iter().zip(&l[k][..k]).map(|(a, b)| a * b).sum();
                let s = c[j][k] - dot;
                if j == k {
                    if s.is_nan() || s <= 0.0 {
                        return None;
                    }
                    l[j][j] = libm::sqrt(s);
                } else {
                    l[j][k] = s / l[k][k];
                }
            }
        }
        Some(l)
    }

    /// `C^-1` from `L` (`C = L L^T`): columns of `L^-1` by forward
    /// substitution, then `P = L^-T L^-1`.
    fn inverse_from_cholesky(l: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let d = l.len();
        let mut inv = alloc::vec![alloc::vec![0.0f64; d]; d]; // L^-1, lower
        #[allow(clippy::needless_range_loop)] // a column sweep reads rows above
        for col in 0..d {
            for j in col..d {
                let mut s = if j == col { 1.0 } else { 0.0 };
                for k in col..j {
                    s -= l[j][k] * inv[k][col];
                }
                inv[j][col] = s / l[j][j];
            }
        }
        let mut p = alloc::vec![alloc::vec![0.0f64; d]; d];
        for j in 0..d {
            for k in 0..d {
                p[j][k] = (j.max(k)..d).map(|m| inv[m][j] * inv[m][k]).sum();
            }
        }
        p
    }

    /// The block of a mixture with `weights` (positive), `means` `[count][d]`
    /// and `covs`. Errors name the component and what is wrong.
    pub fn mixture_block(
        weights: &[f64],
        means: &[Vec<f64>],
        covs: &Covariances,
    ) -> Result<Vec<u8>, String> {
        let count = weights.len();
        let d = means.first().map_or(0, |m| m.len());
        let mut out = Vec::new();
        let mut push = |v: f64| out.extend_from_slice(&(v as f32).to_le_bytes());
        for i in 0..count {
            push(weights[i]);
            match covs {
                Covariances::Diagonal(stds) => {
                    means[i].iter().for_each(|&m| push(m));
                    stds[i].iter().for_each(|&s| push(s));
                }
                Covariances::Full(cs) => {
                    let l = cholesky(&cs[i])
                        .ok_or_else(|| format!("covariance {} is not positive definite", i + 1))?;
                    let log_det: f64 = (0..d).map(|j| 2.0 * libm::log(l[j][j])).sum();
                    push(log_det);
                    means[i].iter().for_each(|&m| push(m));
                    let p = inverse_from_cholesky(&l);
                    for j in 0..d {
                        for &v in &l[j][..=j] {
                            push(v);
                        }
                    }
                    for (j, row) in p.iter().enumerate() {
                        for &v in &row[..=j] {
                            push(v);
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}
