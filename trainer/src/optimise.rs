//! The one optimisation loop: [`train`](crate::train::train) on a target
//! and [`fit`](crate::dsm::fit) to data both run [`optimise`] with their own
//! [`Objective`].
//!
//! Per iteration `k`: zero the gradients, the objective's loss (gradients
//! accumulated), a stop check (a stop requested meanwhile discards the
//! iteration), the divergence check, gradient-norm clipping, Adam at the
//! cosine schedule's learning rate, the EMA update; then the objective's
//! [`Objective::after`] (evaluation or validation, progress, early stop) and
//! a checkpoint every `checkpoint_every` iterations and at the end.
//!
//! A checkpoint holds the optimiser's state and the objective's own
//! ([`Objective::state`]); resuming one continues the run bit for bit. It
//! records what the run was for ([`Identity`]) and a resume for something
//! else is refused.

use std::fmt;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use diffctl_runtime::network::NetworkShape;
use diffctl_runtime::weights::{crc32, encode_with, Header, Model};
use serde::{Deserialize, Serialize};

use crate::autodiff::Params;
use crate::io::write_atomic;
use crate::network::BatchedNetwork;
use crate::optim::{clip_grad_norm, Adam, AdamConfig, Ema, LrSchedule};
use crate::streams;

/// Where to checkpoint, whether to resume, and a stop flag (Ctrl-C).
#[derive(Clone, Debug, Default)]
pub struct RunOptions<'a> {
    pub checkpoint: Option<PathBuf>,
    pub resume: bool,
    /// Checked before and after every iteration: once set, training stops
    /// and exports the model of the last completed iteration (an iteration
    /// during which it was set is discarded).
    pub stop: Option<&'a AtomicBool>,
}

/// Why training or fitting stopped without a model. `Display` is one line.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainError {
    Config(String),
    /// The target returned NaN for `log rho` at the end of `paths` of the
    /// iteration's `batch` paths.
    TargetNan {
        iteration: usize,
        paths: usize,
        batch: usize,
    },
    Diverged {
        /// What ran: "training" or "fitting" ([`Objective::run_name`]).
        run: &'static str,
        iteration: usize,
        what: String,
        checkpoint: Option<PathBuf>,
    },
    Io(String),
}

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainError::Config(e) => write!(f, "invalid configuration: {e}"),
            TrainError::TargetNan {
                iteration,
                paths,
                batch,
            } => write!(
                f,
                "the target's log-density is NaN at iteration {iteration}, on {paths} of {batch} \
                 paths (return -inf outside a support, never NaN)"
            ),
            TrainError::Diverged {
                run,
                iteration,
                what,
                checkpoint,
            } => {
                write!(f, "{run} diverged at iteration {iteration}: {what}")?;
                match checkpoint {
                    Some(p) => write!(f, "; the last good checkpoint is {}", p.display()),
                    None => write!(f, "; no checkpoint was written"),
                }
            }
            TrainError::Io(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for TrainError {}

/// The optimiser's settings (keys shared by `TrainConfig` and `FitConfig`).
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub iterations: usize,
    /// Peak learning rate, reached after `warmup` iterations and decayed by a
    /// cosine to `lr_final`.
    pub lr: f32,
    pub lr_final: f32,
    pub warmup: usize,
    /// Global gradient-norm clip.
    pub clip: f32,
    pub ema_decay: f32,
    /// Seed of the initialisation ([`streams::init`]).
    pub seed: u64,
    /// Write a checkpoint every this many iterations (0: only at the end).
    pub checkpoint_every: usize,
}

/// Largest batch training and fitting take (paths, or data samples).
pub const MAX_BATCH: usize = 1 << 20;
/// Most iterations a run takes.
pub const MAX_ITERATIONS: usize = 1 << 40;

