//! Sampling throughput of `diffctl-runtime` on one core (issue 3).
//!
//! `cargo bench --bench runtime_sampling` prints one table (see
//! `benches/README.md`). Everything runs on the calling thread; pin it with
//! `taskset -c 0 cargo bench --bench runtime_sampling` for steadier numbers.
//! `DIFFCTL_BENCH_SECONDS` (default 1) sets the time spent per row.
//!
//! Set-up: the reference network (C = 64, L = 4, score term on) with fixed
//! pseudo-random parameters, K = 100 Euler–Maruyama steps of the default VP
//! SDE on the uniform grid, target `gmm` (d = 2) and `mw50` (d = 50).
//!
//! ## FLOP convention
//!
//! Only the network is counted, and only its dense layers and GELUs:
//! * a dense layer `Linear(m, n)` is `2 m n` flops (one mul and one add per
//!   weight; the bias add, the lane reduction and the `e_x + e_t` add are not
//!   counted);
//! * one GELU is 1 flop (it is an `erff` call costing tens of real flops, so
//!   this *under*-counts the work; the GELU row shows its real cost);
//! * the Fourier features (`sincosf`), the score-term combination, the prior
//!   and target scores, the normals, the state update and the path cost are
//!   0 flops (they are the "non-network" part).
//!
//! Per step that is, once per `Sampler::sample` call (the time branch, in
//! `Control::prepare`): `2·2C·C + 2·C·C` (time branch) `+ 2·2C·C + 2·C`
//! (score net `s(t)`) `+ 2C` GELUs; and per path (state path, in
//! `Control::u`): `2·(d·C + (L-2)·C·C + C·d)` plus `(L-1)·C` GELUs. With
//! C = 64: 41 216 per call and 17 088 (d = 2) or 29 376 (d = 50) per path.
//!
//! ## Peaks
//!
//! (a) is the arithmetic style of `kernels::dot` (8 independent f32
//! accumulators, separate mul and add, no FMA) on L1-resident data, with the
//! default x86-64 baseline target (SSE2): 8 f32 lanes are two SSE registers,
//! i.e. two dependent chains of `addps`, plus one `mulps` and two loads per
//! `addps`. (b) is `kernels::dense` on a 64×64 matrix with hot caches, (b') a
//! bit-identical 4-row-blocked variant prototyped here.
//!
//! ## Prototypes
//!
//! Rows marked `proto` run the same sampler with a bit-identical re-implementation
//! of `NetworkControl` (checked against it before timing) to measure possible
//! speed-ups of the runtime's hot path: `dense4` (4 rows per pass), `gelu_fast`
//! (libm's small-argument `erff` branch vectorised) and a per-grid table of the
//! time branch. The `GELU -> identity` row is not a valid network: it only
//! attributes time to GELU.
//!
//! Two of them are now in the runtime (issue 17) and the rows use the
//! runtime's: `gelu_fast` is `kernels::gelu_in_place_blocked`, which
//! `gelu_in_place` uses on targets with SIMD (so on x86_64 the `from_flat`
//! rows include it, and the `gelu_fast` step shows no further gain; its bits
//! are tested in the runtime), and the time table is
//! `NetworkControl::tabulate`. `dense4` is still a prototype here.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use diffctl_runtime::control::StationaryControl;
use diffctl_runtime::kernels::{
    self, dense, gelu_in_place, gelu_in_place_blocked as gelu_fast, gelu_in_place_scalar, Weights,
    LANES,
};
use diffctl_runtime::network::{network_time, NetworkRef};
use diffctl_runtime::normal::{fill_normals, stream};
use diffctl_runtime::prelude::*;
use diffctl_runtime::target::Builtin;

const C: usize = 64;
const STEPS: usize = 100;
const BATCH: usize = 64;
const REPS: usize = 7;

// ---------------------------------------------------------------- timing

// ---------------------------------------------------------------- flops

/// Flops of the time branch and score net, once per `sample` call per step.
fn flops_per_call_step() -> f64 {
    let c = C as f64;
    (2.0 * 2.0 * c * c + 2.0 * c * c) + (2.0 * 2.0 * c * c + 2.0 * c) + 2.0 * c
}

/// Flops of the state path of one path per step (L = 4: two hidden layers, three GELUs).
fn flops_per_path_step(d: usize) -> f64 {
    let (c, d) = (C as f64, d as f64);
    2.0 * (d * c + 2.0 * c * c + c * d) + 3.0 * c
}

