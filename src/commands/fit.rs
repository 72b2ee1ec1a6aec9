//! `diffctl fit --data FILE`: denoising score matching (MATH.md §7) on a
//! sample set, with a held-out validation split, early stopping, a progress
//! bar, Ctrl-C handling (the best weights so far are written) and an atomic
//! weights file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use diffctl_trainer::dsm::{fit, FitConfig, FitOutcome, FitProgress};
use diffctl_trainer::eval::{sample_params, SampleOptions};
use diffctl_trainer::optimise::{MAX_BATCH, MAX_ITERATIONS};
use serde::Deserialize;

use crate::args::{check_threads, set, CheckpointArgs, NetworkArgs, MAX_FLOATS};
use crate::commands::plot::{check_svg_path, write_versus};
use crate::commands::train::stop_flag;
use crate::datasets::{subset, Purpose, Source};
use crate::error::{Error, Result};
use crate::output::{self, note, say};
use crate::progress;
use crate::{config, io};

/// Default number of generated samples of `toy:` data.
const TOY_N: usize = 20_000;
/// Points (data and samples each) in the `--plot` figure.
const PLOT_POINTS: usize = 5_000;

#[derive(Args, Debug, Default)]
pub struct FitArgs {
    /// Samples to fit: a CSV or .npy file (n x d), or toy:NAME (moons,
    /// checkerboard, 8gaussians, swissroll, or a target preset such as gmm).
    #[arg(long, value_name = "FILE|toy:NAME")]
    pub data: String,
    /// Number of samples generated for toy:NAME data [default: 20000].
    #[arg(long, short = 'n', value_name = "N")]
    pub n: Option<usize>,
    /// TOML file of settings (keys of dsm::FitConfig); flags override it.
    /// The defaults below are those of a run without one.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Weights file to write [default: out/<data name>.dcw].
    #[arg(long, short = 'o', value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Training iterations (at most; early stopping may end sooner) [default: 4000].
    #[arg(long, value_name = "N")]
    pub iterations: Option<usize>,
    /// Samples per iteration [default: 1024].
    #[arg(long, value_name = "N")]
    pub batch: Option<usize>,
    /// Seed of the split, the initialisation, the batches (and toy data) [default: 0].
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Worker threads; the weights depend on it, the samples of a file do
    /// not [default: all cores].
    #[arg(long, value_name = "T")]
    pub threads: Option<usize>,
    /// Share of the data held out for validation, in (0, 1) [default: 0.1].
    #[arg(long, value_name = "FRACTION", allow_negative_numbers = true)]
    pub validation: Option<f64>,
    /// Stop after this many validations without improvement (0: never early) [default: 10].
    #[arg(long, value_name = "N")]
    pub patience: Option<usize>,
    /// Peak learning rate [default: 2e-3].
    #[arg(long, value_name = "LR", allow_negative_numbers = true)]
    pub lr: Option<f32>,
    #[command(flatten)]
    pub network: NetworkArgs,
    /// Also plot the data against samples of the fitted model (SVG).
    #[arg(long, value_name = "PATH.svg")]
    pub plot: Option<PathBuf>,
    #[command(flatten)]
    pub checkpoints: CheckpointArgs,
}

/// The configuration: defaults, then the file, then the flags.
pub fn build_config(args: &FitArgs) -> Result<FitConfig> {
    let mut cfg = match &args.config {
        Some(path) => {
            let text = String::from_utf8(io::read(path)?)
                .map_err(|_| Error::new(format!("{}: not UTF-8 text", path.display())))?;
            let what = path.display().to_string();
            let table = config::normalise_names(&text, &what)?;
            FitConfig::deserialize(toml::Value::Table(table))
                .map_err(|e| Error::new(format!("{what}: {e}")))?
        }
        None => FitConfig::default(),
    };
    set(&mut cfg.iterations, args.iterations);
    set(&mut cfg.batch, args.batch);
    set(&mut cfg.threads, args.threads);
    set(&mut cfg.patience, args.patience);
    set(&mut cfg.checkpoint_every, args.checkpoints.checkpoint_every);
    set(&mut cfg.seed, args.seed);
    set(&mut cfg.validation_fraction, args.validation);
    set(&mut cfg.channels, args.network.channels);
    set(&mut cfg.layers, args.network.layers);
    set(&mut cfg.lr, args.lr);
    set(&mut cfg.dtype, args.network.dtype.map(Into::into));
    check_threads(Some(cfg.threads))?;
    for (name, v, max) in [
        ("batch", cfg.batch, MAX_BATCH),
        ("iterations", cfg.iterations, MAX_ITERATIONS),
    ] {
        if v > max {
            return Err(Error::new(format!(
                "invalid configuration: {name} must be at most {max}, got {v}"
            )));
        }
    }
    Ok(cfg)
}

