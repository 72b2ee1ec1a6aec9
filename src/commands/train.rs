//! `diffctl train`: trains a sampler on a built-in target, with a progress
//! bar, Ctrl-C handling (checkpoint, then stop) and an atomic weights file.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use clap::{Args, ValueEnum};
use diffctl_runtime::prelude::*;
use diffctl_trainer::train::{self, Loss, Progress, TrainConfig, TrainOutcome};

use diffctl_trainer::target::TrainTarget;

use crate::args::{
    check_threads, integrator_names, set, target_spec, CheckpointArgs, ChosenTarget, CostArg,
    GridArg, IntegratorArg, NetworkArgs, TargetArgs, TargetParams, DEFAULT_INTEGRATOR, MAX_FLOATS,
};
use crate::commands::plot::{check_svg_path, write as write_plot};
use crate::error::{Error, Result};
use crate::output::{self, note, say};
use crate::progress;
use crate::{config, io};

#[derive(Args, Debug, Default)]
pub struct TrainArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// TOML file of settings (keys of TrainConfig); flags override it. The
    /// defaults below are those of a run without one.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Sampler to train (PIS uses its Brownian reference SDE) [default: dis].
    #[arg(long, value_enum, value_name = "NAME")]
    pub sampler: Option<SamplerArg>,
    /// Loss: lv|log-variance or kl [default: lv].
    #[arg(long, value_enum, value_name = "NAME", hide_possible_values = true)]
    pub loss: Option<LossArg>,
    /// Path cost of the loss and the evaluations [default: discrete].
    #[arg(long, value_enum, value_name = "NAME")]
    pub cost: Option<CostArg>,
    /// Paths per iteration [default: 512].
    #[arg(long, value_name = "N")]
    pub batch: Option<usize>,
    /// Steps K of the time grid [default: 100].
    #[arg(long, value_name = "K")]
    pub steps: Option<usize>,
    /// Integrator of the rollouts and the file's default: em|euler-maruyama,
    /// exp|exponential, flow|probability-flow [default: exp].
    #[arg(long, value_enum, value_name = "NAME", hide_possible_values = true)]
    pub integrator: Option<IntegratorArg>,
    /// Training iterations [default: 2000].
    #[arg(long, value_name = "N")]
    pub iterations: Option<usize>,
    /// Initial learning rate, cosine decay to --lr-final [default: 5e-3].
    #[arg(long, value_name = "LR", allow_negative_numbers = true)]
    pub lr: Option<f32>,
    /// Final learning rate of the cosine decay [default: 1e-4].
    #[arg(long, value_name = "LR", allow_negative_numbers = true)]
    pub lr_final: Option<f32>,
    /// Time grid of the rollouts and the file's default [default: uniform].
    #[arg(long, value_enum, value_name = "NAME")]
    pub grid: Option<GridArg>,
    /// Standard deviation nu of the prior N(0, nu^2 I) of X_0 [default: 1].
    #[arg(long, value_name = "NU", allow_negative_numbers = true)]
    pub prior_nu: Option<f32>,
    /// Clamp of the target score inside the control (inf: none) [default: 100].
    #[arg(long, value_name = "CLIP", allow_negative_numbers = true)]
    pub score_clip: Option<f32>,
    /// Off-policy exploration of the log-variance loss: scale of the training
    /// paths' noise at the start, decaying to 1 (1: on-policy) [default: 2
    /// with the log-variance loss and the discrete cost, else 1]. Prevents
    /// mode collapse; PIS needs it on multimodal targets.
    #[arg(long, value_name = "KAPPA", allow_negative_numbers = true)]
    pub explore: Option<f32>,
    /// Fraction of the run over which the exploration decays to 1 [default: 0.25].
    #[arg(long, value_name = "FRACTION", allow_negative_numbers = true)]
    pub explore_decay: Option<f32>,
    /// Seed of the initialisation, the rollouts and the final evaluation [default: 0].
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Worker threads; the weights depend on it, the samples of a file do
    /// not [default: all cores].
    #[arg(long, value_name = "T")]
    pub threads: Option<usize>,
    /// Evaluate every N iterations (0: only at the end) [default: 100].
    #[arg(long, value_name = "N")]
    pub eval_every: Option<usize>,
    /// Paths of the final evaluation (periodic ones use at most 4096) [default: 10000].
    #[arg(long, value_name = "N")]
    pub eval_samples: Option<usize>,
    #[command(flatten)]
    pub network: NetworkArgs,
    /// Weights file to write [default: out/<target>.dcw].
    #[arg(long, short = 'o', value_name = "PATH")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub checkpoints: CheckpointArgs,
    /// Also plot the final evaluation's samples (SVG).
    #[arg(long, value_name = "PATH.svg")]
    pub plot: Option<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SamplerArg {
    Dis,
    Pis,
    Dds,
}