/// Network flops of one `sample` call of `batch` paths.
fn flops_per_call(d: usize, batch: usize) -> f64 {
    STEPS as f64 * (flops_per_call_step() + batch as f64 * flops_per_path_step(d))
}

// ---------------------------------------------------------------- peaks

/// (a): `acc[lane] += a[i] * b[i]` with 8 accumulators held in registers
/// (exactly `kernels::dot`'s style), 8 passes over hot arrays of 1024 floats.
fn peak_case() -> Case<'static> {
    const N: usize = 1024;
    const PASSES: usize = 8;
    let a: Vec<f32> = (0..N).map(|i| 1.0 + 1e-3 * (i as f32).sin()).collect();
    let b: Vec<f32> = (0..N).map(|i| 1e-3 * (i as f32).cos()).collect();
    let run = Box::new(move || {
        let (a, b) = (black_box(&a[..]), black_box(&b[..]));
        let mut acc = [0.0f32; LANES];
        for _ in 0..PASSES {
            for (ca, cb) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
                for lane in 0..LANES {
                    acc[lane] += ca[lane] * cb[lane];
                }
            }
        }
        black_box(acc);
    });
    Case {
        name: "(a)  peak: mul+add, 8 f32 accumulators (dot's style)".into(),
        d: 0,
        batch: 0,
        flops: 2.0 * (N * PASSES) as f64,
        run,
    }
}

/// Prototype: `kernels::dense` with 4 rows at a time. Each row keeps its own
/// 8 lanes, element `i` into lane `i % 8`, and the same reduction tree and
/// bias add as `kernels::dot`, so every output has the same bits; the 4 rows
/// give 4x more independent add chains and share each load of `x`.
fn dense4(w: &[f32], b: &[f32], x: &[f32], out: &mut [f32]) {
    let n = x.len();
    let mut w_blocks = w.chunks_exact(4 * n);
    let mut o_blocks = out.chunks_exact_mut(4);
    let mut b_blocks = b.chunks_exact(4);
    for ((ob, wb), bb) in (&mut o_blocks).zip(&mut w_blocks).zip(&mut b_blocks) {
        let mut acc = [[0.0f32; LANES]; 4];
        let rows: [&[f32]; 4] = core::array::from_fn(|r| &wb[r * n..(r + 1) * n]);
        let full = n - n % LANES;
        for (k, cx) in x[..full].chunks_exact(LANES).enumerate() {
            for (a, row) in acc.iter_mut().zip(rows) {
                let cw = &row[k * LANES..(k + 1) * LANES];
                for lane in 0..LANES {
                    a[lane] += cw[lane] * cx[lane];
                }
            }
        }
        for (a, row) in acc.iter_mut().zip(rows) {
            for (lane, (y, z)) in row[full..].iter().zip(&x[full..]).enumerate() {
                a[lane] += y * z;
            }
        }
        for ((o, a), bias) in ob.iter_mut().zip(&acc).zip(bb) {
            let quad = [a[0] + a[4], a[1] + a[5], a[2] + a[6], a[3] + a[7]];
            *o = ((quad[0] + quad[2]) + (quad[1] + quad[3])) + bias;
        }
    }
    let rest_w = w_blocks.remainder();
    let rest_b = b_blocks.remainder();
    for ((o, row), bias) in o_blocks
        .into_remainder()
        .iter_mut()
        .zip(rest_w.chunks_exact(n))
        .zip(rest_b)
    {
        *o = kernels::dot(row, x) + bias;
    }
}

/// A dense layer kernel `(w, b, x, out)`.
type DenseFn = fn(&[f32], &[f32], &[f32], &mut [f32]);

/// A dense kernel on `rows x cols` with hot caches.
fn dense_case(name: &str, rows: usize, cols: usize, kernel: DenseFn) -> Case<'static> {
    let w: Vec<f32> = (0..rows * cols).map(|i| 0.05 * (i as f32).sin()).collect();
    let b: Vec<f32> = (0..rows).map(|i| 0.01 * i as f32).collect();
    let x: Vec<f32> = (0..cols).map(|i| (0.3 * i as f32).cos()).collect();
    let mut out = vec![0.0f32; rows];
    let run = Box::new(move || {
        kernel(black_box(&w), black_box(&b), black_box(&x), &mut out);
        black_box(&mut out);
    });
    Case {
        name: name.into(),
        d: 0,
        batch: 0,
        flops: 2.0 * (rows * cols) as f64,
        run,
    }
}

