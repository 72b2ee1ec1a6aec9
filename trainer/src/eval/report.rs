//! [`EvalReport`]: what `diffctl eval` reports of samples with their path
//! costs: the estimates, errors against the ground truth where it is known,
//! mode shares, moments, the sliced W2 distance, per-coordinate statistics.

use std::fmt;

use diffctl_runtime::target::GroundTruth;
use serde::{Deserialize, Serialize};

use super::{estimates, CostForm, Estimates, Samples};
use crate::data::exact_samples;
use crate::distance;
use crate::streams::{SW2_DIRECTION_SEED, SW2_TRUTH_SEED};
use crate::target::TrainTarget;

/// An estimate from the raw samples beside its true value, and the
/// self-normalised importance-weighted estimate (weights `exp(-R)`), which
/// estimates the target's value even where the raw samples miss it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Versus {
    pub estimate: f64,
    pub truth: Option<f64>,
    #[serde(default)]
    pub weighted: Option<f64>,
}

impl Versus {
    pub fn error(&self) -> Option<f64> {
        self.truth.map(|t| self.estimate - t)
    }
}

/// Share of samples in one mode against the mode's true weight.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModeShare {
    pub label: String,
    pub observed: f64,
    pub expected: f64,
}

/// Mean and standard deviation of one coordinate: of the raw samples, and
/// importance-weighted (self-normalised, weights `exp(-R)`), which
/// estimates the target's.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoordStats {
    pub mean: f64,
    pub std: f64,
    pub weighted_mean: Option<f64>,
    pub weighted_std: Option<f64>,
}

/// Everything `diffctl eval` reports.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalReport {
    pub n: usize,
    pub d: usize,
    pub cost: CostForm,
    pub estimates: Estimates,
    pub log_z_true: Option<f64>,
    /// `E|x|^2` of the model's samples against the target's.
    pub sq_norm: Versus,
    /// `E|x|_1` of the model's samples against the target's.
    pub abs_norm: Versus,
    /// Mode occupancy (targets whose ground truth tracks modes).
    pub modes: Option<Vec<ModeShare>>,
    /// Sliced Wasserstein-2 distance ([`crate::distance`]) between the first
    /// `min(n, SW2_SAMPLES)` model samples and as many exact samples of the
    /// target (seed [`SW2_TRUTH_SEED`]); `None` without an exact sampler.
    #[serde(default)]
    pub sliced_w2: Option<f64>,
    /// Per coordinate: raw and importance-weighted mean and std.
    #[serde(default)]
    pub coords: Vec<CoordStats>,
}

/// Most samples per side entering [`EvalReport::sliced_w2`].
pub const SW2_SAMPLES: usize = 20_000;
/// Modes expected fewer times than this in `n` samples are left out of
/// [`EvalReport::worst_mode_ratio`].
pub const MIN_EXPECTED_COUNT: f64 = 10.0;
/// Most coordinates [`EvalReport`]'s text lists one by one.
const MAX_LISTED_COORDS: usize = 40;

