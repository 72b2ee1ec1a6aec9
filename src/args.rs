//! Arguments shared by several subcommands, and their checks.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use diffctl_runtime::prelude::*;
use diffctl_runtime::weights::MAX_STEPS;
use diffctl_trainer::eval::{check_target, file_target, CostForm, SampleOptions};
use diffctl_trainer::optimise::RunOptions;
use diffctl_trainer::parallel::{default_threads, MAX_THREADS};
use diffctl_trainer::target::{Known, TrainTarget};

use crate::config;
use crate::error::{Error, Result};

/// A target chosen on the command line, built.
pub struct ChosenTarget {
    pub target: Box<dyn TrainTarget>,
    /// Short name for file names (`gmm`, `mw20w5`, the config file's stem).
    pub name: String,
    /// One-line description.
    pub description: String,
}

impl ChosenTarget {
    /// A preset or parametric built-in target.
    pub fn builtin(spec: TargetSpec) -> Result<Self> {
        Ok(Self {
            target: Box::new(Known::builtin(spec).map_err(Error::new)?),
            name: target_name(&spec),
            description: describe_target(&spec),
        })
    }
}

/// Most floats (`n * d`) one command draws: 4 GiB of samples.
pub const MAX_FLOATS: usize = 1 << 30;

/// The target: a built-in preset, optionally with its parameters changed,
/// or a target described in a TOML file.
#[derive(Args, Clone, Debug, Default)]
pub struct TargetArgs {
    /// TOML file whose `[target]` table describes the target: a preset
    /// (`name = "dw20"`), a Gaussian mixture (`name = "mixture"`) or a
    /// Bayesian logistic regression on a CSV file (`name = "logistic-regression"`).
    #[arg(long, value_name = "FILE.toml", conflicts_with = "target")]
    pub target_config: Option<PathBuf>,
    /// Built-in target: gmm, funnel, mw5, dw20, mw50, gmm25 or manywell32.
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
    /// Dimension of a funnel, multi-well or many-well (even) target [default: the preset's].
    #[arg(long, value_name = "D")]
    pub dim: Option<u32>,
    /// Number of double-well coordinates of a multi-well target [default: the preset's].
    #[arg(long, value_name = "W")]
    pub wells: Option<u32>,
    /// Well separation delta of a multi-well target [default: the preset's].
    #[arg(long, value_name = "DELTA", allow_negative_numbers = true)]
    pub delta: Option<f32>,
    /// Scale sigma of the funnel's first coordinate [default: the preset's].
    #[arg(long, value_name = "SIGMA", allow_negative_numbers = true)]
    pub sigma: Option<f32>,
}

impl TargetArgs {
    /// The target these arguments name, if any (checked).
    pub fn spec(&self) -> Result<Option<TargetSpec>> {
        let Some(name) = &self.target else {
            if self.dim.is_some()
                || self.wells.is_some()
                || self.delta.is_some()
                || self.sigma.is_some()
            {
                return Err("--dim, --wells, --delta and --sigma need --target".into());
            }
            return Ok(None);
        };
        let params = TargetParams {
            dim: self.dim,
            wells: self.wells,
            delta: self.delta,
            sigma: self.sigma,
        };
        target_spec(name, &params).map(Some)
    }

    /// The target these arguments name, built: from `--target-config`, or
    /// the preset of `--target` with its overrides; `None` if neither is given.
    pub fn resolve(&self) -> Result<Option<ChosenTarget>> {
        match &self.target_config {
            Some(path) => {
                if self.dim.is_some()
                    || self.wells.is_some()
                    || self.delta.is_some()
                    || self.sigma.is_some()
                {
                    return Err(
                        "--dim, --wells, --delta and --sigma apply to --target presets, not --target-config"
                            .into(),
                    );
                }
                config::load_target(path).map(Some)
            }
            None => self.spec()?.map(ChosenTarget::builtin).transpose(),
        }
    }
}

/// The target to sample a model with: the one the command line gives
/// (checked against what the file records), else the file's own (a preset,
/// a stored mixture); `None` if there is neither.
pub fn model_target(args: &TargetArgs, model: &Model) -> Result<Option<Box<dyn TrainTarget>>> {
    match args.resolve()? {
        Some(chosen) => {
            check_target(&model.header, &*chosen.target)?;
            Ok(Some(chosen.target))
        }
        None => Ok(file_target(model).map(|k| Box::new(k) as Box<dyn TrainTarget>)),
    }
}

