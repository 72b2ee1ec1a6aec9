//! Targets described in a configuration file, no code: a Gaussian mixture in
//! any dimension, or a Bayesian logistic regression on a CSV file. The CLI
//! reads the `[target]` table of a TOML file into [`TargetConfig`]; errors
//! name the key.

use std::path::{Path, PathBuf};

use diffctl_runtime::target::mixture::encode::{cholesky, mixture_block, Covariances};
use diffctl_runtime::target::TargetSpec;
use serde::{Deserialize, Serialize};

use super::logistic::{LogisticSettings, LogisticTarget};
use super::{Known, TrainTarget};

/// A `[target]` table with `name = "mixture"` or `name = "logistic-regression"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TargetConfig {
    /// `rho(x) = sum_i w_i N(x; m_i, C_i)`, so `Z = sum_i w_i`.
    Mixture {
        /// Positive; need not sum to 1.
        weights: Vec<f64>,
        /// `[components][d]`.
        means: Vec<Vec<f64>>,
        /// Diagonal covariances: standard deviations `[components][d]`.
        #[serde(default)]
        stds: Option<Vec<Vec<f64>>>,
        /// Full covariances `[components][d][d]`, symmetric positive definite.
        #[serde(default)]
        covs: Option<Vec<Vec<Vec<f64>>>>,
    },
    /// Bayesian logistic regression ([`LogisticTarget`]).
    LogisticRegression {
        /// CSV file with a header row; relative to the config file's folder.
        data: PathBuf,
        #[serde(default = "default_label")]
        label: String,
        #[serde(default = "one")]
        prior_std: f64,
        #[serde(default = "yes")]
        intercept: bool,
        #[serde(default = "yes")]
        standardize: bool,
    },
}

fn default_label() -> String {
    "target".into()
}
fn one() -> f64 {
    1.0
}
fn yes() -> bool {
    true
}

/// Names accepted as `name` of a [`TargetConfig`].
pub const CONFIG_KINDS: [&str; 2] = ["mixture", "logistic-regression"];

impl TargetConfig {
    /// Builds the target; `base` is the folder relative data paths start from.
    pub fn build(&self, base: &Path) -> Result<Box<dyn TrainTarget + Send>, String> {
        Ok(match self {
            TargetConfig::Mixture {
                weights,
                means,
                stds,
                covs,
            } => Box::new(mixture(weights, means, stds.as_ref(), covs.as_ref())?),
            TargetConfig::LogisticRegression {
                data,
                label,
                prior_std,
                intercept,
                standardize,
            } => {
                let path = base.join(data);
                let settings = LogisticSettings {
                    label: label.clone(),
                    prior_std: *prior_std,
                    intercept: *intercept,
                    standardize: *standardize,
                };
                Box::new(
                    LogisticTarget::from_csv(&path, &settings).map_err(|e| format!("data: {e}"))?,
                )
            }
        })
    }
}