/// An activation on 64 arguments spread over `[-spread, spread]`
/// (`flops` holds the element count).
fn act_case(name: &str, act: fn(&mut [f32]), spread: f32) -> Case<'static> {
    let src: [f32; C] = core::array::from_fn(|i| spread * (i as f32 - 31.5) / 32.0);
    let mut g = [0.0f32; C];
    let run = Box::new(move || {
        g.copy_from_slice(black_box(&src));
        act(&mut g);
        black_box(&mut g);
    });
    Case {
        name: name.into(),
        d: 0,
        batch: 0,
        flops: C as f64,
        run,
    }
}

/// `dense4` gives the bits of `kernels::dense` for every shape the network uses.
fn check_dense4() -> bool {
    [
        (64, 128),
        (64, 64),
        (64, 2),
        (64, 50),
        (2, 64),
        (50, 64),
        (7, 13),
    ]
    .iter()
    .all(|&(rows, cols)| {
        let w: Vec<f32> = (0..rows * cols).map(|i| (0.7 * i as f32).sin()).collect();
        let b: Vec<f32> = (0..rows).map(|i| (1.3 * i as f32).cos()).collect();
        let x: Vec<f32> = (0..cols).map(|i| (0.37 * i as f32).sin() * 3.0).collect();
        let (mut o1, mut o2) = (vec![0.0f32; rows], vec![0.0f32; rows]);
        dense(&w, &b, &x, &mut o1);
        dense4(&w, &b, &x, &mut o2);
        o1.iter().zip(&o2).all(|(p, q)| p.to_bits() == q.to_bits())
    })
}

// ---------------------------------------------------------------- prototype control

/// `NetworkControl` re-implemented with a choice of dense and activation
/// kernels and, optionally, a table of `prepare` results for the sampler's time
/// grid (the time branch depends on `t` only, so it can be computed once per
/// weights file instead of once per `sample` call). With `dense4` and
/// `gelu_fast` it is the same arithmetic in the same order as
/// `NetworkControl`: bit-identical samples (checked before timing).
struct FastControl<'a> {
    inner: NetworkControl<'a, Builtin<'static>>,
    dense: DenseFn,
    act: fn(&mut [f32]),
    /// `(t bits, e_t ++ s(t))` for each step's `t0`.
    table: Vec<(u32, Vec<f32>)>,
}

impl<'a> FastControl<'a> {
    fn new(
        inner: NetworkControl<'a, Builtin<'static>>,
        dense: DenseFn,
        act: fn(&mut [f32]),
        cached_times: &[f32],
    ) -> Self {
        let net = inner.net;
        let mut scratch = vec![0.0f32; net.shape.scratch_len()];
        let table = cached_times
            .iter()
            .map(|&t| {
                let mut cache = vec![0.0f32; net.shape.time_cache_len()];
                net.prepare(network_time(t, &inner.sde), &mut cache, &mut scratch);
                (t.to_bits(), cache)
            })
            .collect();
        Self {
            inner,
            dense,
            act,
            table,
        }
    }
}

impl Control for FastControl<'_> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn time_cache_len(&self) -> usize {
        self.inner.time_cache_len()
    }
    fn scratch_len(&self) -> usize {
        self.inner.scratch_len()
    }
    fn prepare(&self, t: f32, cache: &mut [f32], scratch: &mut [f32]) {
        match self.table.iter().find(|(bits, _)| *bits == t.to_bits()) {
            Some((_, cached)) => cache.copy_from_slice(cached),
            None => self.inner.prepare(t, cache, scratch),
        }
    }
    fn u(&self, t: f32, cache: &[f32], x: &[f32], out: &mut [f32], scratch: &mut [f32]) {
        let net = &self.inner.net;
        let (c, d) = (C, self.dim());
        let (h, rest) = scratch.split_at_mut(c);
        let (g, rest) = rest.split_at_mut(c);
        let (dense, act) = (self.dense, self.act);
        // The bench's networks hold f32 values (`from_flat`, `Network::as_ref`).
        fn f(w: Weights<'_>) -> &[f32] {
            w.as_f32().expect("an f32 network")
        }
        dense(f(net.state_w), f(net.state_b), x, h);
        for (hi, et) in h.iter_mut().zip(&cache[..c]) {
            *hi += et;
        }
        for (w, b) in (0..net.shape.hidden()).map(|i| net.hidden(i)) {
            g.copy_from_slice(h);
            act(g);
            dense(f(w), f(b), g, h);
        }
        g.copy_from_slice(h);
        act(g);
        dense(f(net.out_w), f(net.out_b), g, out);
        // The score term, as in `NetworkControl::u` (no DDS form here).
        let target = self
            .inner
            .target
            .as_ref()
            .expect("score term needs a target");
        let (prior_score, rest) = rest.split_at_mut(d);
        let target_score = &mut rest[..d];
        self.inner.prior.score(x, prior_score);
        target.score(x, target_score);
        let sde = self.inner.sde;
        let coef = sde.sigma_bar(t as f64) as f32 * cache[c];
        let lambda = t / sde.t_end();
        for ((o, p), q) in out.iter_mut().zip(&*prior_score).zip(&*target_score) {
            *o += coef * ((1.0 - lambda) * p + lambda * q);
        }
    }
}