/// Overrides of a preset's parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TargetParams {
    pub dim: Option<u32>,
    pub wells: Option<u32>,
    pub delta: Option<f32>,
    pub sigma: Option<f32>,
}

/// Preset `name` with `params` applied, validated.
pub fn target_spec(name: &str, params: &TargetParams) -> Result<TargetSpec> {
    let mut spec = TargetSpec::preset(name).ok_or_else(|| {
        Error::new(format!(
            "unknown target '{name}' (known: {})",
            TargetSpec::PRESETS.join(", ")
        ))
    })?;
    let refuse = |flag: &str| -> Result<()> {
        Err(Error::new(format!(
            "target '{name}' has no parameter {flag}"
        )))
    };
    match &mut spec {
        TargetSpec::Gmm | TargetSpec::Gmm25 => {
            if params.dim.is_some() {
                refuse("--dim (it is 2-d)")?;
            }
            if params.wells.is_some() || params.delta.is_some() {
                refuse("--wells/--delta")?;
            }
            if params.sigma.is_some() {
                refuse("--sigma")?;
            }
        }
        TargetSpec::Funnel { d, sigma } => {
            if params.wells.is_some() || params.delta.is_some() {
                refuse("--wells/--delta")?;
            }
            *d = params.dim.unwrap_or(*d);
            *sigma = params.sigma.unwrap_or(*sigma);
        }
        TargetSpec::MultiWell { d, w, delta } => {
            if params.sigma.is_some() {
                refuse("--sigma")?;
            }
            *d = params.dim.unwrap_or(*d);
            // A lower dimension keeps the preset's wells where they fit.
            *w = params.wells.unwrap_or((*w).min(*d));
            *delta = params.delta.unwrap_or(*delta);
        }
        TargetSpec::ManyWell { d } => {
            if params.wells.is_some() || params.delta.is_some() || params.sigma.is_some() {
                refuse("--wells/--delta/--sigma (its wells are fixed; --dim sets their number)")?;
            }
            *d = params.dim.unwrap_or(*d);
        }
        TargetSpec::Mixture { .. } | TargetSpec::LogisticRegression { .. } => {
            unreachable!("presets are parametric")
        }
    }
    spec.validate()
        .map_err(|e| Error::new(format!("target '{name}': {e}")))?;
    Ok(spec)
}

/// One-line description of a target, with the preset's name when it is one.
pub fn describe_target(spec: &TargetSpec) -> String {
    let preset = TargetSpec::PRESETS
        .iter()
        .find(|n| TargetSpec::preset(n).as_ref() == Some(spec));
    let body = match *spec {
        TargetSpec::Gmm => "2-d mixture of 9 Gaussians at {-5,0,5}^2, std sqrt(0.3)".to_string(),
        TargetSpec::Funnel { d, sigma } => format!("funnel, d = {d}, sigma = {sigma}"),
        TargetSpec::MultiWell { d, w, delta } => {
            format!("multi-well, d = {d}, {w} double wells, delta = {delta}")
        }
        TargetSpec::Gmm25 => {
            "2-d mixture of 25 Gaussians at {-10,-5,0,5,10}^2, std sqrt(0.3)".to_string()
        }
        TargetSpec::ManyWell { d } => format!(
            "many-well, d = {d}, {} asymmetric 2-d double wells 0.5 x1 + 6 x1^2 - x1^4 - x2^2/2",
            d / 2
        ),
        TargetSpec::Mixture { .. } | TargetSpec::LogisticRegression { .. } => spec.to_string(),
    };
    match preset {
        Some(name) => format!("{name} ({body})"),
        None => body,
    }
}

/// Short name of a target for file names.
pub fn target_name(spec: &TargetSpec) -> String {
    TargetSpec::PRESETS
        .iter()
        .find(|n| TargetSpec::preset(n).as_ref() == Some(spec))
        .map_or_else(
            || match spec {
                TargetSpec::Gmm => "gmm".into(),
                TargetSpec::Funnel { d, .. } => format!("funnel{d}"),
                TargetSpec::MultiWell { d, w, .. } => format!("mw{d}w{w}"),
                TargetSpec::Gmm25 => "gmm25".into(),
                TargetSpec::ManyWell { d } => format!("manywell{d}"),
                TargetSpec::Mixture { .. } => "mixture".into(),
                TargetSpec::LogisticRegression { .. } => "logistic".into(),
            },
            |n| n.to_string(),
        )
}

