//! Elementwise ops: binary ops with broadcasting, and unary functions.
//!
//! Broadcasting: each operand is `[r, c]`, `[1, c]` (row vector, repeated
//! over rows), `[r, 1]` (column vector, repeated over columns) or `[1, 1]`
//! (scalar); the output takes the larger size in each dimension. In backward
//! the gradient of a broadcast operand is summed over the repeated dimension.
//!
//! | op      | forward        | d/da           | d/db              |
//! |---------|----------------|----------------|-------------------|
//! | add     | a + b          | 1              | 1                 |
//! | sub     | a - b          | 1              | -1                |
//! | mul     | a b            | b              | a                 |

use crate::autodiff::fastmath;
use crate::autodiff::graph::{Back, Graph, Mode, Op, Var};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Binary {
    Add,
    Sub,
    Mul,
}

pub(crate) struct BinaryOp {
    kind: Binary,
    a: Var,
    b: Var,
}

/// Strides of an operand broadcast to the output: `(row stride, col stride)`,
/// 0 in a repeated dimension.
fn strides(v: Var) -> (usize, usize) {
    (
        if v.rows == 1 { 0 } else { v.cols },
        if v.cols == 1 { 0 } else { 1 },
    )
}

fn broadcast_shape(a: Var, b: Var) -> (usize, usize) {
    let dim = |x: usize, y: usize| {
        assert!(
            x == y || x == 1 || y == 1,
            "cannot broadcast {a:?} with {b:?}"
        );
        x.max(y)
    };
    (dim(a.rows, b.rows), dim(a.cols, b.cols))
}

/// `out_ij = f(a_ij, b_ij)` with broadcasting.
#[inline(always)]
fn binary_kernel(
    out: &mut [f32],
    cols: usize,
    a: &[f32],
    (ars, acs): (usize, usize),
    b: &[f32],
    (brs, bcs): (usize, usize),
    f: impl Fn(f32, f32) -> f32,
) {
    for (i, o) in out.chunks_exact_mut(cols).enumerate() {
        let (ao, bo) = (i * ars, i * brs);
        match (acs, bcs) {
            (1, 1) => {
                for ((o, &x), &y) in o.iter_mut().zip(&a[ao..ao + cols]).zip(&b[bo..bo + cols]) {
                    *o = f(x, y);
                }
            }
            (1, _) => {
                let y = b[bo];
                for (o, &x) in o.iter_mut().zip(&a[ao..ao + cols]) {
                    *o = f(x, y);
                }
            }
            (_, 1) => {
                let x = a[ao];
                for (o, &y) in o.iter_mut().zip(&b[bo..bo + cols]) {
                    *o = f(x, y);
                }
            }
            _ => {
                let v = f(a[ao], b[bo]);
                o.fill(v);
            }
        }
    }
}

/// `g_(broadcast index of ij) += d(a_ij, b_ij, gy_ij)` over the output `[rows, cols]`.
#[inline(always)]
fn accumulate(
    g: &mut [f32],
    (grs, gcs): (usize, usize),
    gy: &[f32],
    cols: usize,
    (a, (ars, acs)): (&[f32], (usize, usize)),
    (b, (brs, bcs)): (&[f32], (usize, usize)),
    d: impl Fn(f32, f32, f32) -> f32,
) {
    for (i, gy) in gy.chunks_exact(cols).enumerate() {
        let (go, ao, bo) = (i * grs, i * ars, i * brs);
        if gcs == 1 && acs == 1 && bcs == 1 {
            let it = g[go..go + cols]
                .iter_mut()
                .zip(gy)
                .zip(&a[ao..ao + cols])
                .zip(&b[bo..bo + cols]);
            for (((g, &gy), &x), &y) in it {
                *g += d(x, y, gy);
            }
        } else {
            for (j, &gy) in gy.iter().enumerate() {
                g[go + j * gcs] += d(a[ao + j * acs], b[bo + j * bcs], gy);
            }
        }
    }
}