impl EvalReport {
    pub fn log_z_is_error(&self) -> Option<f64> {
        self.log_z_true.map(|t| self.estimates.log_z_is - t)
    }
    pub fn log_z_lb_error(&self) -> Option<f64> {
        self.log_z_true.map(|t| self.estimates.log_z_lb - t)
    }
    /// Smallest observed share divided by its expected share, over the
    /// modes expected at least [`MIN_EXPECTED_COUNT`] times in `n` samples
    /// (a mode expected less often may be empty by chance: manywell32 has
    /// 2^16 modes, most of tiny weight). `None` without modes or when no
    /// mode is expected that often.
    pub fn worst_mode_ratio(&self) -> Option<f64> {
        let worst = self
            .modes
            .as_ref()?
            .iter()
            .filter(|s| s.expected * self.n as f64 >= MIN_EXPECTED_COUNT)
            .map(|s| s.observed / s.expected)
            .fold(f64::INFINITY, f64::min);
        worst.is_finite().then_some(worst)
    }
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.estimates;
        let err = |v: Option<f64>| v.map_or(String::new(), |x| format!(" (error {x:+.4})"));
        let cost = match self.cost {
            CostForm::Discrete => "R_disc (discrete-time, unbiased)",
            CostForm::Continuous => "R (continuous-time, discretised)",
        };
        writeln!(
            f,
            "samples          {} (d = {}, cost {cost})",
            self.n, self.d
        )?;
        if let Some(t) = self.log_z_true {
            writeln!(f, "log Z (true)     {t:.4}")?;
        }
        writeln!(
            f,
            "log Z_is         {:.4} +- {:.4} (1 SE){}",
            e.log_z_is,
            e.log_z_is_se,
            err(self.log_z_is_error())
        )?;
        writeln!(
            f,
            "log Z_lb         {:.4}{}",
            e.log_z_lb,
            err(self.log_z_lb_error())
        )?;
        writeln!(f, "ESS              {:.4}", e.ess)?;
        let verdict = if e.pareto_k < 0.7 {
            "< 0.7: reliable"
        } else {
            ">= 0.7: the weights' tail is too heavy, estimates unreliable"
        };
        writeln!(f, "Pareto k-hat     {:.3} ({verdict})", e.pareto_k)?;
        for (name, v) in [("E|x|^2", &self.sq_norm), ("E|x|_1", &self.abs_norm)] {
            let weighted = match (v.weighted, v.truth) {
                (Some(w), Some(t)) => format!("; weighted {w:.4} (error {:+.4})", w - t),
                (Some(w), None) => format!("; weighted {w:.4}"),
                (None, _) => String::new(),
            };
            match v.truth {
                Some(t) => writeln!(
                    f,
                    "{name:<16} {:.4} (true {t:.4}, error {:+.4}){weighted}",
                    v.estimate,
                    v.estimate - t
                )?,
                None => writeln!(f, "{name:<16} {:.4}{weighted}", v.estimate)?,
            }
        }
        if let Some(w) = self.sliced_w2 {
            writeln!(
                f,
                "sliced W2        {w:.4} (vs exact samples of the target)"
            )?;
        }
        if let Some(modes) = &self.modes {
            let worst = self.worst_mode_ratio().unwrap_or(f64::NAN);
            let first = modes.first().map_or(0.0, |m| m.expected);
            if modes
                .iter()
                .all(|m| (m.expected - first).abs() <= 1e-9 * first)
            {
                writeln!(
                    f,
                    "modes            {} (expected share {first:.4} each; smallest observed/expected {worst:.3})",
                    modes.len(),
                )?;
            } else {
                let seen = modes.iter().filter(|m| m.observed > 0.0).count();
                let counted = modes
                    .iter()
                    .filter(|m| m.expected * self.n as f64 >= MIN_EXPECTED_COUNT)
                    .count();
                writeln!(
                    f,
                    "modes            {} of unequal weight, {seen} seen; smallest observed/expected \
                     {worst:.3} over the {counted} expected at least {MIN_EXPECTED_COUNT} times",
                    modes.len(),
                )?;
            }
            if modes.len() <= 16 {
                for m in modes {
                    writeln!(f, "  {:<14} {:.4}", m.label, m.observed)?;
                }
            }
        }
        if !self.coords.is_empty() && self.coords.len() <= MAX_LISTED_COORDS {
            writeln!(
                f,
                "coordinate       mean (raw)  std (raw)   mean (weighted)  std (weighted)"
            )?;
            for (j, c) in self.coords.iter().enumerate() {
                let opt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.4}"));
                writeln!(
                    f,
                    "  x{j:<13} {:<11.4} {:<11.4} {:<16} {}",
                    c.mean,
                    c.std,
                    opt(c.weighted_mean),
                    opt(c.weighted_std)
                )?;
            }
        }
        Ok(())
    }
}

/// Raw and self-normalised importance-weighted mean and std of every
/// coordinate (`weights`: [`normalised_weights`] of the costs, if any).
fn coord_stats(samples: &Samples, weights: Option<&[f64]>) -> Vec<CoordStats> {
    let (d, n) = (samples.d, samples.xs.len() / samples.d);
    (0..d)
        .map(|j| {
            let col = || samples.xs.chunks_exact(d).map(move |x| x[j] as f64);
            let mean = col().sum::<f64>() / n as f64;
            let var = col().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
            let (wm, ws) = match weights {
                Some(w) => {
                    let m = col().zip(w).map(|(v, w)| w * v).sum::<f64>();
                    let v = col()
                        .zip(w)
                        .map(|(v, w)| w * (v - m) * (v - m))
                        .sum::<f64>();
                    (Some(m), Some(v.sqrt()))
                }
                None => (None, None),
            };
            CoordStats {
                mean,
                std: var.sqrt(),
                weighted_mean: wm,
                weighted_std: ws,
            }
        })
        .collect()
}