/// Checks a mixture's arrays and encodes its parameter block.
fn mixture(
    weights: &[f64],
    means: &[Vec<f64>],
    stds: Option<&Vec<Vec<f64>>>,
    covs: Option<&Vec<Vec<Vec<f64>>>>,
) -> Result<Known, String> {
    let k = weights.len();
    if k == 0 {
        return Err("weights: at least one component is needed".into());
    }
    if let Some((i, w)) = weights
        .iter()
        .enumerate()
        .find(|(_, w)| !(w.is_finite() && **w > 0.0))
    {
        return Err(format!("weights[{i}] is {w}: weights must be positive"));
    }
    if means.len() != k {
        return Err(format!("means has {} rows, weights has {k}", means.len()));
    }
    let d = means[0].len();
    if d == 0 {
        return Err("means[0] is empty".into());
    }
    check_matrix("means", means, d)?;
    let covariances = match (stds, covs) {
        (Some(_), Some(_)) => return Err("give stds or covs, not both".into()),
        (None, None) => return Err("stds or covs is needed".into()),
        (Some(s), None) => {
            if s.len() != k {
                return Err(format!("stds has {} rows, weights has {k}", s.len()));
            }
            check_matrix("stds", s, d)?;
            for (i, row) in s.iter().enumerate() {
                if let Some((j, v)) = row.iter().enumerate().find(|(_, v)| **v <= 0.0) {
                    return Err(format!(
                        "stds[{i}][{j}] is {v}: standard deviations must be positive"
                    ));
                }
            }
            Covariances::Diagonal(s.clone())
        }
        (None, Some(c)) => {
            if c.len() != k {
                return Err(format!("covs has {} matrices, weights has {k}", c.len()));
            }
            for (i, m) in c.iter().enumerate() {
                if m.len() != d {
                    return Err(format!("covs[{i}] has {} rows, means has d = {d}", m.len()));
                }
                check_matrix(&format!("covs[{i}]"), m, d)?;
                #[allow(clippy::needless_range_loop)] // (a, b) against (b, a)
                for a in 0..d {
                    for b in 0..a {
                        let (x, y) = (m[a][b], m[b][a]);
                        if (x - y).abs() > 1e-12 * (1.0 + x.abs().max(y.abs())) {
                            return Err(format!(
                                "covs[{i}] is not symmetric ([{a}][{b}] = {x}, [{b}][{a}] = {y})"
                            ));
                        }
                    }
                }
                if cholesky(m).is_none() {
                    return Err(format!("covs[{i}] is not positive definite"));
                }
            }
            Covariances::Full(c.clone())
        }
    };
    let full = matches!(covariances, Covariances::Full(_));
    let block = mixture_block(weights, means, &covariances)?;
    let spec = TargetSpec::Mixture {
        d: u32::try_from(d).map_err(|_| "means: dimension too large")?,
        components: u32::try_from(k).map_err(|_| "weights: too many components")?,
        full,
    };
    spec.validate().map_err(|e| e.to_string())?;
    Known::new(spec, block)
}

