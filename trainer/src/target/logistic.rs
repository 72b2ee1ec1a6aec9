//! Bayesian logistic regression on a data set: the runtime's
//! [`LogisticRegression`] density, batched with matrix products for
//! training, and built from a CSV file with a header row.

use std::path::Path;

use diffctl_runtime::target::{LogisticRegression, TargetSpec};
use diffctl_runtime::weights::crc32;
use diffctl_runtime::Target;

use super::TrainTarget;
use crate::autodiff::ops::matmul::{gemm, View, ViewMut};

/// The posterior of the coefficients of a logistic regression: owns the
/// design matrix (`rows x d`, with a leading column of ones for the
/// intercept) and the 0/1 labels, both as the density sees them (`f32`).
#[derive(Clone, Debug, PartialEq)]
pub struct LogisticTarget {
    design: Vec<f32>,
    labels: Vec<f32>,
    d: usize,
    prior_std: f32,
    intercept: bool,
    standardize: bool,
    /// Names of the coefficients (`intercept`, then the feature columns).
    pub names: Vec<String>,
}

/// Settings of a logistic-regression target.
#[derive(Clone, Debug, PartialEq)]
pub struct LogisticSettings {
    /// Name of the 0/1 label column; every other column is a feature.
    pub label: String,
    /// `N(0, prior_std^2)` on every coefficient.
    pub prior_std: f64,
    /// Add a coefficient for a column of ones (first).
    pub intercept: bool,
    /// Scale each feature to zero mean and unit variance (population
    /// standard deviation, divided by the number of rows) first.
    pub standardize: bool,
}

impl Default for LogisticSettings {
    fn default() -> Self {
        Self {
            label: "target".into(),
            prior_std: 1.0,
            intercept: true,
            standardize: true,
        }
    }
}