// ---------------------------------------------------------------- sampling

/// One timed row: `run` does one call's work.
struct Case<'a> {
    name: String,
    d: usize,
    batch: usize,
    /// Network flops of one call (0: not a network row).
    flops: f64,
    run: Box<dyn FnMut() + 'a>,
}

/// Median seconds per call of every case. The cases are timed round-robin
/// (`REPS` rounds, each case ~`total / REPS` s per round, after a warm-up), so
/// a slow spell of the machine hits all rows alike and the ratios between
/// rows stay meaningful on a shared host.
fn time_interleaved(total: f64, cases: &mut [Case<'_>]) -> Vec<f64> {
    let calls: Vec<u64> = cases
        .iter_mut()
        .map(|case| {
            let warm = Instant::now();
            let mut n = 0u64;
            while warm.elapsed().as_secs_f64() < 0.1 * total || n < 2 {
                (case.run)();
                n += 1;
            }
            let per_call = warm.elapsed().as_secs_f64() / n as f64;
            ((total / REPS as f64) / per_call).ceil().max(1.0) as u64
        })
        .collect();
    let mut reps = vec![Vec::with_capacity(REPS); cases.len()];
    for _ in 0..REPS {
        for ((case, &n), rep) in cases.iter_mut().zip(&calls).zip(&mut reps) {
            let t = Instant::now();
            for _ in 0..n {
                (case.run)();
            }
            rep.push(t.elapsed().as_secs_f64() / n as f64);
        }
    }
    reps.into_iter()
        .map(|mut r| {
            r.sort_by(f64::total_cmp);
            r[REPS / 2]
        })
        .collect()
}

/// A `sample` call of `batch` paths (fresh sample indices each call).
fn sampler_case<'a, Ct: Control, T: Target>(
    name: String,
    sampler: &'a Sampler<'a, Ct, T>,
    batch: usize,
    flops: f64,
) -> Case<'a> {
    let d = sampler.control.dim();
    let mut xs = vec![0.0f32; batch * d];
    let mut paths = vec![PathState::default(); batch];
    let mut work = vec![0.0f32; sampler.work_len(batch)];
    let mut first = 0u64;
    let run = Box::new(move || {
        sampler
            .sample(black_box(7), first, &mut xs, &mut paths, &mut work)
            .expect("sampling failed");
        first += batch as u64;
        black_box((&mut xs, &mut paths));
    });
    Case {
        name,
        d,
        batch,
        flops,
        run,
    }
}

/// The network alone on one `sample` call's worth of work: `prepare` once
/// per step, `eval_nn` per path per step (fixed inputs).
fn network_case<'a>(name: String, net: NetworkRef<'a>, batch: usize, flops: f64) -> Case<'a> {
    let d = net.shape.d as usize;
    let xs: Vec<f32> = (0..batch * d).map(|i| (0.37 * i as f32).sin()).collect();
    let mut out = vec![0.0f32; d];
    let mut cache = vec![0.0f32; net.shape.time_cache_len()];
    let mut scratch = vec![0.0f32; net.shape.scratch_len()];
    let run = Box::new(move || {
        for k in 0..STEPS {
            let t = black_box(k as f32 / STEPS as f32);
            net.prepare(t, &mut cache, &mut scratch);
            for x in xs.chunks_exact(d) {
                net.eval_nn(&cache, black_box(x), &mut out, &mut scratch);
                black_box(&mut out);
            }
        }
    });
    Case {
        name,
        d,
        batch,
        flops,
        run,
    }
}

