//! `diffctl demo`: the README's main job. Trains DIS with the log-variance
//! loss on `gmm`, writes the weights file, samples it with the runtime,
//! reports the log Z error and ESS and plots the samples.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use diffctl_runtime::prelude::*;
use diffctl_trainer::eval::{report, sample_file, SampleOptions};
use diffctl_trainer::target::Known;
use diffctl_trainer::train::{Loss, TrainConfig};

use crate::args::{integrator_names, CheckpointArgs};
use crate::commands::plot::write as write_plot;
use crate::commands::train::{finish, train_with_progress};
use crate::error::Result;
use crate::io;
use crate::output::{self, note, say};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// A smaller budget, a smoke test: K = 50, 400 iterations (README
    /// states measured times).
    #[arg(long)]
    pub quick: bool,
    /// Output folder.
    #[arg(long, default_value = "out/demo", value_name = "DIR")]
    pub dir: std::path::PathBuf,
}

/// The demo's training budget: K = 100, 1500 iterations of batch 512, or
/// with `quick` K = 50, 400 iterations (README states the measured times).
/// The exponential integrator: with `beta_bar` up to 10 it leaves a several
/// times smaller path-cost spread than Euler–Maruyama at the same K
/// (runtime/tests/analytic.rs), hence a higher ESS.
pub fn demo_config(quick: bool) -> TrainConfig {
    let reference = TrainConfig {
        sampler: SamplerKind::Dis,
        loss: Loss::LogVariance,
        batch: 512,
        steps: 100,
        integrator: Integrator::Exponential,
        iterations: 1500,
        eval_every: 100,
        eval_samples: 10_000,
        checkpoint_every: 0,
        ..TrainConfig::default()
    };
    if quick {
        TrainConfig {
            steps: 50,
            iterations: 400,
            eval_samples: 4096,
            ..reference
        }
    } else {
        reference
    }
}

pub fn run(args: &DemoArgs) -> Result<ExitCode> {
    let cfg = demo_config(args.quick);
    let weights = args.dir.join("gmm.dcw");
    let svg = args.dir.join("gmm.svg");
    // Both outputs are checked before the first iteration.
    output::check_writable(&weights, "weights file")?;
    output::check_writable(&svg, "plot")?;
    note!(
        "demo: DIS, log-variance loss, gmm; {} iterations, batch {}, K = {}, integrator {}, {} threads{}",
        cfg.iterations,
        cfg.batch,
        cfg.steps,
        integrator_names(cfg.integrator),
        cfg.threads,
        if args.quick { " (--quick)" } else { "" }
    );
    let gmm = Known::preset("gmm").expect("a preset");
    let outcome = train_with_progress(&cfg, &gmm, &CheckpointArgs::default())?;
    let saved = output::save_weights(&weights, &outcome.weights)?;
    finish(&outcome, &saved, &CheckpointArgs::default());

    // What ships is what is measured: read the file back and sample it with
    // the runtime, under a seed the training never used.
    let bytes = io::read(&saved.path)?;
    let opts = SampleOptions {
        n: cfg.eval_samples,
        seed: cfg.seed + 1,
        threads: cfg.threads,
        ..SampleOptions::default()
    };
    let samples = sample_file(&bytes, None, &opts)?;
    let rep = report(&samples, Some(&gmm), cfg.cost);
    say!("");
    say!(
        "runtime samples of {} (seed {}):",
        saved.path.display(),
        opts.seed
    );
    output::out(&rep.to_string());
    let err = rep.log_z_is_error().unwrap_or(f64::NAN);
    say!(
        "summary          log Z error {err:+.4} (importance sampling, {} paths), ESS {:.3}",
        rep.n,
        rep.estimates.ess
    );
    write_plot(&svg, &samples, Some(&gmm), None, &label(&weights))?;
    say!("plot             {}", svg.display());
    if let Some(e) = saved.error(&weights) {
        return Err(e);
    }
    Ok(if outcome.interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

fn label(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned())
}