/// `--loss`: a short and a long name, accepted everywhere (flags and TOML)
/// and listed as [`crate::args::LOSS_NAMES`].
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossArg {
    /// Log-variance: variance of the path cost over the batch.
    #[value(name = "lv", alias = "log-variance")]
    Lv,
    /// KL: mean path cost, differentiated through the trajectory.
    Kl,
}

impl From<LossArg> for Loss {
    fn from(a: LossArg) -> Self {
        match a {
            LossArg::Lv => Loss::LogVariance,
            LossArg::Kl => Loss::Kl,
        }
    }
}

/// The configuration and the target: reference defaults, then the file,
/// then the flags.
pub fn build_config(args: &TrainArgs) -> Result<(TrainConfig, ChosenTarget)> {
    let (mut cfg, file_target, base, stem) = match &args.config {
        Some(path) => {
            let text = String::from_utf8(io::read(path)?)
                .map_err(|_| Error::new(format!("{}: not UTF-8 text", path.display())))?;
            let file = config::parse(&text, &path.display().to_string())?;
            let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            let stem = path
                .file_stem()
                .map_or("target".into(), |s| s.to_string_lossy().into_owned());
            (file.config, file.target, base, stem)
        }
        None => (
            TrainConfig {
                integrator: DEFAULT_INTEGRATOR,
                ..TrainConfig::default()
            },
            None,
            PathBuf::from("."),
            String::new(),
        ),
    };
    let cli = TargetParams {
        dim: args.target.dim,
        wells: args.target.wells,
        delta: args.target.delta,
        sigma: args.target.sigma,
    };
    let chosen = match (
        &args.target.target,
        &args.target.target_config,
        &file_target,
    ) {
        (Some(name), _, _) => ChosenTarget::builtin(target_spec(name, &cli)?)?,
        (None, Some(_), _) => args.target.resolve()?.expect("a target config"),
        (None, None, Some(entry)) => entry.build(&cli, &base, &stem).map_err(|e| {
            Error::new(format!(
                "{}: {e}",
                args.config.as_ref().expect("a config").display()
            ))
        })?,
        (None, None, None) => return Err(
            "no target: give --target NAME (gmm, funnel, mw5, dw20, mw50, gmm25, manywell32), --target-config FILE, \
             or `target` in --config"
                .into(),
        ),
    };
    if let Some(s) = args.sampler {
        cfg.sampler = match s {
            SamplerArg::Dis => SamplerKind::Dis,
            SamplerArg::Pis => SamplerKind::Pis,
            SamplerArg::Dds => SamplerKind::Dds,
        };
        // Each sampler family has its own reference SDE.
        match (cfg.sampler, cfg.sde) {
            (SamplerKind::Pis, Sde::Vp { .. }) => cfg.sde = Sde::pis_reference(),
            (k, Sde::Pis { .. }) if k != SamplerKind::Pis => cfg.sde = Sde::default(),
            _ => {}
        }
    }
    set(&mut cfg.loss, args.loss.map(Into::into));
    set(&mut cfg.cost, args.cost.map(Into::into));
    set(&mut cfg.integrator, args.integrator.map(Into::into));
    set(&mut cfg.dtype, args.network.dtype.map(Into::into));
    set(&mut cfg.grid, args.grid.map(Into::into));
    set(&mut cfg.batch, args.batch);
    set(&mut cfg.steps, args.steps);
    set(&mut cfg.iterations, args.iterations);
    set(&mut cfg.threads, args.threads);
    set(&mut cfg.eval_every, args.eval_every);
    set(&mut cfg.eval_samples, args.eval_samples);
    set(&mut cfg.checkpoint_every, args.checkpoints.checkpoint_every);
    set(&mut cfg.lr, args.lr);
    set(&mut cfg.lr_final, args.lr_final);
    set(&mut cfg.prior_nu, args.prior_nu);
    set(&mut cfg.score_clip, args.score_clip);
    cfg.explore = args.explore.or(cfg.explore);
    set(&mut cfg.explore_decay, args.explore_decay);
    set(&mut cfg.channels, args.network.channels);
    set(&mut cfg.layers, args.network.layers);
    set(&mut cfg.seed, args.seed);
    check_threads(Some(cfg.threads))?;
    // Sizes the trainer would try to allocate at once.
    let d = chosen.target.dim();
    for (name, n) in [("batch", cfg.batch), ("eval_samples", cfg.eval_samples)] {
        if n.checked_mul(d).is_none_or(|f| f > MAX_FLOATS) {
            return Err(Error::new(format!(
                "{name} = {n} is too large for d = {d} (at most {} paths)",
                MAX_FLOATS / d.max(1)
            )));
        }
    }
    cfg.validate()
        .map_err(|e| Error::new(format!("invalid configuration: {e}")))?;
    cfg.header(&*chosen.target)
        .validate()
        .map_err(|e| Error::new(format!("invalid configuration: target: {e}")))?;
    Ok((cfg, chosen))
}

