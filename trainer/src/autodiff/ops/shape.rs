//! Shape ops and externally differentiated functions.
//!
//! * `concat_cols([a, b, ...])`: `[r, ca] ++ [r, cb] -> [r, ca + cb]`; backward
//!   hands each part its block of columns of the output gradient.
//! * `rowwise_external(x, value, jac)`: a row-wise scalar function `f(x_i)`
//!   evaluated outside the tape (e.g. `log rho` of a target with its score
//!   `grad log rho`): value `[r, 1]`, Jacobian `[r, c]`, backward
//!   `dx_ij += gy_i jac_ij`.

use crate::autodiff::graph::{Back, Graph, Mode, Op, Var};
use crate::autodiff::tensor::Tensor;

pub(crate) enum ShapeOp {
    ConcatCols { parts: Vec<Var> },
    External { x: Var, jac: Vec<f32> },
}

impl ShapeOp {
    pub(crate) fn backward(&self, out: Var, gy: &[f32], ctx: &mut Back) {
        match self {
            ShapeOp::ConcatCols { parts } => {
                let mut offset = 0;
                for &p in parts {
                    if let Some(gp) = ctx.grad(p) {
                        for (g, src) in gp.chunks_exact_mut(p.cols).zip(gy.chunks_exact(out.cols)) {
                            for (g, &s) in g.iter_mut().zip(&src[offset..offset + p.cols]) {
                                *g += s;
                            }
                        }
                    }
                    offset += p.cols;
                }
            }
            ShapeOp::External { x, jac } => {
                if let Some(gx) = ctx.grad(*x) {
                    for ((g, j), &d) in gx
                        .chunks_exact_mut(x.cols)
                        .zip(jac.chunks_exact(x.cols))
                        .zip(gy)
                    {
                        for (g, &j) in g.iter_mut().zip(j) {
                            *g += d * j;
                        }
                    }
                }
            }
        }
    }
}

impl<M: Mode> Graph<M> {
    /// Concatenation along columns of tensors with equal row counts.
    pub fn concat_cols(&mut self, parts: &[Var]) -> Var {
        assert!(!parts.is_empty(), "concat_cols of nothing");
        let rows = parts[0].rows;
        assert!(
            parts.iter().all(|p| p.rows == rows),
            "concat_cols: row counts differ"
        );
        let cols: usize = parts.iter().map(|p| p.cols).sum();
        let mut out = self.alloc(rows * cols);
        let mut offset = 0;
        for p in parts {
            let src = &self.values[p.id].data;
            for (o, s) in out.chunks_exact_mut(cols).zip(src.chunks_exact(p.cols)) {
                o[offset..offset + p.cols].copy_from_slice(s);
            }
            offset += p.cols;
        }
        self.push(rows, cols, out, parts, || {
            Op::Shape(ShapeOp::ConcatCols {
                parts: parts.to_vec(),
            })
        })
    }

    /// A row-wise scalar function of `x` `[r, c]` computed outside the tape:
    /// `value` `[r, 1]` holds `f(x_i)` and `jac` `[r, c]` holds `d f(x_i) / d x_i`.
    pub fn rowwise_external(&mut self, x: Var, value: &[f32], jac: &[f32]) -> Var {
        assert_eq!(
            value.len(),
            x.rows,
            "rowwise_external: value must be [rows, 1]"
        );
        assert_eq!(
            jac.len(),
            x.len(),
            "rowwise_external: jac must be shaped like x"
        );
        let mut out = self.alloc(x.rows);
        out.copy_from_slice(value);
        let rec = M::RECORD && self.requires_grad(x);
        let jac_buf = if rec {
            let mut j = self.alloc(jac.len());
            j.copy_from_slice(jac);
            j
        } else {
            Vec::new()
        };
        self.push(x.rows, 1, out, &[x], move || {
            Op::Shape(ShapeOp::External { x, jac: jac_buf })
        })
    }

    /// Convenience: a `[rows, cols]` constant from a tensor reference.
    pub fn constant_like(&mut self, t: &Tensor) -> Var {
        self.constant_from(t.rows, t.cols, &t.data)
    }
}

#[cfg(test)]
mod tests {
    use crate::autodiff::check::{check_gradients, rand_tensor, test_rng};
    use crate::autodiff::{Tape, Tensor};

    #[test]
    fn grad_concat() {
        let mut rng = test_rng(30);
        let a = rand_tensor(&mut rng, 3, 2);
        let b = rand_tensor(&mut rng, 3, 4);
        check_gradients(&[a.clone(), b.clone()], |g, v| {
            g.concat_cols(&[v[0], v[1], v[0]])
        });
    }

    #[test]
    fn concat_values() {
        let mut g = Tape::new();
        let a = g.constant(Tensor::new(2, 1, vec![1.0, 2.0]));
        let b = g.constant(Tensor::new(2, 2, vec![3.0, 4.0, 5.0, 6.0]));
        let c = g.concat_cols(&[a, b]);
        assert_eq!(g.value(c).data, vec![1.0, 3.0, 4.0, 2.0, 5.0, 6.0]);
    }

    #[test]
    fn grad_rowwise_external() {
        // f(x_i) = -|x_i|^2 / 2 computed outside, Jacobian -x_i.
        let x = rand_tensor(&mut test_rng(31), 4, 3);
        check_gradients(std::slice::from_ref(&x), |g, v| {
            let xs = g.value(v[0]).clone();
            let value: Vec<f32> = (0..xs.rows)
                .map(|i| -0.5 * xs.row_slice(i).iter().map(|a| a * a).sum::<f32>())
                .collect();
            let jac: Vec<f32> = xs.data.iter().map(|a| -a).collect();
            let y = g.rowwise_external(v[0], &value, &jac);
            g.sin(y)
        });
    }
}
