//! Reductions over rows (down each column, `[r, c] -> [1, c]`), over columns
//! (along each row, `[r, c] -> [r, 1]`) or over everything (`-> [1, 1]`).
//! Sums are accumulated in f64 in a fixed order.
//!
//! | op                 | forward                                | backward `dx_ij +=`              |
//! |--------------------|----------------------------------------|----------------------------------|
//! | sum (scale `s`)    | `y = s sum x`                          | `s gy`                           |
//! | logsumexp_cols     | `y_i = log sum_j exp x_ij`             | `gy_i exp(x_ij - y_i)`           |
//! | var_rows (ddof `k`)| `y_j = sum_i (x_ij - mu_j)^2 / (r - k)`| `gy_j 2 (x_ij - mu_j) / (r - k)` |
//!
//! (In `var_rows` the dependence of `mu_j` on `x` drops out because
//! `sum_i (x_ij - mu_j) = 0`.)

use crate::autodiff::graph::{Back, Graph, Mode, Op, Var};

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Reduce {
    /// `[r, c] -> [r, 1]`, times `scale`.
    SumCols(f32),
    /// `[r, c] -> [1, 1]`, times `scale`.
    SumAll(f32),
    LogSumExpCols,
    /// Variance down each column with divisor `rows - ddof`.
    VarRows {
        ddof: usize,
    },
}

pub(crate) struct ReduceOp {
    kind: Reduce,
    x: Var,
}

/// Column means of `x` `[r, c]`, in f64.
fn col_means(x: &[f32], cols: usize) -> Vec<f64> {
    let mut acc = vec![0f64; cols];
    let rows = x.len() / cols;
    for row in x.chunks_exact(cols) {
        for (a, &v) in acc.iter_mut().zip(row) {
            *a += f64::from(v);
        }
    }
    for a in &mut acc {
        *a /= rows as f64;
    }
    acc
}

impl ReduceOp {
    pub(crate) fn backward(&self, out: Var, gy: &[f32], ctx: &mut Back) {
        let vals = ctx.values;
        let x = &vals[self.x.id].data[..];
        let y = &vals[out.id].data[..];
        let (rows, cols) = self.x.shape();
        let Some(gx) = ctx.grad(self.x) else {
            return;
        };
        match self.kind {
            Reduce::SumCols(s) => {
                for (i, g) in gx.chunks_exact_mut(cols).enumerate() {
                    let d = s * gy[i];
                    g.iter_mut().for_each(|g| *g += d);
                }
            }
            Reduce::SumAll(s) => {
                let d = s * gy[0];
                gx.iter_mut().for_each(|g| *g += d);
            }
            Reduce::LogSumExpCols => {
                for (i, g) in gx.chunks_exact_mut(cols).enumerate() {
                    let xr = &x[i * cols..(i + 1) * cols];
                    for (g, &xv) in g.iter_mut().zip(xr) {
                        *g += gy[i] * libm::expf(xv - y[i]);
                    }
                }
            }
            Reduce::VarRows { ddof } => {
                let mu = col_means(x, cols);
                let c = 2.0 / (rows - ddof) as f64;
                for (i, g) in gx.chunks_exact_mut(cols).enumerate() {
                    let xr = &x[i * cols..(i + 1) * cols];
                    for (j, (g, &xv)) in g.iter_mut().zip(xr).enumerate() {
                        *g += (f64::from(gy[j]) * c * (f64::from(xv) - mu[j])) as f32;
                    }
                }
            }
        }
    }
}

