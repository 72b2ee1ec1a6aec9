//! Training on a target: [`TrainConfig`], [`train`] and what it reports.
//! The loop itself (Adam, EMA, checkpoints, resumption) is
//! [`crate::optimise`]; this file gives it the rollouts' loss
//! ([`crate::losses`]) and the periodic evaluations through the runtime.
//!
//! Determinism: iteration `k` draws its paths from the runtime's streams under
//! a seed derived from `(seed, k)` alone, the batch is split over a fixed
//! number of threads and gradients are reduced in thread order. A fixed seed
//! and thread count therefore give bit-identical weights, and a run resumed
//! from a checkpoint continues exactly as the uninterrupted run would.

use std::sync::atomic::{AtomicUsize, Ordering};

use diffctl_runtime::integrate::Scheme;
use diffctl_runtime::prelude::*;
use diffctl_runtime::weights::crc32;
use serde::{Deserialize, Serialize};

use crate::autodiff::{Params, Tensor};
use crate::eval::{self, CostForm, EvalReport, SampleOptions, Samples};
pub use crate::losses::Loss;
use crate::losses::Rollout;
use crate::optimise::{
    export, optimise, Identity, Objective, Optimiser, RunOptions, Settings, Step, TrainError,
    Update, MAX_BATCH,
};
use crate::parallel::DataParallel;
use crate::streams;
use crate::target::TrainTarget;

/// The integrators' names as help, TOML, README and `inspect` list them.
pub const INTEGRATOR_NAMES: &str = "em|euler-maruyama, exp|exponential, flow|probability-flow";

/// The integrator `diffctl train` and Python's `train` use unless told
/// otherwise (flags, TOML, keyword arguments): the
/// exponential one leaves a several times smaller path-cost spread than
/// Euler–Maruyama at the same K (runtime/tests/analytic.rs). (`TrainConfig::default`
/// keeps Euler–Maruyama, which the library's tests and fixtures were made with.)
pub const DEFAULT_INTEGRATOR: Integrator = Integrator::Exponential;

/// `short|long` name of an integrator (an entry of [`INTEGRATOR_NAMES`]).
pub fn integrator_names(i: Integrator) -> &'static str {
    match i {
        Integrator::EulerMaruyama => "em|euler-maruyama",
        Integrator::Exponential => "exp|exponential",
        Integrator::ProbabilityFlow => "flow|probability-flow",
    }
}

/// The long (TOML) name of an integrator given by either of its names.
pub fn integrator_long_name(name: &str) -> Option<&'static str> {
    INTEGRATOR_NAMES.split(", ").find_map(|pair| {
        let (short, long) = pair.split_once('|')?;
        (name == short || name == long).then_some(long)
    })
}

/// The losses' names as help, TOML and README list them.
pub const LOSS_NAMES: &str = "lv|log-variance, kl";

/// The long (TOML) name of a loss given by either of its names.
pub fn loss_long_name(name: &str) -> Option<&'static str> {
    match name {
        "lv" | "log-variance" => Some("log-variance"),
        "kl" => Some("kl"),
        _ => None,
    }
}

/// Everything that determines a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub sampler: SamplerKind,
    pub loss: Loss,
    /// Path cost used by the log-variance loss and by the evaluations.
    pub cost: CostForm,
    pub batch: usize,
    /// Steps `K` of the time grid.
    pub steps: usize,
    pub grid: TimeGrid,
    pub integrator: Integrator,
    pub iterations: usize,
    /// Initial learning rate, decayed by a cosine to `lr_final`.
    pub lr: f32,
    pub lr_final: f32,
    /// Global gradient-norm clip.
    pub clip: f32,
    /// Decay of the exponential moving average of the parameters (the
    /// evaluated and exported weights).
    pub ema_decay: f32,
    pub channels: u32,
    pub layers: u32,
    pub score_term: bool,
    pub prior_nu: f32,
    /// Clamp of the target score inside the control (header `score_clip`).
    pub score_clip: f32,
    pub sde: Sde,
    pub seed: u64,
    pub threads: usize,
    /// Evaluate every this many iterations (0: only at the end).
    pub eval_every: usize,
    /// Paths of each evaluation (periodic ones use at most 4096).
    pub eval_samples: usize,
    /// Write a checkpoint every this many iterations (0: only at the end).
    pub checkpoint_every: usize,
    /// Storage type of the exported weights.
    pub dtype: Dtype,
    /// Off-policy exploration of the log-variance loss: the training paths'
    /// noise is scaled by `explore` at iteration 0, decaying linearly to 1
    /// (on-policy) at `explore_decay` of the run; 1 turns it off. It needs
    /// the discrete path cost (see [`crate::losses`]). `None`: the default,
    /// [`DEFAULT_EXPLORE`] where it applies (log-variance, discrete cost),
    /// else 1.
    pub explore: Option<f32>,
    /// Fraction of the run, in `(0, 1]`, after which the exploration scale
    /// has decayed to 1.
    pub explore_decay: f32,
}

