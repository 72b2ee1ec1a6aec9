//! Denoising score matching (MATH.md §7): fit the control network to samples.
//!
//! With data `Y_0`, the VP reference SDE and `std(s) = sqrt(1 - e^{-2A(s)})`,
//!
//! ```text
//! Y_s  = e^{-A(s)} Y_0 + std(s) xi,                 xi ~ N(0, I)
//! L    = 1/(T - eps) int_eps^T E| u(Y_s, T - s) + sigma(s) xi / std(s) |^2 ds / d
//! ```
//!
//! `sigma(s) = sqrt(beta(s))`. The regression target `-sigma xi / std` is
//! `sigma(s) grad log p(Y_s | Y_0)`, so the minimiser is the scaled score
//! `u*(x, t) = sigma_bar(t) grad log p_{Y_{T-t}}(x)`: the optimal control of
//! MATH.md §3, which the runtime then samples from `N(0, I)` like any other.
//!
//! **Time sampling.** The network's time features take one time per call, so
//! a batch of `B` samples is split into `M` groups (default 16) of `B / M`
//! samples sharing one time: one time embedding per group, stratified so that
//! the `M` times cover the whole interval in every batch. The integrand of `L`
//! has a term of size `beta / std^2` (the target's own variance) that grows
//! like `1/s` near `s = 0`; drawing `s` uniformly leaves the gradient
//! dominated by the few samples near `eps`. [`TimeSampling::Importance`]
//! (the default) draws `s` from `q(s) = (beta / std^2) / Z` instead (Song et
//! al. 2021, "Maximum likelihood training of score-based diffusion models")
//! and weights each sample by `1 / ((T - eps) q(s))`: the *same* `L` and the
//! same gradient in expectation, with per-sample terms
//! `Z / (T - eps) |std/sigma u + xi|^2` of bounded variance.
//! `q`'s CDF is closed form: `G(s) = log(e^{2A(s)} - 1)`, `G' = beta / std^2`.
//!
//! **Validation.** A held-out split (10 % by default) is scored every
//! `validate_every` iterations with the EMA parameters through the runtime
//! network (what ships), with per-point times and noise drawn once, so the
//! values are comparable across iterations. The best EMA parameters are kept;
//! training stops early after `patience` validations without improvement.
//!
//! **Determinism.** Iteration `k` draws its data indices, noise and times from
//! streams of a seed derived from `(seed, k)`; the batch is split over a fixed
//! number of threads with gradients reduced in thread order
//! ([`DataParallel::run_sum`]). A fixed seed and thread count give
//! bit-identical weights.
//!
//! ```
//! use diffctl_trainer::data::Toy;
//! use diffctl_trainer::dsm::{fit, FitConfig};
//! use diffctl_trainer::elbo::{elbo_params, ElboConfig};
//! use diffctl_trainer::eval::{sample_params, SampleOptions};
//! use diffctl_trainer::optimise::RunOptions;
//!
//! // Or `diffctl_trainer::data::load(path, None)` for a CSV / .npy file.
//! let data = Toy::TwoMoons.generate(1000, 0).unwrap();
//! let cfg = FitConfig { iterations: 20, channels: 16, batch: 128, ..FitConfig::default() };
//! let out = fit(&data, &cfg, &RunOptions::default(), &mut |p| {
//!     if let Some(v) = p.validation_loss {
//!         eprintln!("{} {v:.4}", p.step.iteration);
//!     }
//! })
//! .unwrap();
//! // `out.weights` is a complete weights file (write it with `io::write_atomic`).
//! let samples = sample_params(&out.header, &out.params, None, &SampleOptions { n: 100, ..Default::default() }).unwrap();
//! assert_eq!(samples.xs.len(), 200);
//! let held_out = Toy::TwoMoons.generate(50, 1).unwrap();
//! let bound = elbo_params(&out.header, &out.params, &held_out, &ElboConfig { times: 8, ..Default::default() }).unwrap();
//! assert!(bound.nats_per_dim.is_finite());
//! ```

use std::ops::Range;