impl<M: Mode> Graph<M> {
    fn reduce(&mut self, kind: Reduce, x: Var) -> Var {
        let (rows, cols) = x.shape();
        let xs = &self.values[x.id].data[..];
        let (orows, ocols) = match kind {
            Reduce::VarRows { .. } => (1, cols),
            Reduce::SumCols(_) | Reduce::LogSumExpCols => (rows, 1),
            Reduce::SumAll(_) => (1, 1),
        };
        assert!(rows > 0 && cols > 0, "reduction of an empty tensor");
        let out: Vec<f32> = match kind {
            Reduce::SumCols(s) => xs
                .chunks_exact(cols)
                .map(|r| (r.iter().map(|&v| f64::from(v)).sum::<f64>() * f64::from(s)) as f32)
                .collect(),
            Reduce::SumAll(s) => {
                vec![(xs.iter().map(|&v| f64::from(v)).sum::<f64>() * f64::from(s)) as f32]
            }
            Reduce::LogSumExpCols => xs
                .chunks_exact(cols)
                .map(|r| {
                    let m = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let s: f64 = r.iter().map(|&v| f64::from(libm::expf(v - m))).sum();
                    m + libm::log(s) as f32
                })
                .collect(),
            Reduce::VarRows { ddof } => {
                assert!(rows > ddof, "var_rows needs more than ddof = {ddof} rows");
                let mu = col_means(xs, cols);
                let mut ss = vec![0f64; cols];
                for r in xs.chunks_exact(cols) {
                    for ((s, &v), &m) in ss.iter_mut().zip(r).zip(&mu) {
                        let d = f64::from(v) - m;
                        *s += d * d;
                    }
                }
                ss.iter()
                    .map(|&s| (s / (rows - ddof) as f64) as f32)
                    .collect()
            }
        };
        let mut buf = self.alloc(out.len());
        buf.copy_from_slice(&out);
        self.push(orows, ocols, buf, &[x], || Op::Reduce(ReduceOp { kind, x }))
    }

    /// Sum over columns: `[r, c] -> [r, 1]` (e.g. `|u|^2` per sample).
    pub fn sum_cols(&mut self, x: Var) -> Var {
        self.reduce(Reduce::SumCols(1.0), x)
    }
    /// Sum of all elements: `-> [1, 1]`.
    pub fn sum(&mut self, x: Var) -> Var {
        self.reduce(Reduce::SumAll(1.0), x)
    }
    /// Mean of all elements: `-> [1, 1]`.
    pub fn mean(&mut self, x: Var) -> Var {
        self.reduce(Reduce::SumAll(1.0 / x.len() as f32), x)
    }
    /// `log sum_j exp x_ij` along each row: `[r, c] -> [r, 1]`
    /// (e.g. a mixture density over components).
    pub fn logsumexp_cols(&mut self, x: Var) -> Var {
        self.reduce(Reduce::LogSumExpCols, x)
    }
    /// Variance down each column, divisor `rows - ddof` (`ddof = 1`: unbiased,
    /// like `torch.var`; `0`: population): `[r, c] -> [1, c]`.
    pub fn var_rows(&mut self, x: Var, ddof: usize) -> Var {
        self.reduce(Reduce::VarRows { ddof }, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autodiff::check::{check_gradients, rand_range, rand_tensor, test_rng};
    use crate::autodiff::{Tape, Tensor};

    #[test]
    fn grad_sums_and_means() {
        let x = rand_tensor(&mut test_rng(20), 5, 3);
        let kinds = [
            Reduce::SumCols(1.0),
            Reduce::SumCols(0.5),
            Reduce::SumAll(1.0),
            Reduce::SumAll(0.25),
        ];
        for kind in kinds {
            check_gradients(std::slice::from_ref(&x), |g, v| g.reduce(kind, v[0]));
        }
        check_gradients(std::slice::from_ref(&x), |g, v| g.mean(v[0]));
    }

    #[test]
    fn grad_logsumexp_and_var() {
        let x = rand_range(&mut test_rng(21), 6, 3, -3.0, 3.0);
        check_gradients(std::slice::from_ref(&x), |g, v| g.logsumexp_cols(v[0]));
        check_gradients(std::slice::from_ref(&x), |g, v| g.var_rows(v[0], 1));
        check_gradients(std::slice::from_ref(&x), |g, v| g.var_rows(v[0], 0));
    }

    #[test]
    fn forward_values() {
        let mut g = Tape::new();
        let x = g.constant(Tensor::new(3, 2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 9.0]));
        let sc = g.sum_cols(x);
        let v = g.var_rows(x, 1);
        let big = g.constant(Tensor::row(vec![1000.0, 1000.0]));
        let l = g.logsumexp_cols(big);
        assert_eq!(g.value(sc).data, vec![3.0, 7.0, 14.0]);
        assert_eq!(g.value(v).data, vec![4.0, 13.0]);
        // no overflow: log(2 e^1000) = 1000 + log 2
        assert!((g.item(l) - (1000.0 + std::f32::consts::LN_2)).abs() < 1e-3);
    }
}
