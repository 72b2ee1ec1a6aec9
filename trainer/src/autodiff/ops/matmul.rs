//! Matrix products: `op(A) op(B)` with either operand transposed, and the
//! fused dense layer `y = x W^T + b` (Linear weight stored `[out, in]`).
//!
//! Products go through `gemm`: the network's shapes to the direct kernel
//! (`ops/direct.rs`), the rest to `matrixmultiply::sgemm`. Operands are
//! strided views: a transpose is a swap of strides, and a gradient can be
//! written straight into a transposed accumulator. (The direct kernel
//! copies a transposed right operand, and `linear` keeps one transposed copy
//! of each weight per graph.)
//! Backward of `C = op(A) op(B)`:
//!     d op(A) = dC op(B)^T,    d op(B) = op(A)^T dC.

use crate::autodiff::graph::{Back, Graph, Mode, Op, Var};
use crate::autodiff::tensor::Tensor;

/// A strided read-only matrix: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub(super) data: &'a [f32],
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) rs: usize,
    pub(super) cs: usize,
}

impl<'a> View<'a> {
    /// `t` itself, or `t^T` when `trans`.
    pub(crate) fn of(t: &'a Tensor, trans: bool) -> Self {
        Self::of_slice(&t.data, t.rows, t.cols, trans)
    }

    /// The row-major `[rows, cols]` matrix in `data`, or its transpose.
    pub(crate) fn of_slice(data: &'a [f32], rows: usize, cols: usize, trans: bool) -> Self {
        assert_eq!(data.len(), rows * cols);
        if trans {
            Self {
                data,
                rows: cols,
                cols: rows,
                rs: 1,
                cs: cols,
            }
        } else {
            Self {
                data,
                rows,
                cols,
                rs: cols,
                cs: 1,
            }
        }
    }
}

/// A strided writable matrix (same layout rules as [`View`]).
pub(crate) struct ViewMut<'a> {
    pub(super) data: &'a mut [f32],
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) rs: usize,
    pub(super) cs: usize,
}

impl<'a> ViewMut<'a> {
    pub(crate) fn of_slice(data: &'a mut [f32], rows: usize, cols: usize, trans: bool) -> Self {
        assert_eq!(data.len(), rows * cols);
        let (r, c, rs, cs) = if trans {
            (cols, rows, 1, cols)
        } else {
            (rows, cols, cols, 1)
        };
        Self {
            data,
            rows: r,
            cols: c,
            rs,
            cs,
        }
    }
}

fn max_index(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs
    }
}

/// `C = alpha A B + beta C` (single-threaded). With `beta == 0` the old
/// contents of `C` are ignored. The network's shapes go to the
/// [`direct`](super::direct) kernel (same bits), the rest to `matrixmultiply`.
pub(crate) fn gemm(alpha: f32, a: View, b: View, beta: f32, mut c: ViewMut) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "gemm: inner dimensions differ");
    assert_eq!((c.rows, c.cols), (m, n), "gemm: output shape");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                let x = &mut c.data[i * c.rs + j * c.cs];
                *x = if beta == 0.0 { 0.0 } else { beta * *x };
            }
        }
        return;
    }
    if alpha == 1.0 && super::direct::gemm(a, b, beta, &mut c) {
        return;
    }
    packed(alpha, a, b, beta, c);
}

/// `C = alpha A B + beta C` by `matrixmultiply` (which packs its operands),
/// for any strides and shapes with `m, k, n > 0`.
pub(crate) fn packed(alpha: f32, a: View, b: View, beta: f32, c: ViewMut) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(b.rows == k && (c.rows, c.cols) == (m, n) && m > 0 && k > 0 && n > 0);
    // The strides stay inside the slices (checked here once), so every access
    // sgemm makes is in bounds.
    assert!(max_index(m, k, a.rs, a.cs) < a.data.len());
    assert!(max_index(k, n, b.rs, b.cs) < b.data.len());
    assert!(max_index(m, n, c.rs, c.cs) < c.data.len());
    // SAFETY: the pointers are valid for all indices checked above, `c` is a
    // unique borrow, and matrixmultiply reads/writes nothing else.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c.data.as_mut_ptr(),
            c.rs as isize,
            c.cs as isize,
        );
    }
}

/// `op(a) op(b)` where `op` transposes when the flag is set.
pub(crate) struct MatMulOp {
    a: Var,
    b: Var,
    ta: bool,
    tb: bool,
}