/// Time grid: uniform, or refined toward t = T.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GridArg {
    /// t_k = T k / K
    Uniform,
    /// t_k = T (1 - (1 - k/K)^2)
    Quadratic,
    /// t_k = T sin(pi/2 k/K)
    Cosine,
}

impl From<GridArg> for TimeGrid {
    fn from(a: GridArg) -> Self {
        match a {
            GridArg::Uniform => TimeGrid::Uniform,
            GridArg::Quadratic => TimeGrid::Quadratic,
            GridArg::Cosine => TimeGrid::Cosine,
        }
    }
}

/// `--dtype`: how the weights file stores the parameters.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtypeArg {
    F32,
    F16,
    Bf16,
}

impl From<DtypeArg> for Dtype {
    fn from(a: DtypeArg) -> Self {
        match a {
            DtypeArg::F32 => Dtype::F32,
            DtypeArg::F16 => Dtype::F16,
            DtypeArg::Bf16 => Dtype::Bf16,
        }
    }
}

/// Overrides `slot` with a flag's value, when the flag was given.
pub fn set<T>(slot: &mut T, flag: Option<T>) {
    if let Some(v) = flag {
        *slot = v;
    }
}

/// `--integrator`: each has a short and a long name, accepted everywhere
/// (flags and TOML) and listed as [`INTEGRATOR_NAMES`].
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntegratorArg {
    /// Euler–Maruyama.
    #[value(name = "em", alias = "euler-maruyama")]
    Em,
    /// Exponential integrator (linear drift and noise exact).
    #[value(name = "exp", alias = "exponential")]
    Exp,
    /// Probability-flow ODE (deterministic after X_0; no path costs).
    #[value(name = "flow", alias = "probability-flow")]
    Flow,
}

pub use diffctl_trainer::train::{
    integrator_long_name, integrator_names, loss_long_name, DEFAULT_INTEGRATOR, INTEGRATOR_NAMES,
    LOSS_NAMES,
};

impl From<IntegratorArg> for Integrator {
    fn from(a: IntegratorArg) -> Self {
        match a {
            IntegratorArg::Em => Integrator::EulerMaruyama,
            IntegratorArg::Exp => Integrator::Exponential,
            IntegratorArg::Flow => Integrator::ProbabilityFlow,
        }
    }
}

/// `--cost`.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CostArg {
    /// R_disc from transition densities: unbiased at every step count.
    #[default]
    Discrete,
    /// The Euler discretisation of the continuous R (biased at finite K).
    Continuous,
}

impl From<CostArg> for CostForm {
    fn from(a: CostArg) -> Self {
        match a {
            CostArg::Discrete => CostForm::Discrete,
            CostArg::Continuous => CostForm::Continuous,
        }
    }
}

/// How to run the sampler: overrides of the file's defaults.
#[derive(Args, Clone, Debug, Default)]
pub struct RunArgs {
    /// Number of steps K [default: the file's].
    #[arg(long, value_name = "K")]
    pub steps: Option<usize>,
    /// Integrator: em|euler-maruyama, exp|exponential, flow|probability-flow
    /// [default: the file's].
    #[arg(long, value_enum, value_name = "NAME", hide_possible_values = true)]
    pub integrator: Option<IntegratorArg>,
    /// Worker threads; results do not depend on it [default: all cores].
    #[arg(long, value_name = "T")]
    pub threads: Option<usize>,
}

/// Checked sampling options for samples `first .. first + n` of a `d`-dimensional model.
pub fn sample_options(
    n: usize,
    seed: u64,
    first: u64,
    d: usize,
    run: &RunArgs,
) -> Result<SampleOptions> {
    if n == 0 {
        return Err("the number of samples must be at least 1".into());
    }
    if n.checked_mul(d.max(1)).is_none_or(|f| f > MAX_FLOATS) {
        return Err(Error::new(format!(
            "{n} samples of dimension {d} is more than this command draws at once ({MAX_FLOATS} floats)"
        )));
    }
    if first.checked_add(n as u64).is_none() {
        return Err("sample indices --first .. --first + n overflow a 64-bit index".into());
    }
    if let Some(k) = run.steps {
        if k == 0 || k > MAX_STEPS as usize {
            return Err(Error::new(format!(
                "the number of steps must be in 1..={MAX_STEPS}"
            )));
        }
    }
    check_threads(run.threads)?;
    Ok(SampleOptions {
        n,
        seed,
        first,
        steps: run.steps,
        integrator: run.integrator.map(Into::into),
        threads: run.threads.unwrap_or_else(default_threads),
        ..SampleOptions::default()
    })
}

