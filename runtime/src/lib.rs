//! # diffctl-runtime
//!
//! Samples a trained diffusion-based sampler on any target: `no_std`, no
//! allocator, no `unsafe`, and the same bits for the same seed on every
//! machine (checked on x86_64, aarch64, wasm32, Cortex-M4F, Cortex-M0+ and
//! RISC-V `riscv32imac`). The mathematics is MATH.md of the
//! diffctl repository; names follow it.
//!
//! | module | concept |
//! |---|---|
//! | [`kernels`] | dot product, dense layer, GELU: fixed summation order |
//! | [`network`] | the control network (MATH.md §5) |
//! | [`control`] | the [`Control`] trait and analytic controls |
//! | [`target`] | the [`Target`] and [`target::GroundTruth`] traits; one file per built-in target; [`target::TargetSpec`] |
//! | [`sde`] | noise schedules, SDEs, time grids |
//! | [`integrate`] | the path simulator (start, step, finish) and [`integrate::Sampler`]: Euler–Maruyama, exponential, probability flow; path costs |
//! | [`normal`] | per-sample random streams and standard normals |
//! | [`weights`] | the weights file: format, parsing, encoding |
//! | [`assemble`] | from a parsed file to a sampler: the header's prior and sampler, the model's network |
//! | [`hex`] | the text line format of the device check (bits of each sample) |
//!
//! ## Determinism
//!
//! Sample `i` under seed `s` depends on `(s, i)`, the weights and the sampler
//! settings only: not on the batch it is drawn in, the order, the thread count
//! or the target architecture. Every transcendental function comes from
//! `libm` (pure Rust, identical results everywhere), no fused multiply-add is
//! used, and every reduction has a fixed order (see [`kernels`]).
//!
//! The guarantee covers finite samples. A model that diverges produces NaN,
//! and the sign and payload bits of a NaN are not specified by IEEE 754 (x86_64
//! and wasm32 under V8 differ): check `is_finite` before comparing bits.
//!
//! ## Example: from the bytes of a weights file to samples
//!
//! Three calls and one error type ([`Error`]); the network reads its
//! parameters from `bytes` in place (no parameter buffer), and every buffer
//! is sized by a method (or, in firmware, by the `const fn`s
//! [`weights::shape_of`] and [`network::NetworkShape::sampler_work_len`]).
//!
//! ```
//! use diffctl_runtime::prelude::*;
//!
//! # fn main() -> Result<(), diffctl_runtime::Error> {
//! # let (file, len) = diffctl_runtime::doc_example_file();
//! # let bytes = &file[..len];
//! // `bytes` holds a weights file, e.g. from `include_bytes!` or a file read.
//! let model = Model::parse(bytes)?;
//! // The header's SDE, grid, step count and integrator, on the file's target
//! // (`Model::sampler_with` takes any other `Target`).
//! let sampler = model.sampler()?;
//!
//! // Buffers for samples 0..4 in one lockstep batch. Firmware embedding the
//! // file reads its shape at compile time: `shape_of(include_bytes!(..))`;
//! // this example's file has the reference network of d = 2.
//! const SHAPE: NetworkShape = NetworkShape::reference(2);
//! const PATHS: usize = 4;
//! let mut xs = [0.0f32; PATHS * SHAPE.d as usize];
//! let mut paths: [PathState; PATHS] = Default::default();
//! let mut work = [0.0f32; SHAPE.sampler_work_len(PATHS)];
//! // Checks the buffers against the file (`Error::Sample` if they do not fit).
//! sampler.sample(42, 0, &mut xs, &mut paths, &mut work)?;
//! let log_weights = paths.map(|p| -p.cost.r_disc); // importance weights exp(-R_disc)
//! assert!(log_weights.iter().all(|w| w.is_finite()));
//! # Ok(())
//! # }
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod assemble;
pub mod control;
pub mod hex;
pub mod integrate;
pub mod kernels;
pub mod network;
pub mod normal;
pub mod sde;
pub mod target;
pub mod weights;

pub use control::Control;
pub use target::Target;

/// Any failure between the bytes of a weights file and its samples: the one
/// error type of [`weights::Model::parse`], [`weights::Model::sampler`] and
/// [`integrate::Sampler::sample`] (each converts with `?`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The bytes are not a usable weights file.
    Decode(weights::DecodeError),
    /// The sampler refused its buffers or settings.
    Sample(integrate::SampleError),
    /// The file and the requested sampler do not fit together (no target, ...).
    Invalid(&'static str),
}

impl From<weights::DecodeError> for Error {
    fn from(e: weights::DecodeError) -> Self {
        Error::Decode(e)
    }
}

impl From<integrate::SampleError> for Error {
    fn from(e: integrate::SampleError) -> Self {
        Error::Sample(e)
    }
}

impl From<&'static str> for Error {
    fn from(why: &'static str) -> Self {
        Error::Invalid(why)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Decode(e) => e.fmt(f),
            Error::Sample(e) => e.fmt(f),
            Error::Invalid(why) => f.write_str(why),
        }
    }
}

/// The types most programs need.
pub mod prelude {
    pub use crate::control::Control;
    pub use crate::integrate::{Integrator, PathCost, PathState, SampleError, Sampler};
    pub use crate::kernels::Weights;
    pub use crate::network::{Network, NetworkControl, NetworkRef, NetworkShape};
    pub use crate::sde::{Schedule, Sde, TimeGrid};
    pub use crate::target::{IsotropicGaussian, Prior, Target, TargetSpec};
    pub use crate::weights::{shape_of, DecodeError, Dtype, Header, Model, SamplerKind};
    pub use crate::Error;
}

/// A small `gmm` weights file (random parameters) for the documentation example.
#[doc(hidden)]
pub fn doc_example_file() -> ([u8; 140_000], usize) {
    use prelude::*;
    let header = Header {
        sampler: SamplerKind::Dis,
        shape: NetworkShape::reference(2),
        sde: Sde::default(),
        grid: TimeGrid::Uniform,
        steps: 20,
        integrator: Integrator::EulerMaruyama,
        prior_nu: 1.0,
        score_clip: 100.0,
        target: Some(TargetSpec::Gmm),
        dtype: Dtype::F32,
    };
    let mut params = [0.0f32; 40_000];
    let n = header.param_count();
    for (i, p) in params[..n].iter_mut().enumerate() {
        *p = 0.05 * libm::sinf(i as f32);
    }
    let mut out = [0u8; 140_000];
    let len = weights::encode_into(&header, &params[..n], &mut out).expect("valid example");
    (out, len)
}
