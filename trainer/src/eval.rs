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
use diffctl_runtime::target::{Builtin, GaussianMixture};
use serde::{Deserialize, Serialize};

use crate::data::Toy;
use crate::distance;

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
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            n: 10_000,
            seed: 0,
            first: 0,
            steps: None,
            integrator: None,
            threads: default_threads(),
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

/// The target to sample with: the file's built-in one, or `given` when the
/// file has none. A given target that differs from the file's is an error
/// (the network's score term was trained with the file's).
pub fn resolve_target(
    header: &Header,
    given: Option<TargetSpec>,
) -> Result<Option<TargetSpec>, EvalError> {
    match (header.target, given) {
        (Some(a), Some(b)) if a != b => Err(EvalError::Invalid(format!(
            "the weights were trained on target {a}, not {b}"
        ))),
        (Some(a), _) => Ok(Some(a)),
        (None, Some(b)) => {
            b.validate()
                .map_err(|e| EvalError::Invalid(e.to_string()))?;
            if b.dim() != header.shape.d as usize {
                return Err(EvalError::Invalid(format!(
                    "target dimension {} differs from the model's {}",
                    b.dim(),
                    header.shape.d
                )));
            }
            Ok(Some(b))
        }
        (None, None) => Ok(None),
    }
}

/// Decodes a weights file and draws samples with the runtime, on
/// `opts.threads` threads (contiguous index ranges; results do not depend on
/// the thread count).
pub fn sample_file(
    bytes: &[u8],
    target: Option<TargetSpec>,
    opts: &SampleOptions,
) -> Result<Samples, EvalError> {
    let model = Model::parse(bytes)?;
    let header = model.header;
    let mut params = vec![0.0f32; header.param_count()];
    model.params_into(&mut params)?;
    let target = resolve_target(&header, target)?;
    sample_params(&header, &params, target, opts)
}

/// As [`sample_file`], from a header and flat `f32` parameters.
pub fn sample_params(
    header: &Header,
    params: &[f32],
    target: Option<TargetSpec>,
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
    let built: Option<Builtin> = target.map(|t| t.build());
    let sampler = header
        .sampler(net, built, opts.steps, opts.integrator)
        .map_err(|e| EvalError::Invalid(e.to_string()))?;
    let d = header.shape.d as usize;
    let with_cost = sampler.has_cost();
    let mut xs = vec![0.0f32; opts.n * d];
    let mut costs = vec![PathCost::default(); opts.n];
    let threads = opts.threads.max(1).min(opts.n);
    let chunk = opts.n.div_ceil(threads);
    let run =
        |range: Range<usize>, xs: &mut [f32], costs: &mut [PathCost]| -> Result<(), EvalError> {
            const BLOCK: usize = 64;
            let mut paths = vec![PathState::default(); BLOCK];
            let mut work = vec![0.0f32; sampler.work_len()];
            for (b, (xb, cb)) in xs
                .chunks_mut(BLOCK * d)
                .zip(costs.chunks_mut(BLOCK))
                .enumerate()
            {
                let first = opts.first + (range.start + b * BLOCK) as u64;
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
    Ok(Samples {
        d,
        first: opts.first,
        xs,
        costs: with_cost.then_some(costs),
    })
}

/// The three estimates of MATH.md §4 from path costs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimates {
    pub log_z_lb: f64,
    pub log_z_is: f64,
    /// Normalised effective sample size in `(0, 1]`.
    pub ess: f64,
}

/// `log Z_lb`, `log Z_is` (log-sum-exp) and ESS from costs `r`. Non-finite
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
    Estimates {
        log_z_lb,
        log_z_is: max + (s1 / n).ln(),
        ess: s1 * s1 / (n * s2),
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
    /// Mode occupancy (mixtures and double wells).
    pub modes: Option<Vec<ModeShare>>,
    /// Sliced Wasserstein-2 distance ([`crate::distance`]) between the first
    /// `min(n, SW2_SAMPLES)` model samples and as many exact samples of the
    /// target (seed [`SW2_TRUTH_SEED`]); `None` without a built-in target.
    #[serde(default)]
    pub sliced_w2: Option<f64>,
}

/// Most samples per side entering [`EvalReport::sliced_w2`].
pub const SW2_SAMPLES: usize = 20_000;
/// Seed of the exact target samples behind [`EvalReport::sliced_w2`] (fixed,
/// and far from the small seeds models are sampled with).
pub const SW2_TRUTH_SEED: u64 = 0x7377_325f_7472_7574;
/// Seed of the projection directions behind [`EvalReport::sliced_w2`].
pub const SW2_DIRECTION_SEED: u64 = 0x7377_325f_6469_7273;

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
        writeln!(
            f,
            "samples          {} (d = {}, cost {:?})",
            self.n, self.d, self.cost
        )?;
        if let Some(t) = self.log_z_true {
            writeln!(f, "log Z (true)     {t:.4}")?;
        }
        writeln!(
            f,
            "log Z_is         {:.4}{}",
            e.log_z_is,
            err(self.log_z_is_error())
        )?;
        writeln!(
            f,
            "log Z_lb         {:.4}{}",
            e.log_z_lb,
            err(self.log_z_lb_error())
        )?;
        writeln!(f, "ESS              {:.4}", e.ess)?;
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
        Ok(())
    }
}

