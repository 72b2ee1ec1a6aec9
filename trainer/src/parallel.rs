//! Data parallelism: a batch split into contiguous shards, one thread and one
//! tape per shard, gradients reduced in a fixed order.
//!
//! Determinism: shard `i` always gets the same rows for a given batch size and
//! thread count, each thread's arithmetic is sequential (single-threaded
//! GEMM), and the per-thread gradients are added to the parameter gradients
//! in the order thread 0, 1, ..., so a fixed seed and thread count give
//! bit-identical results. A different thread count changes the summation
//! order (results then agree to rounding only).
//!
//! Two forms:
//! * [`DataParallel::run_sum`]: the loss is a sum of per-shard terms (e.g. a
//!   mean over the batch written as `sum_i / N`): one forward+backward pass.
//! * [`DataParallel::run_replay`]: the loss is any function of per-sample
//!   outputs (e.g. the log-variance loss `Var_i(R_i)`, which couples the
//!   shards through the batch mean). Phase 1 computes each shard's outputs
//!   `[n_i, k]` without a tape, keeping what its backward needs; the main
//!   thread stacks them to `[N, k]`, evaluates the loss on its own small
//!   tape and differentiates it w.r.t. the outputs; phase 2 recomputes and
//!   backpropagates each shard's part with its slice of that gradient
//!   (the log-variance rollout: one time step at a time, so a step's
//!   activations are still in cache when its backward runs).

use std::ops::Range;

use crate::autodiff::{Eval, Grads, Params, Tape, Tensor, Var};

/// Most threads a training, fitting or sampling run may use (the command
/// line's limit too).
pub const MAX_THREADS: usize = 256;

/// Number of cores available: the default thread count.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Splits `0..batch` into `parts` contiguous ranges whose sizes differ by at most one.
pub fn shard_ranges(batch: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.max(1);
    let (q, r) = (batch / parts, batch % parts);
    let mut start = 0;
    (0..parts)
        .map(|i| {
            let len = q + usize::from(i < r);
            let range = start..start + len;
            start += len;
            range
        })
        .collect()
}

struct Worker {
    tape: Tape,
    eval: Eval,
    grads: Grads,
}

/// A pool of per-thread tapes and gradient buffers, reused across iterations.
pub struct DataParallel {
    workers: Vec<Worker>,
    loss_tape: Tape,
}

