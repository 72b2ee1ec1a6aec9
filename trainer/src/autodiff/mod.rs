//! Reverse-mode automatic differentiation on batched 2-D f32 tensors.
//!
//! * [`Tensor`]: a row-major `[rows, cols]` matrix; a batch is `[N, d]`.
//! * [`Graph`]: an arena of values. [`Tape`] (`Graph<Grad>`) records the
//!   backward rules; [`Eval`] (`Graph<NoGrad>`) runs the same op code and
//!   records nothing. `clear()` keeps the buffers for the next iteration.
//! * [`Params`]: named parameters outside any tape, with a parallel
//!   gradient store ([`Grads`]); `Graph::param` makes a leaf whose gradient
//!   `Tape::backward` adds into a `Grads`.
//!
//! ```
//! use diffctl_trainer::autodiff::{Params, Tape, Tensor};
//! let mut params = Params::new();
//! let w = params.add("w", Tensor::new(1, 2, vec![0.5, -1.0]));
//! let mut g = Tape::new();
//! let x = g.constant(Tensor::new(3, 2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
//! let wv = g.param(&params, w);
//! let y = g.matmul_t(x, false, wv, true); // x w^T: [3, 1]
//! let y2 = g.square(y);
//! let loss = g.mean(y2);
//! g.backward(loss, &mut params.grads);
//! assert_eq!(params.grad(w).shape(), (1, 2));
//! ```

#[cfg(test)]
pub(crate) mod check;
pub mod fastmath;
mod graph;
pub mod ops;
mod params;
mod tensor;

pub use graph::{Eval, Grad, Graph, Mode, NoGrad, Tape, Var};
pub use params::{Grads, ParamId, Params};
pub use tensor::Tensor;
