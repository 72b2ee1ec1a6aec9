//! Data for denoising score matching (MATH.md §7): `n x d` sample sets read
//! from CSV or `.npy` files, and built-in generators (2-d toy sets and exact
//! samples of the runtime's built-in targets).
//!
//! Every reader error is one line naming the file's problem: the line of a
//! ragged or unparsable CSV row, the row and column of a NaN or infinity, an
//! empty file, a dimension other than the expected one.
//!
//! Generators are deterministic: sample `i` under seed `s` is drawn from the
//! runtime's stream `(s, i)` alone, so it does not depend on `n`.

use diffctl_runtime::normal::{uniform_f64, PathRng};
use rand_core::Rng;

/// `n` samples of dimension `d`, row-major, all finite.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub d: usize,
    /// `n x d` values, row-major.
    pub xs: Vec<f32>,
}

impl Dataset {
    /// Checks `d >= 1`, `xs.len()` a positive multiple of `d` and every value finite.
    pub fn new(d: usize, xs: Vec<f32>) -> Result<Self, String> {
        if d == 0 {
            return Err("dimension must be at least 1".into());
        }
        if xs.is_empty() {
            return Err("no samples".into());
        }
        if !xs.len().is_multiple_of(d) {
            return Err(format!("{} values do not form rows of d = {d}", xs.len()));
        }
        if let Some(k) = xs.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "row {}, column {} is {} (NaN and infinities are not data)",
                k / d + 1,
                k % d + 1,
                xs[k]
            ));
        }
        Ok(Self { d, xs })
    }

    /// Re-checks what [`Dataset::new`] checks (the fields are public).
    pub fn validate(&self) -> Result<(), String> {
        if self.d == 0 || self.xs.is_empty() || !self.xs.len().is_multiple_of(self.d) {
            return Err(format!(
                "{} values do not form rows of d = {}",
                self.xs.len(),
                self.d
            ));
        }
        if let Some(k) = self.xs.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "row {}, column {} is {} (NaN and infinities are not data)",
                k / self.d + 1,
                k % self.d + 1,
                self.xs[k]
            ));
        }
        Ok(())
    }

    /// Number of samples `n`.
    pub fn len(&self) -> usize {
        self.xs.len() / self.d
    }

    pub fn is_empty(&self) -> bool {
        self.xs.is_empty()
    }

    /// Sample `i` (length `d`).
    pub fn row(&self, i: usize) -> &[f32] {
        &self.xs[i * self.d..(i + 1) * self.d]
    }

    /// Fails unless the data has dimension `d` (e.g. a model's).
    pub fn expect_dim(&self, d: usize) -> Result<(), String> {
        if self.d != d {
            return Err(format!("data has d = {}, expected d = {d}", self.d));
        }
        Ok(())
    }

    /// A deterministic random split into `(train, validation)`: a
    /// Fisher–Yates permutation under `seed`, the first
    /// `round(fraction n)` samples (at least 1, at most `n - 1`) for validation.
    pub fn split(&self, fraction: f64, seed: u64) -> Result<(Dataset, Dataset), String> {
        let n = self.len();
        if n < 2 {
            return Err(format!(
                "{n} sample(s): a validation split needs at least 2"
            ));
        }
        if !(fraction.is_finite() && fraction > 0.0 && fraction < 1.0) {
            return Err(format!(
                "validation fraction must be in (0, 1), got {fraction}"
            ));
        }
        let n_val = ((fraction * n as f64).round() as usize).clamp(1, n - 1);
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = crate::streams::split(seed);
        for i in (1..n).rev() {
            let j = uniform_index(&mut rng, i + 1);
            order.swap(i, j);
        }
        let take = |idx: &[usize]| Dataset {
            d: self.d,
            xs: idx
                .iter()
                .flat_map(|&i| self.row(i).iter().copied())
                .collect(),
        };
        Ok((take(&order[n_val..]), take(&order[..n_val])))
    }

    /// The first `n` samples (all of them if there are fewer).
    pub fn head(&self, n: usize) -> Dataset {
        Dataset {
            d: self.d,
            xs: self.xs[..n.min(self.len()) * self.d].to_vec(),
        }
    }

    /// Per-coordinate mean and standard deviation (f64 accumulation).
    pub fn moments(&self) -> (Vec<f64>, Vec<f64>) {
        let n = self.len() as f64;
        let mut mean = vec![0.0; self.d];
        for x in self.xs.chunks_exact(self.d) {
            for (m, &v) in mean.iter_mut().zip(x) {
                *m += v as f64 / n;
            }
        }
        let mut var = vec![0.0; self.d];
        for x in self.xs.chunks_exact(self.d) {
            for ((s, &v), m) in var.iter_mut().zip(x).zip(&mean) {
                *s += (v as f64 - m).powi(2) / n;
            }
        }
        (mean, var.into_iter().map(f64::sqrt).collect())
    }
}

