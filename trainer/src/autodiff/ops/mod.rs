//! One file per op family: forward, backward rule and gradient tests together.

pub mod direct;
pub mod elementwise;
pub mod matmul;
pub mod reduce;
pub mod shape;
