//! Throughput of the trainer's autodiff on the reference network.
//!
//! `cargo bench -p diffctl-trainer --bench autodiff` prints a table:
//! * peak of an FMA loop and of the GEMM kernel alone (512 x 64 x 64);
//! * `train` itself in the reference setup (gmm, batch 512, K = 100,
//!   Euler–Maruyama, log-variance loss) on 1 and 2 threads, with its rate
//!   beside the FMA-loop peak;
//! * one iteration of a KL-type loss: a 100-step Euler–Maruyama rollout at
//!   batch 512 through the reference network (C = 64, L = 4, score term
//!   on), the path cost `sum_k |u_k|^2 h / 2 - log rho(X_K)` and
//!   backpropagation through the whole trajectory, on 1 and 2 threads, for
//!   d = 2 and d = 50.
//!
//! GFLOP/s count only the GEMM flops of the state path: per sample-step
//! `2 (d C + (L-2) C^2 + C d)` forward and twice that backward (and, for
//! the log-variance loss, the forward a second time).

use std::hint::black_box;
use std::ops::Range;
use std::time::Instant;

use diffctl_runtime::prelude::Integrator;
use diffctl_trainer::autodiff::{Params, Tape, Tensor, Var};
use diffctl_trainer::network::{BatchedNetwork, NetworkShape, ScoreTerm};
use diffctl_trainer::optimise::RunOptions;
use diffctl_trainer::parallel::DataParallel;
use diffctl_trainer::target::Known;
use diffctl_trainer::train::{train, TrainConfig};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

const BATCH: usize = 512;
const STEPS: usize = 100;

fn gaussian_tensor(rng: &mut Xoshiro256PlusPlus, rows: usize, cols: usize) -> Tensor {
    // Sum of 4 uniforms, rescaled: close enough to N(0, 1) for timing.
    Tensor::from_fn(rows, cols, |_, _| {
        let s: f32 = (0..4)
            .map(|_| (rng.next_u32() >> 8) as f32 / 16_777_216.0)
            .sum();
        (s - 2.0) * 1.732
    })
}

/// The FMA-loop peak of one core: 12 independent FMA chains, 512-bit when
/// the CPU has AVX-512 (twice the 256-bit rate on CPUs with two 512-bit FMA
/// ports), else 256-bit.
fn fma_peak() -> (f64, &'static str) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        const N: usize = 50_000_000;
        if is_x86_feature_detected!("avx512f") {
            #[target_feature(enable = "avx512f")]
            unsafe fn run() -> f32 {
                let mut acc = [_mm512_set1_ps(0.0); 12];
                let a = _mm512_set1_ps(0.999_999);
                let b = _mm512_set1_ps(1e-7);
                for _ in 0..N / 12 {
                    for x in &mut acc {
                        *x = _mm512_fmadd_ps(*x, a, b);
                    }
                }
                _mm512_reduce_add_ps(acc[0])
            }
            let t = Instant::now();
            // SAFETY: avx512f detected above.
            black_box(unsafe { run() });
            let flops = (N / 12 * 12) as f64 * 16.0 * 2.0;
            return (flops / t.elapsed().as_secs_f64() / 1e9, "avx-512 fma");
        }
        if is_x86_feature_detected!("fma") && is_x86_feature_detected!("avx") {
            #[target_feature(enable = "avx,fma")]
            unsafe fn run() -> f32 {
                let mut acc = [_mm256_set1_ps(0.0); 12];
                let a = _mm256_set1_ps(0.999_999);
                let b = _mm256_set1_ps(1e-7);
                for _ in 0..N / 12 {
                    for x in &mut acc {
                        *x = _mm256_fmadd_ps(*x, a, b);
                    }
                }
                let mut out = [0f32; 8];
                _mm256_storeu_ps(out.as_mut_ptr(), acc[0]);
                out.iter().sum()
            }
            let t = Instant::now();
            // SAFETY: avx and fma detected above.
            black_box(unsafe { run() });
            let flops = (N / 12 * 12) as f64 * 8.0 * 2.0;
            return (flops / t.elapsed().as_secs_f64() / 1e9, "avx2 fma");
        }
    }
    (f64::NAN, "n/a")
}

