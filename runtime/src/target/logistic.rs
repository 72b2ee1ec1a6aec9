//! Bayesian logistic regression: the posterior of the coefficients given a
//! design matrix and 0/1 labels, a standard real-data target.

use super::{Target, HALF_LOG_TAU};

/// `rho(beta) = prod_j N(beta_j; 0, s^2) prod_i p(y_i | x_i, beta)` with
/// `p(1 | x, beta) = sigmoid(x . beta)`, so `Z` is the marginal likelihood.
/// `design` is `[rows, d]` row-major (an intercept is a column of ones),
/// `labels` holds `rows` values 0 or 1. Sums are accumulated in `f64`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogisticRegression<'a> {
    pub design: &'a [f32],
    pub labels: &'a [f32],
    /// Standard deviation `s` of the prior of every coefficient.
    pub prior_std: f32,
}

/// `log sigmoid(z) = -log(1 + e^-z)`, stable for any `z`.
fn log_sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        -libm::log1p(libm::exp(-z))
    } else {
        z - libm::log1p(libm::exp(z))
    }
}

/// `sigmoid(z) = 1 / (1 + e^-z)`, stable for any `z`.
fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + libm::exp(-z))
    } else {
        let e = libm::exp(z);
        e / (1.0 + e)
    }
}

impl LogisticRegression<'_> {
    /// Number of data rows.
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// `x_i . beta` in `f64`.
    fn logit(&self, i: usize, beta: &[f32]) -> f64 {
        let d = beta.len();
        self.design[i * d..(i + 1) * d]
            .iter()
            .zip(beta)
            .map(|(&x, &b)| x as f64 * b as f64)
            .sum()
    }

    /// `log rho(beta)` in `f64`.
    pub fn log_density_f64(&self, beta: &[f32]) -> f64 {
        let s = self.prior_std as f64;
        let mut acc = 0.0f64;
        for &b in beta {
            let z = b as f64 / s;
            acc += -0.5 * z * z - libm::log(s) - HALF_LOG_TAU as f64;
        }
        for (i, &y) in self.labels.iter().enumerate() {
            let z = self.logit(i, beta);
            acc += if y > 0.5 {
                log_sigmoid(z)
            } else {
                log_sigmoid(-z)
            };
        }
        acc
    }
}

impl Target for LogisticRegression<'_> {
    fn dim(&self) -> usize {
        self.design.len() / self.labels.len().max(1)
    }
    fn log_density(&self, beta: &[f32]) -> f32 {
        self.log_density_f64(beta) as f32
    }
    /// `-beta / s^2 + sum_i (y_i - sigmoid(x_i . beta)) x_i` (the data sum
    /// accumulated in `out`, in `f32`).
    fn score(&self, beta: &[f32], out: &mut [f32]) {
        let d = beta.len();
        let inv_var = 1.0 / (self.prior_std * self.prior_std);
        for (o, &b) in out.iter_mut().zip(beta) {
            *o = -b * inv_var;
        }
        for (i, &y) in self.labels.iter().enumerate() {
            let r = (y as f64 - sigmoid(self.logit(i, beta))) as f32;
            for (o, &x) in out.iter_mut().zip(&self.design[i * d..(i + 1) * d]) {
                *o += r * x;
            }
        }
    }
}
