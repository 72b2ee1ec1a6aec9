//! Sampling a weights file with the runtime, on threads: [`sample_file`],
//! [`sample_params`], and resampling by weight ([`resample`]).

use std::fmt;
use std::ops::Range;

use diffctl_runtime::integrate::{PathCost, PathState};
use diffctl_runtime::network::NetworkRef;
use diffctl_runtime::prelude::*;

use crate::parallel::{default_threads, MAX_THREADS};
use crate::target::{Known, TrainTarget};

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

/// Most samples one call may draw (the samples are held in memory).
pub const MAX_SAMPLES: usize = 1 << 28;

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
        .sampler_for(net, target, opts.steps, opts.integrator)
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
/// `exp(-R_disc)`, one uniform offset `u` from [`crate::streams::resample`], draw `k`
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
    let u = diffctl_runtime::normal::uniform_f64(&mut crate::streams::resample(seed));
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