impl DataParallel {
    pub fn new(threads: usize) -> Self {
        assert!(threads >= 1);
        Self {
            workers: (0..threads)
                .map(|_| Worker {
                    tape: Tape::new(),
                    eval: Eval::new(),
                    grads: Grads::default(),
                })
                .collect(),
            loss_tape: Tape::new(),
        }
    }

    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// Runs `job` on every worker with its shard, on worker threads (inline
    /// when there is one worker), and returns the results in worker order.
    fn each<R, J>(&mut self, batch: usize, job: J) -> Vec<R>
    where
        R: Send,
        J: Fn(usize, Range<usize>, &mut Worker) -> R + Sync,
    {
        let ranges = shard_ranges(batch, self.workers.len());
        if self.workers.len() == 1 {
            return vec![job(0, ranges[0].clone(), &mut self.workers[0])];
        }
        std::thread::scope(|s| {
            let job = &job;
            let handles: Vec<_> = self
                .workers
                .iter_mut()
                .zip(ranges)
                .enumerate()
                .map(|(i, (w, r))| s.spawn(move || job(i, r, w)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    }

    fn reset_grads(&mut self, params: &Params) {
        for w in &mut self.workers {
            if w.grads.tensors.len() == params.len() {
                w.grads.zero();
            } else {
                w.grads = Grads::zeros_like(params);
            }
        }
    }

    /// Adds `sum over shards of d f(shard) / d params` to `params.grads`
    /// and returns `sum over shards of f(shard)` (each a `[1, 1]` value).
    /// `f` gets its rows `range` of the batch, a cleared tape and the params.
    pub fn run_sum<F>(&mut self, params: &mut Params, batch: usize, f: F) -> f32
    where
        F: Fn(Range<usize>, &mut Tape, &Params) -> Var + Sync,
    {
        self.reset_grads(params);
        let p: &Params = params;
        let losses = self.each(batch, |_, range, w| {
            w.tape.clear();
            let loss = f(range, &mut w.tape, p);
            w.tape.backward(loss, &mut w.grads);
            w.tape.item(loss)
        });
        let mut total = 0.0;
        for (w, loss) in self.workers.iter().zip(losses) {
            params.grads.add_assign(&w.grads);
            total += loss;
        }
        total
    }

    /// Adds `d loss(outputs) / d params` to `params.grads` and returns the
    /// loss and the stacked `outputs` `[batch, k]`, for a loss that couples
    /// the shards (the batch variance) and per-shard outputs whose gradient
    /// is cheaper to recompute than to keep on a tape.
    ///
    /// Phase 1: `forward(shard, eval graph, params)` returns the shard's
    /// outputs `[n_i, k]` and what its backward needs (`S`). The main thread
    /// stacks the outputs, evaluates `loss` on them (a leaf on a fresh tape,
    /// to a `[1, 1]` value) and differentiates it w.r.t. the outputs. Phase
    /// 2: `backward(state, its slice of that gradient, tape, params, grads)`
    /// adds the shard's `sum_ij dL/dout_ij d out_ij / d params` to `grads`.
    pub fn run_replay<S, F, L, B>(
        &mut self,
        params: &mut Params,
        batch: usize,
        forward: F,
        loss: L,
        backward: B,
    ) -> (f32, Tensor)
    where
        S: Send + Sync,
        F: Fn(Range<usize>, &mut Eval, &Params) -> (Tensor, S) + Sync,
        L: FnOnce(&mut Tape, Var) -> Var,
        B: Fn(&S, &[f32], &mut Tape, &Params, &mut Grads) + Sync,
    {
        self.reset_grads(params);
        let p: &Params = params;
        // Phase 1: per-shard forward.
        let (parts, states): (Vec<Tensor>, Vec<S>) = self
            .each(batch, |_, range, w| {
                let n = range.len();
                let (out, state) = forward(range, &mut w.eval, p);
                assert_eq!(
                    out.rows, n,
                    "forward must return one row per sample of its shard"
                );
                (out, state)
            })
            .into_iter()
            .unzip();
        let outputs = Tensor::vstack(&parts);
        // The loss and its gradient w.r.t. the stacked outputs.
        let mut holder = Params::new();
        let id = holder.add("outputs", outputs.clone());
        self.loss_tape.clear();
        let leaf = self.loss_tape.param(&holder, id);
        let l = loss(&mut self.loss_tape, leaf);
        let value = self.loss_tape.item(l);
        self.loss_tape.backward(l, &mut holder.grads);
        let seed = &holder.grads.tensors[0];
        // Phase 2: per-shard backward of its slice of the seed.
        let k = outputs.cols;
        let states = &states;
        self.each(batch, |i, range, w| {
            let s = &seed.data[range.start * k..range.end * k];
            backward(&states[i], s, &mut w.tape, p, &mut w.grads);
        });
        for w in &self.workers {
            params.grads.add_assign(&w.grads);
        }
        (value, outputs)
    }

    /// Frees all tapes' memory (values and buffer pools).
    pub fn release(&mut self) {
        for w in &mut self.workers {
            w.tape.release();
            w.eval.release();
        }
        self.loss_tape.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autodiff::check::{rand_tensor, test_rng};
    use crate::autodiff::{Graph, Mode};
    use crate::network::{BatchedNetwork, NetworkShape, ScoreTerm};
    use crate::optim::{Adam, AdamConfig};

    #[test]
    fn shards_cover_the_batch() {
        assert_eq!(shard_ranges(10, 3), vec![0..4, 4..7, 7..10]);
        assert_eq!(shard_ranges(2, 4), vec![0..1, 1..2, 2..2, 2..2]);
    }

    /// Per-sample path functional of a short rollout: `[n, 1]` with
    /// `R_i = sum_k |u_k|^2 h / 2 - log N(x_K; 0, I)` (up to constants).
    fn per_sample<M: Mode>(
        net: &BatchedNetwork,
        g: &mut Graph<M>,
        params: &Params,
        x0: &Tensor,
        noise: &[Tensor],
        range: Range<usize>,
    ) -> Var {
        let h = 1.0 / noise.len() as f32;
        let p = net.bind(g, params);
        let mut x = g.constant(x0.rows_range(range.clone()));
        let mut cost = None;
        for (k, xi) in noise.iter().enumerate() {
            let t = k as f32 * h;
            let te = net.time_embedding(g, &p, t);
            let ts = g.detach(x);
            let ts = g.neg(ts);
            let sc = ScoreTerm {
                sigma_bar: 1.0,
                lambda: t,
                nu: 1.0,
                target_score: ts,
            };
            let u = net.control(g, &p, &te, x, Some(&sc));
            let u2 = g.square(u);
            let u2 = g.sum_cols(u2);
            let c = g.scale(u2, 0.5 * h);
            cost = Some(match cost {
                None => c,
                Some(acc) => g.add(acc, c),
            });
            let du = g.scale(u, h);
            let xi = g.constant(xi.rows_range(range.clone()));
            let dw = g.scale(xi, h.sqrt());
            let dx = g.add(du, dw);
            x = g.add(x, dx);
        }
        let x2 = g.square(x);
        let x2 = g.sum_cols(x2);
        let x2 = g.scale(x2, 0.5);
        g.add(cost.unwrap(), x2)
    }

    fn setup(seed: u64, batch: usize) -> (BatchedNetwork, Params, Tensor, Vec<Tensor>) {
        let shape = NetworkShape {
            d: 3,
            channels: 16,
            layers: 4,
            score_term: true,
        };
        let mut params = Params::new();
        let net = BatchedNetwork::register(shape, &mut params, &mut test_rng(seed));
        // Give the zero-initialised output layer some weight so all gradients are live.
        let mut rng = test_rng(seed + 1);
        for name in ["out.w", "score.w2"] {
            let id = params.id(name).unwrap();
            let t = params.get(id).clone();
            *params.get_mut(id) = rand_tensor(&mut rng, t.rows, t.cols);
        }
        let x0 = rand_tensor(&mut rng, batch, 3);
        let noise = (0..8).map(|_| rand_tensor(&mut rng, batch, 3)).collect();
        (net, params, x0, noise)
    }

    /// `run_replay` with the batch variance of [`per_sample`]: the forward
    /// pass without a tape, the backward pass recomputing on the tape.
    fn replay(
        dp: &mut DataParallel,
        params: &mut Params,
        batch: usize,
        net: &BatchedNetwork,
        x0: &Tensor,
        noise: &[Tensor],
    ) -> (f32, Tensor) {
        dp.run_replay(
            params,
            batch,
            |range, eval, p| {
                eval.clear();
                let out = per_sample(net, eval, p, x0, noise, range.clone());
                (eval.value(out).clone(), range)
            },
            |g, r| g.var_rows(r, 1),
            |range, seed, tape, p, grads| {
                tape.clear();
                let out = per_sample(net, tape, p, x0, noise, range.clone());
                tape.backward_seeded(out, seed, grads);
            },
        )
    }

    fn train(threads: usize, gather: bool) -> Params {
        let batch = 37;
        let (net, mut params, x0, noise) = setup(50, batch);
        let mut dp = DataParallel::new(threads);
        let mut adam = Adam::new(&params, AdamConfig::default());
        for _ in 0..5 {
            params.zero_grad();
            let f =
                |r: Range<usize>, g: &mut Tape, p: &Params| per_sample(&net, g, p, &x0, &noise, r);
            if gather {
                replay(&mut dp, &mut params, batch, &net, &x0, &noise);
            } else {
                dp.run_sum(&mut params, batch, |r, g, p| {
                    let out = f(r, g, p);
                    let s = g.sum(out);
                    g.scale(s, 1.0 / batch as f32)
                });
            }
            adam.step(&mut params, 1e-2);
        }
        params
    }

    #[test]
    fn same_seed_and_threads_give_identical_bits() {
        for gather in [false, true] {
            let a = train(2, gather);
            let b = train(2, gather);
            assert_eq!(
                a.flatten().iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                b.flatten().iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
            // and thread counts agree up to rounding
            let c = train(1, gather);
            let d = train(3, gather);
            for ((x, y), z) in a.flatten().iter().zip(c.flatten()).zip(d.flatten()) {
                assert!((x - y).abs() < 1e-4 && (x - z).abs() < 1e-4, "{x} {y} {z}");
            }
        }
    }

    #[test]
    fn replayed_loss_gradient_matches_one_tape() {
        // Variance of R over the batch, split over 3 threads, equals the
        // single-tape computation.
        let batch = 20;
        let (net, mut params, x0, noise) = setup(60, batch);
        let mut dp = DataParallel::new(3);
        params.zero_grad();
        let (loss, outputs) = replay(&mut dp, &mut params, batch, &net, &x0, &noise);
        assert_eq!(outputs.shape(), (batch, 1));
        let mut g = Tape::new();
        let r = per_sample(&net, &mut g, &params, &x0, &noise, 0..batch);
        let v = g.var_rows(r, 1);
        let mut grads = Grads::zeros_like(&params);
        g.backward(v, &mut grads);
        assert!((loss - g.item(v)).abs() <= 1e-5 * loss.abs());
        let norm = grads.global_norm() as f32;
        assert!(norm > 1e-3);
        for (a, b) in params.grads.tensors.iter().zip(&grads.tensors) {
            for (x, y) in a.data.iter().zip(&b.data) {
                assert!((x - y).abs() <= 1e-5 * norm, "{x} vs {y}");
            }
        }
    }
}