impl LogisticTarget {
    /// Reads a CSV file with a header row (see [`LogisticTarget::from_csv_text`]).
    pub fn from_csv(path: &Path, settings: &LogisticSettings) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::from_csv_text(&text, settings).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses comma-separated text whose first line names the columns.
    /// Errors name the line, the column and the reason.
    pub fn from_csv_text(text: &str, settings: &LogisticSettings) -> Result<Self, String> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let (_, header) = lines.next().ok_or("the data file is empty")?;
        let columns: Vec<&str> = header.split(',').map(|c| c.trim()).collect();
        let label_col = columns
            .iter()
            .position(|&c| c == settings.label)
            .ok_or_else(|| {
                format!(
                    "label: no column named {:?} (columns: {})",
                    settings.label,
                    columns.join(", ")
                )
            })?;
        let mut features = Vec::new();
        let mut labels = Vec::new();
        for (i, line) in lines {
            let cells: Vec<&str> = line.split(',').map(|c| c.trim()).collect();
            if cells.len() != columns.len() {
                return Err(format!(
                    "line {}: {} values, the header has {}",
                    i + 1,
                    cells.len(),
                    columns.len()
                ));
            }
            for (j, cell) in cells.iter().enumerate() {
                let v: f64 = cell.parse().map_err(|_| {
                    format!(
                        "line {}, column {}: {cell:?} is not a number",
                        i + 1,
                        columns[j]
                    )
                })?;
                if !v.is_finite() {
                    return Err(format!("line {}, column {}: {cell}", i + 1, columns[j]));
                }
                if j == label_col {
                    if v != 0.0 && v != 1.0 {
                        return Err(format!(
                            "line {}: label {} is {cell}, not 0 or 1",
                            i + 1,
                            columns[j]
                        ));
                    }
                    labels.push(v);
                } else {
                    features.push(v);
                }
            }
        }
        let names = columns
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != label_col)
            .map(|(_, c)| c.to_string())
            .collect();
        Self::new(features, labels, names, settings)
    }

    /// From features (`rows x p`, row-major) and 0/1 labels.
    pub fn new(
        mut features: Vec<f64>,
        labels: Vec<f64>,
        feature_names: Vec<String>,
        settings: &LogisticSettings,
    ) -> Result<Self, String> {
        let rows = labels.len();
        if rows == 0 {
            return Err("data: no rows".into());
        }
        let p = features.len() / rows;
        if p * rows != features.len() || feature_names.len() != p {
            return Err("data: features are not rows x columns".into());
        }
        if !(settings.prior_std.is_finite() && settings.prior_std > 0.0) {
            return Err(format!(
                "prior_std must be finite and positive, got {}",
                settings.prior_std
            ));
        }
        if settings.standardize {
            for j in 0..p {
                let col = || (0..rows).map(|i| features[i * p + j]);
                let mean = col().sum::<f64>() / rows as f64;
                let var = col().map(|v| (v - mean) * (v - mean)).sum::<f64>() / rows as f64;
                if var.is_nan() || var <= 0.0 {
                    return Err(format!(
                        "data: column {} is constant, it cannot be standardised",
                        feature_names[j]
                    ));
                }
                let std = var.sqrt();
                for i in 0..rows {
                    features[i * p + j] = (features[i * p + j] - mean) / std;
                }
            }
        }
        let d = p + usize::from(settings.intercept);
        if d == 0 {
            return Err("data: no features and no intercept".into());
        }
        let mut design = Vec::with_capacity(rows * d);
        for i in 0..rows {
            if settings.intercept {
                design.push(1.0f32);
            }
            design.extend(features[i * p..(i + 1) * p].iter().map(|&v| v as f32));
        }
        let mut names = Vec::with_capacity(d);
        if settings.intercept {
            names.push("intercept".to_string());
        }
        names.extend(feature_names);
        Ok(Self {
            design,
            labels: labels.iter().map(|&y| y as f32).collect(),
            d,
            prior_std: settings.prior_std as f32,
            intercept: settings.intercept,
            standardize: settings.standardize,
            names,
        })
    }

    /// The runtime's density over this data.
    pub fn view(&self) -> LogisticRegression<'_> {
        LogisticRegression {
            design: &self.design,
            labels: &self.labels,
            prior_std: self.prior_std,
        }
    }

    /// Number of data rows.
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// CRC-32 of the design matrix and the labels as the density sees them
    /// (`f32` little endian): what a weights file records.
    pub fn data_crc(&self) -> u32 {
        let bytes: Vec<u8> = self
            .design
            .iter()
            .chain(&self.labels)
            .flat_map(|v| v.to_le_bytes())
            .collect();
        crc32(&bytes)
    }

    /// The logits `X beta` of every row of `betas` (`n x d`): `n x rows`.
    fn logits(&self, betas: &[f32]) -> Vec<f32> {
        let (n, rows) = (betas.len() / self.d, self.rows());
        let mut z = vec![0.0f32; n * rows];
        gemm(
            1.0,
            View::of_slice(betas, n, self.d, false),
            View::of_slice(&self.design, rows, self.d, true),
            0.0,
            ViewMut::of_slice(&mut z, n, rows, false),
        );
        z
    }
}

/// `log sigmoid(z)`, stable for any `z`.
fn log_sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        -(-z).exp().ln_1p()
    } else {
        z - z.exp().ln_1p()
    }
}

impl TrainTarget for LogisticTarget {
    fn dim(&self) -> usize {
        self.d
    }

    /// The prior's log-density plus the log-likelihood, the logits from one
    /// matrix product (`f32`), the sums in `f64`.
    fn log_density_batch(&self, betas: &[f32], out: &mut [f32]) {
        let rows = self.rows();
        let z = self.logits(betas);
        let s = self.prior_std as f64;
        let log_norm = -(s.ln() + 0.5 * std::f64::consts::TAU.ln()) * self.d as f64;
        for ((beta, zr), o) in betas
            .chunks_exact(self.d)
            .zip(z.chunks_exact(rows))
            .zip(out.iter_mut())
        {
            let prior: f64 = beta.iter().map(|&b| (b as f64 / s).powi(2)).sum::<f64>();
            let lik: f64 = zr
                .iter()
                .zip(&self.labels)
                .map(|(&z, &y)| {
                    let z = z as f64;
                    if y > 0.5 {
                        log_sigmoid(z)
                    } else {
                        log_sigmoid(-z)
                    }
                })
                .sum();
            *o = (log_norm - 0.5 * prior + lik) as f32;
        }
    }