use diffctl_runtime::network::{network_time, NetworkRef};
use diffctl_runtime::normal::{fill_normals, stream, uniform_f64};
use diffctl_runtime::prelude::*;
use diffctl_runtime::weights::crc32;
use serde::{Deserialize, Serialize};

use crate::autodiff::{Graph, Mode, Params, Var};
use crate::data::{uniform_index, Dataset};
use crate::network::{BatchedNetwork, BoundNetwork};
use crate::optimise::{
    export, optimise, Identity, Objective, Optimiser, RunOptions, Settings, Step, TrainError,
    Update, MAX_BATCH,
};
use crate::parallel::{shard_ranges, DataParallel};
use crate::streams;

/// How the reference times `s` of the DSM loss are drawn (both estimate the
/// same loss `L` of MATH.md §7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeSampling {
    /// `s ~ U(eps, T)`, weight 1: MATH.md §7 literally.
    Uniform,
    /// `s ~ q(s) ∝ beta(s) / std(s)^2`, weight `1 / ((T - eps) q(s))`.
    #[default]
    Importance,
}

/// Everything that determines a fit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FitConfig {
    /// The reference SDE (VP only).
    pub sde: Sde,
    pub channels: u32,
    pub layers: u32,
    pub batch: usize,
    /// Distinct times per batch (`M`): groups of `batch / M` samples.
    pub time_groups: usize,
    pub time_sampling: TimeSampling,
    /// Smallest reference time `eps` of the loss.
    pub eps: f64,
    pub iterations: usize,
    /// Peak learning rate (after a linear warm-up), decayed by a cosine to `lr_final`.
    pub lr: f32,
    pub lr_final: f32,
    pub warmup: usize,
    /// Global gradient-norm clip.
    pub clip: f32,
    /// Decay of the exponential moving average (the validated and exported weights).
    pub ema_decay: f32,
    /// Share of the data held out for validation, in `(0, 1)`.
    pub validation_fraction: f64,
    /// Validate every this many iterations (and at the end).
    pub validate_every: usize,
    /// Stop after this many validations without improvement (0: never stop early).
    pub patience: usize,
    /// Write a checkpoint (when a path is given) every this many iterations
    /// (0: only at the end).
    pub checkpoint_every: usize,
    pub seed: u64,
    pub threads: usize,
    /// Default sampling steps `K`, grid and integrator written to the header.
    pub steps: usize,
    pub grid: TimeGrid,
    pub integrator: Integrator,
    /// Storage type of the exported weights.
    pub dtype: Dtype,
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            sde: Sde::default(),
            channels: 64,
            layers: 4,
            batch: 1024,
            time_groups: 16,
            time_sampling: TimeSampling::default(),
            eps: 1e-3,
            iterations: 4000,
            lr: 2e-3,
            lr_final: 1e-5,
            warmup: 100,
            clip: 10.0,
            ema_decay: 0.995,
            validation_fraction: 0.1,
            validate_every: 100,
            patience: 10,
            checkpoint_every: 200,
            seed: 0,
            threads: crate::parallel::default_threads(),
            steps: 100,
            grid: TimeGrid::Uniform,
            integrator: Integrator::EulerMaruyama,
            dtype: Dtype::F32,
        }
    }
}

impl FitConfig {
    /// The weights-file header of a model of `d`-dimensional data.
    pub fn header(&self, d: usize) -> Header {
        Header {
            sampler: SamplerKind::Dsm,
            shape: NetworkShape {
                d: d as u32,
                channels: self.channels,
                layers: self.layers,
                score_term: false,
            },
            sde: self.sde,
            grid: self.grid,
            steps: self.steps as u32,
            integrator: self.integrator,
            prior_nu: 1.0,
            score_clip: f32::INFINITY,
            target: None,
            dtype: self.dtype,
        }
    }

    /// The optimiser's settings.
    pub fn settings(&self) -> Settings {
        Settings {
            iterations: self.iterations,
            lr: self.lr,
            lr_final: self.lr_final,
            warmup: self.warmup,
            clip: self.clip,
            ema_decay: self.ema_decay,
            seed: self.seed,
            checkpoint_every: self.checkpoint_every,
        }
    }

