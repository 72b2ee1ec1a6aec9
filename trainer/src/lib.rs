//! diffctl trainer: reverse-mode autodiff, the control network, optimisers
//! and data-parallel gradient evaluation.

pub mod autodiff;
pub mod data;
pub mod distance;
pub mod dsm;
pub mod elbo;
pub mod eval;
pub mod losses;
pub mod network;
pub mod optim;
pub mod parallel;
pub mod psis;
pub mod target;
pub mod train;