impl MatMulOp {
    pub(crate) fn backward(&self, out: Var, gy: &[f32], ctx: &mut Back) {
        let vals = ctx.values;
        let (a, b) = (&vals[self.a.id], &vals[self.b.id]);
        let dc = View::of_slice(gy, out.rows, out.cols, false);
        if let Some(ga) = ctx.grad(self.a) {
            // d op(A) = dC op(B)^T, written into A's layout.
            let dst = ViewMut::of_slice(ga, a.rows, a.cols, self.ta);
            gemm(1.0, dc, View::of(b, !self.tb), 1.0, dst);
        }
        if let Some(gb) = ctx.grad(self.b) {
            // d op(B) = op(A)^T dC.
            let dst = ViewMut::of_slice(gb, b.rows, b.cols, self.tb);
            gemm(1.0, View::of(a, !self.ta), dc, 1.0, dst);
        }
    }
}

/// `y = x W^T + b`: `x` `[n, in]`, `W` `[out, in]`, `b` `[1, out]`.
pub(crate) struct LinearOp {
    x: Var,
    w: Var,
    b: Option<Var>,
}

impl LinearOp {
    pub(crate) fn backward(&self, out: Var, gy: &[f32], ctx: &mut Back) {
        let vals = ctx.values;
        let (x, w) = (&vals[self.x.id], &vals[self.w.id]);
        let dy = View::of_slice(gy, out.rows, out.cols, false);
        if let Some(gx) = ctx.grad(self.x) {
            // dx = dy W
            gemm(
                1.0,
                dy,
                View::of(w, false),
                1.0,
                ViewMut::of_slice(gx, x.rows, x.cols, false),
            );
        }
        if let Some(gw) = ctx.grad(self.w) {
            // dW = dy^T x
            let dyt = View::of_slice(gy, out.rows, out.cols, true);
            gemm(
                1.0,
                dyt,
                View::of(x, false),
                1.0,
                ViewMut::of_slice(gw, w.rows, w.cols, false),
            );
        }
        if let Some(b) = self.b {
            if let Some(gb) = ctx.grad(b) {
                // db = sum over the batch of dy
                for row in gy.chunks_exact(out.cols) {
                    for (g, d) in gb.iter_mut().zip(row) {
                        *g += *d;
                    }
                }
            }
        }
    }
}

impl<M: Mode> Graph<M> {
    /// `op(a) op(b)`, `op` transposing when its flag is set.
    pub fn matmul_t(&mut self, a: Var, ta: bool, b: Var, tb: bool) -> Var {
        let va = View::of(&self.values[a.id], ta);
        let vb = View::of(&self.values[b.id], tb);
        assert_eq!(
            va.cols,
            vb.rows,
            "matmul: {a:?}{} x {b:?}{}",
            if ta { "^T" } else { "" },
            if tb { "^T" } else { "" }
        );
        let (m, n) = (va.rows, vb.cols);
        let mut out = self.pool.take(m * n);
        gemm(1.0, va, vb, 0.0, ViewMut::of_slice(&mut out, m, n, false));
        self.push(m, n, out, &[a, b], || Op::MatMul(MatMulOp { a, b, ta, tb }))
    }

    /// `a b`.
    pub fn matmul(&mut self, a: Var, b: Var) -> Var {
        self.matmul_t(a, false, b, false)
    }