/// Bits of the samples and path costs of samples `10..10 + batch` under seed 3.
fn sample_bits<Ct: Control, T: Target>(sampler: &Sampler<'_, Ct, T>, batch: usize) -> Vec<u64> {
    let d = sampler.control.dim();
    let mut xs = vec![0.0f32; batch * d];
    let mut paths = vec![PathState::default(); batch];
    let mut work = vec![0.0f32; sampler.work_len(batch)];
    sampler
        .sample(3, 10, &mut xs, &mut paths, &mut work)
        .expect("sampling failed");
    xs.iter()
        .map(|x| x.to_bits() as u64)
        .chain(
            paths
                .iter()
                .flat_map(|p| [p.cost.r.to_bits(), p.cost.r_disc.to_bits()]),
        )
        .collect()
}

/// Parameters of the reference shape in `[-0.05, 0.05]` (as the runtime's doc example).
fn flat_params(d: usize) -> Vec<f32> {
    let n = NetworkShape::reference(d as u32).param_count();
    (0..n).map(|i| 0.05 * (i as f32).sin()).collect()
}

struct Table {
    peak: f64,
}

impl Table {
    fn header(&self) {
        println!(
            "| {:<44} | {:>3} | {:>5} | {:>10} | {:>11} | {:>7} | {:>6} |",
            "row", "d", "batch", "µs/call", "samples/s", "GFLOP/s", "/peak"
        );
        println!(
            "|{:-<46}|{:->5}|{:->7}|{:->12}|{:->13}|{:->9}|{:->8}|",
            "", "", "", "", "", "", ""
        );
    }

    /// One sampling row; `flops` is the network work of one call (0: not shown).
    fn row(&self, name: &str, d: usize, batch: usize, secs: f64, flops: f64) {
        let (gf, ratio) = if flops > 0.0 {
            let g = flops / secs / 1e9;
            (format!("{g:.2}"), format!("{:.0}%", 100.0 * g / self.peak))
        } else {
            ("-".into(), "-".into())
        };
        println!(
            "| {:<44} | {:>3} | {:>5} | {:>10.1} | {:>11.0} | {:>7} | {:>6} |",
            name,
            d,
            batch,
            secs * 1e6,
            batch as f64 / secs,
            gf,
            ratio
        );
    }
}

/// The reference sampler over `net` (score term fed by `target`); the path
/// cost is computed when `with_cost`.
fn network_sampler<'a>(
    net: NetworkRef<'a>,
    target: Builtin<'static>,
    with_cost: bool,
) -> Sampler<'a, NetworkControl<'a, Builtin<'static>>, Builtin<'static>> {
    let d = net.shape.d as usize;
    let (sde, prior) = (Sde::default(), Prior::standard(d));
    let control = NetworkControl::new(net, sde, prior, Some(target)).expect("control");
    Sampler {
        sde,
        grid: TimeGrid::Uniform,
        steps: STEPS,
        integrator: Integrator::EulerMaruyama,
        prior,
        control,
        target: with_cost.then_some(target),
    }
}