/// Self-normalised importance weights `exp(-r_i) / sum_j exp(-r_j)`
/// (`None` without costs, or when no weight is positive).
fn normalised_weights(r: &[f64]) -> Option<Vec<f64>> {
    let max = r.iter().map(|v| -v).fold(f64::NEG_INFINITY, f64::max);
    if r.is_empty() || !max.is_finite() {
        return None;
    }
    let w: Vec<f64> = r.iter().map(|v| (-v - max).exp()).collect();
    let total: f64 = w.iter().sum();
    Some(w.into_iter().map(|v| v / total).collect())
}

/// The evaluation report of samples drawn from a model of `target` (its
/// `log Z` and ground truth, where known, give the errors).
pub fn report(samples: &Samples, target: Option<&dyn TrainTarget>, cost: CostForm) -> EvalReport {
    let (d, n) = (samples.d, samples.xs.len() / samples.d);
    let r: Vec<f64> = samples
        .costs
        .as_ref()
        .map(|c| c.iter().map(|p| cost.of(p)).collect())
        .unwrap_or_default();
    let estimates = if r.is_empty() {
        Estimates {
            log_z_lb: f64::NAN,
            log_z_is: f64::NAN,
            log_z_is_se: f64::NAN,
            ess: f64::NAN,
            pareto_k: f64::NAN,
        }
    } else {
        estimates(&r)
    };
    let sq_of = |x: &[f32]| x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
    let abs_of = |x: &[f32]| x.iter().map(|&v| (v as f64).abs()).sum::<f64>();
    let (mut sq, mut abs) = (0.0f64, 0.0f64);
    for x in samples.xs.chunks_exact(d) {
        sq += sq_of(x);
        abs += abs_of(x);
    }
    let weights = normalised_weights(&r);
    let weighted = |f: &dyn Fn(&[f32]) -> f64| {
        weights.as_ref().map(|w| {
            samples
                .xs
                .chunks_exact(d)
                .zip(w)
                .map(|(x, w)| w * f(x))
                .sum::<f64>()
        })
    };
    let truth = target.and_then(|t| t.ground_truth());
    let moments = truth.as_ref().and_then(|t| t.moments());
    let modes = truth.as_ref().filter(|t| t.mode_count() > 0).map(|t| {
        let mut counts = vec![0usize; t.mode_count()];
        for x in samples.xs.chunks_exact(d) {
            counts[t.mode_of(x)] += 1;
        }
        counts
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let mut label = String::new();
                t.write_mode_label(i, &mut label)
                    .expect("a String takes any label");
                ModeShare {
                    label,
                    observed: c as f64 / n as f64,
                    expected: t.mode_weight(i),
                }
            })
            .collect()
    });
    EvalReport {
        n,
        d,
        cost,
        estimates,
        log_z_true: target.and_then(|t| t.point().log_z()),
        sq_norm: Versus {
            estimate: sq / n as f64,
            truth: moments.map(|t| t.0),
            weighted: weighted(&sq_of),
        },
        abs_norm: Versus {
            estimate: abs / n as f64,
            truth: moments.map(|t| t.1),
            weighted: weighted(&abs_of),
        },
        modes,
        sliced_w2: truth
            .as_deref()
            .and_then(|t| sliced_w2_vs_target(samples, t)),
        coords: coord_stats(samples, weights.as_deref()),
    }
}

/// SW2 between the first `min(n, SW2_SAMPLES)` samples and as many exact
/// samples of `target` (under [`SW2_TRUTH_SEED`]), over
/// [`distance::DEFAULT_PROJECTIONS`] directions; `None` if the target has no
/// exact sampler, NaN if the dimension differs (never silently dropped).
pub fn sliced_w2_vs_target(samples: &Samples, target: &dyn GroundTruth) -> Option<f64> {
    let d = samples.d;
    let m = (samples.xs.len() / d).min(SW2_SAMPLES);
    if m == 0 || target.dim() != d {
        return Some(f64::NAN);
    }
    let truth = exact_samples(target, m, SW2_TRUTH_SEED).ok()?;
    Some(distance::sliced_w2(
        &samples.xs[..m * d],
        &truth.xs,
        d,
        distance::DEFAULT_PROJECTIONS,
        SW2_DIRECTION_SEED,
    ))
}