    /// Checks every setting; the message names the bad one.
    pub fn validate(&self, d: usize) -> Result<(), String> {
        for (name, v) in [
            ("batch", self.batch),
            ("time_groups", self.time_groups),
            ("threads", self.threads),
            ("steps", self.steps),
            ("validate_every", self.validate_every),
        ] {
            if v == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if self.time_groups > self.batch {
            return Err(format!(
                "time_groups ({}) must not exceed batch ({})",
                self.time_groups, self.batch
            ));
        }
        if self.batch > MAX_BATCH {
            return Err(format!(
                "batch must be at most {MAX_BATCH}, got {}",
                self.batch
            ));
        }
        self.settings().validate()?;
        if !(self.validation_fraction > 0.0 && self.validation_fraction < 1.0) {
            return Err(format!(
                "validation_fraction must be in (0, 1), got {}",
                self.validation_fraction
            ));
        }
        if !self.sde.is_vp() {
            return Err("denoising score matching needs a VP SDE".into());
        }
        let t_end = self.sde.t_end() as f64;
        if !(self.eps.is_finite() && self.eps > 0.0 && self.eps < t_end) {
            return Err(format!("eps must be in (0, T), got {}", self.eps));
        }
        self.header(d).validate().map_err(|e| e.to_string())?;
        diffctl_runtime::integrate::Scheme::new(&self.sde, self.integrator)
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Reported after every iteration.
#[derive(Clone, Debug)]
pub struct FitProgress {
    /// The step; its loss is the batch estimate of the DSM loss.
    pub step: Step,
    /// Validation loss of this iteration, when it validated.
    pub validation_loss: Option<f64>,
    pub best_validation_loss: f64,
}

/// What a fit produced: the best validated EMA parameters.
#[derive(Clone, Debug)]
pub struct FitOutcome {
    pub header: Header,
    /// The exported parameters, as stored in `weights` (dtype-rounded).
    pub params: Vec<f32>,
    /// The encoded weights file.
    pub weights: Vec<u8>,
    pub best_validation_loss: f64,
    /// Iteration (count of updates) of the best validation.
    pub best_iteration: usize,
    /// Iterations run.
    pub iterations: usize,
    pub stopped_early: bool,
    pub interrupted: bool,
    pub seconds: f64,
    /// Training and validation sample counts.
    pub n_train: usize,
    pub n_validation: usize,
}

/// The DSM reference-time law: `U(eps, T)` or `q ∝ beta / std^2` on `[eps, T]`.
#[derive(Clone, Copy, Debug)]
pub struct TimeLaw {
    pub sde: Sde,
    pub eps: f64,
    pub sampling: TimeSampling,
    /// `G(eps)`, `G(T)` with `G(s) = log(e^{2A(s)} - 1)`.
    g_lo: f64,
    g_hi: f64,
}

impl TimeLaw {
    pub fn new(sde: Sde, eps: f64, sampling: TimeSampling) -> Self {
        let g = |s: f64| libm::log(libm::expm1(2.0 * sde.a(s)));
        Self {
            sde,
            eps,
            sampling,
            g_lo: g(eps),
            g_hi: g(sde.t_end() as f64),
        }
    }

    /// The time at quantile `v in [0, 1)` and its weight `1 / ((T - eps) q(s))`.
    pub fn at(&self, v: f64) -> (f64, f64) {
        let t_end = self.sde.t_end() as f64;
        match self.sampling {
            TimeSampling::Uniform => (self.eps + (t_end - self.eps) * v, 1.0),
            TimeSampling::Importance => {
                // G(s) = G(eps) + v (G(T) - G(eps)), then 2A(s) = log(1 + e^G):
                // solve A(s) = a by bisection (A is increasing, either schedule).
                let g = self.g_lo + v * (self.g_hi - self.g_lo);
                let a = 0.5 * libm::log1p(libm::exp(g));
                let (mut lo, mut hi) = (self.eps, t_end);
                for _ in 0..80 {
                    let mid = 0.5 * (lo + hi);
                    if self.sde.a(mid) < a {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                let s = 0.5 * (lo + hi);
                let (beta, var) = (self.sde.beta(s), -libm::expm1(-2.0 * self.sde.a(s)));
                let q = beta / var / (self.g_hi - self.g_lo);
                (s, 1.0 / ((t_end - self.eps) * q))
            }
        }
    }
}

/// One DSM training example at reference time `s`: the noised point and the
/// regression target, both `d` floats.
///
/// `y = e^{-A(s)} y0 + std xi`, `target = -sigma(s) xi / std(s)`.
pub fn noised(sde: &Sde, s: f64, y0: &[f32], xi: &[f32], y: &mut [f32], target: &mut [f32]) {
    let decay = libm::exp(-sde.a(s));
    let std = libm::sqrt(-libm::expm1(-2.0 * sde.a(s)));
    let sigma = libm::sqrt(sde.beta(s));
    for (((yj, tj), &y0j), &xij) in y.iter_mut().zip(target).zip(y0).zip(xi) {
        *yj = (decay * y0j as f64 + std * xij as f64) as f32;
        *tj = (-sigma * xij as f64 / std) as f32;
    }
}

/// One iteration's batch: per-row data and noise, per-group times.
struct Batch<'a> {
    train: &'a Dataset,
    seed: u64,
    groups: Vec<Range<usize>>,
    /// `(s, weight)` of each group.
    times: Vec<(f64, f64)>,
}

impl<'a> Batch<'a> {
    fn new(train: &'a Dataset, cfg: &FitConfig, law: &TimeLaw, k: usize) -> Self {
        let seed = streams::iteration(cfg.seed, k);
        let m = cfg.time_groups;
        // Stratified quantiles (j + U_j) / M: every batch covers all of [eps, T].
        let times = (0..m)
            .map(|j| {
                let u = uniform_f64(&mut streams::group_time(seed, j));
                law.at((j as f64 + u) / m as f64)
            })
            .collect();
        Self {
            train,
            seed,
            groups: shard_ranges(cfg.batch, m),
            times,
        }
    }

    /// Rows `rows` of group `j`: noised points and targets, `[rows, d]` each.
    fn rows(&self, sde: &Sde, j: usize, rows: Range<usize>) -> (Vec<f32>, Vec<f32>) {
        let d = self.train.d;
        let n = rows.len();
        let (mut y, mut target) = (vec![0.0f32; n * d], vec![0.0f32; n * d]);
        let mut xi = vec![0.0f32; d];
        for (r, i) in rows.enumerate() {
            let mut rng = stream(self.seed, i as u64);
            let idx = uniform_index(&mut rng, self.train.len());
            fill_normals(&mut rng, &mut xi);
            noised(
                sde,
                self.times[j].0,
                self.train.row(idx),
                &xi,
                &mut y[r * d..(r + 1) * d],
                &mut target[r * d..(r + 1) * d],
            );
        }
        (y, target)
    }

    /// The loss of batch rows `range` on `g`, each group's terms times its
    /// weight and `scale`, summed over the groups in order (zero when
    /// `range` is empty).
    fn loss<M: Mode>(
        &self,
        g: &mut Graph<M>,
        net: &BatchedNetwork,
        bound: &BoundNetwork,
        sde: &Sde,
        range: Range<usize>,
        scale: f64,
    ) -> Var {
        let mut total: Option<Var> = None;
        for (j, group) in self.groups.iter().enumerate() {
            let rows = group.start.max(range.start)..group.end.min(range.end);
            if rows.is_empty() {
                continue;
            }
            let (y, target) = self.rows(sde, j, rows);
            let (s, w) = self.times[j];
            let l = group_loss(g, net, bound, sde, s, (w * scale) as f32, &y, &target);
            total = Some(match total {
                None => l,
                Some(acc) => g.add(acc, l),
            });
        }
        total.unwrap_or_else(|| g.scalar(0.0))
    }
}

/// `w/(B d) sum_rows |u(y, T - s) - target|^2` of one group on the tape.
#[allow(clippy::too_many_arguments)]
fn group_loss<M: Mode>(
    g: &mut Graph<M>,
    net: &BatchedNetwork,
    p: &BoundNetwork,
    sde: &Sde,
    s: f64,
    scale: f32,
    y: &[f32],
    target: &[f32],
) -> Var {
    let d = net.shape.d as usize;
    let rows = y.len() / d;
    let t = (sde.t_end() as f64 - s) as f32;
    let te = net.time_embedding(g, p, network_time(t, sde));
    let yv = g.constant_from(rows, d, y);
    let u = net.control(g, p, &te, yv, None);
    let tv = g.constant_from(rows, d, target);
    let r = g.sub(u, tv);
    let r2 = g.square(r);
    let s = g.sum(r2);
    g.scale(s, scale)
}

/// The validation set's fixed draws: per point a time quantile, its weight,
/// and the noised point and target.
struct Validation {
    d: usize,
    times: Vec<(f64, f64)>,
    y: Vec<f32>,
    target: Vec<f32>,
}

impl Validation {
    /// Point `i` gets the stratified quantile `(i + U_i) / n` of the time law
    /// (in a shuffled order) and fresh noise, all from seed-derived streams.
    fn new(val: &Dataset, law: &TimeLaw, seed: u64) -> Self {
        let (n, d) = (val.len(), val.d);
        let vseed = streams::validation(seed);
        // A random permutation of the strata, so the time does not follow the data order.
        let mut strata: Vec<usize> = (0..n).collect();
        let mut rng = streams::validation_order(vseed);
        for i in (1..n).rev() {
            strata.swap(i, uniform_index(&mut rng, i + 1));
        }
        let mut out = Self {
            d,
            times: Vec::with_capacity(n),
            y: vec![0.0; n * d],
            target: vec![0.0; n * d],
        };
        let mut xi = vec![0.0f32; d];
        for (i, &stratum) in strata.iter().enumerate() {
            let mut rng = stream(vseed, i as u64);
            let u = uniform_f64(&mut rng);
            let (s, w) = law.at((stratum as f64 + u) / n as f64);
            fill_normals(&mut rng, &mut xi);
            noised(
                &law.sde,
                s,
                val.row(i),
                &xi,
                &mut out.y[i * d..(i + 1) * d],
                &mut out.target[i * d..(i + 1) * d],
            );
            out.times.push((s, w));
        }
        out
    }

    /// The DSM loss of the validation draws under flat parameters, through
    /// the runtime network; per-point terms summed in index order (so the
    /// value does not depend on `threads`).
    fn loss(&self, shape: NetworkShape, sde: &Sde, flat: &[f32], threads: usize) -> f64 {
        let net = NetworkRef::from_flat(shape, flat).expect("shape matches");
        let d = self.d;
        let n = self.times.len();
        let mut terms = vec![0.0f64; n];
        let chunk = n.div_ceil(threads.max(1));
        std::thread::scope(|scope| {
            for (c, out) in terms.chunks_mut(chunk).enumerate() {
                let net = &net;
                scope.spawn(move || {
                    let mut cache = vec![0.0f32; shape.time_cache_len()];
                    let mut scratch = vec![0.0f32; shape.scratch_len()];
                    let mut u = vec![0.0f32; d];
                    for (r, term) in out.iter_mut().enumerate() {
                        let i = c * chunk + r;
                        let (s, w) = self.times[i];
                        let t = (sde.t_end() as f64 - s) as f32;
                        net.prepare(network_time(t, sde), &mut cache, &mut scratch);
                        net.eval_nn(&cache, &self.y[i * d..(i + 1) * d], &mut u, &mut scratch);
                        let sq: f64 = u
                            .iter()
                            .zip(&self.target[i * d..(i + 1) * d])
                            .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                            .sum();
                        *term = w * sq;
                    }
                });
            }
        });
        terms.iter().sum::<f64>() / (n * d) as f64
    }
}

/// Fits a DSM model to `data` (see the module docs): the best validated EMA
/// weights. `run` gives checkpoints, resumption and a stop flag, as for
/// training (a stop returns the best validated weights so far, with
/// `interrupted` set). Errors are one line.
pub fn fit(
    data: &Dataset,
    cfg: &FitConfig,
    run: &RunOptions,
    on_progress: &mut dyn FnMut(&FitProgress),
) -> Result<FitOutcome, TrainError> {
    data.validate()
        .map_err(|e| TrainError::Config(format!("data: {e}")))?;
    let d = data.d;
    cfg.validate(d).map_err(TrainError::Config)?;
    let (train, val) = data
        .split(cfg.validation_fraction, cfg.seed)
        .map_err(TrainError::Config)?;
    let header = cfg.header(d);
    let settings = cfg.settings();
    let (net, mut opt) = Optimiser::new(&settings, header.shape);
    let law = TimeLaw::new(cfg.sde, cfg.eps, cfg.time_sampling);
    let mut fitting = Fitting {
        cfg,
        data_crc: crc32(
            &data
                .xs
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>(),
        ),
        d,
        validation: Validation::new(&val, &law, cfg.seed),
        train: &train,
        law,
        net,
        shape: header.shape,
        dp: DataParallel::new(cfg.threads),
        best: Best {
            loss: f64::INFINITY,
            iteration: 0,
            params: opt.ema_flat(),
            since: 0,
        },
        on_progress,
    };
    let ended = optimise(&mut fitting, &mut opt, &settings, run)?;
    fitting.dp.release();
    let mut best = fitting.best;
    if !best.loss.is_finite() {
        // Stopped before the first validation: score what we have.
        let flat = opt.ema_flat();
        best.loss = fitting
            .validation
            .loss(header.shape, &cfg.sde, &flat, cfg.threads);
        best.iteration = opt.iteration;
        best.params = flat;
    }
    let (weights, params) = export(&header, &best.params, &[])?;
    Ok(FitOutcome {
        header,
        params,
        weights,
        best_validation_loss: best.loss,
        best_iteration: best.iteration,
        iterations: opt.iteration,
        stopped_early: ended.stopped_early,
        interrupted: ended.interrupted,
        seconds: opt.seconds,
        n_train: train.len(),
        n_validation: val.len(),
    })
}

/// The best validated EMA parameters so far and the validations since.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Best {
    loss: f64,
    /// Iterations done when it validated.
    iteration: usize,
    params: Vec<f32>,
    /// Validations since, without improvement.
    since: usize,
}

/// Fitting as an [`Objective`]: the DSM loss of a batch, validation of the
/// EMA weights, the best so far, early stopping.
struct Fitting<'a> {
    cfg: &'a FitConfig,
    /// CRC-32 of the whole data set, for the checkpoints.
    data_crc: u32,
    d: usize,
    train: &'a Dataset,
    law: TimeLaw,
    validation: Validation,
    net: BatchedNetwork,
    shape: NetworkShape,
    dp: DataParallel,
    best: Best,
    on_progress: &'a mut dyn FnMut(&FitProgress),
}

impl Objective for Fitting<'_> {
    fn run_name(&self) -> &'static str {
        "fitting"
    }