pub fn run(args: &FitArgs) -> Result<ExitCode> {
    let source = Source::parse(&args.data)?;
    if args.n.is_some() && matches!(source, Source::File(_)) {
        return Err("--n sets the size of toy:NAME data; a data file is used whole".into());
    }
    let cfg = build_config(args)?;
    if let Some(p) = &args.plot {
        check_svg_path(p)?;
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("out/{}.dcw", source.name())));
    // Every output is checked before the data are read and the first iteration.
    let mut outputs: Vec<(&str, &Path)> = vec![("weights file", &out)];
    if let Some(p) = &args.plot {
        outputs.push(("plot", p));
    }
    if let Some(c) = &args.checkpoints.checkpoint {
        outputs.push(("checkpoint", c));
    }
    let mut inputs: Vec<(&str, &Path)> = Vec::new();
    if let Source::File(f) = &source {
        inputs.push(("data file", f));
    }
    if let Some(c) = &args.config {
        inputs.push(("configuration file", c));
    }
    output::check_distinct(&inputs, &outputs)?;
    for (what, path) in &outputs {
        output::check_writable(path, what)?;
    }
    let data = source.load(args.n.unwrap_or(TOY_N), cfg.seed, Purpose::Fit)?;
    let d = data.d;
    if data.len() < 2 * cfg.batch {
        let n_train = data
            .split(cfg.validation_fraction, cfg.seed)
            .map_or(0, |(train, _)| train.len());
        if n_train < cfg.batch {
            note!(
                "warning: {} training rows (of {}) are fewer than the batch of {}: every batch repeats rows; a smaller --batch or more data fit better",
                n_train,
                data.len(),
                cfg.batch
            );
        }
    }
    // The widest activation of a batch, d or C floats per sample.
    let width = d.max(cfg.channels as usize);
    if cfg.batch.checked_mul(width).is_none_or(|f| f > MAX_FLOATS) {
        return Err(Error::new(format!(
            "batch = {} is too large for d = {d} and C = {} (at most {} samples)",
            cfg.batch,
            cfg.channels,
            MAX_FLOATS / width.max(1)
        )));
    }
    cfg.validate(d)
        .map_err(|e| Error::new(format!("invalid configuration: {e}")))?;
    // Ctrl-C is caught from here on (before the first line, which callers may wait for).
    let stop = stop_flag()?;
    note!(
        "fitting DSM to {}: up to {} iterations, batch {}, C = {}, L = {}, {} threads",
        source.describe(&data),
        cfg.iterations,
        cfg.batch,
        cfg.channels,
        cfg.layers,
        cfg.threads
    );
    let mut reporter = progress::Reporter::new(cfg.iterations);
    let run = args.checkpoints.run_options(stop);
    let result = fit(&data, &cfg, &run, &mut |p| {
        reporter.update(p.step.iteration, p.step.iterations, p.step.elapsed, || {
            progress_message(p)
        })
    });
    reporter.finish();
    let outcome = result.map_err(|e| Error::new(e.to_string()))?;

    // The weights first: nothing printed below can lose them.
    let saved = output::save_weights(&out, &outcome.weights)?;
    output::out(&summary(&outcome, &source.describe(&data)));
    say!(
        "weights          {} ({} bytes)",
        saved.path.display(),
        outcome.weights.len()
    );
    if outcome.interrupted {
        note!(
            "interrupted after {} iterations: the weights are the best validated ones so far{}",
            outcome.iterations,
            args.checkpoints.continue_hint()
        );
    }
    if let Some(p) = &args.plot {
        let shown = subset(&data, PLOT_POINTS, cfg.seed)?;
        let opts = SampleOptions {
            n: PLOT_POINTS,
            seed: cfg.seed.wrapping_add(1),
            threads: cfg.threads,
            ..SampleOptions::default()
        };
        let samples = sample_params(&outcome.header, &outcome.params, None, &opts)?;
        let label = out
            .file_name()
            .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
        write_versus(p, &shown, &samples, None, &label, &source.name())?;
        say!("plot             {}", p.display());
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

/// The summary lines: sizes, best validation, early stop, time.
fn summary(o: &FitOutcome, data: &str) -> String {
    let stop = if o.interrupted {
        "no (interrupted by Ctrl-C)".to_string()
    } else if o.stopped_early {
        format!("yes, after {} iterations", o.iterations)
    } else {
        format!("no ({} iterations)", o.iterations)
    };
    format!(
        "data             {data}\n\
         train/validation {} / {} samples\n\
         best validation  {:.5} (DSM loss per dimension) at iteration {}\n\
         early stop       {stop}\n\
         time             {:.1} s\n",
        o.n_train, o.n_validation, o.best_validation_loss, o.best_iteration, o.seconds
    )
}

/// The fit progress line: loss, gradient norm, learning rate, best validation loss.
fn progress_message(p: &FitProgress) -> String {
    let best = if p.best_validation_loss.is_finite() {
        format!("{:.5}", p.best_validation_loss)
    } else {
        "-".into()
    };
    format!(
        "loss {:.4e}  |g| {:.3}  lr {:.2e}  best val {best}",
        p.step.loss, p.step.grad_norm, p.step.lr
    )
}