impl Settings {
    /// Checks the optimiser's settings; the message names the bad one.
    pub fn validate(&self) -> Result<(), String> {
        match self.iterations {
            0 => return Err("iterations must be at least 1".into()),
            n if n > MAX_ITERATIONS => {
                return Err(format!(
                    "iterations must be at most {MAX_ITERATIONS}, got {n}"
                ))
            }
            _ => {}
        }
        for (name, v) in [
            ("lr", self.lr),
            ("lr_final", self.lr_final),
            ("clip", self.clip),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{name} must be finite and positive, got {v}"));
            }
        }
        if !(self.ema_decay.is_finite() && (0.0..1.0).contains(&self.ema_decay)) {
            return Err(format!(
                "ema_decay must be in [0, 1), got {}",
                self.ema_decay
            ));
        }
        Ok(())
    }
}

/// Parameters, their EMA, Adam's moments and the iterations done.
pub struct Optimiser {
    pub params: Params,
    pub ema: Ema,
    adam: Adam,
    schedule: LrSchedule,
    clip: f32,
    /// Iterations completed.
    pub iteration: usize,
    /// Wall time of the iterations so far, across resumptions.
    pub seconds: f64,
}

/// Where a run stands after an iteration: the part of the progress report
/// that training and fitting share.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    /// Iterations done so far.
    pub iteration: usize,
    pub iterations: usize,
    /// This iteration's loss (a batch estimate).
    pub loss: f64,
    pub grad_norm: f64,
    pub lr: f32,
    /// Wall time of the iterations so far, across resumptions.
    pub elapsed: Duration,
}

impl Step {
    /// The step `opt` has just completed with `update`, of `iterations`.
    pub fn new(opt: &Optimiser, update: &Update, iterations: usize) -> Self {
        Step {
            iteration: opt.iteration,
            iterations,
            loss: update.loss,
            grad_norm: update.grad_norm,
            lr: update.lr,
            elapsed: Duration::from_secs_f64(opt.seconds),
        }
    }
}

/// What an iteration's update did.
#[derive(Clone, Copy, Debug)]
pub struct Update {
    pub loss: f64,
    pub grad_norm: f64,
    pub lr: f32,
}

impl Optimiser {
    /// A freshly initialised network of `shape` and its optimiser.
    pub fn new(settings: &Settings, shape: NetworkShape) -> (BatchedNetwork, Self) {
        let mut params = Params::new();
        let net = BatchedNetwork::register(shape, &mut params, &mut streams::init(settings.seed));
        let ema = Ema::new(&params, settings.ema_decay);
        let adam = Adam::new(&params, AdamConfig::default());
        let schedule = LrSchedule::Cosine {
            lr: settings.lr,
            min_lr: settings.lr_final,
            warmup: settings.warmup as u64,
            total: settings.iterations as u64,
        };
        let opt = Self {
            params,
            ema,
            adam,
            schedule,
            clip: settings.clip,
            iteration: 0,
            seconds: 0.0,
        };
        (net, opt)
    }

    /// The EMA parameters, flat in the network's order (what is exported).
    pub fn ema_flat(&self) -> Vec<f32> {
        self.ema
            .shadow
            .iter()
            .flat_map(|t| t.data.iter().copied())
            .collect()
    }

    /// Clips the gradients, steps Adam and the EMA: iteration `self.iteration`
    /// is then done. A non-finite loss or gradient is an error (no update).
    fn update(&mut self, loss: f64) -> Result<Update, String> {
        let grad_norm = self.params.grads.global_norm();
        if !loss.is_finite() {
            return Err("non-finite loss".into());
        }
        if !grad_norm.is_finite() {
            return Err("non-finite gradient".into());
        }
        clip_grad_norm(&mut self.params.grads, self.clip);
        let lr = self.schedule.at(self.iteration as u64);
        self.adam.step(&mut self.params, lr);
        self.ema.update(&self.params);
        self.iteration += 1;
        Ok(Update {
            loss,
            grad_norm,
            lr,
        })
    }
}

/// What a run is for, as its checkpoints record it: the configuration
/// (serialised) and what it learns from (the target, or the data).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub config: Vec<u8>,
    pub source: Vec<u8>,
}