    fn loss(&mut self, k: usize, params: &mut Params) -> Result<f64, TrainError> {
        let (cfg, net) = (self.cfg, &self.net);
        let batch = Batch::new(self.train, cfg, &self.law, k);
        let scale = 1.0 / (cfg.batch * self.d) as f64;
        let loss = self.dp.run_sum(params, cfg.batch, |range, tape, p| {
            let bound = net.bind(tape, p);
            // An empty shard (more threads than rows) contributes zero.
            batch.loss(tape, net, &bound, &cfg.sde, range, scale)
        }) as f64;
        Ok(loss)
    }

    fn after(&mut self, opt: &Optimiser, update: &Update) -> Result<bool, TrainError> {
        let cfg = self.cfg;
        let k = opt.iteration;
        let mut validation_loss = None;
        if k.is_multiple_of(cfg.validate_every) || k == cfg.iterations {
            let flat = opt.ema_flat();
            let v = self
                .validation
                .loss(self.shape, &cfg.sde, &flat, cfg.threads);
            validation_loss = Some(v);
            if v < self.best.loss {
                self.best = Best {
                    loss: v,
                    iteration: k,
                    params: flat,
                    since: 0,
                };
            } else {
                self.best.since += 1;
            }
        }
        (self.on_progress)(&FitProgress {
            step: Step::new(opt, update, cfg.iterations),
            validation_loss,
            best_validation_loss: self.best.loss,
        });
        Ok(cfg.patience > 0 && self.best.since >= cfg.patience)
    }