/// `E|x|^2` and `E|x|_1` of a built-in target, in closed form or by quadrature.
pub fn true_moments(spec: &TargetSpec) -> (f64, f64) {
    use std::f64::consts::PI;
    let half_normal = (2.0 / PI).sqrt(); // E|N(0, 1)|
    match *spec {
        TargetSpec::Gmm => {
            let t = spec.build();
            let Builtin::Mixture(m) = t else {
                unreachable!()
            };
            let d = 2;
            let (mut sq, mut abs) = (0.0, 0.0);
            let w_total: f64 = m.weights.iter().map(|&w| w as f64).sum();
            for i in 0..m.components() {
                let w = m.weights[i] as f64 / w_total;
                for j in 0..d {
                    let (mu, s) = (m.means[i * d + j] as f64, m.stds[i * d + j] as f64);
                    sq += w * (mu * mu + s * s);
                    abs += w * folded_normal_mean(mu, s);
                }
            }
            (sq, abs)
        }
        TargetSpec::Funnel { d, sigma } => {
            // x1 ~ N(0, s^2); x_i | x1 ~ N(0, e^{x1}): E e^{x1} = e^{s^2/2}, E e^{x1/2} = e^{s^2/8}.
            let (s2, rest) = ((sigma as f64).powi(2), (d - 1) as f64);
            let sq = s2 + rest * (s2 / 2.0).exp();
            let abs = (s2.sqrt() + rest * (s2 / 8.0).exp()) * half_normal;
            (sq, abs)
        }
        TargetSpec::MultiWell { d, w, delta } => {
            let (m2, m1) = well_moments(delta as f64);
            let gauss = (d - w) as f64;
            (w as f64 * m2 + gauss, w as f64 * m1 + gauss * half_normal)
        }
    }
}

/// `E|X|` for `X ~ N(mu, s^2)`.
fn folded_normal_mean(mu: f64, s: f64) -> f64 {
    let z = mu / s;
    s * (2.0 / std::f64::consts::PI).sqrt() * (-0.5 * z * z).exp()
        + mu * libm::erf(z / std::f64::consts::SQRT_2)
}

/// `E x^2` and `E|x|` under `exp(-(x^2 - delta)^2) / z1(delta)` (trapezoidal rule).
fn well_moments(delta: f64) -> (f64, f64) {
    let half = (delta.max(0.0) + 6.0).sqrt();
    let n = 40_000;
    let h = 2.0 * half / n as f64;
    let (mut z, mut m2, mut m1) = (0.0, 0.0, 0.0);
    for i in 0..=n {
        let x = -half + i as f64 * h;
        let e = x * x - delta;
        let w = (-e * e).exp() * if i == 0 || i == n { 0.5 } else { 1.0 };
        z += w;
        m2 += w * x * x;
        m1 += w * x.abs();
    }
    (m2 / z, m1 / z)
}

/// Mode of sample `x`: the nearest component of a mixture, or the sign
/// pattern of the well coordinates of a double-well target.
fn mode_of(target: &Builtin, spec: &TargetSpec, x: &[f32]) -> Option<usize> {
    match (target, spec) {
        (Builtin::Mixture(m), _) => Some(GaussianMixture::nearest_component(m, x)),
        (Builtin::MultiWell(t), _) => Some(
            x[..t.w]
                .iter()
                .enumerate()
                .fold(0, |acc, (i, &v)| acc | (usize::from(v > 0.0) << i)),
        ),
        _ => None,
    }
}