pub fn run(args: &TrainArgs) -> Result<ExitCode> {
    let (cfg, chosen) = build_config(args)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("out/{}.dcw", chosen.name)));
    // Every output is checked before the first iteration.
    if let Some(p) = &args.plot {
        check_svg_path(p)?;
    }
    let mut outputs: Vec<(&str, &Path)> = vec![("weights file", &out)];
    if let Some(c) = &args.checkpoints.checkpoint {
        outputs.push(("checkpoint", c));
    }
    if let Some(p) = &args.plot {
        outputs.push(("plot", p));
    }
    let inputs: Vec<(&str, &Path)> = args
        .config
        .iter()
        .map(|c| ("configuration file", c.as_path()))
        .chain(
            args.target
                .target_config
                .iter()
                .map(|c| ("target config", c.as_path())),
        )
        .collect();
    output::check_distinct(&inputs, &outputs)?;
    for (what, path) in &outputs {
        output::check_writable(path, what)?;
    }
    note!(
        "training {} ({}) on {}: {} iterations, batch {}, K = {}, integrator {}, {} threads",
        sampler_short(cfg.sampler),
        loss_name(cfg.loss),
        chosen.description,
        cfg.iterations,
        cfg.batch,
        cfg.steps,
        integrator_names(cfg.integrator),
        cfg.threads
    );
    let outcome = train_with_progress(&cfg, &*chosen.target, &args.checkpoints)?;
    // The weights first: nothing printed below can lose them.
    let saved = output::save_weights(&out, &outcome.weights)?;
    output::out(&outcome.report.to_string());
    finish(&outcome, &saved, &args.checkpoints);
    if let Some(p) = &args.plot {
        let drawn = write_plot(
            p,
            &outcome.samples,
            Some(&*chosen.target),
            None,
            &file_label(&saved.path),
        );
        match (drawn, saved.error(&out)) {
            (Ok(()), _) => say!("plot             {}", p.display()),
            (Err(e), None) => {
                return Err(Error::new(format!(
                    "{e} (the weights are saved in {})",
                    saved.path.display()
                )))
            }
            (Err(e), Some(_)) => note!("error: {e}"),
        }
    }
    if let Some(e) = saved.error(&out) {
        return Err(e);
    }
    Ok(if outcome.interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

fn file_label(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned())
}

fn sampler_short(k: SamplerKind) -> &'static str {
    match k {
        SamplerKind::Dis => "DIS",
        SamplerKind::Pis => "PIS",
        SamplerKind::Dds => "DDS",
        SamplerKind::Dsm => "DSM",
    }
}

pub fn loss_name(l: Loss) -> &'static str {
    match l {
        Loss::LogVariance => "log-variance loss",
        Loss::Kl => "KL loss",
    }
}

