//! Targets as training and evaluation see them: [`TrainTarget`].
//!
//! The runtime's [`Target`] evaluates one point; training evaluates `log rho`
//! and the score of a whole shard of paths at once ([`TrainTarget::log_density_batch`],
//! [`TrainTarget::score_batch`]), which lets a target use matrix products
//! (see [`logistic`]). Every per-point `Target + Sync` is a `TrainTarget`
//! (a blanket implementation), so a density written in Rust trains as it is:
//!
//! ```
//! use diffctl_runtime::Target;
//! struct Banana;
//! impl Target for Banana {
//!     fn dim(&self) -> usize { 2 }
//!     fn log_density(&self, x: &[f32]) -> f32 {
//!         let y = x[1] - 0.5 * (x[0] * x[0] - 1.0);
//!         -0.5 * (x[0] * x[0] + y * y)
//!     }
//!     fn score(&self, x: &[f32], out: &mut [f32]) {
//!         let y = x[1] - 0.5 * (x[0] * x[0] - 1.0);
//!         out[0] = -x[0] + y * x[0];
//!         out[1] = -y;
//!     }
//! }
//! let t: &dyn diffctl_trainer::target::TrainTarget = &Banana;
//! assert_eq!(t.dim(), 2);
//! ```
//!
//! Targets the weights file can name ([`TargetSpec`]: the presets, stored
//! mixtures) come as [`Known`], which also gives their ground truth.

use diffctl_runtime::target::{Builtin, GroundTruth, TargetSpec};
use diffctl_runtime::weights::crc32;
use diffctl_runtime::Target;

pub mod config;
pub mod logistic;

/// A target for training and evaluation. `Sync`: shards run on threads.
pub trait TrainTarget: Sync {
    /// Dimension `d`.
    fn dim(&self) -> usize;
    /// `log rho` of every row of `xs` (`n x d`) into `out` (`n`). `-inf`
    /// (outside a support) is allowed; NaN is reported as an error by the caller.
    fn log_density_batch(&self, xs: &[f32], out: &mut [f32]);
    /// The score of every row of `xs` into `out` (`n x d`).
    fn score_batch(&self, xs: &[f32], out: &mut [f32]);
    /// The per-point density the runtime samples with (path costs, the
    /// network's score term): the same function as the batched form.
    fn point(&self) -> Box<dyn Target + Sync + '_>;
    /// What is known exactly about the target, if anything.
    fn ground_truth(&self) -> Option<Box<dyn GroundTruth + '_>> {
        None
    }
    /// What a weights file records of the target (`None`: a target defined
    /// in code, which the file cannot name).
    fn spec(&self) -> Option<TargetSpec> {
        None
    }
    /// The target's parameter block for the weights file ([`TargetSpec::data_len`] bytes).
    fn data(&self) -> &[u8] {
        &[]
    }
    /// Paths the evaluations' sampler advances together, so one call of
    /// [`Target::score_batch`] per step covers this many points: large for a
    /// target whose every call costs (a Python function). Samples do not
    /// depend on it.
    fn block(&self) -> usize {
        crate::eval::DEFAULT_BLOCK
    }
}

impl<T: Target + Sync> TrainTarget for T {
    fn dim(&self) -> usize {
        Target::dim(self)
    }
    fn log_density_batch(&self, xs: &[f32], out: &mut [f32]) {
        Target::log_density_batch(self, xs, out)
    }
    fn score_batch(&self, xs: &[f32], out: &mut [f32]) {
        Target::score_batch(self, xs, out)
    }
    fn point(&self) -> Box<dyn Target + Sync + '_> {
        Box::new(self)
    }
}

/// A target the weights file names: a preset, a parametric built-in or a
/// stored mixture, with its parameter block. Its ground truth is known.
#[derive(Clone, Debug, PartialEq)]
pub struct Known {
    spec: TargetSpec,
    data: Vec<u8>,
}

impl Known {
    /// The target of `spec` with parameter block `data` (checked).
    pub fn new(spec: TargetSpec, data: Vec<u8>) -> Result<Self, String> {
        match spec {
            TargetSpec::LogisticRegression { .. } => {
                return Err("a logistic-regression target is built from its data set".into())
            }
            _ => spec.build(&data).map_err(|e| e.to_string())?,
        };
        Ok(Self { spec, data })
    }

    /// A preset or parametric target (no parameter block).
    pub fn builtin(spec: TargetSpec) -> Result<Self, String> {
        Self::new(spec, Vec::new())
    }

    /// A preset by name (`gmm`, `funnel`, `mw5`, `dw20`, `mw50`, `gmm25`, `manywell32`).
    pub fn preset(name: &str) -> Option<Self> {
        Self::builtin(TargetSpec::preset(name)?).ok()
    }

    /// The runtime's target.
    pub fn build(&self) -> Builtin<'_> {
        self.spec.build(&self.data).expect("checked in Known::new")
    }

    /// CRC-32 of the parameter block.
    pub fn data_crc(&self) -> u32 {
        crc32(&self.data)
    }
}

impl TrainTarget for Known {
    fn dim(&self) -> usize {
        self.spec.dim()
    }
    fn log_density_batch(&self, xs: &[f32], out: &mut [f32]) {
        Target::log_density_batch(&self.build(), xs, out)
    }
    fn score_batch(&self, xs: &[f32], out: &mut [f32]) {
        Target::score_batch(&self.build(), xs, out)
    }
    fn point(&self) -> Box<dyn Target + Sync + '_> {
        Box::new(self.build())
    }
    fn ground_truth(&self) -> Option<Box<dyn GroundTruth + '_>> {
        Some(Box::new(self.build()))
    }
    fn spec(&self) -> Option<TargetSpec> {
        Some(self.spec)
    }
    fn data(&self) -> &[u8] {
        &self.data
    }
}