    fn identity(&self) -> Identity {
        Identity {
            // Every setting but how often checkpoints are written.
            config: postcard::to_allocvec(&FitConfig {
                checkpoint_every: 0,
                ..self.cfg.clone()
            })
            .expect("a config serialises"),
            source: postcard::to_allocvec(&(self.d, self.data_crc))
                .expect("a data identity serialises"),
        }
    }

    fn state(&self) -> Vec<u8> {
        postcard::to_allocvec(&self.best).expect("the best so far serialises")
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        self.best = postcard::from_bytes(state).map_err(|e| format!("checkpoint: {e}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both time laws integrate to the same loss: E_q[w(s) f(s)] equals the
    /// uniform average of f, checked by stratified quadrature for f = beta / std^2.
    #[test]
    fn importance_weights_are_unbiased() {
        let sde = Sde::default();
        let eps = 1e-3;
        let f = |s: f64| sde.beta(s) / -libm::expm1(-2.0 * sde.a(s)) + s * s;
        let n = 200_000;
        let mean = |law: &TimeLaw| {
            (0..n)
                .map(|i| {
                    let (s, w) = law.at((i as f64 + 0.5) / n as f64);
                    w * f(s)
                })
                .sum::<f64>()
                / n as f64
        };
        let uniform = mean(&TimeLaw::new(sde, eps, TimeSampling::Uniform));
        let importance = mean(&TimeLaw::new(sde, eps, TimeSampling::Importance));
        assert!(
            (uniform - importance).abs() < 2e-3 * uniform,
            "{uniform} vs {importance}"
        );
        // The quantiles span [eps, T].
        let law = TimeLaw::new(sde, eps, TimeSampling::Importance);
        assert!((law.at(0.0).0 - eps).abs() < 1e-9 && (law.at(1.0).0 - 1.0).abs() < 1e-9);
    }

    /// The DSM loss of one iteration's batch as the module docs define it,
    /// evaluated through the *runtime* network in f64:
    /// `1/(B d) sum_groups w_j sum_rows |u(y, T - s_j) - target|^2`.
    fn runtime_batch_loss(batch: &Batch, shape: NetworkShape, sde: &Sde, flat: &[f32]) -> f64 {
        let net = NetworkRef::from_flat(shape, flat).unwrap();
        let d = shape.d as usize;
        let mut cache = vec![0.0f32; shape.time_cache_len()];
        let mut scratch = vec![0.0f32; shape.scratch_len()];
        let mut u = vec![0.0f32; d];
        let rows_total: usize = batch.groups.iter().map(|g| g.len()).sum();
        let mut total = 0.0f64;
        for (j, group) in batch.groups.iter().enumerate() {
            let (s, w) = batch.times[j];
            let (y, target) = batch.rows(sde, j, group.clone());
            let t = (sde.t_end() as f64 - s) as f32;
            net.prepare(network_time(t, sde), &mut cache, &mut scratch);
            for (yr, tr) in y.chunks_exact(d).zip(target.chunks_exact(d)) {
                net.eval_nn(&cache, yr, &mut u, &mut scratch);
                let sq: f64 = u
                    .iter()
                    .zip(tr)
                    .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                    .sum();
                total += w * sq;
            }
        }
        total / (rows_total * d) as f64
    }

    /// The gradient the fit loop takes (the tape through `group_loss`, as in
    /// `fit_with_stop`) against central differences of the loss evaluated
    /// independently through the runtime network; the two loss values agree
    /// too. Tolerance as in `autodiff::check` (its doc derives it).
    #[test]
    fn dsm_gradient_matches_finite_differences_of_the_runtime_loss() {
        use crate::autodiff::{Grads, Tape};
        let data = crate::data::Toy::TwoMoons.generate(64, 1).unwrap();
        let cfg = FitConfig {
            channels: 8,
            layers: 3,
            batch: 12,
            time_groups: 3,
            seed: 4,
            ..FitConfig::default()
        };
        let shape = cfg.header(2).shape;
        let law = TimeLaw::new(cfg.sde, cfg.eps, cfg.time_sampling);
        let batch = Batch::new(&data, &cfg, &law, 0);
        let mut params = Params::new();
        let net = BatchedNetwork::register(shape, &mut params, &mut stream(1, 2));
        // Random values everywhere (the initial output layer is zero, which
        // would leave most gradients zero).
        let mut rng = stream(5, 6);
        let flat: Vec<f32> = (0..params.num_scalars())
            .map(|_| {
                let mut z = [0.0f32];
                fill_normals(&mut rng, &mut z);
                0.5 * z[0]
            })
            .collect();
        params.load_flat(&flat);

        let scale = 1.0 / (cfg.batch * 2) as f64;
        let mut tape = Tape::new();
        let bound = net.bind(&mut tape, &params);
        let loss = batch.loss(&mut tape, &net, &bound, &cfg.sde, 0..cfg.batch, scale);
        let mut grads = Grads::zeros_like(&params);
        tape.backward(loss, &mut grads);
        let value = tape.item(loss) as f64;
        let reference = runtime_batch_loss(&batch, shape, &cfg.sde, &flat);
        assert!(
            (value - reference).abs() < 1e-5 * reference,
            "tape loss {value} vs runtime loss {reference}"
        );

        let mut max_grad = 0.0f64;
        let mut offset = 0;
        for id in 0..params.values.len() {
            let n = params.values[id].data.len();
            for j in (0..n).step_by(n.div_ceil(5)) {
                let h = 1e-2f32;
                let mut probe = flat.clone();
                probe[offset + j] = flat[offset + j] + h;
                let up = runtime_batch_loss(&batch, shape, &cfg.sde, &probe);
                probe[offset + j] = flat[offset + j] - h;
                let down = runtime_batch_loss(&batch, shape, &cfg.sde, &probe);
                let fd = (up - down) / (2.0 * h as f64);
                let got = grads.tensors[id].data[j] as f64;
                let tol = 2e-3 * got.abs().max(fd.abs()) + 5e-4 * (1.0 + reference / 10.0);
                assert!(
                    (fd - got).abs() < tol,
                    "param {} [{j}]: tape {got} vs fd {fd} (tol {tol})",
                    params.names()[id]
                );
                max_grad = max_grad.max(got.abs());
            }
            offset += n;
        }
        assert!(max_grad > 1e-2, "trivial gradient {max_grad}");
    }

    /// The regression is set up the right way round: for Gaussian data the
    /// least-squares multiple `c` of the optimal control `u*` (runtime,
    /// generative time `t = T - s`) that best fits the DSM target is 1.
    #[test]
    fn gaussian_optimal_control_fits_the_target() {
        use diffctl_runtime::control::{Control, GaussianOptimalControl};
        let sde = Sde::default();
        let (mean, std) = ([1.0f32], [0.5f32]);
        let opt = GaussianOptimalControl {
            sde,
            mean: &mean,
            std: &std,
        };
        let mut rng = stream(3, 0);
        let (mut ut, mut uu) = (0.0f64, 0.0f64);
        let n = 200_000;
        for i in 0..n {
            let s = 0.05 + 0.95 * (i as f64 + 0.5) / n as f64;
            let mut z = [0.0f32; 2];
            fill_normals(&mut rng, &mut z);
            let y0 = [1.0 + 0.5 * z[0]];
            let (mut y, mut target) = ([0.0f32], [0.0f32]);
            noised(&sde, s, &y0, &z[1..], &mut y, &mut target);
            let mut u = [0.0f32];
            opt.u((1.0 - s) as f32, &[], &y, &mut u, &mut []);
            ut += u[0] as f64 * target[0] as f64;
            uu += (u[0] as f64).powi(2);
        }
        let c = ut / uu;
        assert!((c - 1.0).abs() < 0.03, "least-squares multiple {c}");
    }
}
