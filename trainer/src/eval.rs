//! Evaluation through the runtime: what ships is what is measured.
//!
//! Every number here comes from decoding a weights file with
//! `diffctl-runtime` and sampling it with `Sampler::sample`, exactly as a
//! device would. Sample `i` under seed `s` is the same whatever the thread
//! count, so `diffctl sample` reproduces the samples of an evaluation bit for bit.
//!
//! Estimators over `N` paths with costs `R_i` (MATH.md §4): `log Z_lb =
//! mean(-R_i)`, `log Z_is = log mean exp(-R_i)`, `ESS = (sum w)^2 / (N sum w^2)`.

use std::fmt;
use std::ops::Range;

use diffctl_runtime::integrate::{PathCost, PathState};
use diffctl_runtime::network::NetworkRef;
use diffctl_runtime::prelude::*;
use diffctl_runtime::target::GroundTruth;
use serde::{Deserialize, Serialize};

use crate::data::exact_samples;
use crate::distance;
use crate::psis;
use crate::target::{Known, TrainTarget};

/// Which path cost enters the estimates (and the log-variance loss).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CostForm {
    /// `R_disc` from transition densities: unbiased at every step count.
    #[default]
    Discrete,
    /// The Euler discretisation of the continuous `R`: biased at finite K.
    Continuous,
}

impl CostForm {
    pub fn of(self, c: &PathCost) -> f64 {
        match self {
            CostForm::Discrete => c.r_disc,
            CostForm::Continuous => c.r,
        }
    }
}

/// How to sample a weights file.
#[derive(Clone, Debug)]
pub struct SampleOptions {
    pub n: usize,
    pub seed: u64,
    /// First sample index (samples `first .. first + n` are drawn).
    pub first: u64,
    /// Overrides the header's step count.
    pub steps: Option<usize>,
    /// Overrides the header's integrator.
    pub integrator: Option<Integrator>,
    pub threads: usize,
    /// Paths each thread advances in lockstep; the target is called once
    /// per step for the whole block, so a target that is slow per call (a
    /// Python function) wants large blocks. Samples do not depend on it.
    pub block: usize,
}

/// Default [`SampleOptions::block`].
pub const DEFAULT_BLOCK: usize = 64;

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            n: 10_000,
            seed: 0,
            first: 0,
            steps: None,
            integrator: None,
            threads: default_threads(),
            block: DEFAULT_BLOCK,
        }
    }
}

/// Most threads a sampling or training run may ask for.
pub const MAX_THREADS: usize = 256;
/// Most samples one call may draw (the samples are held in memory).
pub const MAX_SAMPLES: usize = 1 << 28;