/// Mode labels and true weights of a built-in target, when it has modes.
fn modes_of(target: &Builtin) -> Option<Vec<(String, f64)>> {
    match target {
        Builtin::Mixture(m) => {
            let total: f64 = m.weights.iter().map(|&w| w as f64).sum();
            let d = m.means.len() / m.weights.len();
            Some(
                (0..m.components())
                    .map(|i| {
                        let mean: Vec<String> = m.means[i * d..(i + 1) * d]
                            .iter()
                            .map(|v| format!("{v}"))
                            .collect();
                        (format!("({})", mean.join(",")), m.weights[i] as f64 / total)
                    })
                    .collect(),
            )
        }
        // Each well is symmetric: all 2^w sign patterns are equally likely.
        Builtin::MultiWell(t) if t.w <= 16 => {
            let count = 1usize << t.w;
            Some(
                (0..count)
                    .map(|k| {
                        let label: String = (0..t.w)
                            .map(|i| if k >> i & 1 == 1 { '+' } else { '-' })
                            .collect();
                        (label, 1.0 / count as f64)
                    })
                    .collect(),
            )
        }
        _ => None,
    }
}

/// The evaluation report of samples drawn from a model of `target`.
pub fn report(samples: &Samples, target: Option<TargetSpec>, cost: CostForm) -> EvalReport {
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
            ess: f64::NAN,
        }
    } else {
        estimates(&r)
    };
    let (mut sq, mut abs) = (0.0f64, 0.0f64);
    for x in samples.xs.chunks_exact(d) {
        sq += x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
        abs += x.iter().map(|&v| (v as f64).abs()).sum::<f64>();
    }
    let truth = target.map(|t| true_moments(&t));
    let built = target.map(|t| t.build());
    let modes = match (&built, &target) {
        (Some(b), Some(spec)) => modes_of(b).map(|labels| {
            let mut counts = vec![0usize; labels.len()];
            for x in samples.xs.chunks_exact(d) {
                if let Some(k) = mode_of(b, spec, x) {
                    counts[k] += 1;
                }
            }
            labels
                .into_iter()
                .zip(counts)
                .map(|((label, expected), c)| ModeShare {
                    label,
                    observed: c as f64 / n as f64,
                    expected,
                })
                .collect()
        }),
        _ => None,
    };
    EvalReport {
        n,
        d,
        cost,
        estimates,
        log_z_true: built.and_then(|b| b.log_z()),
        sq_norm: Versus {
            estimate: sq / n as f64,
            truth: truth.map(|t| t.0),
        },
        abs_norm: Versus {
            estimate: abs / n as f64,
            truth: truth.map(|t| t.1),
        },
        modes,
        sliced_w2: target.map(|t| sliced_w2_vs_target(samples, &t)),
    }
}

/// SW2 between the first `min(n, SW2_SAMPLES)` samples and as many exact
/// samples of `target` ([`Toy::Target`] under [`SW2_TRUTH_SEED`]), over
/// [`distance::DEFAULT_PROJECTIONS`] directions. NaN if the target cannot be
/// sampled or its dimension differs (never silently dropped).
pub fn sliced_w2_vs_target(samples: &Samples, target: &TargetSpec) -> f64 {
    let d = samples.d;
    let m = (samples.xs.len() / d).min(SW2_SAMPLES);
    if m == 0 || target.dim() != d {
        return f64::NAN;
    }
    match Toy::Target(*target).generate(m, SW2_TRUTH_SEED) {
        Ok(truth) => distance::sliced_w2(
            &samples.xs[..m * d],
            &truth.xs,
            d,
            distance::DEFAULT_PROJECTIONS,
            SW2_DIRECTION_SEED,
        ),
        Err(_) => f64::NAN,
    }
}

/// Samples a weights file and reports on it (`diffctl eval`).
pub fn evaluate(
    bytes: &[u8],
    target: Option<TargetSpec>,
    opts: &SampleOptions,
    cost: CostForm,
) -> Result<EvalReport, EvalError> {
    let model = Model::parse(bytes)?;
    let target = resolve_target(&model.header, target)?;
    if target.is_none() {
        return Err(EvalError::Invalid(
            "no target: the weights file has none built in; give one".into(),
        ));
    }
    let samples = sample_file(bytes, target, opts)?;
    Ok(report(&samples, target, cost))
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
            let (s, a) = true_moments(&TargetSpec::preset(name).unwrap());
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

    /// Exact samples of the target are close to the target's reference
    /// samples (an independent draw): the floor a perfect model would show.
    #[test]
    fn sliced_w2_of_exact_samples_is_small() {
        let spec = TargetSpec::preset("gmm").unwrap();
        let data = Toy::Target(spec).generate(30_000, 3).unwrap();
        let samples = Samples {
            d: data.d,
            first: 0,
            xs: data.xs,
            costs: None,
        };
        let r = report(&samples, Some(spec), CostForm::Discrete);
        let w = r.sliced_w2.unwrap();
        assert!(w > 0.0 && w < 0.15, "{w}");
        assert!(r.to_string().contains("sliced W2        "), "{r}");
        assert_eq!(report(&samples, None, CostForm::Discrete).sliced_w2, None);
    }
}