/// `--threads`: at least 1, at most [`MAX_THREADS`].
pub fn check_threads(threads: Option<usize>) -> Result<()> {
    match threads {
        Some(t) if t == 0 || t > MAX_THREADS => Err(Error::new(format!(
            "the number of threads must be in 1..={MAX_THREADS}"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_overrides() {
        let none = TargetParams::default();
        assert_eq!(target_spec("gmm", &none).unwrap(), TargetSpec::Gmm);
        assert!(target_spec("nope", &none).is_err());
        let p = TargetParams {
            dim: Some(3),
            ..none
        };
        assert_eq!(
            target_spec("mw5", &p).unwrap(),
            TargetSpec::MultiWell {
                d: 3,
                w: 3,
                delta: 4.0
            }
        );
        assert!(target_spec("gmm", &p).is_err());
        for bad in [f32::NAN, f32::INFINITY] {
            let p = TargetParams {
                delta: Some(bad),
                ..none
            };
            assert!(target_spec("dw20", &p).is_err());
        }
        let p = TargetParams {
            sigma: Some(-1.0),
            ..none
        };
        assert!(target_spec("funnel", &p).is_err());
    }

    #[test]
    fn descriptions_name_presets() {
        let s = describe_target(&TargetSpec::preset("dw20").unwrap());
        assert!(s.starts_with("dw20 ("), "{s}");
        assert_eq!(target_name(&TargetSpec::preset("mw50").unwrap()), "mw50");
    }
}

/// The network's size and its file's storage type, for `train` and `fit`.
#[derive(Args, Debug, Default, Clone)]
pub struct NetworkArgs {
    /// Channels C of the control network [default: 64].
    #[arg(long, value_name = "C")]
    pub channels: Option<u32>,
    /// Layers L of the control network [default: 4].
    #[arg(long, value_name = "L")]
    pub layers: Option<u32>,
    /// Storage type of the weights file [default: f32].
    #[arg(long, value_enum, value_name = "TYPE")]
    pub dtype: Option<DtypeArg>,
}

/// `--checkpoint`, `--checkpoint-every` and `--resume`, for `train` and `fit`.
#[derive(Args, Debug, Default, Clone)]
pub struct CheckpointArgs {
    /// Checkpoint file (written atomically; also on Ctrl-C).
    #[arg(long, value_name = "PATH")]
    pub checkpoint: Option<PathBuf>,
    /// Write a checkpoint every N iterations (0: only at the end) [default: 200].
    #[arg(long, value_name = "N", requires = "checkpoint")]
    pub checkpoint_every: Option<usize>,
    /// Continue from --checkpoint if it exists (same configuration, same
    /// target or data).
    #[arg(long, requires = "checkpoint")]
    pub resume: bool,
}

impl CheckpointArgs {
    /// The run's options, with the Ctrl-C flag `stop`; says whether a
    /// resume starts from a checkpoint.
    pub fn run_options(&self, stop: &'static std::sync::atomic::AtomicBool) -> RunOptions<'static> {
        if let (true, Some(c)) = (self.resume, &self.checkpoint) {
            if c.exists() {
                crate::output::note!("resuming from checkpoint {}", c.display());
            } else {
                crate::output::note!("no checkpoint {} yet: starting at iteration 0", c.display());
            }
        }
        RunOptions {
            checkpoint: self.checkpoint.clone(),
            resume: self.resume,
            stop: Some(stop),
        }
    }

    /// `; continue with --resume --checkpoint PATH` after an interruption
    /// (empty without a checkpoint).
    pub fn continue_hint(&self) -> String {
        match &self.checkpoint {
            Some(c) => format!("; continue with --resume --checkpoint {}", c.display()),
            None => String::new(),
        }
    }
}
