//! Finite-difference gradient checking (test support).
//!
//! Everything is evaluated in f32, as in training. Central differences with
//! step `h` have truncation error `h^2 |f'''| / 6` (~2e-5 for `h = 1e-2` and
//! O(1) smooth inputs) and rounding error about `eps_f32 |L| / h` (~1e-5
//! |L|, times a small factor for the accumulated rounding of a long chain).
//! The tolerance `2e-3 |g| + 5e-4 (1 + |L| / 10)` leaves a margin of ~10
//! over both, while a wrong rule (a missing factor, sign, transpose or term)
//! is off by O(|g|); a derivative wrong by 0.5% was seen to fail it. Checks
//! also require the gradient to be non-trivial.

use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::graph::{Tape, Var};
use super::params::{Grads, ParamId, Params};
use super::tensor::Tensor;

pub(crate) type TestRng = Xoshiro256PlusPlus;

pub(crate) fn test_rng(seed: u64) -> TestRng {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

/// Uniform in `[0, 1)` (the runtime's 24-bit uniform).
pub(crate) fn uniform(rng: &mut TestRng) -> f32 {
    diffctl_runtime::normal::uniform_f32(rng)
}

/// Uniform entries in `[-1, 1)`.
pub(crate) fn rand_tensor(rng: &mut TestRng, rows: usize, cols: usize) -> Tensor {
    Tensor::from_fn(rows, cols, |_, _| 2.0 * uniform(rng) - 1.0)
}

/// Uniform entries in `[lo, hi)`.
pub(crate) fn rand_range(rng: &mut TestRng, rows: usize, cols: usize, lo: f32, hi: f32) -> Tensor {
    Tensor::from_fn(rows, cols, |_, _| lo + (hi - lo) * uniform(rng))
}

/// Reduces `out` to a scalar `sum_ij w_ij out_ij` with fixed distinct weights,
/// so every output element is checked separately.
fn to_scalar(g: &mut Tape, out: Var) -> Var {
    if out.shape() == (1, 1) {
        return out;
    }
    let w = Tensor::from_fn(out.rows(), out.cols(), |i, j| {
        0.5 + ((i * 7 + j * 3) % 11) as f32 / 11.0
    });
    let w = g.constant(w);
    let p = g.mul(out, w);
    g.sum(p)
}

fn eval_loss(params: &Params, f: &impl Fn(&mut Tape, &[Var]) -> Var) -> f32 {
    let mut g = Tape::new();
    let vars: Vec<Var> = (0..params.len())
        .map(|i| g.param(params, ParamId(i)))
        .collect();
    let out = f(&mut g, &vars);
    let loss = to_scalar(&mut g, out);
    g.item(loss)
}

/// Analytic gradients of `f` (made scalar by [`to_scalar`]) w.r.t. each of
/// `inputs`, and the loss.
pub(crate) fn analytic(params: &Params, f: &impl Fn(&mut Tape, &[Var]) -> Var) -> (Grads, f32) {
    let mut g = Tape::new();
    let vars: Vec<Var> = (0..params.len())
        .map(|i| g.param(params, ParamId(i)))
        .collect();
    let out = f(&mut g, &vars);
    let loss = to_scalar(&mut g, out);
    let mut grads = Grads::zeros_like(params);
    g.backward(loss, &mut grads);
    (grads, g.item(loss))
}

/// Central-difference check of `d f / d inputs` with step `h`.
pub(crate) fn check_gradients_h(inputs: &[Tensor], h: f32, f: impl Fn(&mut Tape, &[Var]) -> Var) {
    let mut params = Params::new();
    for (i, t) in inputs.iter().enumerate() {
        params.add(format!("in{i}"), t.clone());
    }
    let (grads, loss) = analytic(&params, &f);
    let mut max_abs_grad = 0f32;
    for p in 0..params.len() {
        for k in 0..params.values[p].len() {
            let x0 = params.values[p].data[k];
            params.values[p].data[k] = x0 + h;
            let lp = eval_loss(&params, &f);
            params.values[p].data[k] = x0 - h;
            let lm = eval_loss(&params, &f);
            params.values[p].data[k] = x0;
            let fd = ((f64::from(lp) - f64::from(lm)) / (2.0 * f64::from(h))) as f32;
            let an = grads.tensors[p].data[k];
            let tol = 2e-3 * an.abs().max(fd.abs()) + 5e-4 * (1.0 + loss.abs() / 10.0);
            assert!(
                (an - fd).abs() <= tol,
                "input {p} element {k}: analytic {an} vs finite difference {fd} (tol {tol}, loss {loss})"
            );
            max_abs_grad = max_abs_grad.max(an.abs());
        }
    }
    assert!(
        max_abs_grad > 1e-2,
        "gradient is trivially small ({max_abs_grad}): the check tests nothing"
    );
}

/// [`check_gradients_h`] with `h = 1e-2`.
pub(crate) fn check_gradients(inputs: &[Tensor], f: impl Fn(&mut Tape, &[Var]) -> Var) {
    check_gradients_h(inputs, 1e-2, f)
}