    /// `-beta / s^2 + (y - sigmoid(X beta))^T X`, two matrix products.
    fn score_batch(&self, betas: &[f32], out: &mut [f32]) {
        let (n, rows) = (betas.len() / self.d, self.rows());
        let mut r = self.logits(betas);
        for row in r.chunks_exact_mut(rows) {
            for (v, &y) in row.iter_mut().zip(&self.labels) {
                *v = y - 1.0 / (1.0 + (-*v).exp());
            }
        }
        let inv_var = 1.0 / (self.prior_std * self.prior_std);
        for (o, &b) in out.iter_mut().zip(betas) {
            *o = -b * inv_var;
        }
        gemm(
            1.0,
            View::of_slice(&r, n, rows, false),
            View::of_slice(&self.design, rows, self.d, false),
            1.0,
            ViewMut::of_slice(out, n, self.d, false),
        );
    }

    fn point(&self) -> Box<dyn Target + Sync + '_> {
        Box::new(self.view())
    }

    fn spec(&self) -> Option<TargetSpec> {
        Some(TargetSpec::LogisticRegression {
            d: self.d as u32,
            rows: self.rows() as u32,
            prior_std: self.prior_std,
            intercept: self.intercept,
            standardize: self.standardize,
            data_crc: self.data_crc(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> LogisticTarget {
        let text = "a,b,target\n0.5,1.0,1\n-1.0,2.0,0\n2.0,-0.5,1\n0.1,0.2,0\n";
        LogisticTarget::from_csv_text(text, &LogisticSettings::default()).unwrap()
    }

    /// The batched form (matrix products) against the runtime's per-point
    /// density, and the runtime's score against central differences (f64).
    #[test]
    fn batched_density_and_score_match_the_runtime() {
        let t = toy();
        assert_eq!((t.dim(), t.rows()), (3, 4));
        let betas = [0.3f32, -0.7, 1.1, -2.0, 0.4, 0.05];
        let mut lr = [0.0f32; 2];
        let mut sc = [0.0f32; 6];
        t.log_density_batch(&betas, &mut lr);
        t.score_batch(&betas, &mut sc);
        let p = t.view();
        for (i, beta) in betas.chunks_exact(3).enumerate() {
            let want = p.log_density_f64(beta);
            assert!((lr[i] as f64 - want).abs() < 1e-5 * (1.0 + want.abs()));
            let mut g = [0.0f32; 3];
            p.score(beta, &mut g);
            for j in 0..3 {
                assert!((sc[3 * i + j] - g[j]).abs() < 1e-5 * (1.0 + g[j].abs()));
                let h = 1e-3f32;
                let (mut up, mut down) = (beta.to_vec(), beta.to_vec());
                up[j] += h;
                down[j] -= h;
                let fd = (p.log_density_f64(&up) - p.log_density_f64(&down))
                    / (up[j] as f64 - down[j] as f64);
                assert!(
                    (fd - g[j] as f64).abs() < 1e-3 * (1.0 + fd.abs()),
                    "{fd} {}",
                    g[j]
                );
            }
        }
    }

    #[test]
    fn bad_data_is_named() {
        let s = LogisticSettings::default();
        for (text, needle) in [
            ("a,b\n1,2\n", "no column named \"target\""),
            ("a,target\n1,2\n", "not 0 or 1"),
            ("a,target\n1,nan\n", "column target: nan"),
            ("a,target\nx,1\n", "\"x\" is not a number"),
            ("a,target\n1,1\n1\n", "1 values, the header has 2"),
            ("a,target\n1,1\n1,0\n", "column a is constant"),
        ] {
            let e = LogisticTarget::from_csv_text(text, &s).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