/// Default initial exploration scale of the log-variance loss: PIS loses
/// modes of gmm without it, and it costs DIS little; 2 leaves a margin over
/// the smallest value that worked (the measurements: benches/README.md,
/// "Defaults").
pub const DEFAULT_EXPLORE: f32 = 2.0;
/// Largest accepted exploration scale.
pub const MAX_EXPLORE: f32 = 100.0;

impl Default for TrainConfig {
    /// The reference setup: DIS, log-variance loss, batch 512, K = 100.
    fn default() -> Self {
        Self {
            sampler: SamplerKind::Dis,
            loss: Loss::LogVariance,
            cost: CostForm::Discrete,
            batch: 512,
            steps: 100,
            grid: TimeGrid::Uniform,
            integrator: Integrator::EulerMaruyama,
            iterations: 2000,
            lr: 5e-3,
            lr_final: 1e-4,
            clip: 1.0,
            ema_decay: 0.99,
            channels: 64,
            layers: 4,
            score_term: true,
            prior_nu: 1.0,
            score_clip: 100.0,
            sde: Sde::default(),
            seed: 0,
            threads: crate::parallel::default_threads(),
            eval_every: 100,
            eval_samples: 10_000,
            checkpoint_every: 200,
            dtype: Dtype::F32,
            explore: None,
            explore_decay: 0.25,
        }
    }
}

impl TrainConfig {
    /// The initial exploration scale: `explore`, or its default.
    pub fn explore(&self) -> f32 {
        let applies = self.loss == Loss::LogVariance && self.cost == CostForm::Discrete;
        self.explore
            .unwrap_or(if applies { DEFAULT_EXPLORE } else { 1.0 })
    }

    /// Noise scale of the training paths at iteration `k` (see `explore`).
    pub fn explore_at(&self, k: usize) -> f32 {
        let end = self.explore_decay as f64 * self.iterations as f64;
        let left = (1.0 - k as f64 / end).max(0.0);
        (1.0 + (self.explore() as f64 - 1.0) * left) as f32
    }

    /// The weights-file header of models trained with this configuration
    /// on `target`.
    pub fn header(&self, target: &dyn TrainTarget) -> Header {
        Header {
            sampler: self.sampler,
            shape: NetworkShape {
                d: target.dim() as u32,
                channels: self.channels,
                layers: self.layers,
                score_term: self.score_term,
            },
            sde: self.sde,
            grid: self.grid,
            steps: self.steps as u32,
            integrator: self.integrator,
            prior_nu: self.prior_nu,
            score_clip: self.score_clip,
            target: target.spec(),
            dtype: self.dtype,
        }
    }

    /// The optimiser's settings (no warm-up).
    pub fn settings(&self) -> Settings {
        Settings {
            iterations: self.iterations,
            lr: self.lr,
            lr_final: self.lr_final,
            warmup: 0,
            clip: self.clip,
            ema_decay: self.ema_decay,
            seed: self.seed,
            checkpoint_every: self.checkpoint_every,
        }
    }

    /// Checks every setting; the message names the bad one.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("batch", self.batch),
            ("steps", self.steps),
            ("threads", self.threads),
            ("eval_samples", self.eval_samples),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        let at_most = [
            ("batch", self.batch, MAX_BATCH),
            (
                "steps",
                self.steps,
                diffctl_runtime::weights::MAX_STEPS as usize,
            ),
            ("threads", self.threads, crate::parallel::MAX_THREADS),
            ("eval_samples", self.eval_samples, eval::MAX_SAMPLES),
        ];
        for (name, v, max) in at_most {
            if v > max {
                return Err(format!("{name} must be at most {max}, got {v}"));
            }
        }
        if self.batch < 2 {
            return Err("batch must be at least 2 (the log-variance loss needs a spread)".into());
        }
        self.settings().validate()?;
        let explore = self.explore();
        if !(explore.is_finite() && (1.0..=MAX_EXPLORE).contains(&explore)) {
            return Err(format!(
                "explore must be in [1, {MAX_EXPLORE}] (1: on-policy), got {explore}"
            ));
        }
        if !(self.explore_decay.is_finite()
            && self.explore_decay > 0.0
            && self.explore_decay <= 1.0)
        {
            return Err(format!(
                "explore_decay must be in (0, 1], got {}",
                self.explore_decay
            ));
        }
        if explore > 1.0 && (self.loss != Loss::LogVariance || self.cost != CostForm::Discrete) {
            return Err(
                "explore > 1 needs the log-variance loss with the discrete path cost (the \
                 continuous form has no density for paths with a different noise level); \
                 set explore to 1"
                    .into(),
            );
        }
        if self.sampler == SamplerKind::Dsm {
            return Err(
                "DSM models are fitted to data with `diffctl fit`, not trained on a target".into(),
            );
        }
        // The header-level checks (network shape, SDE, steps, prior, clip),
        // with a placeholder dimension: the target's is checked in `train`.
        let placeholder = Header {
            target: None,
            ..self.header(&diffctl_runtime::target::IsotropicGaussian { d: 1, nu: 1.0 })
        };
        placeholder.validate().map_err(|e| e.to_string())?;
        Scheme::new(&self.sde, self.integrator).map_err(|e| e.to_string())?;
        if self.integrator == Integrator::ProbabilityFlow {
            return Err("training needs a stochastic integrator (em or exp)".into());
        }
        Ok(())
    }
}

