//! One file per op family: forward, backward rule and gradient tests together.

pub(crate) mod direct;
pub mod elementwise;
pub mod matmul;
pub mod reduce;
pub mod shape;