    /// Dense layer `y = x W^T + b` with `W` `[out, in]` and `b` `[1, out]`
    /// (PyTorch's `Linear` layout), in one pass: `b` is broadcast into the
    /// output, then GEMM accumulates onto it.
    pub fn linear(&mut self, x: Var, w: Var, b: Option<Var>) -> Var {
        let (n, fan_out) = (x.rows, w.rows);
        assert_eq!(x.cols, w.cols, "linear: x {x:?} vs W {w:?}");
        let mut out = self.pool.take(n * fan_out);
        let beta = match b {
            Some(b) => {
                assert_eq!(b.shape(), (1, fan_out), "linear: bias {b:?}");
                let bias = &self.values[b.id].data;
                for row in out.chunks_exact_mut(fan_out) {
                    row.copy_from_slice(bias);
                }
                1.0
            }
            None => 0.0,
        };
        // `W^T` row-major, made once per bound weight: the kernel then reads
        // it in place (same values, same bits as the transposed view).
        let slot = match self.transposes.iter().position(|(id, _)| *id == w.id) {
            Some(i) => i,
            None => {
                let src = &self.values[w.id];
                let mut t = self.pool.take(src.len());
                for (i, row) in src.data.chunks_exact(src.cols).enumerate() {
                    for (j, &v) in row.iter().enumerate() {
                        t[j * fan_out + i] = v;
                    }
                }
                self.transposes.push((w.id, t));
                self.transposes.len() - 1
            }
        };
        gemm(
            1.0,
            View::of(&self.values[x.id], false),
            View::of_slice(&self.transposes[slot].1, x.cols, fan_out, false),
            beta,
            ViewMut::of_slice(&mut out, n, fan_out, false),
        );
        let inputs = [x, w, b.unwrap_or(x)];
        self.push(n, fan_out, out, &inputs, || {
            Op::Linear(LinearOp { x, w, b })
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::autodiff::check::{check_gradients, rand_tensor, test_rng};
    use crate::autodiff::{Tape, Tensor};

    fn naive(a: &Tensor, ta: bool, b: &Tensor, tb: bool) -> Tensor {
        let get =
            |t: &Tensor, tr: bool, i: usize, j: usize| if tr { t.get(j, i) } else { t.get(i, j) };
        let (m, k) = if ta {
            (a.cols, a.rows)
        } else {
            (a.rows, a.cols)
        };
        let n = if tb { b.rows } else { b.cols };
        Tensor::from_fn(m, n, |i, j| {
            (0..k).map(|l| get(a, ta, i, l) * get(b, tb, l, j)).sum()
        })
    }

    #[test]
    fn forward_matches_naive_for_all_transposes() {
        let mut rng = test_rng(1);
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let a = if ta {
                rand_tensor(&mut rng, 7, 5)
            } else {
                rand_tensor(&mut rng, 5, 7)
            };
            let b = if tb {
                rand_tensor(&mut rng, 3, 7)
            } else {
                rand_tensor(&mut rng, 7, 3)
            };
            let mut g = Tape::new();
            let (va, vb) = (g.constant(a.clone()), g.constant(b.clone()));
            let c = g.matmul_t(va, ta, vb, tb);
            let want = naive(&a, ta, &b, tb);
            for (x, y) in g.value(c).data.iter().zip(&want.data) {
                assert!((x - y).abs() < 1e-5, "{x} vs {y}");
            }
        }
    }

    #[test]
    fn grad_matmul_all_transposes() {
        let mut rng = test_rng(2);
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let a = if ta {
                rand_tensor(&mut rng, 4, 3)
            } else {
                rand_tensor(&mut rng, 3, 4)
            };
            let b = if tb {
                rand_tensor(&mut rng, 5, 4)
            } else {
                rand_tensor(&mut rng, 4, 5)
            };
            check_gradients(&[a, b], |g, v| g.matmul_t(v[0], ta, v[1], tb));
        }
    }

    #[test]
    fn grad_matmul_same_operand_twice() {
        // A A^T uses A through both operands: both contributions must add up.
        let a = rand_tensor(&mut test_rng(3), 3, 4);
        check_gradients(&[a], |g, v| g.matmul_t(v[0], false, v[0], true));
    }

    #[test]
    fn grad_linear() {
        let mut rng = test_rng(4);
        let x = rand_tensor(&mut rng, 6, 4);
        let w = rand_tensor(&mut rng, 3, 4);
        let b = rand_tensor(&mut rng, 1, 3);
        check_gradients(&[x.clone(), w.clone(), b], |g, v| {
            g.linear(v[0], v[1], Some(v[2]))
        });
        check_gradients(&[x, w], |g, v| g.linear(v[0], v[1], None));
    }

    #[test]
    fn linear_equals_matmul_plus_bias() {
        let mut rng = test_rng(5);
        let mut g = Tape::new();
        let x = g.constant(rand_tensor(&mut rng, 6, 4));
        let w = g.constant(rand_tensor(&mut rng, 3, 4));
        let b = g.constant(rand_tensor(&mut rng, 1, 3));
        let y1 = g.linear(x, w, Some(b));
        let xw = g.matmul_t(x, false, w, true);
        let y2 = g.add(xw, b);
        for (p, q) in g.value(y1).data.iter().zip(&g.value(y2).data) {
            assert!((p - q).abs() < 1e-6);
        }
    }
}