/// Reported after every iteration.
#[derive(Clone, Debug)]
pub struct Progress {
    pub step: Step,
    /// The latest periodic evaluation, if any.
    pub last_eval: Option<EvalReport>,
}

/// What a finished (or interrupted) run produced.
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    pub header: Header,
    /// The exported (EMA) parameters, as stored in `weights` (dtype-rounded).
    pub params: Vec<f32>,
    /// The encoded weights file.
    pub weights: Vec<u8>,
    /// Final evaluation through the runtime: `eval_samples` paths, seed `seed`,
    /// indices from 0, the header's step count and integrator.
    pub report: EvalReport,
    pub samples: Samples,
    pub iterations: usize,
    pub seconds: f64,
    pub interrupted: bool,
}

/// Trains a control network for `target` as `cfg` says; see the module docs.
pub fn train(
    cfg: &TrainConfig,
    target: &dyn TrainTarget,
    run: &RunOptions,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<TrainOutcome, TrainError> {
    cfg.validate().map_err(TrainError::Config)?;
    cfg.header(target)
        .validate()
        .map_err(|e| TrainError::Config(format!("target: {e}")))?;
    // Resolve the default exploration now, so that checkpoints record the
    // value used and a resume under a build with another default is refused.
    let cfg = &TrainConfig {
        explore: Some(cfg.explore()),
        ..cfg.clone()
    };
    let header = cfg.header(target);
    let settings = cfg.settings();
    let (net, mut opt) = Optimiser::new(&settings, header.shape);
    let mut training = Training {
        cfg,
        target,
        rollout: Rollout {
            net,
            header,
            target,
            loss: cfg.loss,
            cost: cfg.cost,
            explore: 1.0,
        },
        dp: DataParallel::new(cfg.threads),
        point: target.point(),
        last_eval: None,
        on_progress,
    };
    let ended = optimise(&mut training, &mut opt, &settings, run)?;
    training.dp.release();

    // Export the EMA weights, then evaluate exactly what the file holds.
    let (weights, params) = export(&header, &opt.ema_flat(), target.data())?;
    let opts = SampleOptions {
        n: cfg.eval_samples,
        seed: cfg.seed,
        threads: cfg.threads,
        block: target.block(),
        ..SampleOptions::default()
    };
    let samples = eval::sample_params(&header, &params, Some(&*training.point), &opts)
        .map_err(|e| TrainError::Io(e.to_string()))?;
    let report = eval::report(&samples, Some(target), cfg.cost);
    Ok(TrainOutcome {
        header,
        params,
        weights,
        report,
        samples,
        iterations: opt.iteration,
        seconds: opt.seconds,
        interrupted: ended.interrupted,
    })
}

/// Training on a target as an [`Objective`]: the rollouts' loss, periodic
/// evaluations through the runtime, progress.
struct Training<'a> {
    cfg: &'a TrainConfig,
    target: &'a dyn TrainTarget,
    rollout: Rollout<'a>,
    dp: DataParallel,
    point: Box<dyn Target + Sync + 'a>,
    last_eval: Option<EvalReport>,
    on_progress: &'a mut dyn FnMut(&Progress),
}