fn bench_dim<const D: usize>(total: f64, table: &Table, spec: TargetSpec, name: &str) {
    let target = spec.build_builtin();
    assert_eq!(target.dim(), D);
    let shape = NetworkShape::reference(D as u32);
    let flat = flat_params(D);
    let net_flat = NetworkRef::from_flat(shape, &flat).expect("reference shape");
    let mut owned: Box<Network<D, C, 2>> = Box::new(Network::zeroed(true));
    owned.load_flat(&flat).expect("reference shape");
    let net_const = Network::as_ref(&owned);

    let sde = Sde::default();
    let analytic = |with_cost: bool| Sampler {
        sde,
        grid: TimeGrid::Uniform,
        steps: STEPS,
        integrator: Integrator::EulerMaruyama,
        prior: Prior::standard(D),
        control: StationaryControl { sde, d: D },
        target: with_cost.then_some(target),
    };
    let times: Vec<f32> = (0..STEPS)
        .map(|k| TimeGrid::Uniform.time(k, STEPS, sde.t_end()) as f32)
        .collect();
    let fast = |dense: DenseFn, act: fn(&mut [f32]), cached: &[f32]| {
        let s = network_sampler(net_flat, target, true);
        Sampler {
            sde: s.sde,
            grid: s.grid,
            steps: s.steps,
            integrator: s.integrator,
            prior: s.prior,
            control: FastControl::new(s.control, dense, act, cached),
            target: s.target,
        }
    };

    let flat_cost = network_sampler(net_flat, target, true);
    let const_cost = network_sampler(net_const, target, true);
    let flat_nocost = network_sampler(net_flat, target, false);
    let (an_cost, an_nocost) = (analytic(true), analytic(false));
    let protos = [
        ("proto dense4", fast(dense4, gelu_in_place, &[])),
        ("proto dense4 + gelu_fast", fast(dense4, gelu_fast, &[])),
        (
            "proto dense4 + gelu_fast + e_t table",
            fast(dense4, gelu_fast, &times),
        ),
    ];
    let no_gelu = fast(dense, identity, &[]);

    // The prototypes are bit-identical to the runtime; the samples are finite.
    let reference = sample_bits(&flat_cost, 5);
    assert!(
        reference[..5 * D]
            .iter()
            .all(|&b| f32::from_bits(b as u32).is_finite()),
        "non-finite samples"
    );
    assert!(
        sample_bits(&const_cost, 5) == reference,
        "Network<D> differs"
    );
    for (what, p) in &protos {
        assert!(sample_bits(p, 5) == reference, "{what} changed the samples");
    }
    // Share of GELU arguments off gelu_fast's vector path, on one batch.
    GELU_ALL.store(0, Ordering::Relaxed);
    GELU_BIG.store(0, Ordering::Relaxed);
    sample_bits(&fast(dense, gelu_count, &[]), BATCH);
    let big_share =
        GELU_BIG.load(Ordering::Relaxed) as f64 / GELU_ALL.load(Ordering::Relaxed) as f64;

    let b = BATCH;
    let (f64_, f1) = (flops_per_call(D, b), flops_per_call(D, 1));
    let mut cases = vec![
        sampler_case(format!("{name}: from_flat, cost on"), &flat_cost, b, f64_),
        sampler_case(
            format!("{name}: Network<{D},64,2>, cost on"),
            &const_cost,
            b,
            f64_,
        ),
        sampler_case(format!("{name}: from_flat, cost on"), &flat_cost, 1, f1),
        sampler_case(
            format!("{name}: Network<{D},64,2>, cost on"),
            &const_cost,
            1,
            f1,
        ),
        sampler_case(
            format!("{name}: from_flat, cost off (no target)"),
            &flat_nocost,
            b,
            f64_,
        ),
        network_case(
            format!("{name}: network only (prepare + eval_nn)"),
            net_flat,
            b,
            f64_,
        ),
        sampler_case(
            format!("{name}: StationaryControl, cost on"),
            &an_cost,
            b,
            0.0,
        ),
        sampler_case(
            format!("{name}: StationaryControl, cost off"),
            &an_nocost,
            b,
            0.0,
        ),
    ];
    for batch in [b, 1] {
        for (what, p) in &protos {
            let f = flops_per_call(D, batch);
            cases.push(sampler_case(format!("{name}: {what}"), p, batch, f));
        }
    }
    cases.push(sampler_case(
        format!("{name}: attribution only: GELU -> identity"),
        &no_gelu,
        b,
        f64_,
    ));
    let secs = time_interleaved(total, &mut cases);
    for (case, &s) in cases.iter().zip(&secs) {
        table.row(&case.name, case.d, case.batch, s, case.flops);
    }

    let (full, full1, nocost, net, an, an0) =
        (secs[0], secs[2], secs[4], secs[5], secs[6], secs[7]);
    let (proto, proto1) = (&secs[8..11], &secs[11..14]);
    let no_gelu = secs[14];
    let share = |part: f64| 100.0 * part / full;
    println!(
        "|   {name}, batch {b}, cost on: network {:.0}% (GELU {:.0}%), non-network {:.0}% \
         (normals + state update + path cost {:.0}%, of which path cost {:.0}%; prior/target \
         scores and glue {:.0}%); cost off saves {:.0}%; {:.1}% of GELU arguments off the \
         vector path",
        share(net),
        share(full - no_gelu),
        share(full - net),
        share(an),
        share(an - an0),
        share(full - net - an),
        share(full - nocost),
        100.0 * big_share,
    );
    println!(
        "|   {name} speed-ups over from_flat (batch {b} / batch 1): dense4 x{:.2} / x{:.2}, \
         + gelu_fast x{:.2} / x{:.2}, + e_t table x{:.2} / x{:.2}",
        full / proto[0],
        full1 / proto1[0],
        full / proto[1],
        full1 / proto1[1],
        full / proto[2],
        full1 / proto1[2],
    );
}