/// What a run optimises.
pub trait Objective {
    /// What runs, for messages: "training" or "fitting".
    fn run_name(&self) -> &'static str;
    /// The loss of iteration `k`, its gradients accumulated into
    /// `params.grads` (zeroed before the call).
    fn loss(&mut self, k: usize, params: &mut Params) -> Result<f64, TrainError>;
    /// After iteration `opt.iteration` is done: evaluation or validation and
    /// progress. `Ok(true)` ends the run early.
    fn after(&mut self, opt: &Optimiser, update: &Update) -> Result<bool, TrainError>;
    /// What a checkpoint must match to be resumed.
    fn identity(&self) -> Identity;
    /// The objective's own state to checkpoint (empty by default).
    fn state(&self) -> Vec<u8> {
        Vec::new()
    }
    /// Restores [`Objective::state`].
    fn restore(&mut self, _state: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

/// How [`optimise`] ended (an error aside).
#[derive(Clone, Copy, Debug, Default)]
pub struct Ended {
    /// The stop flag was set (Ctrl-C) before the last iteration.
    pub interrupted: bool,
    /// [`Objective::after`] ended the run.
    pub stopped_early: bool,
}

/// Runs `obj` from `opt`'s state (or from `run.checkpoint` when resuming)
/// to `settings.iterations`; see the module docs.
pub fn optimise(
    obj: &mut dyn Objective,
    opt: &mut Optimiser,
    settings: &Settings,
    run: &RunOptions,
) -> Result<Ended, TrainError> {
    if run.resume {
        resume(obj, opt, run)?;
    }
    let stopped = || run.stop.is_some_and(|s| s.load(Ordering::SeqCst));
    let mut ended = Ended::default();
    let mut last_checkpoint: Option<PathBuf> = None;
    let started = Instant::now();
    let seconds_before = opt.seconds;
    while opt.iteration < settings.iterations {
        if stopped() {
            ended.interrupted = true;
            break;
        }
        let k = opt.iteration;
        opt.params.zero_grad();
        let loss = obj.loss(k, &mut opt.params)?;
        // A stop requested while the iteration ran (Ctrl-C, or a target
        // that failed and returned placeholders) discards the iteration.
        if stopped() {
            ended.interrupted = true;
            break;
        }
        let update = opt.update(loss).map_err(|what| TrainError::Diverged {
            run: obj.run_name(),
            iteration: k,
            what,
            checkpoint: last_checkpoint.clone(),
        })?;
        opt.seconds = seconds_before + started.elapsed().as_secs_f64();
        let early = obj.after(opt, &update)?;
        if settings.checkpoint_every > 0 && opt.iteration.is_multiple_of(settings.checkpoint_every)
        {
            save(run, obj, opt)?;
            last_checkpoint = run.checkpoint.clone();
        }
        if early {
            ended.stopped_early = true;
            break;
        }
    }
    save(run, obj, opt)?;
    Ok(ended)
}

/// Encodes the weights file of `header` and `flat` parameters (with the
/// target's parameter block `data`) and reads it back: the file and the
/// parameters as it holds them (rounded to its dtype).
pub fn export(
    header: &Header,
    flat: &[f32],
    data: &[u8],
) -> Result<(Vec<u8>, Vec<f32>), TrainError> {
    let weights = encode_with(header, flat, data)
        .map_err(|e| TrainError::Io(format!("cannot encode weights: {e}")))?;
    let model = Model::parse(&weights)
        .map_err(|e| TrainError::Io(format!("exported weights do not decode: {e}")))?;
    let mut params = vec![0.0f32; header.param_count()];
    model
        .params_into(&mut params)
        .map_err(|e| TrainError::Io(format!("exported weights do not decode: {e}")))?;
    Ok((weights, params))
}

/// The full state of a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Checkpoint {
    identity: Identity,
    /// Iterations completed.
    iteration: usize,
    params: Vec<Vec<f32>>,
    ema: Vec<Vec<f32>>,
    adam_m: Vec<Vec<f32>>,
    adam_v: Vec<Vec<f32>>,
    adam_t: u64,
    seconds: f64,
    /// [`Objective::state`].
    objective: Vec<u8>,
}

/// Version 4: one format for training and fitting (the configuration and
/// the target or data as an [`Identity`], the objective's own state).
/// Version 3 recorded the target beside a `TrainConfig`; version 2 had the
/// target inside it. Older checkpoints cannot be resumed.
const CHECKPOINT_MAGIC: &[u8; 8] = b"dfcckpt4";

impl Checkpoint {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = CHECKPOINT_MAGIC.to_vec();
        out.extend(postcard::to_allocvec(self).expect("checkpoint serialises"));
        let crc = crc32(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < 12 || !bytes.starts_with(b"dfcckpt") {
            return Err("not a diffctl checkpoint".into());
        }
        if &bytes[..8] != CHECKPOINT_MAGIC {
            return Err("checkpoint of an older diffctl version: it cannot be resumed".into());
        }
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        if crc32(body) != u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) {
            return Err("checkpoint is corrupt (checksum mismatch)".into());
        }
        postcard::from_bytes(&body[8..]).map_err(|e| format!("checkpoint does not parse: {e}"))
    }
}

