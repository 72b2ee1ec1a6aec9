//! The estimators of MATH.md §4 from path costs: `log Z_lb`, `log Z_is`
//! with its standard error, the ESS and the Pareto k̂.

use serde::{Deserialize, Serialize};

use crate::psis;

/// The estimates of MATH.md §4 from path costs, with their diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimates {
    pub log_z_lb: f64,
    pub log_z_is: f64,
    /// Standard error of `log Z_is` (delta method: the standard error of the
    /// mean weight over the mean weight).
    #[serde(default)]
    pub log_z_is_se: f64,
    /// Normalised effective sample size in `(0, 1]`.
    pub ess: f64,
    /// Pareto `k-hat` of the weights' upper tail ([`crate::psis`]): below
    /// 0.7 the importance-sampling estimates are trustworthy.
    #[serde(default)]
    pub pareto_k: f64,
}

/// The estimates from costs `r`: `log Z_lb = mean(-r)`, `log Z_is = log
/// mean exp(-r)` (log-sum-exp), its standard error, the ESS and `k-hat`. A
/// cost of `+inf` is a weight of zero (`log Z_lb` is then `-inf`); NaN
/// costs give NaN estimates (reported, never hidden).
pub fn estimates(r: &[f64]) -> Estimates {
    let n = r.len() as f64;
    let log_z_lb = -r.iter().sum::<f64>() / n;
    let max = r.iter().map(|v| -v).fold(f64::NEG_INFINITY, f64::max);
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for v in r {
        let w = (-v - max).exp();
        s1 += w;
        s2 += w * w;
    }
    let mean = s1 / n;
    let var = (s2 / n - mean * mean).max(0.0) * n / (n - 1.0).max(1.0);
    let log_w: Vec<f64> = r.iter().map(|v| -v).collect();
    Estimates {
        log_z_lb,
        log_z_is: max + mean.ln(),
        log_z_is_se: (var / n).sqrt() / mean,
        ess: s1 * s1 / (n * s2),
        pareto_k: psis::pareto_k(&log_w),
    }
}
