//! Optimisers: Adam / AdamW, global gradient-norm clipping, learning-rate
//! schedules and an exponential moving average of the parameters.

use crate::autodiff::{Grads, Params, Tensor};

/// Adam hyper-parameters. `weight_decay > 0` gives AdamW (decoupled decay,
/// Loshchilov & Hutter): `p <- p - lr wd p` applied beside, not inside, the
/// adaptive step.
#[derive(Clone, Copy, Debug)]
pub struct AdamConfig {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Adam state: first and second moment estimates per parameter.
#[derive(Clone, Debug)]
pub struct Adam {
    pub config: AdamConfig,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    /// Number of steps taken.
    pub t: u64,
}

impl Adam {
    pub fn new(params: &Params, config: AdamConfig) -> Self {
        let zeros = || params.values.iter().map(|p| vec![0.0; p.len()]).collect();
        Self {
            config,
            m: zeros(),
            v: zeros(),
            t: 0,
        }
    }

    /// The first and second moment estimates (for checkpoints).
    pub fn moments(&self) -> (&[Vec<f32>], &[Vec<f32>]) {
        (&self.m, &self.v)
    }

    /// Restores moments and step count saved by [`Adam::moments`].
    pub fn restore_moments(&mut self, m: Vec<Vec<f32>>, v: Vec<Vec<f32>>, t: u64) {
        self.m = m;
        self.v = v;
        self.t = t;
    }

    /// One step with learning rate `lr` using `params.grads`:
    ///     m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2,
    ///     p <- p (1 - lr wd) - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
    pub fn step(&mut self, params: &mut Params, lr: f32) {
        self.t += 1;
        let AdamConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.config;
        let t = self.t as i32;
        let bc1 = 1.0 - f64::from(beta1).powi(t);
        let bc2 = 1.0 - f64::from(beta2).powi(t);
        let step = (f64::from(lr) / bc1) as f32;
        let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
        let decay = 1.0 - lr * weight_decay;
        for (((p, g), m), v) in params
            .values
            .iter_mut()
            .zip(&params.grads.tensors)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            for (((p, &g), m), v) in p.data.iter_mut().zip(&g.data).zip(m).zip(v) {
                *m = beta1 * *m + (1.0 - beta1) * g;
                *v = beta2 * *v + (1.0 - beta2) * g * g;
                *p = *p * decay - step * *m / ((*v).sqrt() * inv_sqrt_bc2 + eps);
            }
        }
    }
}

/// Scales all gradients together so that their global Euclidean norm is at
/// most `max_norm`; returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut Grads, max_norm: f32) -> f32 {
    let norm = grads.global_norm();
    if norm > f64::from(max_norm) {
        grads.scale((f64::from(max_norm) / (norm + 1e-6)) as f32);
    }
    norm as f32
}

/// Learning rate as a function of the step `k` (counted from 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LrSchedule {
    Constant(f32),
    /// `lr gamma^floor(k / every)`.
    Step {
        lr: f32,
        gamma: f32,
        every: u64,
    },
    /// Linear warm-up over `warmup` steps, then cosine decay from `lr` to
    /// `min_lr` at step `total` (and `min_lr` after).
    Cosine {
        lr: f32,
        min_lr: f32,
        warmup: u64,
        total: u64,
    },
}

impl LrSchedule {
    pub fn at(&self, k: u64) -> f32 {
        match *self {
            LrSchedule::Constant(lr) => lr,
            LrSchedule::Step { lr, gamma, every } => lr * gamma.powi((k / every.max(1)) as i32),
            LrSchedule::Cosine {
                lr,
                min_lr,
                warmup,
                total,
            } => {
                if k < warmup {
                    return lr * (k + 1) as f32 / warmup as f32;
                }
                let span = total.saturating_sub(warmup).max(1);
                let frac = ((k - warmup) as f64 / span as f64).min(1.0);
                let cos = 0.5 * (1.0 + (std::f64::consts::PI * frac).cos());
                (f64::from(min_lr) + (f64::from(lr) - f64::from(min_lr)) * cos) as f32
            }
        }
    }
}