impl BinaryOp {
    pub(crate) fn backward(&self, out: Var, gy: &[f32], ctx: &mut Back) {
        let vals = ctx.values;
        let (a, b) = (&vals[self.a.id].data[..], &vals[self.b.id].data[..]);
        let (sa, sb) = (strides(self.a), strides(self.b));
        let c = out.cols;
        if let Some(ga) = ctx.grad(self.a) {
            match self.kind {
                Binary::Add | Binary::Sub => {
                    accumulate(ga, sa, gy, c, (a, sa), (b, sb), |_, _, g| g)
                }
                Binary::Mul => accumulate(ga, sa, gy, c, (a, sa), (b, sb), |_, y, g| g * y),
            }
        }
        if let Some(gb) = ctx.grad(self.b) {
            match self.kind {
                Binary::Add => accumulate(gb, sb, gy, c, (a, sa), (b, sb), |_, _, g| g),
                Binary::Sub => accumulate(gb, sb, gy, c, (a, sa), (b, sb), |_, _, g| -g),
                Binary::Mul => accumulate(gb, sb, gy, c, (a, sa), (b, sb), |x, _, g| g * x),
            }
        }
    }
}

/// Elementwise functions of one tensor; `Scale` carries a constant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Unary {
    Neg,
    Scale(f32),
    Square,
    Sin,
    Cos,
    Gelu,
}

pub(crate) struct UnaryOp {
    kind: Unary,
    x: Var,
    /// `dy/dx` at every element, when the forward pass computed it anyway
    /// (GELU: it shares the `erf`); empty otherwise.
    pub(crate) saved_grad: Vec<f32>,
}

#[inline(always)]
fn map(out: &mut [f32], x: &[f32], f: impl Fn(f32) -> f32) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = f(v);
    }
}

/// `gx += gy * d(x, y)` where `y` is the forward output.
#[inline(always)]
fn acc(gx: &mut [f32], gy: &[f32], x: &[f32], y: &[f32], d: impl Fn(f32, f32) -> f32) {
    for (((g, &gy), &x), &y) in gx.iter_mut().zip(gy).zip(x).zip(y) {
        *g += gy * d(x, y);
    }
}

impl UnaryOp {
    pub(crate) fn backward(&self, out: Var, gy: &[f32], ctx: &mut Back) {
        let vals = ctx.values;
        let (x, y) = (&vals[self.x.id].data[..], &vals[out.id].data[..]);
        let Some(gx) = ctx.grad(self.x) else {
            return;
        };
        if !self.saved_grad.is_empty() {
            for ((g, &gy), &d) in gx.iter_mut().zip(gy).zip(&self.saved_grad) {
                *g += gy * d;
            }
            return;
        }
        match self.kind {
            Unary::Neg => acc(gx, gy, x, y, |_, _| -1.0),
            Unary::Scale(c) => acc(gx, gy, x, y, |_, _| c),
            Unary::Square => acc(gx, gy, x, y, |x, _| 2.0 * x),
            Unary::Sin => acc(gx, gy, x, y, |x, _| libm::cosf(x)),
            Unary::Cos => acc(gx, gy, x, y, |x, _| -libm::sinf(x)),
            Unary::Gelu => {
                unreachable!("GELU keeps its derivative when its input needs a gradient")
            }
        }
    }
}

impl<M: Mode> Graph<M> {
    fn binary(&mut self, kind: Binary, a: Var, b: Var) -> Var {
        let (rows, cols) = broadcast_shape(a, b);
        let mut out = self.alloc(rows * cols);
        let (da, db) = (&self.values[a.id].data[..], &self.values[b.id].data[..]);
        let (sa, sb) = (strides(a), strides(b));
        match kind {
            Binary::Add => binary_kernel(&mut out, cols, da, sa, db, sb, |x, y| x + y),
            Binary::Sub => binary_kernel(&mut out, cols, da, sa, db, sb, |x, y| x - y),
            Binary::Mul => binary_kernel(&mut out, cols, da, sa, db, sb, |x, y| x * y),
        }
        self.push(rows, cols, out, &[a, b], || {
            Op::Binary(BinaryOp { kind, a, b })
        })
    }

    /// `a + b` (broadcasting).
    pub fn add(&mut self, a: Var, b: Var) -> Var {
        self.binary(Binary::Add, a, b)
    }