impl Objective for Training<'_> {
    fn run_name(&self) -> &'static str {
        "training"
    }

    fn loss(&mut self, k: usize, params: &mut Params) -> Result<f64, TrainError> {
        let cfg = self.cfg;
        let seed = streams::iteration(cfg.seed, k);
        self.rollout.explore = cfg.explore_at(k);
        let rollout = &self.rollout;
        let nan_paths = AtomicUsize::new(0);
        let d = rollout.header.shape.d as f32;
        let loss = match cfg.loss {
            Loss::LogVariance => {
                self.dp
                    .run_replay(
                        params,
                        cfg.batch,
                        |range, eval, p| {
                            let paths = rollout.log_variance(eval, p, seed, range);
                            nan_paths.fetch_add(paths.nan, Ordering::Relaxed);
                            let n = paths.r.len();
                            (Tensor::new(n, 1, paths.r.clone()), paths)
                        },
                        |tape, r| {
                            let v = tape.var_rows(r, 1);
                            tape.scale(v, 1.0 / d)
                        },
                        |paths, dr, tape, p, grads| {
                            rollout.log_variance_backward(paths, dr, tape, p, grads)
                        },
                    )
                    .0
            }
            Loss::Kl => self.dp.run_sum(params, cfg.batch, |range, tape, p| {
                let out = rollout.kl(tape, p, seed, range);
                nan_paths.fetch_add(out.nan, Ordering::Relaxed);
                let s = tape.sum(out.r);
                tape.scale(s, 1.0 / (cfg.batch as f32 * d))
            }),
        } as f64;
        let nan = nan_paths.load(Ordering::Relaxed);
        if nan > 0 {
            return Err(TrainError::TargetNan {
                iteration: k,
                paths: nan,
                batch: cfg.batch,
            });
        }
        Ok(loss)
    }

    fn after(&mut self, opt: &Optimiser, update: &Update) -> Result<bool, TrainError> {
        let cfg = self.cfg;
        let done = opt.iteration;
        if cfg.eval_every > 0 && done.is_multiple_of(cfg.eval_every) && done < cfg.iterations {
            let opts = SampleOptions {
                n: cfg.eval_samples.min(4096),
                seed: streams::evaluation(cfg.seed, done - 1),
                threads: cfg.threads,
                block: self.target.block(),
                ..SampleOptions::default()
            };
            let header = &self.rollout.header;
            let samples = eval::sample_params(header, &opt.ema_flat(), Some(&*self.point), &opts)
                .map_err(|e| TrainError::Io(e.to_string()))?;
            self.last_eval = Some(eval::report(&samples, Some(self.target), cfg.cost));
        }
        (self.on_progress)(&Progress {
            step: Step::new(opt, update, cfg.iterations),
            last_eval: self.last_eval.clone(),
        });
        Ok(false)
    }

    fn identity(&self) -> Identity {
        let t = self.target;
        Identity {
            // Every setting but how often checkpoints are written.
            config: postcard::to_allocvec(&TrainConfig {
                checkpoint_every: 0,
                ..self.cfg.clone()
            })
            .expect("a config serialises"),
            source: postcard::to_allocvec(&(t.spec(), t.dim(), crc32(t.data())))
                .expect("a target's identity serialises"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exploration_defaults_and_schedule() {
        let cfg = TrainConfig {
            iterations: 1000,
            ..TrainConfig::default()
        };
        assert_eq!(cfg.explore(), DEFAULT_EXPLORE);
        assert_eq!(cfg.explore_at(0), DEFAULT_EXPLORE);
        assert!((cfg.explore_at(125) - (1.0 + (DEFAULT_EXPLORE - 1.0) * 0.5)).abs() < 1e-6);
        assert_eq!(cfg.explore_at(250), 1.0);
        assert_eq!(cfg.explore_at(999), 1.0);
        // Off by default where it does not apply.
        for cfg in [
            TrainConfig {
                loss: Loss::Kl,
                ..cfg.clone()
            },
            TrainConfig {
                cost: CostForm::Continuous,
                ..cfg.clone()
            },
        ] {
            assert_eq!(cfg.explore_at(0), 1.0);
            cfg.validate().unwrap();
        }
        // Explicit values are checked.
        for (bad, what) in [
            (
                TrainConfig {
                    explore: Some(0.9),
                    ..cfg.clone()
                },
                "in [1, 100]",
            ),
            (
                TrainConfig {
                    explore: Some(f32::NAN),
                    ..cfg.clone()
                },
                "in [1, 100]",
            ),
            (
                TrainConfig {
                    explore: Some(1e30),
                    ..cfg.clone()
                },
                "in [1, 100]",
            ),
            (
                TrainConfig {
                    explore_decay: 0.0,
                    ..cfg.clone()
                },
                "explore_decay",
            ),
            (
                TrainConfig {
                    explore: Some(2.0),
                    loss: Loss::Kl,
                    ..cfg.clone()
                },
                "log-variance",
            ),
        ] {
            let e = bad.validate().unwrap_err();
            assert!(e.contains(what), "{e}");
        }
    }
}