/// GEMM kernel alone on `[m, k] x [k, n]` through the tape's `matmul`
/// (value only, no recording), in GFLOP/s.
fn gemm_peak(m: usize, k: usize, n: usize, ta: bool, tb: bool) -> f64 {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let a = if ta {
        gaussian_tensor(&mut rng, k, m)
    } else {
        gaussian_tensor(&mut rng, m, k)
    };
    let b = if tb {
        gaussian_tensor(&mut rng, n, k)
    } else {
        gaussian_tensor(&mut rng, k, n)
    };
    let mut g = diffctl_trainer::autodiff::Eval::new();
    let reps = 2000;
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..reps {
            g.clear();
            let (va, vb) = (g.constant_like(&a), g.constant_like(&b));
            black_box(g.matmul_t(va, ta, vb, tb));
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (m * k * n * reps) as f64 / best / 1e9
}

/// Sum over the shard of the KL-type path cost (without the Ito term),
/// divided by the batch size; gradients flow through the trajectory.
fn shard_loss(
    net: &BatchedNetwork,
    g: &mut Tape,
    params: &Params,
    x0: &Tensor,
    noise: &[Tensor],
    range: Range<usize>,
) -> Var {
    let h = 1.0 / noise.len() as f32;
    let p = net.bind(g, params);
    let mut x = g.constant(x0.rows_range(range.clone()));
    let mut cost: Option<Var> = None;
    for (k, xi) in noise.iter().enumerate() {
        let t = k as f32 * h;
        let beta_bar = 0.1 + 9.9 * (1.0 - t);
        let sigma_bar = beta_bar.sqrt();
        let te = net.time_embedding(g, &p, t);
        let ts = g.detach(x);
        let ts = g.neg(ts); // grad log rho of N(0, I), a constant
        let sc = ScoreTerm {
            sigma_bar,
            lambda: t,
            nu: 1.0,
            target_score: ts,
        };
        let u = net.control(g, &p, &te, x, Some(&sc));
        let u2 = g.square(u);
        let u2 = g.sum(u2);
        let c = g.scale(u2, 0.5 * h);
        cost = Some(match cost {
            None => c,
            Some(acc) => g.add(acc, c),
        });
        let drift_x = g.scale(x, 0.5 * beta_bar * h);
        let drift_u = g.scale(u, sigma_bar * h);
        let xi = g.constant(xi.rows_range(range.clone()));
        let dw = g.scale(xi, sigma_bar * h.sqrt());
        let dx = g.add(drift_x, drift_u);
        let dx = g.add(dx, dw);
        x = g.add(x, dx);
    }
    let x2 = g.square(x);
    let x2 = g.sum(x2);
    let x2 = g.scale(x2, 0.5);
    let total = g.add(cost.unwrap(), x2);
    g.scale(total, 1.0 / x0.rows as f32)
}

fn iteration_time(d: u32, threads: usize) -> (f64, usize) {
    let shape = NetworkShape::reference(d);
    let mut params = Params::new();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let net = BatchedNetwork::register(shape, &mut params, &mut rng);
    let x0 = gaussian_tensor(&mut rng, BATCH, d as usize);
    let noise: Vec<Tensor> = (0..STEPS)
        .map(|_| gaussian_tensor(&mut rng, BATCH, d as usize))
        .collect();
    let mut dp = DataParallel::new(threads);
    let mut best = f64::INFINITY;
    for _ in 0..6 {
        params.zero_grad();
        let t = Instant::now();
        black_box(dp.run_sum(&mut params, BATCH, |r, g, p| {
            shard_loss(&net, g, p, &x0, &noise, r)
        }));
        best = best.min(t.elapsed().as_secs_f64());
    }
    // memory of one shard's tape after the run
    let mut g = Tape::new();
    let l = shard_loss(&net, &mut g, &params, &x0, &noise, 0..BATCH / threads);
    black_box(l);
    (best, g.value_bytes())
}

/// Seconds per iteration of `train` itself (the log-variance loss's two
/// passes, Adam, EMA) on gmm in the reference setup: the difference of a
/// 20- and a 40-iteration run over 20, so start-up and the final
/// evaluation cancel.
fn train_iteration_time(threads: usize) -> f64 {
    let target = Known::preset("gmm").expect("gmm");
    let run = |iterations: usize| {
        let cfg = TrainConfig {
            integrator: Integrator::EulerMaruyama,
            explore: Some(1.0),
            iterations,
            threads,
            eval_every: 0,
            eval_samples: 64,
            ..TrainConfig::default()
        };
        let t = Instant::now();
        black_box(train(&cfg, &target, &RunOptions::default(), &mut |_| {}).expect("train"));
        t.elapsed().as_secs_f64()
    };
    let best = |n| (0..2).map(|_| run(n)).fold(f64::INFINITY, f64::min);
    (best(40) - best(20)) / 20.0
}

fn main() {
    let (fma, kind) = fma_peak();
    println!("FMA-loop peak, 1 core ({kind}): {fma:.1} GFLOP/s");
    println!();
    println!("GEMM alone (the tape's matmul: the direct kernel where it applies, else matrixmultiply; 1 thread), GFLOP/s:");
    println!("| shape (m x k x n) | A B | A B^T | A^T B |");
    println!("|---|---|---|---|");
    for (m, k, n) in [(256, 64, 64), (512, 64, 64), (2048, 64, 64), (64, 512, 64)] {
        println!(
            "| {m} x {k} x {n} | {:.1} | {:.1} | {:.1} |",
            gemm_peak(m, k, n, false, false),
            gemm_peak(m, k, n, false, true),
            gemm_peak(m, k, n, true, false)
        );
    }
    println!();
    println!("diffctl train, the reference setup (gmm, batch {BATCH}, K = {STEPS}, Euler–Maruyama, log-variance loss: a forward pass without a tape, then each step recomputed and backpropagated)");
    println!("| threads | ms / iteration | network GEMM GFLOP/s | share of the FMA-loop peak ({kind}, x threads) |");
    println!("|---|---|---|---|");
    {
        let (d, c) = (2.0, 64.0);
        let flop_fwd = 2.0 * (d * c + 2.0 * c * c + c * d);
        // forward twice (the two passes) and the backward (twice a forward)
        let flop = 4.0 * flop_fwd * (BATCH * STEPS) as f64;
        for threads in [1, 2] {
            let secs = train_iteration_time(threads);
            let rate = flop / secs / 1e9;
            println!(
                "| {threads} | {:.1} | {rate:.1} | {:.1} % |",
                secs * 1e3,
                100.0 * rate / (fma * threads as f64)
            );
        }
    }
    println!();
    println!("Training iteration with the KL-type loss: {STEPS}-step rollout, batch {BATCH}, reference network (C = 64, L = 4), forward + backward through the trajectory");
    println!(
        "| d | threads | ms / iteration | sample-steps / s | GEMM GFLOP/s | tape MiB / shard |"
    );
    println!("|---|---|---|---|---|---|");
    for d in [2u32, 50] {
        let c = 64.0;
        let flop_fwd = 2.0 * (f64::from(d) * c + 2.0 * c * c + c * f64::from(d));
        let flop = 3.0 * flop_fwd * (BATCH * STEPS) as f64;
        for threads in [1, 2] {
            let (secs, bytes) = iteration_time(d, threads);
            println!(
                "| {d} | {threads} | {:.1} | {:.2e} | {:.1} | {:.0} |",
                secs * 1e3,
                (BATCH * STEPS) as f64 / secs,
                flop / secs / 1e9,
                bytes as f64 / (1 << 20) as f64
            );
        }
    }
}