    /// `a - b` (broadcasting).
    pub fn sub(&mut self, a: Var, b: Var) -> Var {
        self.binary(Binary::Sub, a, b)
    }

    /// `a * b` elementwise (broadcasting).
    pub fn mul(&mut self, a: Var, b: Var) -> Var {
        self.binary(Binary::Mul, a, b)
    }

    fn unary(&mut self, kind: Unary, x: Var) -> Var {
        let mut out = self.alloc(x.len());
        if kind == Unary::Gelu && self.requires_grad(x) {
            let mut saved_grad = self.alloc(x.len());
            fastmath::gelu_forward_saving_grad(&mut out, &mut saved_grad, &self.values[x.id].data);
            return self.push(x.rows, x.cols, out, &[x], || {
                Op::Unary(UnaryOp {
                    kind,
                    x,
                    saved_grad,
                })
            });
        }
        let xs = &self.values[x.id].data[..];
        match kind {
            Unary::Neg => map(&mut out, xs, |v| -v),
            Unary::Scale(c) => map(&mut out, xs, |v| c * v),
            Unary::Square => map(&mut out, xs, |v| v * v),
            Unary::Sin => map(&mut out, xs, libm::sinf),
            Unary::Cos => map(&mut out, xs, libm::cosf),
            Unary::Gelu => fastmath::gelu_forward(&mut out, xs),
        }
        self.push(x.rows, x.cols, out, &[x], || {
            Op::Unary(UnaryOp {
                kind,
                x,
                saved_grad: Vec::new(),
            })
        })
    }