/// Uniform index in `0..n` (Lemire's multiply-shift; bias below `n / 2^64`).
pub(crate) fn uniform_index(rng: &mut PathRng, n: usize) -> usize {
    ((rng.next_u64() as u128 * n as u128) >> 64) as usize
}

/// Uniform in `[0, 1)` with 53 bits (the runtime's).
pub(crate) fn uniform(rng: &mut PathRng) -> f64 {
    uniform_f64(rng)
}

pub mod files;
pub mod toy;

pub use files::{load, npy_header, parse_csv, parse_npy, to_csv, to_npy};
pub use toy::{exact_samples, Toy};

#[cfg(test)]
mod tests {
    use super::*;
    use diffctl_runtime::target::{GroundTruth, TargetSpec};
    use files::NPY_MAGIC;

    #[test]
    fn csv_reads_headers_comments_and_separators() {
        let d = parse_csv("x,y\n# comment\n1,2\n\n3.5, -4e-1\n5\t6\n").unwrap();
        assert_eq!(d.d, 2);
        assert_eq!(d.xs, vec![1.0, 2.0, 3.5, -0.4, 5.0, 6.0]);
    }

    #[test]
    fn csv_errors_name_the_line_and_reason() {
        let cases = [
            ("1,2\n3,4\n5\n", "line 3 has 1 values, line 1 has 2"),
            ("1,2\n3,nan\n", "line 2, column 2: nan"),
            ("1,2\n3,inf\n", "line 2, column 2: inf"),
            ("1,2\n3,abc\n", "line 2, column 2: \"abc\" is not a number"),
            ("", "no data rows"),
            ("# only a comment\n\n", "no data rows"),
            ("a,b\n", "no data rows"),
            ("1,1e39\n", "overflows f32"),
        ];
        for (text, needle) in cases {
            let err = parse_csv(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    fn npy(descr: &str, fortran: bool, shape: &str, payload: &[u8]) -> Vec<u8> {
        let header = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}\n",
            if fortran { "True" } else { "False" }
        );
        let mut out = NPY_MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn npy_reads_f4_f8_and_both_orders() {
        let data = Dataset::new(2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert_eq!(parse_npy(&to_npy(&data)).unwrap(), data);
        let f8: Vec<u8> = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(parse_npy(&npy("<f8", false, "(3, 2)", &f8)).unwrap(), data);
        // Fortran order stores columns: 1 3 5 | 2 4 6.
        let cols: Vec<u8> = [1.0f64, 3.0, 5.0, 2.0, 4.0, 6.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        assert_eq!(parse_npy(&npy(">f8", true, "(3, 2)", &cols)).unwrap(), data);
        let one = parse_npy(&npy("<f4", false, "(2,)", &[0, 0, 128, 63, 0, 0, 0, 64])).unwrap();
        assert_eq!((one.d, one.xs), (1, vec![1.0, 2.0]));
    }

    #[test]
    fn npy_errors_name_the_reason() {
        let nan: Vec<u8> = [1.0f32, f32::NAN]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let cases = [
            (b"PK\x03\x04 not npy".to_vec(), "bad magic"),
            (
                npy("<i8", false, "(1, 2)", &[0; 16]),
                "<i8 is not supported",
            ),
            (npy("<f4", false, "(2, 2, 2)", &[0; 32]), "need n x d"),
            (npy("<f4", false, "(0, 2)", &[]), "empty"),
            (npy("<f4", false, "(2, 2)", &[0; 12]), "has 12 bytes"),
            (npy("<f4", false, "(1, 2)", &nan), "row 1, column 2 is NaN"),
        ];
        for (bytes, needle) in cases {
            let err = parse_npy(&bytes).unwrap_err();
            assert!(err.contains(needle), "{needle}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn load_checks_the_dimension_and_names_the_file() {
        let dir = std::env::temp_dir().join(format!("diffctl-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pts.csv");
        std::fs::write(&path, "1,2,3\n4,5,6\n").unwrap();
        let err = load(&path, Some(2)).unwrap_err();
        assert!(
            err.contains("pts.csv") && err.contains("data has d = 3, expected d = 2"),
            "{err}"
        );
        assert_eq!(load(&path, Some(3)).unwrap().len(), 2);
        let npy_path = dir.join("pts.npy");
        std::fs::write(&npy_path, to_npy(&load(&path, None).unwrap())).unwrap();
        assert_eq!(load(&npy_path, Some(3)).unwrap().xs[5], 6.0);
        let missing = load(&dir.join("missing.csv"), None).unwrap_err();
        assert!(missing.starts_with("cannot read"), "{missing}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn split_is_a_deterministic_partition() {
        let data = Toy::EightGaussians.generate(1000, 3).unwrap();
        let (train, val) = data.split(0.1, 5).unwrap();
        assert_eq!((train.len(), val.len()), (900, 100));
        assert_eq!(data.split(0.1, 5).unwrap().1, val);
        let mut all: Vec<u32> = train
            .xs
            .iter()
            .chain(&val.xs)
            .map(|v| v.to_bits())
            .collect();
        let mut orig: Vec<u32> = data.xs.iter().map(|v| v.to_bits()).collect();
        all.sort_unstable();
        orig.sort_unstable();
        assert_eq!(all, orig);
    }

    #[test]
    fn target_samples_have_the_true_moments() {
        // gmm and mw5: |x|^2 is bounded in its tails (Gaussian, quartic), so
        // its sample variance gives an honest standard error.
        for name in ["gmm", "mw5"] {
            let spec = TargetSpec::preset(name).unwrap();
            let n = 200_000;
            let data = Toy::Target(spec).generate(n, 1).unwrap();
            let sq: Vec<f64> = data
                .xs
                .chunks_exact(data.d)
                .map(|x| x.iter().map(|&v| (v as f64).powi(2)).sum())
                .collect();
            let mean = sq.iter().sum::<f64>() / n as f64;
            let var = sq.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
            let (truth, _) = spec.build_builtin().moments().unwrap();
            let se = (var / n as f64).sqrt();
            assert!(
                (mean - truth).abs() < 5.0 * se,
                "{name}: E|x|^2 {mean} vs {truth} (se {se})"
            );
        }
        // The funnel's |x|^2 has lognormal tails (its sample variance
        // understates the error), so test quantities of known, finite
        // variance instead: x_1^2 / sigma^2 and x_i^2 e^{-x_1} (i > 1) are
        // chi-square with one degree of freedom (mean 1, variance 2) by the
        // funnel's definition, and x_1 is N(0, sigma^2) (mean 0, variance sigma^2).
        let n = 200_000;
        let data = Toy::Target(TargetSpec::preset("funnel").unwrap())
            .generate(n, 1)
            .unwrap();
        let sigma = 3.0f64;
        let rows = || data.xs.chunks_exact(data.d);
        let se_chi2 = (2.0 / n as f64).sqrt();
        let m1 = rows().map(|x| (x[0] as f64 / sigma).powi(2)).sum::<f64>() / n as f64;
        assert!((m1 - 1.0).abs() < 4.0 * se_chi2, "E x1^2 / sigma^2 = {m1}");
        let mean1 = rows().map(|x| x[0] as f64).sum::<f64>() / n as f64;
        assert!(
            mean1.abs() < 4.0 * sigma / (n as f64).sqrt(),
            "E x1 = {mean1}"
        );
        for i in [1, 5, 9] {
            let m = rows()
                .map(|x| (x[i] as f64).powi(2) * (-(x[0] as f64)).exp())
                .sum::<f64>()
                / n as f64;
            assert!((m - 1.0).abs() < 4.0 * se_chi2, "E x{i}^2 e^-x1 = {m}");
        }
    }

    /// `|count / n - p| < 4 se` for a category of probability `p`.
    fn fraction_ok(count: usize, n: usize, p: f64) -> bool {
        let se = (p * (1.0 - p) / n as f64).sqrt();
        (count as f64 / n as f64 - p).abs() < 4.0 * se
    }

    /// Median of `|N(0, sigma^2)|` is `0.6745 sigma`; its standard error over
    /// `n` draws is `1 / (2 f(m) sqrt n)` with `f(m) = 2 phi(0.6745) / sigma`.
    fn half_normal_median_ok(mut dist: Vec<f64>, sigma: f64) -> bool {
        dist.sort_by(f64::total_cmp);
        let n = dist.len();
        let median = dist[n / 2];
        let phi = (-0.5f64 * 0.6745 * 0.6745).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let se = sigma / (4.0 * phi * (n as f64).sqrt());
        let ok = (median - 0.6745 * sigma).abs() < 4.0 * se;
        if !ok {
            eprintln!("median distance {median} vs {} (se {se})", 0.6745 * sigma);
        }
        ok
    }

    /// Each toy's defining statistic (all within 4 standard errors):
    /// * 8 Gaussians: each centre `2 sqrt 2 (cos, sin)(pi k / 4)` holds 1/8 of
    ///   the points, and the squared distance to the nearest centre has mean
    ///   `2 sigma^2` (`sigma = 0.5 / sqrt 2`; chi-square with 2 degrees of freedom);
    /// * moons: two arcs of radius 2 (upper: centre `(-1, -0.5)`, angles
    ///   `[0, pi]`; lower: centre `(1, 0.5)`, angles `[pi, 2 pi]`), half the
    ///   points each, angle uniform (mean `pi / 2` along the arc), and the
    ///   distance to the nearer arc that of the noise's normal component
    ///   (median `0.6745 * 0.2`);
    /// * swiss roll: the distance to the curve `t (cos t, sin t) / 5`,
    ///   `t in [1.5 pi, 4.5 pi]` has median `0.6745 * 0.2`, and the curve
    ///   parameter of the nearest point is uniform (mean `3 pi`);
    /// * checkerboard: each of the 8 dark squares holds 1/8 of the points
    ///   (parity is checked below).
    ///
    /// A single `N(0, 2^2)` blob, a wrong radius or a wrong noise level fails.
    #[test]
    fn toys_have_their_defining_statistics() {
        use std::f64::consts::{FRAC_1_SQRT_2, PI};
        let n = 4000;
        let points = |toy: Toy| -> Vec<[f64; 2]> {
            let data = toy.generate(n, 5).unwrap();
            data.xs
                .chunks_exact(2)
                .map(|x| [x[0] as f64, x[1] as f64])
                .collect()
        };

        // 8 Gaussians.
        let (r, sigma) = (4.0 * FRAC_1_SQRT_2, 0.5 * FRAC_1_SQRT_2);
        let centres: Vec<[f64; 2]> = (0..8)
            .map(|k| {
                let a = PI / 4.0 * k as f64;
                [r * a.cos(), r * a.sin()]
            })
            .collect();
        let mut counts = [0usize; 8];
        let mut sq = Vec::with_capacity(n);
        for p in points(Toy::EightGaussians) {
            let (k, e2) = centres
                .iter()
                .map(|c| (p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2))
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            counts[k] += 1;
            sq.push(e2);
        }
        assert!(
            counts.iter().all(|&c| fraction_ok(c, n, 0.125)),
            "{counts:?}"
        );
        let mean = sq.iter().sum::<f64>() / n as f64;
        let sd = (sq.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0)).sqrt();
        let want = 2.0 * sigma * sigma;
        assert!(
            (mean - want).abs() < 4.0 * sd / (n as f64).sqrt(),
            "8 Gaussians: mean squared distance {mean} vs {want}"
        );

        // Moons: distance to an arc (angle clamped to its range) and the
        // position along it.
        let arc = |p: [f64; 2], c: [f64; 2], from: f64| -> (f64, f64) {
            let (dx, dy) = (p[0] - c[0], p[1] - c[1]);
            let along = (dy.atan2(dx) - from).rem_euclid(2.0 * PI);
            // Outside [0, pi]: clamp to the nearer end.
            let along = if along <= PI {
                along
            } else if along < 1.5 * PI {
                PI
            } else {
                0.0
            };
            let (qx, qy) = (
                c[0] + 2.0 * (from + along).cos(),
                c[1] + 2.0 * (from + along).sin(),
            );
            (((p[0] - qx).powi(2) + (p[1] - qy).powi(2)).sqrt(), along)
        };
        let (mut upper, mut dist, mut angle_sum) = (0usize, Vec::new(), 0.0);
        for p in points(Toy::TwoMoons) {
            let up = arc(p, [-1.0, -0.5], 0.0);
            let lo = arc(p, [1.0, 0.5], PI);
            let (d, a) = if up.0 <= lo.0 {
                upper += 1;
                up
            } else {
                lo
            };
            dist.push(d);
            angle_sum += a;
        }
        assert!(
            fraction_ok(upper, n, 0.5),
            "moons: {upper} of {n} on the upper arc"
        );
        let mean_angle = angle_sum / n as f64;
        let se_angle = PI / 12f64.sqrt() / (n as f64).sqrt();
        assert!(
            (mean_angle - PI / 2.0).abs() < 4.0 * se_angle,
            "moons: mean angle {mean_angle}"
        );
        assert!(half_normal_median_ok(dist, 0.2), "moons");

        // Swiss roll: nearest point of a fine grid on the curve.
        let grid: Vec<(f64, [f64; 2])> = (0..=30_000)
            .map(|i| {
                let t = 1.5 * PI + 3.0 * PI * i as f64 / 30_000.0;
                (t, [t * t.cos() / 5.0, t * t.sin() / 5.0])
            })
            .collect();
        let (mut dist, mut t_sum) = (Vec::new(), 0.0);
        for p in points(Toy::SwissRoll) {
            let (t, d2) = grid
                .iter()
                .map(|(t, q)| (*t, (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            dist.push(d2.sqrt());
            t_sum += t;
        }
        let mean_t = t_sum / n as f64;
        let se_t = 3.0 * PI / 12f64.sqrt() / (n as f64).sqrt();
        assert!(
            (mean_t - 3.0 * PI).abs() < 4.0 * se_t,
            "swiss roll: mean t {mean_t}"
        );
        assert!(half_normal_median_ok(dist, 0.2), "swiss roll");

        // Checkerboard: the 8 dark squares equally filled.
        let mut squares = std::collections::HashMap::new();
        for p in points(Toy::Checkerboard) {
            let key = ((p[0] / 2.0).floor() as i64, (p[1] / 2.0).floor() as i64);
            *squares.entry(key).or_insert(0usize) += 1;
        }
        assert_eq!(squares.len(), 8, "{squares:?}");
        assert!(
            squares.values().all(|&c| fraction_ok(c, n, 0.125)),
            "{squares:?}"
        );
    }

    #[test]
    fn toys_are_deterministic_and_shaped() {
        for name in Toy::NAMES {
            let toy = Toy::by_name(name).unwrap();
            let a = toy.generate(500, 2).unwrap();
            assert_eq!(a, toy.generate(500, 2).unwrap());
            // Sample i does not depend on n.
            assert_eq!(a.head(100), toy.generate(100, 2).unwrap());
            let (mean, std) = a.moments();
            assert!(
                mean.iter().all(|m| m.abs() < 1.0) && std.iter().all(|s| (0.5..4.0).contains(s)),
                "{name}: {mean:?} {std:?}"
            );
        }
        // Checkerboard: every point in a square of the right parity.
        let c = Toy::Checkerboard.generate(2000, 1).unwrap();
        for x in c.xs.chunks_exact(2) {
            let (i, j) = ((x[0] / 2.0).floor() as i64, (x[1] / 2.0).floor() as i64);
            assert_eq!((i + j).rem_euclid(2), 1, "{x:?}");
        }
    }
}