/// Every row of `m` has `d` finite values.
fn check_matrix(key: &str, m: &[Vec<f64>], d: usize) -> Result<(), String> {
    for (i, row) in m.iter().enumerate() {
        if row.len() != d {
            return Err(format!(
                "{key}[{i}] has {} values, expected d = {d}",
                row.len()
            ));
        }
        if let Some((j, v)) = row.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(format!("{key}[{i}][{j}] is {v}: values must be finite"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use diffctl_runtime::target::GroundTruth;

    fn mix(stds: Option<Vec<Vec<f64>>>, covs: Option<Vec<Vec<Vec<f64>>>>) -> Result<Known, String> {
        mixture(
            &[0.5, 0.3, 0.2],
            &[vec![0.0, 0.0], vec![4.0, 1.0], vec![-3.0, 3.0]],
            stds.as_ref(),
            covs.as_ref(),
        )
    }

    /// A full covariance equal to a diagonal one gives the same density and
    /// score; `log Z = log sum w`; the density integrates to `Z` on a grid.
    #[test]
    fn stored_mixtures_are_the_mixture() {
        let stds = vec![vec![1.0, 0.5], vec![0.3, 0.3], vec![2.0, 1.0]];
        let covs: Vec<Vec<Vec<f64>>> = stds
            .iter()
            .map(|s| vec![vec![s[0] * s[0], 0.0], vec![0.0, s[1] * s[1]]])
            .collect();
        let (a, b) = (
            mix(Some(stds), None).unwrap(),
            mix(None, Some(covs)).unwrap(),
        );
        let (ta, tb) = (a.build(), b.build());
        use diffctl_runtime::Target;
        assert!((ta.log_z().unwrap() - 1f64.ln()).abs() < 1e-6);
        for x in [[0.1f32, 0.2], [3.9, 1.2], [-2.0, 2.5], [10.0, -7.0]] {
            let (la, lb) = (ta.log_density(&x), tb.log_density(&x));
            assert!((la - lb).abs() < 1e-4 * (1.0 + la.abs()), "{la} {lb}");
            let (mut ga, mut gb) = ([0.0f32; 2], [0.0f32; 2]);
            ta.score(&x, &mut ga);
            tb.score(&x, &mut gb);
            for j in 0..2 {
                assert!((ga[j] - gb[j]).abs() < 1e-3 * (1.0 + ga[j].abs()));
            }
        }
        let (n, lo, hi) = (800, -12.0f64, 12.0f64);
        let h = (hi - lo) / n as f64;
        let mut mass = 0.0;
        for i in 0..n {
            for j in 0..n {
                let x = [
                    (lo + (i as f64 + 0.5) * h) as f32,
                    (lo + (j as f64 + 0.5) * h) as f32,
                ];
                mass += (tb.log_density(&x) as f64).exp() * h * h;
            }
        }
        assert!((mass - 1.0).abs() < 1e-3, "{mass}");
        assert_eq!(tb.mode_count(), 3);
    }

    /// A correlated covariance: the score against central differences, and
    /// exact samples with the right covariance.
    #[test]
    fn full_covariance_score_and_samples() {
        let c = vec![
            vec![2.0, 0.9, 0.3],
            vec![0.9, 1.0, -0.4],
            vec![0.3, -0.4, 0.8],
        ];
        let k = mixture(
            &[2.0],
            &[vec![1.0, -1.0, 0.5]],
            None,
            Some(&vec![c.clone()]),
        )
        .unwrap();
        let t = k.build();
        use diffctl_runtime::Target;
        assert!((t.log_z().unwrap() - 2f64.ln()).abs() < 1e-6);
        let x = [0.3f32, 0.1, -0.2];
        let mut g = [0.0f32; 3];
        t.score(&x, &mut g);
        for j in 0..3 {
            let (mut up, mut down) = (x, x);
            up[j] += 1e-2;
            down[j] -= 1e-2;
            let fd = (t.log_density(&up) - t.log_density(&down)) as f64 / 2e-2;
            assert!(
                (fd - g[j] as f64).abs() < 2e-3 * (1.0 + fd.abs()),
                "{j}: {fd} {}",
                g[j]
            );
        }
        let n = 100_000;
        let mut rng = diffctl_runtime::normal::stream(1, 0);
        let mut s = vec![[0.0f64; 3]; n];
        for row in s.iter_mut() {
            let mut v = [0.0f32; 3];
            assert!(t.sample_exact(&mut rng, &mut v));
            *row = [v[0] as f64 - 1.0, v[1] as f64 + 1.0, v[2] as f64 - 0.5];
        }
        for a in 0..3 {
            for b in 0..3 {
                let cov = s.iter().map(|r| r[a] * r[b]).sum::<f64>() / n as f64;
                // SE of a sample covariance: sqrt((C_aa C_bb + C_ab^2) / n).
                let se = ((c[a][a] * c[b][b] + c[a][b] * c[a][b]) / n as f64).sqrt();
                assert!(
                    (cov - c[a][b]).abs() < 4.0 * se,
                    "[{a}][{b}] {cov} vs {}",
                    c[a][b]
                );
            }
        }
    }

    #[test]
    fn bad_mixtures_are_named() {
        let good_means = vec![vec![0.0, 0.0]];
        for (w, m, s, c, needle) in [
            (
                vec![0.0],
                good_means.clone(),
                Some(vec![vec![1.0, 1.0]]),
                None,
                "weights[0] is 0",
            ),
            (
                vec![1.0],
                vec![vec![0.0, 0.0, 1.0]],
                Some(vec![vec![1.0, 1.0]]),
                None,
                "stds[0] has 2 values, expected d = 3",
            ),
            (
                vec![1.0, 1.0],
                good_means.clone(),
                Some(vec![vec![1.0, 1.0]]),
                None,
                "means has 1 rows",
            ),
            (
                vec![1.0],
                good_means.clone(),
                Some(vec![vec![1.0, -1.0]]),
                None,
                "stds[0][1] is -1",
            ),
            (
                vec![1.0],
                good_means.clone(),
                None,
                Some(vec![vec![vec![1.0, 2.0], vec![2.0, 1.0]]]),
                "covs[0] is not positive definite",
            ),
            (
                vec![1.0],
                good_means.clone(),
                None,
                Some(vec![vec![vec![1.0, 0.5], vec![0.4, 1.0]]]),
                "covs[0] is not symmetric",
            ),
            (
                vec![1.0],
                good_means.clone(),
                None,
                None,
                "stds or covs is needed",
            ),
        ] {
            let e = mixture(&w, &m, s.as_ref(), c.as_ref()).unwrap_err();
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }
}