/// Exponential moving average of the parameters:
/// `shadow <- decay shadow + (1 - decay) p`.
#[derive(Clone, Debug)]
pub struct Ema {
    pub decay: f32,
    pub shadow: Vec<Tensor>,
}

impl Ema {
    pub fn new(params: &Params, decay: f32) -> Self {
        Self {
            decay,
            shadow: params.values.clone(),
        }
    }

    pub fn update(&mut self, params: &Params) {
        let d = self.decay;
        for (s, p) in self.shadow.iter_mut().zip(&params.values) {
            for (s, &p) in s.data.iter_mut().zip(&p.data) {
                *s = d * *s + (1.0 - d) * p;
            }
        }
    }

    /// A copy of `params` holding the averaged values (e.g. for evaluation or export).
    pub fn to_params(&self, params: &Params) -> Params {
        let mut out = params.clone();
        out.values.clone_from(&self.shadow);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autodiff::check::{rand_tensor, test_rng};
    use crate::autodiff::Tape;

    /// Solves `A x = b` (`A` n x n, row-major) by Gaussian elimination with
    /// partial pivoting, in f64.
    fn solve(mut a: Vec<f64>, mut b: Vec<f64>) -> Vec<f64> {
        let n = b.len();
        for col in 0..n {
            let piv = (col..n)
                .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
                .unwrap();
            for k in 0..n {
                a.swap(col * n + k, piv * n + k);
            }
            b.swap(col, piv);
            for r in col + 1..n {
                let f = a[r * n + col] / a[col * n + col];
                for k in col..n {
                    a[r * n + k] -= f * a[col * n + k];
                }
                b[r] -= f * b[col];
            }
        }
        let mut x = vec![0.0; n];
        for r in (0..n).rev() {
            let s: f64 = (r + 1..n).map(|k| a[r * n + k] * x[k]).sum();
            x[r] = (b[r] - s) / a[r * n + r];
        }
        x
    }

    #[test]
    fn adam_solves_least_squares() {
        // min_w mean((A w - y)^2): the minimiser solves A^T A w = A^T y.
        let (n, p) = (64, 5);
        let mut rng = test_rng(40);
        let a = rand_tensor(&mut rng, n, p);
        let y = rand_tensor(&mut rng, n, 1);
        let mut ata = vec![0f64; p * p];
        let mut aty = vec![0f64; p];
        for i in 0..n {
            for j in 0..p {
                aty[j] += f64::from(a.get(i, j)) * f64::from(y.get(i, 0));
                for k in 0..p {
                    ata[j * p + k] += f64::from(a.get(i, j)) * f64::from(a.get(i, k));
                }
            }
        }
        let w_star = solve(ata, aty);

        let mut params = Params::new();
        let w = params.add("w", Tensor::zeros(p, 1));
        let mut adam = Adam::new(&params, AdamConfig::default());
        let schedule = LrSchedule::Cosine {
            lr: 0.05,
            min_lr: 1e-5,
            warmup: 10,
            total: 3000,
        };
        let mut g = Tape::new();
        for k in 0..3000 {
            g.clear();
            let av = g.constant_like(&a);
            let yv = g.constant_like(&y);
            let wv = g.param(&params, w);
            let pred = g.matmul(av, wv);
            let r = g.sub(pred, yv);
            let r2 = g.square(r);
            let loss = g.mean(r2);
            params.zero_grad();
            g.backward(loss, &mut params.grads);
            adam.step(&mut params, schedule.at(k));
        }
        for (got, want) in params.get(w).data.iter().zip(&w_star) {
            assert!((f64::from(*got) - want).abs() < 1e-4, "{got} vs {want}");
        }
    }

    /// Adam's first three steps against the textbook recursion (Kingma & Ba,
    /// Algorithm 1) written out in f64. With bias correction the first step
    /// is `lr * g / (|g| + eps)`, i.e. `lr` times the sign of `g` whatever
    /// its size; without it (or with plain SGD) it would be `lr * 0.1 g /
    /// sqrt(0.001 g^2) = 3.16 lr`, or `lr g`.
    #[test]
    fn adam_first_steps_match_the_recursion_with_bias_correction() {
        let mut params = Params::new();
        params.add("a", Tensor::new(1, 3, vec![1.0, -2.0, 0.5]));
        let mut adam = Adam::new(&params, AdamConfig::default());
        let grads = [[0.5f32, -3.0, 1e-3], [-1.0, 0.2, 2e-3], [0.25, 0.2, -4.0]];
        let lr = 0.1f32;
        // Step 1 by hand: p - lr sign(g) (eps = 1e-8 is negligible here).
        params.grads.tensors[0].data = grads[0].to_vec();
        adam.step(&mut params, lr);
        let after_one = [0.9, -1.9, 0.4];
        for (got, want) in params.values[0].data.iter().zip(after_one) {
            assert!((f64::from(*got) - want).abs() < 1e-6, "{got} vs {want}");
        }
        // Steps 2 and 3 against the recursion in f64.
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
        let mut p = [1.0f64, -2.0, 0.5];
        let (mut m, mut v) = ([0.0f64; 3], [0.0f64; 3]);
        for (k, g) in grads.iter().enumerate() {
            let t = k as i32 + 1;
            for j in 0..3 {
                let gj = f64::from(g[j]);
                m[j] = b1 * m[j] + (1.0 - b1) * gj;
                v[j] = b2 * v[j] + (1.0 - b2) * gj * gj;
                let m_hat = m[j] / (1.0 - b1.powi(t));
                let v_hat = v[j] / (1.0 - b2.powi(t));
                p[j] -= f64::from(lr) * m_hat / (v_hat.sqrt() + eps);
            }
            if k > 0 {
                params.grads.tensors[0].data = g.to_vec();
                adam.step(&mut params, lr);
                for (got, want) in params.values[0].data.iter().zip(&p) {
                    assert!(
                        (f64::from(*got) - want).abs() < 1e-6,
                        "step {t}: {got} vs {want}"
                    );
                }
            }
            if k == 1 {
                // Coordinate 0 by hand: m = -0.055, v = 0.00124975,
                // p = 0.9 - 0.1 (m / 0.19) / sqrt(v / 0.001999) = 0.9366104.
                assert!((f64::from(params.values[0].data[0]) - 0.936_610_4).abs() < 1e-6);
            }
        }
        assert_eq!(adam.t, 3);
    }

    #[test]
    fn clipping_and_schedules() {
        let mut params = Params::new();
        params.add("a", Tensor::zeros(1, 2));
        params.grads.tensors[0].data = vec![3.0, 4.0];
        let n = clip_grad_norm(&mut params.grads, 1.0);
        assert_eq!(n, 5.0);
        assert!((params.grads.global_norm() - 1.0).abs() < 1e-6);
        assert_eq!(
            clip_grad_norm(&mut params.grads, 10.0),
            params.grads.global_norm() as f32
        );

        let s = LrSchedule::Step {
            lr: 1.0,
            gamma: 0.5,
            every: 10,
        };
        assert_eq!(
            (s.at(0), s.at(9), s.at(10), s.at(25)),
            (1.0, 1.0, 0.5, 0.25)
        );
        let c = LrSchedule::Cosine {
            lr: 1.0,
            min_lr: 0.1,
            warmup: 0,
            total: 100,
        };
        assert_eq!(c.at(0), 1.0);
        assert!((c.at(50) - 0.55).abs() < 1e-6);
        assert!((c.at(100) - 0.1).abs() < 1e-6 && (c.at(1000) - 0.1).abs() < 1e-6);
    }

    #[test]
    fn adamw_decays_without_gradient_and_ema_averages() {
        let mut params = Params::new();
        params.add("a", Tensor::full(1, 1, 2.0));
        let cfg = AdamConfig {
            weight_decay: 0.1,
            ..AdamConfig::default()
        };
        let mut adam = Adam::new(&params, cfg);
        let mut ema = Ema::new(&params, 0.5);
        adam.step(&mut params, 0.5); // zero gradient: only the decoupled decay acts
        assert!((params.values[0].data[0] - 2.0 * (1.0 - 0.05)).abs() < 1e-6);
        ema.update(&params);
        assert!((ema.shadow[0].data[0] - 0.5 * (2.0 + 1.9)).abs() < 1e-6);
    }
}