/// Says where the weights (already written) and the checkpoint went.
pub fn finish(outcome: &TrainOutcome, saved: &output::Saved, checkpoints: &CheckpointArgs) {
    say!(
        "weights          {} ({} bytes, {} iterations in {:.1} s)",
        saved.path.display(),
        outcome.weights.len(),
        outcome.iterations,
        outcome.seconds
    );
    if let Some(c) = &checkpoints.checkpoint {
        say!("checkpoint       {}", c.display());
    }
    if outcome.interrupted {
        note!(
            "interrupted after {} iterations: the weights are those of that point{}",
            outcome.iterations,
            checkpoints.continue_hint()
        );
    }
}

/// The flag Ctrl-C sets: the trainer checkpoints and returns at the next
/// iteration. A second Ctrl-C exits at once.
pub(crate) fn stop_flag() -> Result<&'static AtomicBool> {
    static STOP: AtomicBool = AtomicBool::new(false);
    static INSTALLED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            ctrlc::set_handler(|| {
                if STOP.swap(true, Ordering::SeqCst) {
                    std::process::exit(130);
                }
                note!("\nstopping after this iteration (Ctrl-C again to quit at once)");
            })
            .map_err(|e| format!("cannot catch Ctrl-C: {e}"))
        })
        .clone()
        .map_err(Error::new)?;
    Ok(&STOP)
}

/// Runs the trainer with a progress bar on a terminal, or a line every 5%
/// of the iterations otherwise (logs, CI). A resumed run says from which
/// iteration it continues.
pub fn train_with_progress(
    cfg: &TrainConfig,
    target: &dyn TrainTarget,
    checkpoints: &CheckpointArgs,
) -> Result<TrainOutcome> {
    let run = checkpoints.run_options(stop_flag()?);
    let mut report = progress::Reporter::new(cfg.iterations);
    let mut line = ProgressLine::new(cfg.eval_every);
    let mut first = true;
    let result = train::train(cfg, target, &run, &mut |p| {
        if std::mem::take(&mut first) && p.step.iteration > 1 {
            report.println(&format!(
                "resumed at iteration {} of {}",
                p.step.iteration - 1,
                p.step.iterations
            ));
        }
        let bar = report.is_bar();
        report.update(p.step.iteration, p.step.iterations, p.step.elapsed, || {
            line.message(p, bar)
        })
    });
    report.finish();
    let outcome = result.map_err(|e| Error::new(e.to_string()))?;
    if first && checkpoints.resume && run.checkpoint.as_ref().is_some_and(|c| c.exists()) {
        note!(
            "resumed at iteration {}: the checkpoint had finished the run",
            outcome.iterations
        );
    }
    Ok(outcome)
}

/// The training progress line: loss, gradient norm, learning rate, and the
/// latest periodic estimate of log Z with its ESS and the iteration it was
/// computed at (on log lines, only the first time it is shown).
struct ProgressLine {
    eval_every: usize,
    shown: Option<usize>,
}

impl ProgressLine {
    fn new(eval_every: usize) -> Self {
        ProgressLine {
            eval_every,
            shown: None,
        }
    }

    fn message(&mut self, p: &Progress, repeat: bool) -> String {
        let mut s = format!(
            "loss {:.4e}  |g| {:.3}  lr {:.2e}",
            p.step.loss, p.step.grad_norm, p.step.lr
        );
        if let (Some(r), Some(at)) = (&p.last_eval, eval_iteration(p, self.eval_every)) {
            if repeat || self.shown != Some(at) {
                self.shown = Some(at);
                let _ = write!(
                    s,
                    "  log Z_is {:+.4} (ESS {:.3}, at iteration {at})",
                    r.estimates.log_z_is, r.estimates.ess
                );
            }
        }
        s
    }
}

/// The iteration of the trainer's latest periodic evaluation: after each
/// multiple of `eval_every` iterations, except the last (the final
/// evaluation is reported separately).
fn eval_iteration(p: &Progress, eval_every: usize) -> Option<usize> {
    if eval_every == 0 || p.step.iteration < eval_every {
        return None;
    }
    let at = p.step.iteration / eval_every * eval_every;
    Some(if at >= p.step.iterations {
        at - eval_every
    } else {
        at
    })
}