/// Number of cores available.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Why a file could not be sampled or evaluated. `Display` is one line.
#[derive(Clone, Debug, PartialEq)]
pub enum EvalError {
    Decode(DecodeError),
    Invalid(String),
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::Decode(e) => write!(f, "{e}"),
            EvalError::Invalid(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for EvalError {}

impl From<DecodeError> for EvalError {
    fn from(e: DecodeError) -> Self {
        EvalError::Decode(e)
    }
}

/// Samples `n x d`, row-major, with their path costs when a target is known.
#[derive(Clone, Debug)]
pub struct Samples {
    pub d: usize,
    pub first: u64,
    pub xs: Vec<f32>,
    pub costs: Option<Vec<PathCost>>,
}

/// The target a weights file names by itself (a preset, a stored mixture),
/// if any.
pub fn file_target(model: &Model) -> Option<Known> {
    let spec = model.header.target?;
    Known::new(spec, model.target_data().to_vec()).ok()
}

/// Checks that `given` is the target the model was trained on, as far as
/// the header records it: the same kind and parameters, the same data
/// (checksum) for a data-defined target, the same dimension for any.
pub fn check_target(header: &Header, given: &dyn TrainTarget) -> Result<(), EvalError> {
    match (header.target, given.spec()) {
        (
            Some(TargetSpec::LogisticRegression { data_crc: a, .. }),
            Some(TargetSpec::LogisticRegression { data_crc: b, .. }),
        ) if a != b => {
            return Err(EvalError::Invalid(format!(
                "the target's data differ from the data the model was trained on (checksum \
                 {b:#010x}, the file records {a:#010x})"
            )))
        }
        (Some(a), Some(b)) if a != b => {
            return Err(EvalError::Invalid(format!(
                "the weights were trained on target {a}, not {b}"
            )))
        }
        _ => {}
    }
    if given.dim() != header.shape.d as usize {
        return Err(EvalError::Invalid(format!(
            "the target has dimension {}, the model {}",
            given.dim(),
            header.shape.d
        )));
    }
    Ok(())
}

/// Decodes a weights file and draws samples with the runtime, on
/// `opts.threads` threads (contiguous index ranges; results do not depend on
/// the thread count). `target` gives path costs and the network's score
/// term; without it the file's own target (a preset, a stored mixture) is used.
pub fn sample_file(
    bytes: &[u8],
    target: Option<&dyn TrainTarget>,
    opts: &SampleOptions,
) -> Result<Samples, EvalError> {
    let model = Model::parse(bytes)?;
    let header = model.header;
    let mut params = vec![0.0f32; header.param_count()];
    model.params_into(&mut params)?;
    let own = file_target(&model);
    let target = match target {
        Some(t) => {
            check_target(&header, t)?;
            Some(t)
        }
        None => own.as_ref().map(|k| k as &dyn TrainTarget),
    };
    if target.is_none() && header.shape.score_term {
        return Err(EvalError::Invalid(match header.target {
            Some(spec) => format!(
                "the model's network uses the target's score and its target, {spec}, is \
                 defined by a data set: give its config (--target-config)"
            ),
            None => "the model's network uses the target's score and the file names no \
                     target: give one (--target or --target-config)"
                .into(),
        }));
    }
    let point = target.map(|t| t.point());
    sample_params(&header, &params, point.as_deref(), opts)
}

/// As [`sample_file`], from a header, flat `f32` parameters and the
/// per-point target the runtime evaluates.
pub fn sample_params(
    header: &Header,
    params: &[f32],
    target: Option<&(dyn Target + Sync)>,
    opts: &SampleOptions,
) -> Result<Samples, EvalError> {
    if opts.n == 0 {
        return Err(EvalError::Invalid(
            "the number of samples must be at least 1".into(),
        ));
    }
    if opts.n > MAX_SAMPLES {
        return Err(EvalError::Invalid(format!(
            "at most {MAX_SAMPLES} samples per call, got {}",
            opts.n
        )));
    }
    if opts.threads > MAX_THREADS {
        return Err(EvalError::Invalid(format!(
            "at most {MAX_THREADS} threads, got {}",
            opts.threads
        )));
    }
    if opts.steps == Some(0) {
        return Err(EvalError::Invalid(
            "the number of steps must be at least 1".into(),
        ));
    }
    let net = NetworkRef::from_flat(header.shape, params)
        .map_err(|e| EvalError::Invalid(e.to_string()))?;
    let sampler = header
        .sampler(net, target, opts.steps, opts.integrator)
        .map_err(|e| EvalError::Invalid(e.to_string()))?;
    let d = header.shape.d as usize;
    let with_cost = sampler.has_cost();
    let mut xs = vec![0.0f32; opts.n * d];
    let mut costs = vec![PathCost::default(); opts.n];
    let threads = opts.threads.max(1).min(opts.n);
    let chunk = opts.n.div_ceil(threads);
    let run =
        |range: Range<usize>, xs: &mut [f32], costs: &mut [PathCost]| -> Result<(), EvalError> {
            let block = opts.block.clamp(1, range.len().max(1));
            let mut paths = vec![PathState::default(); block];
            let mut work = vec![0.0f32; sampler.work_len(block)];
            for (b, (xb, cb)) in xs
                .chunks_mut(block * d)
                .zip(costs.chunks_mut(block))
                .enumerate()
            {
                let first = opts.first + (range.start + b * block) as u64;
                let m = cb.len();
                sampler
                    .sample(opts.seed, first, xb, &mut paths[..m], &mut work)
                    .map_err(|e| EvalError::Invalid(e.to_string()))?;
                for (c, p) in cb.iter_mut().zip(&paths[..m]) {
                    *c = p.cost;
                }
            }
            Ok(())
        };
    std::thread::scope(|s| {
        let handles: Vec<_> = xs
            .chunks_mut(chunk * d)
            .zip(costs.chunks_mut(chunk))
            .enumerate()
            .map(|(i, (xc, cc))| {
                let run = &run;
                s.spawn(move || run(i * chunk..i * chunk + cc.len(), xc, cc))
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("sampling thread panicked"))
    })?;
    let samples = Samples {
        d,
        first: opts.first,
        xs,
        costs: with_cost.then_some(costs),
    };
    samples.check_finite()?;
    Ok(samples)
}

impl Samples {
    /// A NaN path cost means the target returned NaN (or the model
    /// diverged): an error naming how many paths it hit. `+inf` (a point
    /// outside the target's support) is a weight of zero and allowed.
    pub fn check_finite(&self) -> Result<(), EvalError> {
        let Some(costs) = &self.costs else {
            return Ok(());
        };
        let nan = costs
            .iter()
            .filter(|c| c.r_disc.is_nan() || c.r.is_nan())
            .count();
        if nan > 0 {
            return Err(EvalError::Invalid(format!(
                "{nan} of {} paths have a NaN path cost: the target returned NaN (or the model diverged)",
                costs.len()
            )));
        }
        Ok(())
    }
}

/// `m` draws from weighted samples by systematic resampling: weights
/// `exp(-R_disc)`, one uniform offset drawn from `stream(seed, 0)`, draw `k`
/// the sample whose cumulative weight first exceeds `(k + u) / m`. The
/// draws approximate the target (as well as the weights allow: see the ESS
/// and `k-hat`); they carry no costs. Errors without costs or with no
/// sample of positive weight.
pub fn resample(samples: &Samples, m: usize, seed: u64) -> Result<Samples, EvalError> {
    let costs = samples.costs.as_ref().ok_or_else(|| {
        EvalError::Invalid("resampling needs importance weights: sample with a target".into())
    })?;
    let d = samples.d;
    let max = costs
        .iter()
        .map(|c| -c.r_disc)
        .fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return Err(EvalError::Invalid(
            "no sample has a positive importance weight".into(),
        ));
    }
    let w: Vec<f64> = costs.iter().map(|c| (-c.r_disc - max).exp()).collect();
    let total: f64 = w.iter().sum();
    let u = diffctl_runtime::normal::uniform_f64(&mut diffctl_runtime::normal::stream(seed, 0));
    let mut xs = Vec::with_capacity(m * d);
    let (mut i, mut cum) = (0usize, w[0] / total);
    for k in 0..m {
        let target = (k as f64 + u) / m as f64;
        while cum < target && i + 1 < w.len() {
            i += 1;
            cum += w[i] / total;
        }
        xs.extend_from_slice(&samples.xs[i * d..(i + 1) * d]);
    }
    Ok(Samples {
        d,
        first: 0,
        xs,
        costs: None,
    })
}

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

/// An estimate beside its true value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Versus {
    pub estimate: f64,
    pub truth: Option<f64>,
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
/// Seed of the exact target samples behind [`EvalReport::sliced_w2`] (fixed,
/// and far from the small seeds models are sampled with).
pub const SW2_TRUTH_SEED: u64 = 0x7377_325f_7472_7574;
/// Seed of the projection directions behind [`EvalReport::sliced_w2`].
pub const SW2_DIRECTION_SEED: u64 = 0x7377_325f_6469_7273;
/// Most coordinates [`EvalReport`]'s text lists one by one.
const MAX_LISTED_COORDS: usize = 40;

impl EvalReport {
    pub fn log_z_is_error(&self) -> Option<f64> {
        self.log_z_true.map(|t| self.estimates.log_z_is - t)
    }
    pub fn log_z_lb_error(&self) -> Option<f64> {
        self.log_z_true.map(|t| self.estimates.log_z_lb - t)
    }
    /// Smallest observed share over the modes divided by its expected share.
    pub fn worst_mode_ratio(&self) -> Option<f64> {
        self.modes.as_ref().map(|m| {
            m.iter()
                .map(|s| s.observed / s.expected)
                .fold(f64::INFINITY, f64::min)
        })
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
            match v.truth {
                Some(t) => writeln!(
                    f,
                    "{name:<16} {:.4} (true {t:.4}, error {:+.4})",
                    v.estimate,
                    v.estimate - t
                )?,
                None => writeln!(f, "{name:<16} {:.4}", v.estimate)?,
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
            writeln!(
                f,
                "modes            {} (expected share {:.4} each; smallest observed/expected {:.3})",
                modes.len(),
                modes.first().map_or(0.0, |m| m.expected),
                worst
            )?;
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
/// coordinate (weights `exp(-r)`, `r` the costs, when given and finite).
fn coord_stats(samples: &Samples, r: &[f64]) -> Vec<CoordStats> {
    let (d, n) = (samples.d, samples.xs.len() / samples.d);
    let max = r.iter().map(|v| -v).fold(f64::NEG_INFINITY, f64::max);
    let weights: Option<Vec<f64>> =
        (!r.is_empty() && max.is_finite()).then(|| r.iter().map(|v| (-v - max).exp()).collect());
    let total: f64 = weights.as_ref().map_or(0.0, |w| w.iter().sum());
    (0..d)
        .map(|j| {
            let col = || samples.xs.chunks_exact(d).map(move |x| x[j] as f64);
            let mean = col().sum::<f64>() / n as f64;
            let var = col().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
            let (wm, ws) = match &weights {
                Some(w) => {
                    let m = col().zip(w).map(|(v, w)| w * v).sum::<f64>() / total;
                    let v = col()
                        .zip(w)
                        .map(|(v, w)| w * (v - m) * (v - m))
                        .sum::<f64>()
                        / total;
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
    let (mut sq, mut abs) = (0.0f64, 0.0f64);
    for x in samples.xs.chunks_exact(d) {
        sq += x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
        abs += x.iter().map(|&v| (v as f64).abs()).sum::<f64>();
    }
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
        },
        abs_norm: Versus {
            estimate: abs / n as f64,
            truth: moments.map(|t| t.1),
        },
        modes,
        sliced_w2: truth
            .as_deref()
            .and_then(|t| sliced_w2_vs_target(samples, t)),
        coords: coord_stats(samples, &r),
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

/// Samples a weights file and reports on it (`diffctl eval`). Without
/// `target`, the file's own (a preset or a stored mixture) is used.
pub fn evaluate(
    bytes: &[u8],
    target: Option<&dyn TrainTarget>,
    opts: &SampleOptions,
    cost: CostForm,
) -> Result<EvalReport, EvalError> {
    let model = Model::parse(bytes)?;
    let own = file_target(&model);
    let target: &dyn TrainTarget = match (target, &own) {
        (Some(t), _) => t,
        (None, Some(k)) => k,
        (None, None) => {
            return Err(EvalError::Invalid(match model.header.target {
                Some(spec) => format!(
                    "the model's target, {spec}, is defined by a data set: give its config \
                     (--target-config)"
                ),
                None => "no target: the weights file names none; give one (--target or \
                         --target-config)"
                    .into(),
            }))
        }
    };
    let samples = sample_file(bytes, Some(target), opts)?;
    Ok(report(&samples, Some(target), cost))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MATH.md §8's table.
    #[test]
    fn true_moments_match_the_table() {
        let table = [
            ("gmm", 33.933333, 6.958013),
            ("funnel", 819.154182, 24.512571),
            ("mw5", 19.670523, 9.875075),
            ("dw20", 29.535297, 20.422541),
            ("mw50", 54.176709, 42.500780),
        ];
        for (name, sq, abs) in table {
            let target = TargetSpec::preset(name).unwrap().build_builtin();
            let (s, a) = target.moments().unwrap();
            assert!((s - sq).abs() < 1e-4 * sq, "{name}: E|x|^2 {s} vs {sq}");
            assert!((a - abs).abs() < 1e-4 * abs, "{name}: E|x|_1 {a} vs {abs}");
        }
    }

    #[test]
    fn estimators_on_known_weights() {
        // Equal costs: all three estimates equal -R and ESS = 1.
        let e = estimates(&[2.0; 10]);
        assert!((e.log_z_lb + 2.0).abs() < 1e-12 && (e.log_z_is + 2.0).abs() < 1e-12);
        assert!((e.ess - 1.0).abs() < 1e-12);
        // Weights 1 and 3: log mean = log 2, ESS = 16 / (2 * 10) = 0.8.
        let e = estimates(&[0.0, -(3f64.ln())]);
        assert!((e.log_z_is - 2f64.ln()).abs() < 1e-12);
        assert!((e.ess - 0.8).abs() < 1e-12);
        // Stable for huge costs.
        let e = estimates(&[1000.0, 1000.0]);
        assert!((e.log_z_is + 1000.0).abs() < 1e-9);
    }

    /// Systematic resampling keeps each sample about `m w_i / sum w`
    /// times (never more than one off), and needs weights.
    #[test]
    fn resampling_follows_the_weights() {
        let costs: Vec<PathCost> = [0.0, -(3f64.ln()), f64::INFINITY, 0.0]
            .iter()
            .map(|&r| PathCost { r, r_disc: r })
            .collect();
        let samples = Samples {
            d: 1,
            first: 0,
            xs: vec![0.0, 1.0, 2.0, 3.0],
            costs: Some(costs),
        };
        let out = resample(&samples, 600, 4).unwrap();
        let count = |v: f32| out.xs.iter().filter(|&&x| x == v).count() as i64;
        // Weights 1, 3, 0, 1 of 5.
        for (v, want) in [(0.0, 120), (1.0, 360), (2.0, 0), (3.0, 120)] {
            assert!((count(v) - want).abs() <= 1, "{v}: {}", count(v));
        }
        let bare = Samples {
            costs: None,
            ..samples
        };
        assert!(resample(&bare, 5, 0).is_err());
    }

    /// Exact samples of the target are close to the target's reference
    /// samples (an independent draw): the floor a perfect model would show.
    #[test]
    fn sliced_w2_of_exact_samples_is_small() {
        let gmm = Known::preset("gmm").unwrap();
        let data = crate::data::Toy::by_name("gmm")
            .unwrap()
            .generate(30_000, 3)
            .unwrap();
        let samples = Samples {
            d: data.d,
            first: 0,
            xs: data.xs,
            costs: None,
        };
        let r = report(&samples, Some(&gmm), CostForm::Discrete);
        let w = r.sliced_w2.unwrap();
        assert!(w > 0.0 && w < 0.15, "{w}");
        assert!(r.to_string().contains("sliced W2        "), "{r}");
        assert_eq!(report(&samples, None, CostForm::Discrete).sliced_w2, None);
    }
}