fn save(run: &RunOptions, obj: &dyn Objective, opt: &Optimiser) -> Result<(), TrainError> {
    let Some(path) = &run.checkpoint else {
        return Ok(());
    };
    let (m, v) = opt.adam.moments();
    let c = Checkpoint {
        identity: obj.identity(),
        iteration: opt.iteration,
        params: opt.params.values.iter().map(|t| t.data.clone()).collect(),
        ema: opt.ema.shadow.iter().map(|t| t.data.clone()).collect(),
        adam_m: m.to_vec(),
        adam_v: v.to_vec(),
        adam_t: opt.adam.t,
        seconds: opt.seconds,
        objective: obj.state(),
    };
    write_atomic(path, &c.to_bytes())
        .map_err(|e| TrainError::Io(format!("cannot write checkpoint {}: {e}", path.display())))
}

/// Restores `run.checkpoint` into `opt` and `obj`, if the file exists.
fn resume(
    obj: &mut dyn Objective,
    opt: &mut Optimiser,
    run: &RunOptions,
) -> Result<(), TrainError> {
    let path = run
        .checkpoint
        .as_ref()
        .ok_or_else(|| TrainError::Config("--resume needs a checkpoint path".into()))?;
    if !path.exists() {
        return Ok(());
    }
    let what = path.display();
    let bytes = fs::read(path).map_err(|e| TrainError::Io(format!("cannot read {what}: {e}")))?;
    let c = Checkpoint::from_bytes(&bytes).map_err(|e| TrainError::Io(format!("{what}: {e}")))?;
    let identity = obj.identity();
    if c.identity.config != identity.config {
        return Err(TrainError::Config(format!(
            "checkpoint {what} was written with a different configuration"
        )));
    }
    if c.identity.source != identity.source {
        return Err(TrainError::Config(format!(
            "checkpoint {what} was written for a different target or data set"
        )));
    }
    let shapes_match = |vs: &[Vec<f32>]| {
        vs.len() == opt.params.values.len()
            && vs
                .iter()
                .zip(&opt.params.values)
                .all(|(v, t)| v.len() == t.len())
    };
    if ![&c.params, &c.ema, &c.adam_m, &c.adam_v]
        .iter()
        .all(|v| shapes_match(v))
    {
        return Err(TrainError::Io(format!(
            "{what}: checkpoint tensors do not match the network"
        )));
    }
    obj.restore(&c.objective)
        .map_err(|e| TrainError::Io(format!("{what}: {e}")))?;
    for (t, v) in opt.params.values.iter_mut().zip(c.params) {
        t.data = v;
    }
    for (t, v) in opt.ema.shadow.iter_mut().zip(c.ema) {
        t.data = v;
    }
    opt.adam.restore_moments(c.adam_m, c.adam_v, c.adam_t);
    opt.iteration = c.iteration;
    opt.seconds = c.seconds;
    Ok(())
}