    pub fn neg(&mut self, x: Var) -> Var {
        self.unary(Unary::Neg, x)
    }
    /// `c x` for a constant `c`.
    pub fn scale(&mut self, x: Var, c: f32) -> Var {
        self.unary(Unary::Scale(c), x)
    }
    pub fn square(&mut self, x: Var) -> Var {
        self.unary(Unary::Square, x)
    }
    pub fn sin(&mut self, x: Var) -> Var {
        self.unary(Unary::Sin, x)
    }
    pub fn cos(&mut self, x: Var) -> Var {
        self.unary(Unary::Cos, x)
    }
    /// GELU, erf form `x (1 + erf(x / sqrt 2)) / 2`.
    pub fn gelu(&mut self, x: Var) -> Var {
        self.unary(Unary::Gelu, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autodiff::check::{check_gradients, rand_range, rand_tensor, test_rng};
    use crate::autodiff::fastmath::{gelu, gelu_grad};
    use crate::autodiff::{Grads, Params, Tape, Tensor};

    #[test]
    fn grad_binary_same_shape() {
        let mut rng = test_rng(10);
        let a = rand_tensor(&mut rng, 4, 3);
        let b = rand_range(&mut rng, 4, 3, 0.5, 1.5);
        for kind in [Binary::Add, Binary::Sub, Binary::Mul] {
            check_gradients(&[a.clone(), b.clone()], |g, v| g.binary(kind, v[0], v[1]));
        }
    }

    #[test]
    fn grad_binary_broadcasts() {
        let mut rng = test_rng(11);
        let full = rand_range(&mut rng, 4, 3, 0.5, 1.5);
        let shapes = [(1, 3), (4, 1), (1, 1)];
        for (r, c) in shapes {
            let small = rand_range(&mut rng, r, c, 0.5, 1.5);
            for kind in [Binary::Add, Binary::Sub, Binary::Mul] {
                // small on the right and on the left
                check_gradients(&[full.clone(), small.clone()], |g, v| {
                    g.binary(kind, v[0], v[1])
                });
                check_gradients(&[small.clone(), full.clone()], |g, v| {
                    g.binary(kind, v[0], v[1])
                });
            }
        }
        // row vector times column vector: an outer product [4, 3]
        let row = rand_range(&mut rng, 1, 3, 0.5, 1.5);
        let col = rand_range(&mut rng, 4, 1, 0.5, 1.5);
        check_gradients(&[col, row], |g, v| g.mul(v[0], v[1]));
    }

    #[test]
    fn broadcast_forward_values() {
        let mut g = Tape::new();
        let a = g.constant(Tensor::new(2, 2, vec![1.0, 2.0, 3.0, 4.0]));
        let r = g.constant(Tensor::row(vec![10.0, 20.0]));
        let c = g.constant(Tensor::col(vec![100.0, 200.0]));
        let s = g.scalar(0.5);
        let ar = g.add(a, r);
        let ac = g.sub(c, a);
        let as_ = g.mul(a, s);
        assert_eq!(g.value(ar).data, vec![11.0, 22.0, 13.0, 24.0]);
        assert_eq!(g.value(ac).data, vec![99.0, 98.0, 197.0, 196.0]);
        assert_eq!(g.value(as_).data, vec![0.5, 1.0, 1.5, 2.0]);
    }

    #[test]
    fn grad_unary() {
        let mut rng = test_rng(12);
        let x = rand_range(&mut rng, 3, 4, -2.0, 2.0);
        let kinds = [
            Unary::Neg,
            Unary::Scale(-1.7),
            Unary::Square,
            Unary::Sin,
            Unary::Cos,
            Unary::Gelu,
        ];
        for kind in kinds {
            check_gradients(std::slice::from_ref(&x), |g, v| g.unary(kind, v[0]));
        }
    }

    #[test]
    fn gelu_matches_definition_and_derivative() {
        // 0.5 x (1 + erf(x / sqrt 2)) with libm, and its derivative Phi + x phi in f64.
        for i in -800..=800 {
            let x = i as f32 * 0.01;
            let want = 0.5 * x * (1.0 + libm::erff(x / std::f32::consts::SQRT_2));
            assert!(
                (gelu(x) - want).abs() <= 4e-7 * (1.0 + x.abs()),
                "gelu({x})"
            );
            let xd = f64::from(x);
            let cdf = 0.5 * (1.0 + libm::erf(xd / std::f64::consts::SQRT_2));
            let pdf = (-0.5 * xd * xd).exp() / (2.0 * std::f64::consts::PI).sqrt();
            assert!(
                (f64::from(gelu_grad(x)) - (cdf + xd * pdf)).abs() < 1e-6,
                "gelu'({x})"
            );
        }
    }

    #[test]
    fn value_used_several_times_accumulates() {
        // f(x) = x * x + 3 x + sin(x): df/dx = 2x + 3 + cos(x)
        let x = rand_tensor(&mut test_rng(13), 2, 3);
        check_gradients(std::slice::from_ref(&x), |g, v| {
            let xx = g.mul(v[0], v[0]);
            let x3 = g.scale(v[0], 3.0);
            let ex = g.sin(v[0]);
            let s = g.add(xx, x3);
            g.add(s, ex)
        });
        let mut params = Params::new();
        let id = params.add("x", x.clone());
        let mut g = Tape::new();
        let v = g.param(&params, id);
        let xx = g.mul(v, v);
        let x3 = g.scale(v, 3.0);
        let ex = g.sin(v);
        let s = g.add(xx, x3);
        let f = g.add(s, ex);
        let l = g.sum(f);
        let mut grads = Grads::zeros_like(&params);
        g.backward(l, &mut grads);
        for (gv, xv) in grads.tensors[0].data.iter().zip(&x.data) {
            let want = 2.0 * xv + 3.0 + libm::cosf(*xv);
            assert!((gv - want).abs() < 1e-5, "{gv} vs {want}");
        }
    }

    #[test]
    fn detach_stops_gradient() {
        // f = x * detach(x): df/dx = detach(x) = x (only the first factor).
        let x = rand_tensor(&mut test_rng(14), 2, 3);
        let mut params = Params::new();
        let id = params.add("x", x.clone());
        let mut g = Tape::new();
        let v = g.param(&params, id);
        let d = g.detach(v);
        assert!(!g.requires_grad(d));
        let f = g.mul(v, d);
        let l = g.sum(f);
        let mut grads = Grads::zeros_like(&params);
        g.backward(l, &mut grads);
        assert_eq!(grads.tensors[0].data, x.data);
        // A function of detached values only has no gradient at all.
        let e = g.sin(d);
        assert!(!g.requires_grad(e));
    }
}