static GELU_ALL: AtomicU64 = AtomicU64::new(0);
static GELU_BIG: AtomicU64 = AtomicU64::new(0);

/// `gelu_in_place`, counting the arguments outside `gelu_fast`'s vector path.
fn gelu_count(v: &mut [f32]) {
    let big = v
        .iter()
        .filter(|&&x| (x * core::f32::consts::FRAC_1_SQRT_2).abs() >= 0.84375)
        .count();
    GELU_ALL.fetch_add(v.len() as u64, Ordering::Relaxed);
    GELU_BIG.fetch_add(big as u64, Ordering::Relaxed);
    gelu_in_place(v);
}

/// No activation: only to attribute time to GELU (not the network's function).
fn identity(_: &mut [f32]) {}

fn main() {
    let total: f64 = std::env::var("DIFFCTL_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    println!(
        "runtime_sampling: C = {C}, L = 4, score term on, K = {STEPS} Euler–Maruyama steps, \
         VP default SDE; median of {REPS} repetitions, ~{total} s per row, one thread"
    );

    // Reference peaks and kernels, timed together (round-robin).
    assert!(check_dense4(), "dense4 differs from kernels::dense");
    let mut rng = stream(1, 2);
    let mut xi = [0.0f32; C];
    let normals = Case {
        name: "fill_normals (Box–Muller, libm)".into(),
        d: 0,
        batch: 0,
        flops: C as f64,
        run: Box::new(move || {
            fill_normals(&mut rng, black_box(&mut xi));
            black_box(&mut xi);
        }),
    };
    // GELU arguments: |x| < 1.19 are all on gelu_fast's vector path; of
    // [-3.2, 3.2], 63% are off it.
    let mut kernels = vec![
        peak_case(),
        dense_case("(b)  kernels::dense 64x64", 64, 64, dense),
        dense_case("(b') proto dense4 64x64 (same bits)", 64, 64, dense4),
        dense_case("     kernels::dense 64x128 (time branch)", 64, 128, dense),
        dense_case("     proto dense4 64x128", 64, 128, dense4),
        act_case(
            "     gelu_in_place_scalar (libm::erff), |x| < 1.19",
            gelu_in_place_scalar,
            1.18,
        ),
        act_case(
            "     gelu_in_place_scalar (libm::erff), |x| < 3.2",
            gelu_in_place_scalar,
            3.2,
        ),
        act_case(
            "     gelu_in_place_blocked (gelu_fast), |x| < 1.19",
            gelu_fast,
            1.18,
        ),
        act_case(
            "     gelu_in_place_blocked (gelu_fast), |x| < 3.2",
            gelu_fast,
            3.2,
        ),
        normals,
    ];
    let secs = time_interleaved(total, &mut kernels);
    let peak = kernels[0].flops / secs[0] / 1e9;
    println!();
    println!("| kernel (hot caches, one core)                         | GFLOP/s | ns/elem |");
    println!("|-------------------------------------------------------|---------|---------|");
    for (i, (case, s)) in kernels.iter().zip(&secs).enumerate() {
        if i < 5 {
            let g = case.flops / s / 1e9;
            println!("| {:<53} | {g:>7.2} |       - |", case.name);
        } else {
            let ns = s * 1e9 / case.flops;
            println!("| {:<53} |       - | {ns:>7.2} |", case.name);
        }
    }
    println!();
    println!(
        "network flops per call: {:.0} per step + {:.0} (d = 2) / {:.0} (d = 50) per path per step",
        flops_per_call_step(),
        flops_per_path_step(2),
        flops_per_path_step(50)
    );
    println!("/peak = achieved GFLOP/s / (a)");
    println!();

    let table = Table { peak };
    table.header();
    bench_dim::<2>(total, &table, TargetSpec::Gmm, "gmm");
    bench_dim::<50>(
        total,
        &table,
        TargetSpec::preset("mw50").expect("preset"),
        "mw50",
    );
}
