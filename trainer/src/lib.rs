//! diffctl trainer: trains the control network of a diffusion sampler on a
//! target (DIS, PIS, DDS; MATH.md §4, §6) or fits it to data (denoising
//! score matching, §7), with its own reverse-mode autodiff, and evaluates
//! the exported weights through the runtime.
//!
//! | module | what |
//! |---|---|
//! | [`train`] | training on a target: its config, its objective for [`optimise`], what it reports |
//! | [`losses`] | the rollouts and their losses (log-variance, KL) on the runtime's path simulator |
//! | [`target`] | [`target::TrainTarget`]: batched targets; config-file targets; logistic regression |
//! | [`network`] | the control network as autodiff ops (the runtime's architecture, batched) |
//! | [`autodiff`] | tensors, the tape, ops and their gradient checks |
//! | [`optimise`] | the one optimisation loop of training and fitting, checkpoints, export |
//! | [`optim`] | Adam, gradient clipping, learning-rate schedules, EMA |
//! | [`parallel`] | data parallelism: shards, one tape per thread, a fixed reduction order |
//! | [`streams`] | the named random streams of training and fitting |
//! | [`eval`] | sampling a weights file with the runtime, `log Z` estimates, the report |
//! | [`psis`] | the Pareto k̂ of importance weights |
//! | [`distance`] | the sliced Wasserstein-2 distance |
//! | [`dsm`] | fitting to data by denoising score matching |
//! | [`data`] | data sets: CSV, `.npy`, toy generators, exact samples of built-in targets |
//! | [`elbo`] | the likelihood bound of a fitted model |
//! | [`io`] | atomic file writes |
//!
//! Everything the runtime defines (targets, SDEs and schedules, the path
//! simulator, the weights format, the random streams) is used from
//! `diffctl-runtime`, not copied.

pub mod autodiff;
pub mod data;
pub mod distance;
pub mod dsm;
pub mod elbo;
pub mod eval;
pub mod io;
pub mod losses;
pub mod network;
pub mod optim;
pub mod optimise;
pub mod parallel;
pub mod psis;
pub mod streams;
pub mod target;
pub mod train;
